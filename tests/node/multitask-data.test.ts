import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FASHION_MNIST_CLASSES, loadFashionMnist, type ImageSet } from '../../src/engine/io/fashion-mnist.js';
import { parseIdxMaybeGzip } from '../../src/engine/io/idx.js';
import { loadMnistDigits, MNIST_DIGIT_CLASSES } from '../../src/engine/io/mnist.js';
import { dropLabels, multiFashion, multiFashionMnist, takeMultiTaskRows, taskCounts, type MultiTaskData } from '../../src/paradigms/multitask/data.js';
import { makeMnist, packageDigits } from '../../scripts/make-mnist.mjs';
import { startServer } from '../../scripts/serve.mjs';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '../data');
const fetchFrom = (dir: string) => async (file: string) => new Uint8Array(await readFile(join(DATA, dir, file)));
const fashionTrain = await loadFashionMnist(fetchFrom('fashion-mnist'), 'train');
const digits = await loadMnistDigits(fetchFrom('mnist'));

/**
 * A copy of `set` whose image i carries (i + 1) / 4096 at its pixels (0,0) and (26,26). In a
 * composite, (0,0) of the top-left item shows at output (0,0) and (26,26) of the bottom-right item
 * at output (25,25), each out of the other item's reach, so the tags tell which source images a
 * composite was made of.
 */
function tagged(set: ImageSet): ImageSet {
  const images = set.images.slice();
  for (let i = 0; i < set.count; i++) {
    images[i * 784] = images[i * 784 + 26 * 28 + 26] = (i + 1) / 4096;
  }
  return { ...set, images };
}
const tagOf = (v: number) => Math.round(v * 4096) - 1;

/**
 * The reference construction, written out as in Sener & Koltun's multi_mnist_loader.py: a float64
 * 36x36 canvas, the left image at [0:28,0:28], the right one at [6:34,6:34], the max of both on
 * [6:28,6:28], then a nearest-neighbour resize to 28x28 sampling at pixel centres (PIL).
 */
function referenceComposite(left: Float32Array, right: Float32Array): Float64Array {
  const canvas = new Float64Array(36 * 36);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) canvas[y * 36 + x] = left[y * 28 + x]!;
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) canvas[(y + 6) * 36 + x + 6] = right[y * 28 + x]!;
  for (let y = 6; y < 28; y++) for (let x = 6; x < 28; x++) canvas[y * 36 + x] = Math.max(left[y * 28 + x]!, right[(y - 6) * 28 + x - 6]!);
  const out = new Float64Array(784);
  const scale = 36 / 28;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) out[y * 28 + x] = canvas[Math.floor((y + 0.5) * scale) * 36 + Math.floor((x + 0.5) * scale)]!;
  }
  return out;
}

const sameBytes = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const image = (set: ImageSet, i: number) => set.images.subarray(i * 784, (i + 1) * 784);
const row = (data: MultiTaskData, i: number) => data.inputs.subarray(i * 784, (i + 1) * 784);

/** Checks every composite against the reference and its labels and ink against its source items. */
function checkComposites(data: MultiTaskData, top: ImageSet, bottom: ImageSet, topTask: string, bottomTask: string): { tops: number[]; bottoms: number[] } {
  const tops: number[] = [];
  const bottoms: number[] = [];
  for (let i = 0; i < data.count; i++) {
    const t = tagOf(row(data, i)[0]!);
    const b = tagOf(row(data, i)[25 * 28 + 25]!);
    expect(t).toBeGreaterThanOrEqual(0);
    expect(b).toBeGreaterThanOrEqual(0);
    const expected = referenceComposite(image(top, t), image(bottom, b));
    const got = row(data, i);
    for (let p = 0; p < 784; p++) if (got[p] !== expected[p]) throw new Error(`composite ${i} (items ${t}, ${b}): pixel ${p} is ${got[p]}, reference ${expected[p]}`);
    expect(data.tasks[topTask]!.values[i]).toBe(top.labels[t]);
    expect(data.tasks[bottomTask]!.values[i]).toBe(bottom.labels[b]);
    const ink = image(top, t).reduce((s, v) => s + v, 0) / 784;
    expect(data.tasks.ink!.values[i]).toBeCloseTo(ink, 6);
    tops.push(t);
    bottoms.push(b);
  }
  return { tops, bottoms };
}

describe('multiFashion', () => {
  const source = tagged(fashionTrain);

  it('builds each image as the reference does from the items its labels and ink name', () => {
    const data = multiFashion(source, 500, { seed: 3 });
    expect(data.count).toBe(500);
    expect(data.features).toBe(784);
    expect(data.inputs.length).toBe(500 * 784);
    expect(Object.keys(data.tasks).sort()).toEqual(['ink', 'left', 'right']);
    expect(data.tasks.left).toMatchObject({ kind: 'classification', width: 10, classNames: FASHION_MNIST_CLASSES });
    expect(data.tasks.right).toMatchObject({ kind: 'classification', width: 10, classNames: FASHION_MNIST_CLASSES });
    expect(data.tasks.ink).toMatchObject({ kind: 'regression', width: 1 });
    expect(data.tasks.ink!.mask).toBeUndefined();
    const { tops, bottoms } = checkComposites(data, source, source, 'left', 'right');
    // Top-left items: a permutation, so no repeats before the source runs out; bottom-right ones
    // an independent choice, so most pairs differ in class and the classes spread over all 10.
    expect(new Set(tops).size).toBe(500);
    expect(new Set(bottoms).size).toBeGreaterThan(400);
    expect(tops.filter((t, i) => source.labels[t] !== source.labels[bottoms[i]!]).length).toBeGreaterThan(400);
    expect(new Set(Array.from(data.tasks.right!.values)).size).toBe(10);
    expect(data.inputs.reduce((m, v) => Math.min(m, v), Infinity)).toBe(0);
    expect(data.inputs.reduce((m, v) => Math.max(m, v), -Infinity)).toBe(1);
  });

  it('cycles through the whole source before repeating a top-left item', () => {
    const small: ImageSet = { images: source.images.subarray(0, 50 * 784), labels: source.labels.subarray(0, 50), count: 50 };
    const { tops } = checkComposites(multiFashion(small, 120, { seed: 9 }), small, small, 'left', 'right');
    expect(new Set(tops.slice(0, 50)).size).toBe(50);
    expect(new Set(tops.slice(50, 100)).size).toBe(50);
  });

  it('is bit-identical for a seed and differs across seeds', () => {
    const a = multiFashion(source, 300, { seed: 5 });
    const b = multiFashion(source, 300, { seed: 5 });
    const c = multiFashion(source, 300, { seed: 6 });
    expect(sameBytes(a.inputs, b.inputs)).toBe(true);
    for (const task of ['left', 'right', 'ink']) expect(b.tasks[task]!.values).toEqual(a.tasks[task]!.values);
    expect(sameBytes(a.inputs, c.inputs)).toBe(false);
    const sameLeft = a.tasks.left!.values.filter((v, i) => v === c.tasks.left!.values[i]).length;
    expect(sameLeft).toBeLessThan(100); // ~30 of 300 by chance
    expect(multiFashion(source, 10).inputs).toEqual(multiFashion(source, 10, { seed: 1 }).inputs);
  });

  it('refuses a bad count, seed or source, naming it', () => {
    expect(() => multiFashion(source, 0)).toThrow(/multiFashion: count must be a positive integer, got 0/);
    expect(() => multiFashion(source, 2.5)).toThrow(/count must be a positive integer, got 2\.5/);
    expect(() => multiFashion(source, 4, { seed: 0.5 })).toThrow(/multiFashion: seed must be an integer, got 0\.5/);
    const empty: ImageSet = { images: new Float32Array(0), labels: new Uint8Array(0), count: 0 };
    expect(() => multiFashion(empty, 4)).toThrow(/multiFashion: source must hold at least one 28x28 image.*got count 0/);
    const wrong: ImageSet = { images: new Float32Array(100), labels: new Uint8Array(1), count: 1 };
    expect(() => multiFashion(wrong, 4)).toThrow(/count 1, 100 pixels, 1 labels/);
  });
});

describe('multiFashionMnist', () => {
  it('puts the clothing item at the top left and the digit at the bottom right, as the reference does', () => {
    const fashion = tagged(fashionTrain);
    const tagDigits = tagged(digits.train);
    const data = multiFashionMnist(fashion, tagDigits, 400, { seed: 2 });
    expect(Object.keys(data.tasks).sort()).toEqual(['clothing', 'digit', 'ink']);
    expect(data.tasks.clothing).toMatchObject({ kind: 'classification', width: 10, classNames: FASHION_MNIST_CLASSES });
    expect(data.tasks.digit).toMatchObject({ kind: 'classification', width: 10, classNames: MNIST_DIGIT_CLASSES });
    const { bottoms } = checkComposites(data, fashion, tagDigits, 'clothing', 'digit');
    expect(new Set(bottoms).size).toBeGreaterThan(300);
    expect(new Set(Array.from(data.tasks.digit!.values)).size).toBe(10);
    expect(multiFashionMnist(fashion, tagDigits, 50, { seed: 2 }).inputs).toEqual(data.inputs.subarray(0, 50 * 784));
    expect(() => multiFashionMnist(fashion, { images: new Float32Array(0), labels: new Uint8Array(0), count: 0 }, 5)).toThrow(
      /multiFashionMnist: digits must hold at least one 28x28 image/,
    );
  });
});

describe('dropLabels, taskCounts, takeMultiTaskRows', () => {
  const data = multiFashion(fashionTrain, 1000, { seed: 4 });

  it('keeps a seeded fraction of one task\'s labels and leaves everything else as it was', () => {
    const before = { inputs: data.inputs.slice(), left: data.tasks.left!.values.slice() };
    const dropped = dropLabels(data, 'right', 0.3, { seed: 7 });
    const mask = dropped.tasks.right!.mask!;
    expect(mask.length).toBe(1000);
    expect(mask.reduce((n, m) => n + m, 0)).toBe(300);
    expect(mask.every((m) => m === 0 || m === 1)).toBe(true);
    expect(taskCounts(dropped)).toEqual({ left: 1000, right: 300, ink: 1000 });
    expect(taskCounts(data)).toEqual({ left: 1000, right: 1000, ink: 1000 });
    expect(dropped.tasks.right!.values).toEqual(data.tasks.right!.values);
    expect(dropped.tasks.left).toBe(data.tasks.left);
    expect(dropped.tasks.ink).toBe(data.tasks.ink);
    expect(data.tasks.right!.mask).toBeUndefined();
    expect(sameBytes(data.inputs, before.inputs)).toBe(true);
    expect(data.tasks.left!.values).toEqual(before.left);
    // The kept rows are spread over the data, not a block.
    expect(mask.subarray(0, 500).reduce((n, m) => n + m, 0)).toBeGreaterThan(100);
    expect(mask.subarray(500).reduce((n, m) => n + m, 0)).toBeGreaterThan(100);

    expect(dropLabels(data, 'right', 0.3, { seed: 7 }).tasks.right!.mask).toEqual(mask);
    expect(dropLabels(data, 'right', 0.3, { seed: 8 }).tasks.right!.mask).not.toEqual(mask);
    // Dropping again keeps a fraction of the rows still labelled.
    const twice = dropLabels(dropped, 'right', 0.5, { seed: 1 }).tasks.right!.mask!;
    expect(twice.reduce((n, m) => n + m, 0)).toBe(150);
    expect(twice.every((m, i) => m === 0 || mask[i] === 1)).toBe(true);
    expect(taskCounts(dropLabels(data, 'ink', 0))).toEqual({ left: 1000, right: 1000, ink: 0 });
    expect(taskCounts(dropLabels(data, 'ink', 1))).toEqual({ left: 1000, right: 1000, ink: 1000 });
  });

  it('refuses an unknown task and a fraction outside [0, 1]', () => {
    expect(() => dropLabels(data, 'colour', 0.5)).toThrow(/dropLabels: no task "colour"; the tasks are left, right, ink/);
    expect(() => dropLabels(data, 'toString', 0.5)).toThrow(/no task "toString"/);
    expect(() => dropLabels(data, 'left', 1.5)).toThrow(/dropLabels: keepFraction must be in \[0, 1\], got 1\.5/);
    expect(() => dropLabels(data, 'left', NaN)).toThrow(/keepFraction must be in \[0, 1\], got NaN/);
  });

  it('takes rows with their labels and masks', () => {
    const dropped = dropLabels(data, 'left', 0.5, { seed: 2 });
    const rows = [999, 0, 17, 17];
    const taken = takeMultiTaskRows(dropped, rows);
    expect(taken.count).toBe(4);
    rows.forEach((r, k) => {
      expect(taken.inputs.subarray(k * 784, (k + 1) * 784)).toEqual(row(data, r));
      for (const task of ['left', 'right', 'ink']) expect(taken.tasks[task]!.values[k]).toBe(dropped.tasks[task]!.values[r]);
      expect(taken.tasks.left!.mask![k]).toBe(dropped.tasks.left!.mask![r]);
    });
    expect(taken.tasks.right!.mask).toBeUndefined();
    expect(taken.tasks.left!.classNames).toBe(FASHION_MNIST_CLASSES);
    expect(() => takeMultiTaskRows(data, [0, 1000])).toThrow(/takeMultiTaskRows: index 1000 at position 1 is not a row of 0\.\.999/);
  });
});

describe('MNIST digits', () => {
  it('loadMnistDigits splits the committed subset within each class, first 80% to train', async () => {
    const raw = await parseIdxMaybeGzip(await fetchFrom('mnist')('mnist-images-idx3-ubyte.gz'));
    const rawLabels = (await parseIdxMaybeGzip(await fetchFrom('mnist')('mnist-labels-idx1-ubyte.gz'))).data;
    expect(raw.dims).toEqual([2000, 28, 28]);
    expect(digits.train.count).toBe(1600);
    expect(digits.test.count).toBe(400);
    const histogram = (labels: Uint8Array) => Array.from({ length: 10 }, (_, c) => labels.filter((l) => l === c).length);
    expect(histogram(digits.train.labels)).toEqual(new Array(10).fill(160));
    expect(histogram(digits.test.labels)).toEqual(new Array(10).fill(40));
    // The file is class by class, 200 each: train = rows 200c..200c+159, test = the other 40.
    for (let c = 0; c < 10; c++) {
      for (const [split, at, from, n] of [[digits.train, 160 * c, 200 * c, 160], [digits.test, 40 * c, 200 * c + 160, 40]] as const) {
        for (let k = 0; k < n; k++) {
          expect(split.labels[at + k]).toBe(rawLabels[from + k]);
          const got = split.images.subarray((at + k) * 784, (at + k + 1) * 784);
          const want = raw.data.subarray((from + k) * 784, (from + k + 1) * 784);
          if (!got.every((v, p) => v === Math.fround(want[p]! / 255))) throw new Error(`class ${c}: row ${at + k} is not file row ${from + k}`);
        }
      }
    }
    let min = Infinity;
    let max = -Infinity;
    for (const v of digits.train.images) (min = Math.min(min, v)), (max = Math.max(max, v));
    expect([min, max]).toEqual([0, 1]);
    await expect(loadMnistDigits(async () => new Uint8Array([0, 0, 8]))).rejects.toThrow(/mnist: mnist-(images|labels)-idx\d-ubyte\.gz: idx: file too short/);
  });

  it('serve.mjs serves /data/mnist from MNIST_DIR, which loadMnistDigits reads over HTTP', async () => {
    const saved = process.env.MNIST_DIR;
    process.env.MNIST_DIR = join(DATA, 'mnist');
    const server = await startServer({ port: 0 });
    try {
      expect(server.mnistDir).toBe(join(DATA, 'mnist'));
      const served = await loadMnistDigits(async (file) => new Uint8Array(await (await fetch(`${server.url}data/mnist/${file}`)).arrayBuffer()));
      expect(served.train.count).toBe(1600);
      expect(sameBytes(served.test.images, digits.test.images)).toBe(true);
      expect((await fetch(`${server.url}data/mnist/missing.gz`)).status).toBe(404);
    } finally {
      await server.close();
      if (saved === undefined) delete process.env.MNIST_DIR;
      else process.env.MNIST_DIR = saved;
    }
  });

  it('make-mnist writes IDX files that parse back to the package\'s values (to 1/255) and match the committed subset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'make-mnist-'));
    try {
      const made = makeMnist(dir, 30);
      expect(made.count).toBe(300);
      const images = await parseIdxMaybeGzip(new Uint8Array(readFileSync(join(dir, 'mnist-images-idx3-ubyte.gz'))));
      const labels = await parseIdxMaybeGzip(new Uint8Array(readFileSync(join(dir, 'mnist-labels-idx1-ubyte.gz'))));
      expect(images.dims).toEqual([300, 28, 28]);
      expect(Array.from(labels.data)).toEqual(Array.from({ length: 300 }, (_, i) => Math.floor(i / 30)));
      const committed = await parseIdxMaybeGzip(await fetchFrom('mnist')('mnist-images-idx3-ubyte.gz'));
      for (let d = 0; d < 10; d++) {
        const { values, count } = packageDigits(d);
        expect(count).toBeGreaterThan(800);
        for (let p = 0; p < 30 * 784; p++) {
          const byte = images.data[d * 30 * 784 + p]!;
          if (Math.abs(byte / 255 - values[p]!) > 0.5 / 255) throw new Error(`digit ${d}, value ${p}: byte ${byte} for ${values[p]}`);
          if (committed.data[d * 200 * 784 + p] !== byte) throw new Error(`digit ${d}, value ${p}: the committed subset differs`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
