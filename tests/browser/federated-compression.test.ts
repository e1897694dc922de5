// 8-bit quantisation of client updates (src/engine/ops/quantize.ts) and the federated
// UpdateCompressor (src/paradigms/federated/compression.ts), against float64 references written
// here: each block's (min, max) and level spacing (max - min) / 255, the codes from a CPU
// Philox4x32-10 (tests/reference.ts) and the rounding rule, the mean of many seeds against x with a
// Hoeffding tolerance, and error feedback's telescoping sum.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { addScaledInPlace } from '../../src/engine/ops/index.js';
import { dequantize8, quantize8, quantizedBytes } from '../../src/engine/ops/quantize.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { UpdateCompressor } from '../../src/paradigms/federated/compression.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

const words = async (codes: Tensor) => new Uint32Array((await codes.data()).buffer);
const codeOf = (w: Uint32Array, i: number) => (w[i >> 2]! >>> (8 * (i & 3))) & 0xff;

/** Float64 (min, max, spacing) of each block of x. */
function blockRanges(x: Float64Array, blockSize: number): { lo: number; hi: number; step: number }[] {
  const out = [];
  for (let first = 0; first < x.length; first += blockSize) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = first; i < Math.min(first + blockSize, x.length); i++) {
      lo = Math.min(lo, x[i]!);
      hi = Math.max(hi, x[i]!);
    }
    out.push({ lo, hi, step: (hi - lo) / 255 });
  }
  return out;
}

/** Values with varied magnitudes per block (a scale per 100 elements), as f32. */
function updates(n: number, seed: number): Float64Array {
  const z = ref.normal([n], seed);
  return z.map((v, i) => Math.fround(v * 10 ** (((i / 100) | 0) % 5 - 3)));
}

describe('quantize8 / dequantize8', () => {
  const cases: [number, number][] = [
    [1, 1024], [3, 4], [5, 4], [7, 8], [1023, 1024], [1025, 1024], [4097, 1024], [1001, 12], [2500, 256], [333, 4096], [200, 200],
  ];
  for (const [n, blockSize] of cases) {
    test(`n = ${n}, blockSize ${blockSize}: scales, codes from the Philox bits, round trip within one step`, async () => {
      await engine.scope(async () => {
        const seed = 1000 + n;
        const x = updates(n, n);
        const q = quantize8(engine.tensor(Float32Array.from(x), [n], 'x'), { seed, blockSize });
        expect(q.codes.shape).toEqual([Math.ceil(n / 4)]);
        expect(q.scales.shape).toEqual([Math.ceil(n / blockSize), 2]);
        const w = await words(q.codes);
        const scales = await q.scales.data();
        const decoded = await dequantize8(q.codes, q.scales, n, blockSize).data();
        const ranges = blockRanges(x, blockSize);
        const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
        let ambiguous = 0;
        for (let b = 0; b < ranges.length; b++) {
          const { lo, step } = ranges[b]!;
          expect(scales[2 * b], `block ${b} min`).toBe(lo); // the min of f32 values is exact
          expect(Math.abs(scales[2 * b + 1]! - step), `block ${b} step`).toBeLessThanOrEqual(2e-7 * step);
        }
        for (let i = 0; i < n; i++) {
          const { lo, step } = ranges[Math.floor(i / blockSize)]!;
          const c = codeOf(w, i);
          // The rounding rule in float64 with the same random bits: up iff u < frac.
          if (step > 0) {
            const t = (x[i]! - lo) / step;
            const k = Math.floor(t);
            const u = (ref.philox([i >> 2, 1, 0, 0], key)[i & 3]! >>> 8) / 2 ** 24;
            const want = Math.min(255, k + (u < t - k ? 1 : 0));
            if (Math.abs(u - (t - k)) < 1e-4 || Math.abs(t - Math.round(t)) < 1e-4) {
              // f32 arithmetic may land on either side (t at a level, such as the block's min and
              // max, rounds to that level either way: frac ~ 0 or frac ~ 1)
              if (Math.abs(t - Math.round(t)) >= 1e-4) ambiguous++;
              expect(Math.abs(c - want), `element ${i}`).toBeLessThanOrEqual(1);
            } else expect(c, `code of element ${i} (t = ${t}, u = ${u})`).toBe(want);
          } else expect(c).toBe(0);
          // Round trip: within one level spacing (and the f32 rounding of lo + c * step).
          expect(Math.abs(decoded[i]! - x[i]!), `element ${i}`).toBeLessThanOrEqual(step * (1 + 1e-5) + 1e-6 * Math.abs(x[i]!));
        }
        expect(ambiguous).toBeLessThan(Math.max(3, n / 100));
        // The padding bytes of the last word are zero.
        for (let i = n; i < 4 * w.length; i++) expect(codeOf(w, i)).toBe(0);
      });
    });
  }

  test('unbiased: the mean of decode(encode(x)) over S seeds converges to x (Hoeffding bound)', async () => {
    const n = 3000;
    const blockSize = 512;
    const S = 200;
    const x = updates(n, 7);
    const sum = await engine.scope(async () => {
      const xt = engine.tensor(Float32Array.from(x), [n], 'x');
      const acc = engine.zeros([n], 'acc');
      for (let s = 0; s < S; s++) {
        await engine.scope(() => {
          const q = quantize8(xt, { seed: 5000 + s, blockSize });
          addScaledInPlace(acc, dequantize8(q.codes, q.scales, n, blockSize), 1 / S);
        });
      }
      return acc.data();
    });
    // Each decoded value lies in [level k, level k + 1], an interval of one step: by Hoeffding,
    // P(|mean - x| >= eps) <= 2 exp(-2 S eps^2 / step^2); eps is set for a 1e-9 chance over all n.
    const ranges = blockRanges(x, blockSize);
    const factor = Math.sqrt(Math.log((2 * n) / 1e-9) / (2 * S));
    let worst = 0;
    let meanError = 0;
    for (let i = 0; i < n; i++) {
      const { step } = ranges[Math.floor(i / blockSize)]!;
      const e = (sum[i]! - x[i]!) / step;
      worst = Math.max(worst, Math.abs(e));
      meanError += e / n;
      expect(Math.abs(sum[i]! - x[i]!), `element ${i}`).toBeLessThanOrEqual(factor * step + 1e-5 * step + 1e-7 * Math.abs(x[i]!));
    }
    // Over all n * S roundings the errors (in steps, each within [-1, 1]) average to 0 even more tightly.
    expect(Math.abs(meanError)).toBeLessThanOrEqual(Math.sqrt(Math.log(2 / 1e-9) / (2 * n * S)) * 2);
    // Round to nearest would be off by up to half a step; the bound is tighter than that.
    expect(factor).toBeLessThan(0.5);
    expect(worst).toBeGreaterThan(0); // the rounding is random, not exact
  });

  test('the same seed gives the same codes; another seed other codes', async () => {
    await engine.scope(async () => {
      const n = 4099;
      const x = engine.tensor(Float32Array.from(updates(n, 3)), [n], 'x');
      const a = await words(quantize8(x, { seed: 42 }).codes);
      const b = await words(quantize8(x, { seed: 42 }).codes);
      const c = await words(quantize8(x, { seed: 43 }).codes);
      const d = await words(quantize8(x, { seed: 42 + 2 ** 32 }).codes); // same low key word
      expect(b).toEqual(a);
      let differ = 0;
      for (let i = 0; i < a.length; i++) differ += a[i] !== c[i] ? 1 : 0;
      expect(differ).toBeGreaterThan(a.length / 2);
      expect(d).not.toEqual(a);
    });
  });

  test('constant blocks and zero vectors decode exactly', async () => {
    await engine.scope(async () => {
      for (const n of [1, 6, 4096]) {
        const zero = quantize8(engine.zeros([n]), { seed: 1 });
        expect(await dequantize8(zero.codes, zero.scales, n).data()).toEqual(new Float32Array(n));
        expect([...(await words(zero.codes))].every((v) => v === 0)).toBe(true);
      }
      const n = 1030;
      const blockSize = 256; // 5 blocks, the last 6 elements long, each a different constant
      const x = Float32Array.from({ length: n }, (_, i) => [-3.25, 0.1, 7e-20, -1e30, 2.5][Math.floor(i / blockSize)]!);
      const q = quantize8(engine.tensor(x, [n]), { seed: 9, blockSize });
      expect(await dequantize8(q.codes, q.scales, n, blockSize).data()).toEqual(x);
    });
  });

  test('NaN and infinite elements poison their block (all NaN), not the others', async () => {
    await engine.scope(async () => {
      const n = 40;
      const blockSize = 8;
      const x = Float32Array.from(updates(n, 11));
      x[3] = NaN; // block 0
      x[9] = Infinity; // block 1
      x[23] = -Infinity; // block 2
      x[24] = 3e38; // block 3: a finite range that overflows f32
      x[25] = -3e38;
      const q = quantize8(engine.tensor(x, [n]), { seed: 2, blockSize });
      const scales = await q.scales.data();
      const y = await dequantize8(q.codes, q.scales, n, blockSize).data();
      for (let b = 0; b < 5; b++) {
        const poisoned = b < 4;
        expect(Number.isNaN(scales[2 * b]!) && Number.isNaN(scales[2 * b + 1]!), `block ${b} scales`).toBe(poisoned);
        for (let i = b * blockSize; i < (b + 1) * blockSize; i++) expect(Number.isNaN(y[i]!), `element ${i}`).toBe(poisoned);
      }
      // With error feedback the residual of a poisoned block is NaN too (documented).
      const residual = engine.zeros([n]);
      quantize8(engine.tensor(x, [n]), { seed: 2, blockSize, residual });
      const r = await residual.data();
      expect(Number.isNaN(r[0]!) && Number.isFinite(r[39]!)).toBe(true);
    });
  });

  test('bytes: codes + scales + header, against 4n', async () => {
    expect(quantizedBytes(200_000)).toBe(200_000 + 8 * 196 + 8); // 201,576 of 800,000
    expect(quantizedBytes(5, 4)).toBe(8 + 8 * 2 + 8);
    expect(quantizedBytes(0)).toBe(8);
    expect(quantizedBytes(1025, 1024)).toBe(1028 + 16 + 8);
    await engine.scope(async () => {
      const c = new UpdateCompressor({ seed: 1, blockSize: 64 });
      const e = c.encode(engine.zeros([1001]));
      expect(e.bytes).toBe(4 * e.codes.size + 4 * e.scales.size + 8);
      expect(e.bytes).toBe(quantizedBytes(1001, 64));
    });
  });

  test('bad input throws naming the op, shapes and limits before allocating', async () => {
    await engine.scope(async () => {
      const x = engine.zeros([10], 'x');
      const expectError = (call: () => unknown, ...fragments: string[]) => {
        const before = engine.memory().inUseBuffers;
        expect(call).toThrow();
        try {
          call();
        } catch (e) {
          for (const f of fragments) expect((e as Error).message).toContain(f);
        }
        expect(engine.memory().inUseBuffers).toBe(before);
      };
      expectError(() => quantize8(x, { blockSize: 6 }), 'quantize8', 'blockSize 6', 'multiple of 4', '[10]');
      expectError(() => quantize8(x, { blockSize: 0 }), 'quantize8', 'blockSize 0');
      expectError(() => quantize8(x, { blockSize: 2 ** 27 }), 'quantize8', '2^26');
      expectError(() => quantize8(x, { seed: -1 }), 'quantize8', 'seed -1');
      expectError(() => quantize8(x, { seed: 0.5 }), 'quantize8', 'seed 0.5');
      const r9 = engine.zeros([9], 'r');
      expectError(() => quantize8(x, { residual: r9 }), 'quantize8', 'residual r [9]', '[10]');
      expectError(() => quantize8(x, { residual: x }), 'quantize8', 'share a buffer');
      const q = quantize8(x, { seed: 1, blockSize: 4 });
      expectError(() => dequantize8(q.codes, q.scales, 13, 4), 'dequantize8', '4 code words', 'n 13');
      expectError(() => dequantize8(q.codes, q.scales, 10, 8), 'dequantize8', '4 scales', 'blockSize 8');
      expectError(() => new UpdateCompressor({ seed: 1, bits: 4 as 8 }), 'UpdateCompressor', 'bits 4');
      expectError(() => new UpdateCompressor({ seed: -2 }), 'UpdateCompressor', 'seed -2');
      const c = new UpdateCompressor({ seed: 1, errorFeedback: true });
      c.encode(x);
      const d12 = engine.zeros([12], 'd');
      expectError(() => c.encode(d12), 'UpdateCompressor.encode', 'd [12]', '10');
      c.dispose();
      expectError(() => c.encode(x), 'UpdateCompressor.encode', 'disposed');
    });
  });
});

describe('UpdateCompressor', () => {
  test('error feedback: sum of decoded updates = sum of deltas - final residual (float64)', async () => {
    const P = 2503;
    const R = 8;
    const blockSize = 256;
    const compressor = new UpdateCompressor({ bits: 8, errorFeedback: true, seed: 77, blockSize });
    const deltas = Array.from({ length: R }, (_, r) => updates(P, 100 + r));
    const decodedSum = new Float64Array(P);
    const deltaSum = new Float64Array(P);
    let bound = 0;
    for (let r = 0; r < R; r++) {
      await engine.scope(async () => {
        const e = compressor.encode(engine.tensor(Float32Array.from(deltas[r]!), [P], 'delta'));
        const d = await compressor.decode(e).data();
        for (let i = 0; i < P; i++) {
          decodedSum[i] += d[i]!;
          deltaSum[i] += deltas[r]![i]!;
        }
        // The residual stays within one step of its block: |x - decoded| <= step.
        const res = await compressor.residual!.data();
        const scales = await e.scales.data();
        for (let i = 0; i < P; i++) {
          const step = scales[2 * Math.floor(i / blockSize) + 1]!;
          expect(Math.abs(res[i]!), `round ${r} element ${i}`).toBeLessThanOrEqual(step * (1 + 1e-5) + 1e-7);
          bound = Math.max(bound, Math.abs(d[i]!));
        }
      });
    }
    expect(compressor.rounds).toBe(R);
    const residual = await compressor.residual!.data();
    // Each round's residual (x - decoded) and x = delta + residual are each one f32 rounding:
    // at most 2 R roundings of values below max |decoded| + max |residual|.
    const tol = 2 * R * 2 ** -24 * (bound * 2);
    let worst = 0;
    for (let i = 0; i < P; i++) worst = Math.max(worst, Math.abs(decodedSum[i]! - (deltaSum[i]! - residual[i]!)));
    expect(worst).toBeLessThanOrEqual(tol);
    // Without feedback the sums drift apart by the accumulated rounding (the identity is not trivial).
    const plain = new UpdateCompressor({ errorFeedback: false, seed: 77, blockSize });
    const plainSum = new Float64Array(P);
    for (let r = 0; r < R; r++) {
      await engine.scope(async () => {
        const d = await plain.decode(plain.encode(engine.tensor(Float32Array.from(deltas[r]!), [P], 'delta'))).data();
        for (let i = 0; i < P; i++) plainSum[i] += d[i]!;
      });
    }
    expect(plain.residual).toBeNull();
    let drift = 0;
    for (let i = 0; i < P; i++) drift = Math.max(drift, Math.abs(plainSum[i]! - deltaSum[i]!));
    expect(drift).toBeGreaterThan(100 * tol);
    compressor.dispose();
    plain.dispose();
  });

  test('dispose frees everything (memory back to where it started)', async () => {
    await engine.sync();
    const before = engine.memory().inUseBytes;
    const c = new UpdateCompressor({ errorFeedback: true, seed: 3 });
    await engine.scope(async () => {
      for (let r = 0; r < 3; r++) {
        const e = c.encode(engine.tensor(Float32Array.from(updates(5000, r)), [5000], 'delta'));
        await c.decode(e).data();
      }
    });
    expect(engine.memory().inUseBytes).toBeGreaterThan(before); // the residual
    c.dispose();
    expect(c.residual).toBeNull();
    expect(engine.memory().inUseBytes).toBe(before);
  });

  test('P = 200,000: encode and decode time (engine.profile) and bytes', async () => {
    const P = 200_000;
    const c = new UpdateCompressor({ errorFeedback: true, seed: 5 });
    await engine.scope(async () => {
      const delta = engine.tensor(Float32Array.from(updates(P, 1)), [P], 'delta');
      c.encode(delta); // pipelines compiled outside the timing
      await engine.sync();
      const { result: e, profile: enc } = await engine.profile(() => c.encode(delta));
      const { result: d, profile: dec } = await engine.profile(() => c.decode(e));
      expect(enc.rows.map((r) => r.kernel)).toContain('quantize8');
      expect(dec.rows.map((r) => r.kernel)).toContain('dequantize8');
      expect(d.shape).toEqual([P]);
      console.log(`P = ${P}: ${e.bytes} bytes (f32: ${4 * P}); encode ${enc.totalMs.toFixed(2)} ms, decode ${dec.totalMs.toFixed(2)} ms (${enc.method})`);
      expect(e.bytes).toBe(201_576);
    });
    c.dispose();
  });
});
