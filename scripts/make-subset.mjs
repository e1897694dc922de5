#!/usr/bin/env node
// Writes the committed, class-balanced Fashion-MNIST subset used by the tests and demos:
//   300 images per class (3000) from the official train split, and
//   100 images per class (1000) from the official t10k split,
// taking the first N images of each class in file order (deterministic; file order is kept).
// Output: tests/data/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, gzip IDX
// files with the upstream names.
//
// Source: the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist),
// which installs the upstream files in /usr/share/datasets/fashion-mnist.
// Usage: node scripts/make-subset.mjs [sourceDir] [outDir]
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readIdx, writeIdx } from './idx-file.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const outDir = process.argv[3] ?? join(root, 'tests/data/fashion-mnist');
const SPLITS = [
  { prefix: 'train', perClass: 300 },
  { prefix: 't10k', perClass: 100 },
];
const NUM_CLASSES = 10;

mkdirSync(outDir, { recursive: true });
let total = 0;
for (const { prefix, perClass } of SPLITS) {
  const images = readIdx(join(srcDir, `${prefix}-images-idx3-ubyte.gz`));
  const labels = readIdx(join(srcDir, `${prefix}-labels-idx1-ubyte.gz`));
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) throw new Error(`${prefix}: ${n} images but ${labels.dims[0]} labels`);
  const pixels = h * w;

  const taken = new Array(NUM_CLASSES).fill(0);
  const picked = [];
  for (let i = 0; i < n && picked.length < perClass * NUM_CLASSES; i++) {
    const l = labels.data[i];
    if (taken[l] < perClass) {
      taken[l]++;
      picked.push(i);
    }
  }
  if (picked.length !== perClass * NUM_CLASSES) throw new Error(`${prefix}: not enough images per class: ${taken}`);

  const outImages = Buffer.alloc(picked.length * pixels);
  const outLabels = Buffer.alloc(picked.length);
  picked.forEach((src, dst) => {
    outImages.set(images.data.subarray(src * pixels, (src + 1) * pixels), dst * pixels);
    outLabels[dst] = labels.data[src];
  });
  const a = writeIdx(join(outDir, `${prefix}-images-idx3-ubyte.gz`), [picked.length, h, w], outImages);
  const b = writeIdx(join(outDir, `${prefix}-labels-idx1-ubyte.gz`), [picked.length], outLabels);
  total += a + b;
  console.log(`${prefix}: ${picked.length} images (${perClass}/class, last source index ${picked.at(-1)}): ${a} + ${b} bytes`);
}
console.log(`wrote ${outDir} (${total} bytes)`);
