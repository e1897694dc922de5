import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gunzip, parseIdx, parseIdxMaybeGzip } from '../../src/engine/io/idx.js';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from '../../src/engine/io/fashion-mnist.js';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '../data/fashion-mnist');
const FULL = '/usr/share/datasets/fashion-mnist';
const read = (file: string) => new Uint8Array(readFileSync(join(DATA, file)));

/** Builds an unsigned-byte IDX file by hand. */
function idxFile(dims: number[], data: number[] | Uint8Array, type = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = type;
  out[3] = dims.length;
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function classCounts(labels: Uint8Array): number[] {
  const c = new Array<number>(10).fill(0);
  for (const l of labels) c[l]!++;
  return c;
}

describe('parseIdx', () => {
  it('parses a hand-made file, big-endian dims, including from an unaligned view', () => {
    const file = idxFile([2, 3], [1, 2, 3, 250, 251, 255]);
    expect(parseIdx(file)).toEqual({ dims: [2, 3], data: new Uint8Array([1, 2, 3, 250, 251, 255]) });
    const host = new Uint8Array(file.length + 3);
    host.set(file, 3);
    const r = parseIdx(host.subarray(3));
    expect(r.dims).toEqual([2, 3]);
    expect(Array.from(r.data)).toEqual([1, 2, 3, 250, 251, 255]);
    // Big-endian: 0x00000101 = 257.
    const big = idxFile([257], new Uint8Array(257).fill(7));
    expect(parseIdx(big).dims).toEqual([257]);
  });

  it('parses the committed subset: dims, labels in 0..9, exactly 300/100 per class', async () => {
    const trImg = await parseIdxMaybeGzip(read('train-images-idx3-ubyte.gz'));
    const trLbl = await parseIdxMaybeGzip(read('train-labels-idx1-ubyte.gz'));
    const teImg = await parseIdxMaybeGzip(read('t10k-images-idx3-ubyte.gz'));
    const teLbl = await parseIdxMaybeGzip(read('t10k-labels-idx1-ubyte.gz'));
    expect(trImg.dims).toEqual([3000, 28, 28]);
    expect(trLbl.dims).toEqual([3000]);
    expect(teImg.dims).toEqual([1000, 28, 28]);
    expect(teLbl.dims).toEqual([1000]);
    expect(trImg.data.length).toBe(3000 * 784);
    expect(teImg.data.length).toBe(1000 * 784);
    expect(trLbl.data.every((l) => l <= 9)).toBe(true);
    expect(teLbl.data.every((l) => l <= 9)).toBe(true);
    expect(classCounts(trLbl.data)).toEqual(new Array(10).fill(300));
    expect(classCounts(teLbl.data)).toEqual(new Array(10).fill(100));
    // Images are real pixel data, not blank.
    expect(trImg.data.some((p) => p === 255)).toBe(true);
    expect(trImg.data.some((p) => p === 0)).toBe(true);
  });

  it('the subset is the first N of each class of the full dataset, in file order', async (ctx) => {
    if (!existsSync(join(FULL, 't10k-labels-idx1-ubyte.gz'))) {
      ctx.skip(`skipped: full dataset not installed at ${FULL} (apt-get install dataset-fashion-mnist)`);
    }
    for (const [prefix, perClass] of [['train', 300], ['t10k', 100]] as const) {
      const fullImg = parseIdx(gunzipSync(readFileSync(join(FULL, `${prefix}-images-idx3-ubyte.gz`))));
      const fullLbl = parseIdx(gunzipSync(readFileSync(join(FULL, `${prefix}-labels-idx1-ubyte.gz`))));
      const subImg = await parseIdxMaybeGzip(read(`${prefix}-images-idx3-ubyte.gz`));
      const subLbl = await parseIdxMaybeGzip(read(`${prefix}-labels-idx1-ubyte.gz`));
      const taken = new Array<number>(10).fill(0);
      let j = 0;
      for (let i = 0; i < fullLbl.dims[0]! && j < subLbl.dims[0]!; i++) {
        const l = fullLbl.data[i]!;
        if (taken[l]! >= perClass) continue;
        taken[l]!++;
        expect(subLbl.data[j]).toBe(l);
        const a = subImg.data.subarray(j * 784, (j + 1) * 784);
        const b = fullImg.data.subarray(i * 784, (i + 1) * 784);
        if (!a.every((v, k) => v === b[k])) throw new Error(`${prefix}: subset image ${j} != source image ${i}`);
        j++;
      }
      expect(j).toBe(perClass * 10);
    }
  });

  it('throws clear errors for bad magic, gzip input, unsupported types and truncation', () => {
    expect(() => parseIdx(new Uint8Array([0, 0]))).toThrow(/idx: file too short \(2 bytes\)/);
    expect(() => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 0]))).toThrow(
      /idx: bad magic number: first two bytes are 0x01 0x00, expected 0x00 0x00$/,
    );
    expect(() => parseIdx(gzipSync(idxFile([1], [1])))).toThrow(/bad magic number.*gzip-compressed; use parseIdxMaybeGzip/);
    expect(() => parseIdx(idxFile([2], [0, 0, 0, 0, 0, 0, 0, 0], 0x0d))).toThrow(
      /idx: unsupported data type 0x0d \(float\); only 0x08 \(unsigned byte\) is supported/,
    );
    expect(() => parseIdx(idxFile([2], [0, 0], 0x42))).toThrow(/unsupported data type 0x42 \(unknown\)/);
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 0]))).toThrow(/number of dimensions is 0/);
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1, 0, 0]))).toThrow(
      /idx: truncated header: 3 dimensions need 16 bytes, file has 10/,
    );
    const full = idxFile([4, 28, 28], new Uint8Array(4 * 784));
    expect(() => parseIdx(full.subarray(0, full.length - 100))).toThrow(
      /idx: truncated data: dimensions \[4,28,28\] need 3136 bytes after the 16-byte header, file has 3036/,
    );
    const extra = new Uint8Array(full.length + 5);
    extra.set(full);
    expect(() => parseIdx(extra)).toThrow(/idx: 5 unexpected trailing bytes after the data for dimensions \[4,28,28\]/);
  });
});

describe('gunzip (DecompressionStream)', () => {
  it('decompresses a buffer made with node:zlib, also from an unaligned view', async () => {
    const raw = new Uint8Array(100_000);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 31 + (i >> 7)) & 0xff;
    const gz = gzipSync(raw);
    expect(await gunzip(gz)).toEqual(raw);
    const host = new Uint8Array(gz.length + 3);
    host.set(gz, 3);
    expect(await gunzip(host.subarray(3))).toEqual(raw);
    expect(await gunzip(gzipSync(new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });

  it('parseIdxMaybeGzip handles both gzip and plain IDX input', async () => {
    const file = idxFile([3], [9, 8, 7]);
    expect(await parseIdxMaybeGzip(file)).toEqual({ dims: [3], data: new Uint8Array([9, 8, 7]) });
    expect(await parseIdxMaybeGzip(gzipSync(file))).toEqual({ dims: [3], data: new Uint8Array([9, 8, 7]) });
  });

  it('rejects truncated and garbage gzip data with a clear error', async () => {
    const gz = gzipSync(new Uint8Array(5000).fill(3));
    await expect(gunzip(gz.subarray(0, gz.length - 10))).rejects.toThrow(/gunzip: invalid or truncated gzip data/);
    await expect(gunzip(new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).rejects.toThrow(
      /gunzip: invalid or truncated gzip data/,
    );
    await expect(parseIdxMaybeGzip(new Uint8Array([0x1f, 0x8b, 0, 0]))).rejects.toThrow(/gunzip: invalid or truncated/);
  });
});

describe('loadFashionMnist', () => {
  const fetchBytes = async (file: string) => new Uint8Array(await readFile(join(DATA, file)));

  it('loads both splits of the committed subset via an fs-based fetchBytes', async () => {
    expect(FASHION_MNIST_CLASSES).toHaveLength(10);
    expect(FASHION_MNIST_CLASSES[0]).toBe('T-shirt/top');
    expect(FASHION_MNIST_CLASSES[9]).toBe('Ankle boot');
    const requested: string[] = [];
    const train = await loadFashionMnist((f) => (requested.push(f), fetchBytes(f)), 'train');
    const test = await loadFashionMnist((f) => (requested.push(f), fetchBytes(f)), 'test');
    expect(requested.sort()).toEqual([
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
      'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz',
    ]);
    expect(train.count).toBe(3000);
    expect(test.count).toBe(1000);
    expect(train.images).toBeInstanceOf(Float32Array);
    expect(train.images.length).toBe(3000 * 784);
    expect(test.images.length).toBe(1000 * 784);
    expect(classCounts(train.labels)).toEqual(new Array(10).fill(300));
    expect(classCounts(test.labels)).toEqual(new Array(10).fill(100));

    const raw = await parseIdxMaybeGzip(await fetchBytes('train-images-idx3-ubyte.gz'));
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < train.images.length; i++) {
      const v = train.images[i]!;
      if (v !== Math.fround(raw.data[i]! / 255)) throw new Error(`pixel ${i}: ${v} != ${raw.data[i]}/255`);
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
  });

  it('rejects mismatched image/label counts and wrong dims', async () => {
    const mixed = (f: string) => fetchBytes(f.startsWith('train-labels') ? 't10k-labels-idx1-ubyte.gz' : f);
    await expect(loadFashionMnist(mixed, 'train')).rejects.toThrow(
      /3000 images in train-images-idx3-ubyte\.gz but 1000 labels in train-labels-idx1-ubyte\.gz/,
    );
    const wrongDims = async (f: string) => (f.includes('images') ? idxFile([2, 5, 5], new Uint8Array(50)) : fetchBytes(f));
    await expect(loadFashionMnist(wrongDims, 'test')).rejects.toThrow(
      /t10k-images-idx3-ubyte\.gz: expected dims \[n,28,28\], got \[2,5,5\]/,
    );
    const badLabel = async (f: string) =>
      f.includes('labels') ? idxFile([2], [3, 10]) : idxFile([2, 28, 28], new Uint8Array(2 * 784));
    await expect(loadFashionMnist(badLabel, 'train')).rejects.toThrow(/label 10 at index 1 is out of range 0\.\.9/);
    const truncated = async (f: string) => (await fetchBytes(f)).subarray(0, 1000);
    await expect(loadFashionMnist(truncated, 'test')).rejects.toThrow(/t10k-(images|labels)-idx\d-ubyte\.gz: gunzip: invalid or truncated/);
  });
});
