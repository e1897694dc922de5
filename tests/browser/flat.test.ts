// Flat-vector ops (src/engine/ops/flat.ts) against float64 references written here, with no
// engine imports in them:
//   1. the GPU forward against the reference forward,
//   2. the GPU backward (gradients of loss = sum(op(...) * w), w a fixed random weighting) against
//      the reference's analytic gradient,
//   3. the reference's analytic gradient against float64 central finite differences.
// Sizes cover the vec4 tail (n % 4 != 0, n < 4), one and many first-pass workgroups and the cap on
// partial results. The noise generator is checked bit for bit against a CPU Philox4x32-10 that is
// itself checked against Random123's known-answer vectors.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import { launchGaussianNoise, reduceWorkgroups } from '../../src/engine/ops/flat.js';
import * as ops from '../../src/engine/ops/index.js';
import { ACCUMULATED, expectClose, type Tol } from '../close.js';
import { opChecker, type Input } from '../op-check.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

/** One f32 rounding per element (scaling, axpy). */
const EXACT: Tol = { atol: 1e-6, rtol: 1e-6 };

const abs = (x: Float64Array) => x.map(Math.abs);
const f32 = (x: ArrayLike<number>) => Float64Array.from(x, (v) => Math.fround(v));

// ---------------------------------------------------------------- float64 references

function sum(x: Float64Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s;
}

function dotRef(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const normRef = (x: Float64Array) => Math.sqrt(dotRef(x, x));
const scalar = (v: number): ref.Arr => ({ data: Float64Array.of(v), shape: [] });
const times = (x: Float64Array, c: number) => x.map((v) => v * c);

/** clipToNorm's factor: min(1, M / ||x||), 1 at x = 0. */
function clipFactor(x: Float64Array, maxNorm: number): number {
  const n = normRef(x);
  return n > maxNorm ? maxNorm / n : 1;
}

/** d/dx of sum(dy * x * c(x)): c dy - (M / n^3) (dy . x) x when clipped, else dy. */
function clipGrad(x: Float64Array, maxNorm: number, dy: Float64Array): Float64Array {
  const n = normRef(x);
  if (!(n > maxNorm)) return dy.slice();
  const c = maxNorm / n;
  const g = dotRef(dy, x);
  return dy.map((v, i) => c * v - (maxNorm / n ** 3) * g * x[i]!);
}

function weightedAverageRef(stack: Float64Array, K: number, w: ArrayLike<number>): Float64Array {
  const P = stack.length / K;
  let total = 0;
  for (let k = 0; k < K; k++) total += w[k]!;
  const out = new Float64Array(P);
  if (total === 0) return out;
  for (let k = 0; k < K; k++) for (let j = 0; j < P; j++) out[j] += (w[k]! * stack[k * P + j]!) / total;
  return out;
}

function weightedAverageGrad(K: number, w: ArrayLike<number>, dy: Float64Array): Float64Array {
  const P = dy.length;
  let total = 0;
  for (let k = 0; k < K; k++) total += w[k]!;
  const dx = new Float64Array(K * P);
  if (total === 0) return dx;
  for (let k = 0; k < K; k++) for (let j = 0; j < P; j++) dx[k * P + j] = (w[k]! / total) * dy[j]!;
  return dx;
}

function weightedMeanRef(v: Float64Array, w: Float64Array): number {
  const total = sum(w);
  return total === 0 ? 0 : dotRef(v, w) / total;
}

/** Labelled rows (targets not all zero) whose first argmax of logits is the first argmax of targets; NaN rows wrong. */
function accuracyRef(logits: ArrayLike<number>, targets: ArrayLike<number>, rows: number, cols: number): number {
  let correct = 0;
  let labelled = 0;
  for (let r = 0; r < rows; r++) {
    let any = false;
    let nan = false;
    let al = 0;
    let at = 0;
    for (let c = 0; c < cols; c++) {
      const l = logits[r * cols + c]!;
      const t = targets[r * cols + c]!;
      if (t !== 0) any = true;
      if (Number.isNaN(l)) nan = true;
      if (l > logits[r * cols + al]!) al = c;
      if (t > targets[r * cols + at]!) at = c;
    }
    if (!any) continue;
    labelled++;
    if (!nan && al === at) correct++;
  }
  return labelled === 0 ? 0 : correct / labelled;
}

// ---------------------------------------------------------------- Philox4x32-10 on the CPU

/** The generator's 32-bit words for whole blocks covering elements 0..n-1 (block q = counter (q, 0, 0, 0)). */
function noiseWords(n: number, seed: number): Uint32Array {
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  const out = new Uint32Array(4 * Math.ceil(n / 4));
  for (let q = 0; 4 * q < n; q++) out.set(ref.philox([q, 0, 0, 0], key), 4 * q);
  return out;
}

/** Box-Muller in float64, as gaussian_noise.wgsl documents it, of the words (w0, w1), (w2, w3) of each block. */
function noiseNormals(words: Uint32Array, n: number, mean = 0, std = 1): Float64Array {
  const out = new Float64Array(words.length);
  for (let i = 0; i < words.length; i += 2) {
    const u1 = ((words[i]! >>> 8) + 1) / 2 ** 24;
    const u2 = (words[i + 1]! >>> 8) / 2 ** 24;
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    out[i] = mean + std * r * Math.cos(theta);
    out[i + 1] = mean + std * r * Math.sin(theta);
  }
  return out.subarray(0, n);
}

// ---------------------------------------------------------------- the checking harness

const checkOp = opChecker(() => engine, 5000, { tol: EXACT, fdCount: 16 });

/** Shapes: a vec4 tail, fewer than 4 elements, one workgroup, several first-pass workgroups. */
const SHAPES: number[][] = [[7, 43], [3], [4096], [100003]];

// ---------------------------------------------------------------- reductions

describe('dot, sumOfSquares, norm', () => {
  for (const shape of SHAPES) {
    const n = ref.sizeOf(shape);
    test(`dot [${shape}] (${reduceWorkgroups(n)} first-pass workgroups)`, async () => {
      await checkOp(`dot [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 1), shape },
          { data: ref.normal(shape, 2), shape },
        ],
        gpu: ([a, b]) => ops.dot(a!, b!),
        forward: ([a, b]) => scalar(dotRef(a!, b!)),
        grad: ([a, b], dy) => [times(b!, dy[0]!), times(a!, dy[0]!)],
        tol: ACCUMULATED,
        fwdScale: ([a, b]) => [dotRef(abs(a!), abs(b!))],
      });
    });

    test(`sumOfSquares [${shape}]`, async () => {
      await checkOp(`sumOfSquares [${shape}]`, {
        inputs: [{ data: ref.normal(shape, 3), shape }],
        gpu: ([x]) => ops.sumOfSquares(x!),
        forward: ([x]) => scalar(dotRef(x!, x!)),
        grad: ([x], dy) => [times(x!, 2 * dy[0]!)],
        tol: ACCUMULATED,
      });
    });

    test(`norm [${shape}]`, async () => {
      await checkOp(`norm [${shape}]`, {
        inputs: [{ data: ref.normal(shape, 4), shape }],
        gpu: ([x]) => ops.norm(x!),
        forward: ([x]) => scalar(normRef(x!)),
        grad: ([x], dy) => [times(x!, dy[0]! / normRef(x!))],
        tol: ACCUMULATED,
      });
    });
  }

  test('dot of a tensor with itself, of scalars, and of empty tensors', async () => {
    await checkOp('dot(x, x)', {
      inputs: [{ data: ref.normal([5, 9], 5), shape: [5, 9] }],
      gpu: ([x]) => ops.dot(x!, x!),
      forward: ([x]) => scalar(dotRef(x!, x!)),
      grad: ([x], dy) => [times(x!, 2 * dy[0]!)],
      tol: ACCUMULATED,
    });
    await checkOp('dot of [] tensors', {
      inputs: [
        { data: Float64Array.of(1.5), shape: [] },
        { data: Float64Array.of(-3.25), shape: [] },
      ],
      gpu: ([a, b]) => ops.dot(a!, b!),
      forward: ([a, b]) => scalar(a![0]! * b![0]!),
      grad: ([a, b], dy) => [Float64Array.of(dy[0]! * b![0]!), Float64Array.of(dy[0]! * a![0]!)],
    });
    await engine.scope(async () => {
      const empty = engine.zeros([0, 5], 'empty');
      expect(await ops.dot(empty, empty).item()).toBe(0);
      expect(await ops.sumOfSquares(empty).item()).toBe(0);
      expect(await ops.norm(empty).item()).toBe(0);
      expect(await ops.nonFiniteCount(empty).item()).toBe(0);
    });
  });

  test('elements past a view in its last vec4 (NaN here) are not read', async () => {
    await engine.scope(async () => {
      const n = 301;
      const a = ref.normal([n], 12);
      const w = ref.uniform([n], 13);
      const padded = (x: Float64Array, name: string) => {
        const big = engine.tensor(Float32Array.from({ length: 320 }, (_, i) => (i < n ? x[i]! : NaN)), [320], name);
        return engine.view(big, [n], `${name}.view`);
      };
      const ta = padded(a, 'a');
      const tw = padded(w, 'w');
      expectClose([await ops.dot(ta, tw).item()], [dotRef(a, w)], ACCUMULATED, 'dot', [dotRef(abs(a), w)]);
      expectClose([await ops.sumOfSquares(ta).item()], [dotRef(a, a)], ACCUMULATED, 'sumOfSquares');
      expectClose([await ops.weightedMean(ta, tw).item()], [weightedMeanRef(a, w)], ACCUMULATED, 'weightedMean', [dotRef(abs(a), w) / sum(w)]);
      expect(await ops.nonFiniteCount(ta).item()).toBe(0);
      expectClose(await ops.scaleBy(ta, engine.tensor([2], [1])).data(), times(a, 2), EXACT, 'scaleBy');
    });
  });

  test('norm gradient at 0 is 0 (as PyTorch); sumOfSquares and dot there are 0', async () => {
    await engine.scope(async () => {
      const x = engine.parameter(new Float32Array(301), [301], 'zero');
      try {
        const y = ops.norm(x);
        expect(await y.item()).toBe(0);
        const g = await gradients(y, [x]).get(x)!.data();
        expect(Array.from(g).every((v) => v === 0)).toBe(true);
      } finally {
        x.dispose();
      }
    });
  });

  test('long vectors: 9e6 elements fill the 1024 partial results, each invocation loops', async () => {
    const n = 9_000_001;
    expect(reduceWorkgroups(n)).toBe(1024);
    const next = ref.generator(6);
    const a = Float32Array.from({ length: n }, () => 2 * next() - 1);
    const b = Float32Array.from({ length: n }, () => next());
    let ab = 0;
    let absAb = 0;
    let aa = 0;
    for (let i = 0; i < n; i++) {
      ab += a[i]! * b[i]!;
      absAb += Math.abs(a[i]! * b[i]!);
      aa += a[i]! * a[i]!;
    }
    await engine.scope(async () => {
      const ta = engine.tensor(a, [n], 'long.a');
      const tb = engine.tensor(b, [n], 'long.b');
      expectClose([await ops.dot(ta, tb).item()], [ab], ACCUMULATED, 'dot of 9e6', [absAb]);
      expectClose([await ops.sumOfSquares(ta).item()], [aa], ACCUMULATED, 'sumOfSquares of 9e6');
      expectClose([await ops.norm(ta).item()], [Math.sqrt(aa)], ACCUMULATED, 'norm of 9e6');
      a[n - 1] = NaN;
      a[12345] = -Infinity;
      engine.write(ta, a);
      expect(await ops.nonFiniteCount(ta).item()).toBe(2);
    });
  });
});

describe('nonFiniteCount', () => {
  test('NaN, +-inf among finite extremes, -0, subnormals, in the vec4 tail and across workgroups', async () => {
    for (const n of [3, 301, 1_000_003]) {
      const x = new Float32Array(ref.normal([n], 8 + n));
      const special = [3.4e38, -3.4e38, 1e-45, -1e-45, -0, 1.17e-38];
      special.forEach((v, k) => (x[(k * 97) % n] = v));
      const bad = [NaN, Infinity, -Infinity];
      const count = n < 10 ? 2 : Math.floor(n / 1000) + 3;
      const next = ref.generator(n);
      const at = new Set<number>([n - 1]); // the tail (n % 4 != 0)
      while (at.size < count) at.add(Math.floor(next() * n));
      let k = 0;
      for (const i of at) x[i] = bad[k++ % 3]!;
      // A NaN with a payload and the sign bit set.
      const bits = new Uint32Array(x.buffer);
      if (n > 10) {
        const i = [...at][0]!;
        bits[i] = 0xffc01234;
      }
      let want = 0;
      for (const v of x) if (!Number.isFinite(v)) want++;
      expect(want).toBe(at.size);
      await engine.scope(async () => {
        const t = engine.tensor(x, [n], 'nonfinite');
        expect(await ops.nonFiniteCount(t).item(), `n = ${n}`).toBe(want);
      });
    }
  });
});

describe('weightedMean', () => {
  for (const shape of [[7, 43], [2], [100003]]) {
    test(`[${shape}] with 0/1 and fractional weights`, async () => {
      const n = ref.sizeOf(shape);
      const w = ref.uniform(shape, 10, -0.5, 1).map((v) => (v < 0 ? 0 : Math.fround(v)));
      await checkOp(`weightedMean [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 9), shape },
          { data: w, shape, diff: false },
        ],
        gpu: ([v, wt]) => ops.weightedMean(v!, wt!),
        forward: ([v, wt]) => scalar(weightedMeanRef(v!, wt!)),
        grad: ([, wt], dy) => [times(wt!, dy[0]! / sum(wt!)), null],
        tol: ACCUMULATED,
        fwdScale: ([v, wt]) => [dotRef(abs(v!), wt!) / sum(wt!)],
      });
      expect(n).toBeGreaterThan(0);
    });
  }

  test('all-zero weights: 0 and a zero gradient', async () => {
    await checkOp('weightedMean with zero weights', {
      inputs: [
        { data: ref.normal([37], 11), shape: [37] },
        { data: new Float64Array(37), shape: [37], diff: false },
      ],
      gpu: ([v, wt]) => ops.weightedMean(v!, wt!),
      forward: () => scalar(0),
      grad: () => [new Float64Array(37), null],
    });
  });

  test('a per-task loss over a batch where the task has labels on some rows', async () => {
    await engine.scope(async () => {
      // Per-row losses [5] with a mask: the mean over the 2 labelled rows.
      const loss = engine.tensor([1, 2, 3, 4, 5], [5]);
      const mask = engine.tensor([0, 1, 0, 0, 1], [5]);
      expect(await ops.weightedMean(loss, mask).item()).toBe(3.5);
    });
  });
});

describe('accuracy', () => {
  test('one-hot and probability targets, unlabelled rows, ties, NaN and infinite logits, several workgroups', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [5, 3],
      [37, 10],
      [1031, 7], // 5 first-pass workgroups
    ] as const) {
      const logits = new Float32Array(ref.normal([rows, cols], rows * 13 + cols));
      const targets = new Float32Array(rows % 2 ? ref.oneHot(rows, cols, rows + 1) : ref.softTargets(rows, cols, rows + 1));
      // Unlabelled rows (all-zero targets), a tie at the maximum logit, a NaN row, infinities, -0.
      const set = (r: number, c: number, v: number, into = logits) => {
        if (r < rows && c < cols) into[r * cols + c] = v;
      };
      for (let c = 0; c < cols; c++) set(1, c, 0, targets);
      for (let c = 0; c < cols; c++) set(4, c, 0, targets);
      set(2, 0, 9);
      set(2, cols - 1, 9);
      set(3, 1, NaN);
      set(6, 0, Infinity);
      set(7, 0, -Infinity);
      set(8, 0, -0);
      for (let c = 1; c < cols; c++) set(8, c, -1);
      const want = accuracyRef(logits, targets, rows, cols);
      await engine.scope(async () => {
        const got = await ops.accuracy(engine.tensor(logits, [rows, cols], 'logits'), engine.tensor(targets, [rows, cols], 'targets')).item();
        expect(Math.abs(got - want), `[${rows}, ${cols}]: got ${got}, want ${want}`).toBeLessThanOrEqual(1e-6 * want);
      });
    }
  });

  test('exact cases: no labelled row gives 0; first index on ties; NaN rows wrong', async () => {
    await engine.scope(async () => {
      const acc = (l: number[], t: number[], rows: number, cols: number) => ops.accuracy(engine.tensor(l, [rows, cols]), engine.tensor(t, [rows, cols])).item();
      expect(await acc([1, 2, 3, 4], [0, 0, 0, 0], 2, 2)).toBe(0);
      // Tied logits pick index 0; targets [0, 1] in row 0 (wrong), [1, 0] in row 1 (right).
      expect(await acc([5, 5, 5, 5], [0, 1, 1, 0], 2, 2)).toBe(0.5);
      // Rows with a NaN logit are wrong, wherever the NaN is (as bits, it would order above +inf,
      // or with the sign bit set below -inf); the third row is right.
      const negativeNaN = new Float32Array(new Uint32Array([0xffc00000]).buffer)[0]!;
      expect(await acc([NaN, 1, 2, 5, negativeNaN, 1, 2, 1, 9], [1, 0, 0, 1, 0, 0, 0, 0, 1], 3, 3)).toBe(Math.fround(1 / 3));
      // +inf wins, -inf loses.
      expect(await acc([-Infinity, 0, 1, Infinity], [0, 1, 0, 1], 2, 2)).toBe(1);
      // Probability targets: the argmax of the targets.
      expect(await acc([0.1, 0.7, 0.2, 3, 1, 2], [0.2, 0.5, 0.3, 0.1, 0.3, 0.6], 2, 3)).toBe(0.5);
    });
  });
});

// ---------------------------------------------------------------- scaling

describe('scaleBy, axpy, addScaledInPlace', () => {
  for (const shape of SHAPES) {
    test(`scaleBy [${shape}]`, async () => {
      await checkOp(`scaleBy [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 20), shape },
          { data: Float64Array.of(Math.fround(-1.37)), shape: [1] },
        ],
        gpu: ([x, s]) => ops.scaleBy(x!, s!),
        forward: ([x, s]) => ({ data: times(x!, s![0]!), shape }),
        grad: ([x, s], dy) => [times(dy, s![0]!), Float64Array.of(dotRef(dy, x!))],
        gradTol: ACCUMULATED,
        gradScale: ([x, s], dy) => [abs(times(dy, s![0]!)), [dotRef(abs(dy), abs(x!))]],
      });
    });

    test(`axpy [${shape}] with a GPU scalar and with a number`, async () => {
      await checkOp(`axpy tensor s [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 21), shape },
          { data: ref.normal(shape, 22), shape },
          { data: Float64Array.of(Math.fround(0.61)), shape: [] },
        ],
        gpu: ([a, b, s]) => ops.axpy(a!, s!, b!),
        forward: ([a, b, s]) => ({ data: a!.map((v, i) => v + s![0]! * b![i]!), shape }),
        grad: ([, b, s], dy) => [dy.slice(), times(dy, s![0]!), Float64Array.of(dotRef(dy, b!))],
        tol: { atol: 2e-6, rtol: 2e-6 },
        gradTol: ACCUMULATED,
        fwdScale: ([a, b, s]) => a!.map((v, i) => Math.abs(v) + Math.abs(s![0]! * b![i]!)),
        gradScale: ([, b, s], dy) => [abs(dy), abs(times(dy, s![0]!)), [dotRef(abs(dy), abs(b!))]],
      });
      const s = Math.fround(-2.5);
      await checkOp(`axpy number s [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 23), shape },
          { data: ref.normal(shape, 24), shape },
        ],
        gpu: ([a, b]) => ops.axpy(a!, -2.5, b!),
        forward: ([a, b]) => ({ data: a!.map((v, i) => v + s * b![i]!), shape }),
        grad: (_, dy) => [dy.slice(), times(dy, s)],
        fwdScale: ([a, b]) => a!.map((v, i) => Math.abs(v) + Math.abs(s * b![i]!)),
        tol: { atol: 2e-6, rtol: 2e-6 },
      });
    });
  }

  test('addScaledInPlace: y += s x for a number and a GPU scalar, elements past y untouched, not recorded', async () => {
    await engine.scope(async () => {
      const n = 301;
      const yd = f32(ref.normal([n], 30));
      const xd = f32(ref.normal([n], 31));
      // y and x are views of the first 301 elements of 400-element buffers: elements 301..303
      // share their last vec4, and x's are not zero there.
      const outer = engine.tensor(Float32Array.from({ length: 400 }, (_, i) => (i < n ? yd[i]! : 1000 + i)), [400], 'outer');
      const xOuter = engine.tensor(Float32Array.from({ length: 400 }, (_, i) => (i < n ? xd[i]! : 7)), [400], 'xOuter');
      const y = engine.view(outer, [n], 'y');
      const x = engine.view(xOuter, [n], 'x');
      x.requiresGrad = true;
      try {
        expect(ops.addScaledInPlace(y, x, 0.5)).toBe(y);
        const s = engine.tensor([-3], [1], 's');
        ops.addScaledInPlace(y, x, s);
        ops.addScaledInPlace(y, x); // s = 1
        const want = yd.map((v, i) => Math.fround(Math.fround(Math.fround(v + Math.fround(0.5 * xd[i]!)) + Math.fround(-3 * xd[i]!)) + xd[i]!));
        const got = await outer.data();
        expectClose(got.subarray(0, n), want, EXACT, 'y after three updates');
        for (let i = n; i < 400; i++) expect(got[i], `element ${i} past y`).toBe(1000 + i);
        expect(y.node, 'in-place update is not recorded').toBeNull();
        // A gradient-buffer accumulator over many workgroups.
        const big = 100003;
        const acc = engine.zeros([big], 'acc');
        const g1 = ref.normal([big], 32);
        const g2 = ref.normal([big], 33);
        ops.addScaledInPlace(acc, engine.tensor(Float32Array.from(g1), [big]), 0.25);
        ops.addScaledInPlace(acc, engine.tensor(Float32Array.from(g2), [big]), 0.75);
        expectClose(await acc.data(), g1.map((v, i) => 0.25 * v + 0.75 * g2[i]!), { atol: 1e-6, rtol: 2e-6 }, 'accumulator');
      } finally {
        x.requiresGrad = false;
      }
    });
  });
});

describe('clipToNorm', () => {
  for (const shape of SHAPES) {
    const n = ref.sizeOf(shape);
    for (const [regime, maxNorm] of [
      ['clipped', Math.fround(0.3 * Math.sqrt(n))],
      ['unclipped', Math.fround(3 * Math.sqrt(n) + 2)],
    ] as const) {
      test(`[${shape}] ${regime} (maxNorm ${maxNorm.toPrecision(4)})`, async () => {
        await checkOp(`clipToNorm [${shape}] ${regime}`, {
          inputs: [{ data: ref.normal(shape, 40 + n), shape }],
          gpu: ([x]) => ops.clipToNorm(x!, maxNorm),
          forward: ([x]) => ({ data: times(x!, clipFactor(x!, maxNorm)), shape }),
          grad: ([x], dy) => [clipGrad(x!, maxNorm, dy)],
          tol: ACCUMULATED,
          // The clipped gradient's second term sums over every element.
          gradScale: ([x], dy) => {
            const c = clipFactor(x!, maxNorm);
            const k = c < 1 ? ((c * c * c) / (maxNorm * maxNorm)) * dotRef(abs(dy), abs(x!)) : 0;
            return [dy.map((v, i) => Math.abs(c * v) + k * Math.abs(x![i]!))];
          },
        });
      });
    }
  }

  test('a zero vector stays zero; the clipped result has norm maxNorm', async () => {
    await engine.scope(async () => {
      const z = engine.zeros([13], 'z');
      expect(Array.from(await ops.clipToNorm(z, 1).data())).toEqual(new Array(13).fill(0));
      const x = engine.tensor(Float32Array.from(ref.normal([1001], 41, 5)), [1001]);
      expectClose([await ops.norm(ops.clipToNorm(x, 2.5)).item()], [2.5], { atol: 0, rtol: 1e-6 }, 'norm after clipping');
    });
  });
});

// ---------------------------------------------------------------- averaging

describe('weightedAverage', () => {
  const cases: { name: string; shape: number[]; weights: number[] | 'tensor' | undefined }[] = [
    { name: 'number weights', shape: [5, 7, 43], weights: [0.5, 2, 0, 1.25, 3] },
    { name: 'GPU tensor weights', shape: [4, 301], weights: 'tensor' },
    { name: 'no weights (the mean)', shape: [3, 37], weights: undefined },
    { name: 'K = 1', shape: [1, 9], weights: [2] },
    { name: 'columns a multiple of 4', shape: [3, 4, 16], weights: [1, 1, 2] },
    { name: 'a stack of scalars', shape: [6], weights: [1, 2, 3, 4, 5, 6] },
    { name: 'several workgroups', shape: [3, 100003], weights: [10, 30, 20] },
  ];
  for (const c of cases) {
    test(`${c.name}: [${c.shape}]`, async () => {
      const K = c.shape[0]!;
      const w = c.weights === 'tensor' ? f32(ref.uniform([K], 50, 0.1, 2)) : c.weights === undefined ? new Float64Array(K).fill(1) : Float64Array.from(c.weights);
      const inputs: Input[] = [{ data: ref.normal(c.shape, 51 + K), shape: c.shape }];
      if (c.weights === 'tensor') inputs.push({ data: w, shape: [K], diff: false });
      await checkOp(`weightedAverage ${c.name}`, {
        inputs,
        gpu: ([stack, wt]) => ops.weightedAverage(stack!, c.weights === 'tensor' ? wt! : (c.weights as number[] | undefined)),
        forward: ([stack]) => ({ data: weightedAverageRef(stack!, K, w), shape: c.shape.slice(1) }),
        grad: (_, dy) => [weightedAverageGrad(K, w, dy), null],
        tol: ACCUMULATED,
        fwdScale: ([stack]) => weightedAverageRef(abs(stack!), K, abs(w)),
      });
    });
  }

  test('GPU weights that sum to zero give zeros', async () => {
    await engine.scope(async () => {
      const stack = engine.tensor(Float32Array.from(ref.normal([2, 5], 52)), [2, 5]);
      const out = ops.weightedAverage(stack, engine.tensor([1, -1], [2]));
      expect(Array.from(await out.data())).toEqual([0, 0, 0, 0, 0]);
    });
  });
});

// ---------------------------------------------------------------- noise

describe('gaussianNoise (Philox4x32-10)', () => {
  // The kernel's own ln, sin and cos are accurate to a few f32 ulp (r <= 5.8); measured on
  // SwiftShader: within 1e-6. (With the WGSL builtins sin and cos the error was 1.9e-4 there.)
  const NOISE_TOL: Tol = { atol: 2e-6, rtol: 1e-6 };

  test('the CPU Philox matches Random123 known-answer vectors', () => {
    // Random123 tests/kat_vectors, "philox4x32 10": counter, key, expected.
    const kat: [number[], number[], number[]][] = [
      [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
      [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
      [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
    ];
    for (const [counter, key, want] of kat) expect(ref.philox(counter, key)).toEqual(want);
  });

  for (const seed of [0, 1234567, 2 ** 40 + 99]) {
    test(`raw words bit for bit and normals against the CPU generator, seed ${seed}`, async () => {
      const n = 4099;
      const words = noiseWords(n, seed);
      await engine.scope(async () => {
        const raw = await launchGaussianNoise(engine, [n], { seed }, { raw: true }).data();
        let mismatches = 0;
        for (let i = 0; i < n; i++) if (raw[2 * i]! + raw[2 * i + 1]! * 65536 !== words[i]) mismatches++;
        expect(mismatches, 'words that differ from the CPU Philox4x32-10').toBe(0);
        const z = await ops.gaussianNoise(engine, [n], { seed }).data();
        expectClose(z, noiseNormals(words, n), NOISE_TOL, 'normals');
        const shifted = await ops.gaussianNoise(engine, [n], { seed, mean: 3, std: 0.5 }).data();
        expectClose(shifted, noiseNormals(words, n, 3, 0.5), NOISE_TOL, 'normals with mean 3, std 0.5');
      });
    });
  }

  test('independent of the launch: workgroup size, number of workgroups, shape; prefixes agree', async () => {
    await engine.scope(async () => {
      const n = 5003;
      const seed = 77;
      const base = await ops.gaussianNoise(engine, [n], { seed }).data();
      for (const launch of [
        { workgroupSize: 64, workgroups: 3 },
        { workgroupSize: 128, workgroups: 1000 },
        { workgroupSize: 32, workgroups: 1 },
      ]) {
        const other = await launchGaussianNoise(engine, [n], { seed }, launch).data();
        expect(other, JSON.stringify(launch)).toEqual(base);
      }
      expect(await ops.gaussianNoise(engine, [1000], { seed }).data()).toEqual(base.subarray(0, 1000));
      expect(await ops.gaussianNoise(engine, [1], { seed }).data()).toEqual(base.subarray(0, 1));
      const shaped = ops.gaussianNoise(engine, [7, 11, 13], { seed });
      expect([...shaped.shape]).toEqual([7, 11, 13]);
      expect(await shaped.data()).toEqual(base.subarray(0, 1001));
    });
  });

  test('different seeds differ; no seed draws a fresh one', async () => {
    await engine.scope(async () => {
      const n = 10000;
      const a = await ops.gaussianNoise(engine, [n], { seed: 1 }).data();
      const b = await ops.gaussianNoise(engine, [n], { seed: 2 }).data();
      const c = await ops.gaussianNoise(engine, [n], { seed: 2 ** 32 + 1 }).data(); // same low word as seed 1
      for (const [x, y, what] of [
        [a, b, 'seeds 1 and 2'],
        [a, c, 'seeds 1 and 2^32 + 1'],
      ] as const) {
        let equal = 0;
        for (let i = 0; i < n; i++) if (x[i] === y[i]) equal++;
        expect(equal, what).toBeLessThan(5);
      }
      expect(await ops.gaussianNoise(engine, [n]).data()).not.toEqual(await ops.gaussianNoise(engine, [n]).data());
    });
  });

  test('moments and the one-sigma mass of 1e5 samples', async () => {
    const n = 100_001;
    await engine.scope(async () => {
      for (const seed of [3, 4]) {
        const z = await ops.gaussianNoise(engine, [n], { seed, mean: 0, std: 1 }).data();
        expectClose(z, noiseNormals(noiseWords(n, seed), n), NOISE_TOL, `1e5 normals against the CPU generator, seed ${seed}`);
        let m = 0;
        for (const v of z) m += v;
        m /= n;
        let v2 = 0;
        let within = 0;
        let m3 = 0;
        let m4 = 0;
        for (const v of z) {
          const d = v - m;
          v2 += d * d;
          m3 += d * d * d;
          m4 += d * d * d * d;
          if (Math.abs(v) < 1) within++;
        }
        v2 /= n - 1;
        m3 /= n;
        m4 /= n;
        // Five standard errors: mean 1/sqrt(n), variance sqrt(2/n), skewness sqrt(6/n), kurtosis sqrt(24/n),
        // mass within one sigma sqrt(p(1-p)/n).
        expect(Math.abs(m), `mean, seed ${seed}`).toBeLessThan(5 / Math.sqrt(n));
        expect(Math.abs(v2 - 1), `variance, seed ${seed}`).toBeLessThan(5 * Math.sqrt(2 / n));
        expect(Math.abs(m3), `skewness, seed ${seed}`).toBeLessThan(5 * Math.sqrt(6 / n));
        expect(Math.abs(m4 - 3), `kurtosis, seed ${seed}`).toBeLessThan(5 * Math.sqrt(24 / n));
        const p = 0.6826894921370859;
        expect(Math.abs(within / n - p), `mass within one sigma, seed ${seed}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
      }
    });
  });
});

// ---------------------------------------------------------------- errors

describe('errors', () => {
  /** The call throws a message with every fragment, and allocates nothing before throwing. */
  function expectError(call: () => unknown, ...fragments: string[]): void {
    const before = engine.memory().inUseBuffers;
    let message = '';
    try {
      call();
    } catch (e) {
      expect(e).toBeInstanceOf(Error);
      message = (e as Error).message;
    }
    for (const f of fragments) expect(message, `message "${message}" should contain ${f}`).toContain(f);
    expect(engine.memory().inUseBuffers, `buffers allocated before "${message}"`).toBe(before);
  }

  test('shapes, scalars and arguments name the op and the shapes', async () => {
    await engine.scope(() => {
      const a = engine.zeros([2, 3], 'left');
      const b = engine.zeros([3, 2], 'right');
      const v = engine.zeros([2], 'vector');
      const s = engine.zeros([1], 's');
      expectError(() => ops.dot(a, b), 'dot', '[2,3]', '[3,2]');
      expectError(() => ops.weightedMean(a, b), 'weightedMean', '[2,3]', '[3,2]');
      expectError(() => ops.axpy(a, 2, b), 'axpy', '[2,3]', '[3,2]');
      expectError(() => ops.axpy(a, v, a), 'axpy', 'vector', '[2]', 'one-element');
      expectError(() => ops.axpy(a, NaN, a), 'axpy', 'NaN', 'finite');
      expectError(() => ops.scaleBy(a, v), 'scaleBy', 'vector', '[2]', 'one-element');
      expectError(() => ops.addScaledInPlace(a, b), 'addScaledInPlace', '[2,3]', '[3,2]');
      expectError(() => ops.addScaledInPlace(a, a, s), 'addScaledInPlace', 'left', 'share a buffer');
      const alias = engine.view(s, [1], 'alias');
      expectError(() => ops.addScaledInPlace(s, alias, 1), 'addScaledInPlace', 'alias', 'share a buffer');
      expectError(() => ops.clipToNorm(a, 0), 'clipToNorm', 'maxNorm 0', '[2,3]');
      expectError(() => ops.clipToNorm(a, Infinity), 'clipToNorm', 'maxNorm Infinity');
      expectError(() => ops.accuracy(v, v), 'accuracy', '[2]', 'rank 2');
      expectError(() => ops.accuracy(a, b), 'accuracy', '[2,3]', '[3,2]');
      const noClass = engine.zeros([4, 0], 'noclass');
      expectError(() => ops.accuracy(noClass, noClass), 'accuracy', '[4,0]', 'no classes');
    });
  });

  test('weightedAverage: K = 0, the weight count and shape, all-zero and zero-sum weights', async () => {
    await engine.scope(() => {
      const stack = engine.zeros([3, 4], 'stack');
      const none = engine.zeros([0, 4], 'none');
      const scalar = engine.zeros([], 'scalar');
      const w4 = engine.zeros([4], 'w4');
      const w31 = engine.zeros([3, 1], 'w31');
      expectError(() => ops.weightedAverage(none), 'weightedAverage', 'none', '[0,4]', 'K = 0');
      expectError(() => ops.weightedAverage(scalar), 'weightedAverage', '[]', '[K, ...]');
      expectError(() => ops.weightedAverage(stack, [1, 2]), 'weightedAverage', '2 weights', '[3,4]', 'K = 3');
      expectError(() => ops.weightedAverage(stack, [0, 0, 0]), 'weightedAverage', 'all 3 weights are zero', '[3,4]');
      expectError(() => ops.weightedAverage(stack, [1, -2, 1]), 'weightedAverage', 'sum to 0');
      expectError(() => ops.weightedAverage(stack, [1, NaN, 1]), 'weightedAverage', 'finite');
      expectError(() => ops.weightedAverage(stack, w4), 'weightedAverage', 'w4', '[4]', 'expected [3]', '[3,4]');
      expectError(() => ops.weightedAverage(stack, w31), 'weightedAverage', '[3,1]', 'expected [3]');
    });
  });

  test('gaussianNoise: seed, std, mean and shape', async () => {
    expectError(() => ops.gaussianNoise(engine, [3], { seed: -1 }), 'gaussianNoise', 'seed -1', '[3]');
    expectError(() => ops.gaussianNoise(engine, [3], { seed: 1.5 }), 'gaussianNoise', 'seed 1.5');
    expectError(() => ops.gaussianNoise(engine, [3], { seed: 2 ** 53 }), 'gaussianNoise', '2^53');
    expectError(() => ops.gaussianNoise(engine, [3], { seed: 1, std: -1 }), 'gaussianNoise', 'std -1');
    expectError(() => ops.gaussianNoise(engine, [3], { seed: 1, mean: Infinity }), 'gaussianNoise', 'mean Infinity');
    expectError(() => ops.gaussianNoise(engine, [2, -1], { seed: 1 }), 'gaussianNoise', '[2,-1]');
  });

  test('a disposed tensor is named', async () => {
    await engine.scope(() => {
      const ghost = engine.zeros([4], 'ghost');
      ghost.dispose();
      for (const f of [() => ops.norm(ghost), () => ops.dot(ghost, ghost), () => ops.nonFiniteCount(ghost), () => ops.clipToNorm(ghost, 1), () => ops.weightedAverage(ghost)]) {
        expect(f).toThrow(/ghost/);
      }
    });
  });
});
