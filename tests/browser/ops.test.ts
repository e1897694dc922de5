// Every op against an independent float64 CPU reference (tests/reference.ts), with the shared
// harness (tests/op-check.ts): forward, backward, and the reference's gradient against float64
// central finite differences.
// Plus the kinks, shape edge cases, dropout's mask, gradient accumulation, gradient selection
// and error messages.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { ACCUMULATED, expectClose, type Tol } from '../close.js';
import { matmulCase } from '../matmul-check.js';
import { opChecker } from '../op-check.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

// ---------------------------------------------------------------- comparison helpers

/** Exact-ish float32 ops (one rounding per element). */
const EXACT: Tol = { atol: 1e-6, rtol: 1e-6 };
/** Transcendental functions (WGSL allows a few ulp plus an absolute error for exp/log/tanh). */
const TRANSCENDENTAL: Tol = { atol: 2e-6, rtol: 2e-5 };

const f32 = (data: ArrayLike<number>) => Float64Array.from(data, (v) => Math.fround(v));

const checkOp = opChecker(() => engine, 1000, { tol: EXACT, fdCount: 24 });

// ---------------------------------------------------------------- elementwise

/** Normal data with exact zeros (the kinks), a negative zero and large magnitudes mixed in. */
function activationData(shape: number[], seed: number): Float64Array {
  const x = ref.normal(shape, seed, 2);
  const special = [0, -0, 0, 20, -20, 50, -50, 1e-3, -1e-3, 0];
  special.forEach((v, k) => (x[k * 11] = v));
  return x;
}

describe('elementwise unary ops', () => {
  const shape = [7, 43]; // 301 elements: two workgroups, not a multiple of 4
  const kink = (_: number, v: number) => Math.abs(v) < 1e-4;
  const cases: { name: string; op: ref.UnaryName; alpha: number; gpu: (x: Tensor) => Tensor; data: () => Float64Array; tol: Tol }[] = [
    { name: 'relu', op: 'relu', alpha: 0, gpu: ops.relu, data: () => activationData(shape, 1), tol: EXACT },
    { name: 'leakyRelu (default slope)', op: 'leaky_relu', alpha: Math.fround(0.01), gpu: (x) => ops.leakyRelu(x), data: () => activationData(shape, 2), tol: EXACT },
    { name: 'leakyRelu (slope 0.2)', op: 'leaky_relu', alpha: Math.fround(0.2), gpu: (x) => ops.leakyRelu(x, 0.2), data: () => activationData(shape, 3), tol: EXACT },
    { name: 'gelu', op: 'gelu', alpha: 0, gpu: ops.gelu, data: () => activationData(shape, 4), tol: TRANSCENDENTAL },
    { name: 'sigmoid', op: 'sigmoid', alpha: 0, gpu: ops.sigmoid, data: () => activationData(shape, 5), tol: TRANSCENDENTAL },
    { name: 'tanh', op: 'tanh', alpha: 0, gpu: ops.tanh, data: () => activationData(shape, 6), tol: TRANSCENDENTAL },
    { name: 'square', op: 'square', alpha: 0, gpu: ops.square, data: () => activationData(shape, 7), tol: EXACT },
    { name: 'scale(-1.7)', op: 'scale', alpha: Math.fround(-1.7), gpu: (x) => ops.scale(x, -1.7), data: () => activationData(shape, 8), tol: EXACT },
    { name: 'exp', op: 'exp', alpha: 0, gpu: ops.exp, data: () => ref.normal(shape, 9, 2.5), tol: TRANSCENDENTAL },
    { name: 'log', op: 'log', alpha: 0, gpu: ops.log, data: () => ref.uniform(shape, 10, 0.02, 20), tol: TRANSCENDENTAL },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      await checkOp(c.name, {
        inputs: [{ data: c.data(), shape }],
        gpu: ([x]) => c.gpu(x!),
        forward: ([x]) => ({ data: ref.unary(c.op, x!, c.alpha), shape }),
        grad: ([x], dy) => [ref.unaryGrad(c.op, x!, dy, c.alpha)],
        tol: c.tol,
        fdSkip: c.op === 'relu' || c.op === 'leaky_relu' ? kink : undefined,
      });
    });
  }

  test('relu and leakyRelu gradients at exactly 0 are 0 and the slope', async () => {
    await engine.scope(async () => {
      const data = [0, -0, 1, -1, 0, 2.5, -2.5, 0];
      const x = engine.parameter(data, [8], 'kinks');
      try {
        for (const [name, f, atZero] of [
          ['relu', ops.relu, 0],
          ['leakyRelu', (t: Tensor) => ops.leakyRelu(t, 0.25), 0.25],
          ['leakyRelu default', (t: Tensor) => ops.leakyRelu(t), Math.fround(0.01)],
        ] as const) {
          const y = f(x);
          // (+ 0 turns -0 into 0: the sign of a zero output is not part of the contract)
          expect(Array.from(await y.data(), (v) => v + 0), `${name} forward`).toEqual(data.map((v) => (v > 0 ? v : Math.fround(atZero * v)) + 0));
          const g = gradients(ops.sum(y), [x]).get(x)!;
          expect(Array.from(await g.data()), `${name} backward`).toEqual(data.map((v) => (v > 0 ? 1 : atZero)));
        }
      } finally {
        x.dispose();
      }
    });
  });
});

describe('elementwise binary ops', () => {
  const shape = [3, 5, 7];
  for (const op of ['add', 'sub', 'mul'] as const) {
    test(op, async () => {
      await checkOp(op, {
        inputs: [
          { data: ref.normal(shape, 20), shape },
          { data: ref.normal(shape, 21), shape },
        ],
        gpu: ([a, b]) => ops[op](a!, b!),
        forward: ([a, b]) => ({ data: ref.binary(op, a!, b!), shape }),
        grad: ([a, b], dy) => ref.binaryGrad(op, a!, b!, dy),
      });
    });
  }
});

// ---------------------------------------------------------------- matmul and bias

describe('matmul', () => {
  // [M, K, N]: scalar path (not multiples of 4), the aligned vec4 path, several 32x32 workgroup
  // tiles with ragged edges, full tiles, and M, N aligned with K not (scalar path again).
  const sizes: [number, number, number][] = [
    [5, 7, 3],
    [8, 12, 16],
    [33, 20, 36],
    [64, 64, 64],
    [4, 6, 8],
    [1, 1, 1],
  ];
  for (const [M, K, N] of sizes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const name = `[${M},${K}]x[${K},${N}] transA=${transA} transB=${transB}`;
        test(name, async () => {
          await checkOp(`matmul ${name}`, { ...matmulCase(M, K, N, transA, transB, ACCUMULATED), fdCount: 12 });
        });
      }
    }
  }

  test('K = 0 gives zeros', async () => {
    await engine.scope(async () => {
      const c = ops.matmul(engine.tensor([], [3, 0]), engine.tensor([], [0, 5]));
      expect([...c.shape]).toEqual([3, 5]);
      expect(Array.from(await c.data())).toEqual(new Array(15).fill(0));
    });
  });
});

describe('linear (matmul with bias and activation fused in its epilogue)', () => {
  const LOOSE: Tol = { atol: 2e-5, rtol: 1e-4 }; // sums of products then a transcendental, no |terms| scale
  for (const [rows, inF, outF] of [
    [5, 7, 3],
    [8, 12, 16],
    [33, 20, 9],
  ] as const) {
    for (const activation of [null, 'relu', 'leaky_relu', 'sigmoid', 'tanh'] as const) {
      for (const withBias of [true, false]) {
        const name = `linear [${rows},${inF}]x[${outF},${inF}]^T ${withBias ? '+ b ' : ''}${activation ?? 'no activation'}`;
        test(name, async () => {
          const slope = 0.2;
          const pre = (x: Float64Array, w: Float64Array, b: Float64Array | undefined) => {
            const z = ref.matmul(x, [rows, inF], w, [outF, inF], false, true).data;
            if (b) z.set(ref.addBias(z, b));
            return z;
          };
          await checkOp(name, {
            inputs: [
              { data: ref.normal([rows, inF], rows + inF), shape: [rows, inF] },
              { data: ref.normal([outF, inF], outF, 0.5), shape: [outF, inF] },
              ...(withBias ? [{ data: ref.normal([outF], 7), shape: [outF] }] : []),
            ],
            gpu: ([x, w, b]) => ops.linear(x!, w!, b ?? null, activation, slope),
            forward: ([x, w, b]) => {
              const z = pre(x!, w!, b);
              return { data: activation ? ref.unary(activation, z, slope) : z, shape: [rows, outF] };
            },
            grad: ([x, w, b], dy) => {
              const z = pre(x!, w!, b);
              const dz = activation ? ref.unaryGrad(activation, z, dy, slope) : dy;
              const [dx, dw] = ref.matmulGrad(x!, [rows, inF], w!, [outF, inF], dz, false, true);
              return withBias ? [dx, dw, ref.addBiasGrad(z, b!, dz)[1]] : [dx, dw];
            },
            tol: LOOSE,
          });
        });
      }
    }
  }
});

describe('addBias', () => {
  for (const shape of [
    [5, 7],
    [2, 3, 6],
    [40, 9],
  ]) {
    test(`[${shape}] + [${shape.at(-1)}]`, async () => {
      const cols = shape.at(-1)!;
      await checkOp(`addBias [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 30 + shape.length), shape },
          { data: ref.normal([cols], 31), shape: [cols] },
        ],
        gpu: ([x, b]) => ops.addBias(x!, b!),
        forward: ([x, b]) => ({ data: ref.addBias(x!, b!), shape }),
        grad: ([x, b], dy) => ref.addBiasGrad(x!, b!, dy),
        tol: ACCUMULATED,
        byAbs: true,
      });
    });
  }
});

// ---------------------------------------------------------------- reductions

describe('sum and mean', () => {
  const cases: { shape: number[]; axis: number | undefined }[] = [
    { shape: [3, 4, 5], axis: 0 },
    { shape: [3, 4, 5], axis: 1 },
    { shape: [3, 4, 5], axis: 2 },
    { shape: [3, 4, 5], axis: -1 },
    { shape: [3, 4, 5], axis: undefined },
    // Longer than one 256-invocation workgroup:
    { shape: [2, 300, 3], axis: 1 },
    { shape: [3, 517], axis: -1 },
    { shape: [600, 2], axis: 0 },
    { shape: [1037], axis: undefined },
    { shape: [7], axis: 0 },
  ];
  for (const mean of [false, true]) {
    for (const { shape, axis } of cases) {
      const name = `${mean ? 'mean' : 'sum'} of [${shape}] over ${axis ?? 'everything'}`;
      test(name, async () => {
        await checkOp(name, {
          inputs: [{ data: ref.normal(shape, 40 + shape.length + (axis ?? 9), 1, 0.5), shape }],
          gpu: ([x]) => (mean ? ops.mean(x!, axis) : ops.sum(x!, axis)),
          forward: ([x]) => ref.reduce(x!, shape, axis, mean),
          grad: (_, dy) => [ref.reduceGrad(shape, axis, mean, dy)],
          tol: ACCUMULATED,
          byAbs: true,
        });
      });
    }
  }
});

// ---------------------------------------------------------------- losses

describe('softmax cross-entropy', () => {
  const sceCase = (name: string, rows: number, cols: number, logits: Float64Array, targets: Float64Array, tol: Tol) =>
    test(name, async () => {
      await checkOp(`softmaxCrossEntropy ${name}`, {
        inputs: [
          { data: logits, shape: [rows, cols] },
          { data: targets, shape: [rows, cols], diff: false },
        ],
        gpu: ([l, t]) => ops.softmaxCrossEntropy(l!, t!),
        forward: ([l, t]) => ({ data: Float64Array.of(ref.softmaxCrossEntropy(l!, t!, rows, cols)), shape: [] }),
        grad: ([l, t], dy) => [ref.softmaxCrossEntropyGrad(l!, t!, rows, cols, dy[0]!), null],
        tol,
      });
      await checkOp(`softmaxCrossEntropyRows ${name}`, {
        inputs: [
          { data: logits, shape: [rows, cols] },
          { data: targets, shape: [rows, cols], diff: false },
        ],
        gpu: ([l, t]) => ops.softmaxCrossEntropyRows(l!, t!),
        forward: ([l, t]) => ({ data: ref.softmaxCrossEntropyRows(l!, t!, rows, cols), shape: [rows] }),
        grad: ([l, t], dy) => [ref.softmaxCrossEntropyRowsGrad(l!, t!, rows, cols, dy), null],
        tol,
      });
    });

  sceCase('soft targets [4,10]', 4, 10, ref.normal([4, 10], 50, 3), ref.softTargets(4, 10, 51), TRANSCENDENTAL);
  sceCase('one-hot targets [6,5]', 6, 5, ref.normal([6, 5], 52, 2), ref.oneHot(6, 5, 53), TRANSCENDENTAL);
  sceCase('more classes than a workgroup [3,150]', 3, 150, ref.normal([3, 150], 54, 2), ref.softTargets(3, 150, 55), TRANSCENDENTAL);
  sceCase('a workgroup per row: over 256 classes [2,300]', 2, 300, ref.normal([2, 300], 56, 2), ref.softTargets(2, 300, 57), TRANSCENDENTAL);
  // Unnormalised targets: the loss is still -sum t log_softmax, its gradient p * sum(t) - t.
  sceCase('targets not summing to 1 [5,9]', 5, 9, ref.normal([5, 9], 56), ref.uniform([5, 9], 57), TRANSCENDENTAL);
  // Large logits: exp(1000) overflows float32 (and float64): only a max-shifted kernel survives.
  // Absolute tolerance of a few ulp of 1000 (6.1e-5) for the loss, which is formed from lse ~ 1000.
  const big = ref.normal([4, 8], 58, 2).map((v) => Math.fround(1000 + v));
  sceCase('logits around 1000, soft targets', 4, 8, big, ref.softTargets(4, 8, 59), { atol: 3e-4, rtol: 2e-5 });
  const spread = f32(ref.normal([4, 8], 60, 300));
  spread[0] = 1000;
  spread[9] = -1000;
  spread[17] = 1000;
  spread[18] = 1000;
  sceCase('logits spread over +-1000, soft targets', 4, 8, spread, ref.softTargets(4, 8, 61), { atol: 3e-4, rtol: 2e-5 });

  test('large logits give finite, exact values', async () => {
    await engine.scope(async () => {
      // Row 0: logits [1000, 0]: loss for target class 0 is log(1 + e^-1000) = 0, for class 1 it is 1000.
      const logits = engine.parameter([1000, 0, 1000, 0, -1000, 1000], [3, 2], 'big');
      try {
        const t = engine.tensor([1, 0, 0, 1, 0.5, 0.5], [3, 2]);
        const rows = ops.softmaxCrossEntropyRows(logits, t);
        expect(Array.from(await rows.data())).toEqual([0, 1000, 1000]);
        const g = gradients(ops.sum(rows), [logits]).get(logits)!;
        expect(Array.from(await g.data())).toEqual([0, 0, 1, -1, -0.5, 0.5]);
      } finally {
        logits.dispose();
      }
    });
  });
});

describe('softmax cross-entropy with class-id targets', () => {
  const idsCase = (name: string, rows: number, cols: number, logits: Float64Array, ids: Float64Array, tol: Tol, fdCount?: number) =>
    test(name, async () => {
      const hot = ref.oneHotOf(ids, cols);
      await checkOp(`softmaxCrossEntropyIndices ${name}`, {
        inputs: [
          { data: logits, shape: [rows, cols] },
          { data: ids, shape: [rows], diff: false },
        ],
        gpu: ([l, t]) => ops.softmaxCrossEntropyIndices(l!, t!),
        forward: ([l]) => ({ data: Float64Array.of(ref.softmaxCrossEntropy(l!, hot, rows, cols)), shape: [] }),
        grad: ([l], dy) => [ref.softmaxCrossEntropyGrad(l!, hot, rows, cols, dy[0]!), null],
        tol,
        ...(fdCount === undefined ? {} : { fdCount }),
      });
      await checkOp(`softmaxCrossEntropyIndicesRows ${name}`, {
        inputs: [
          { data: logits, shape: [rows, cols] },
          { data: ids, shape: [rows], diff: false },
        ],
        gpu: ([l, t]) => ops.softmaxCrossEntropyIndicesRows(l!, t!),
        forward: ([l]) => ({ data: ref.softmaxCrossEntropyRows(l!, hot, rows, cols), shape: [rows] }),
        grad: ([l], dy) => [ref.softmaxCrossEntropyRowsGrad(l!, hot, rows, cols, dy), null],
        tol,
        ...(fdCount === undefined ? {} : { fdCount }),
      });
    });

  idsCase('[7,13]: an invocation per row', 7, 13, ref.normal([7, 13], 70, 2), ref.classIds(7, 13, 71), TRANSCENDENTAL);
  idsCase('[5,300]: a workgroup per row', 5, 300, ref.normal([5, 300], 72, 2), ref.classIds(5, 300, 73), TRANSCENDENTAL);
  idsCase('[640,2000]: the keyboard model', 640, 2000, ref.normal([640, 2000], 74, 2), ref.classIds(640, 2000, 75), TRANSCENDENTAL, 8);
  const spread = f32(ref.normal([4, 9], 76, 300));
  spread[0] = 1000;
  spread[10] = -1000;
  spread[18] = 1000;
  spread[19] = 1000;
  idsCase('logits spread over +-1000', 4, 9, spread, Float64Array.of(0, 1, 2, 8), { atol: 3e-4, rtol: 2e-5 });

  test('large logits give finite, exact values', async () => {
    await engine.scope(async () => {
      const logits = engine.parameter([1000, 0, 1000, 0, -1000, 1000], [3, 2], 'big');
      try {
        const rows = ops.softmaxCrossEntropyIndicesRows(logits, engine.tensor([0, 1, 0], [3]));
        expect(Array.from(await rows.data())).toEqual([0, 1000, 2000]);
        const g = gradients(ops.sum(rows), [logits]).get(logits)!;
        expect(Array.from(await g.data())).toEqual([0, 0, 1, -1, -1, 1]);
      } finally {
        logits.dispose();
      }
    });
  });

  test('equals the one-hot op on the same data', async () => {
    const [rows, cols] = [33, 517];
    const ids = ref.classIds(rows, cols, 77);
    const data = ref.normal([rows, cols], 78, 3);
    await engine.scope(async () => {
      const a = engine.parameter(data, [rows, cols], 'a');
      const b = engine.parameter(data, [rows, cols], 'b');
      try {
        const la = ops.softmaxCrossEntropyIndices(a, engine.tensor(ids, [rows]));
        const lb = ops.softmaxCrossEntropy(b, engine.tensor(ref.oneHotOf(ids, cols), [rows, cols]));
        expectClose(await la.data(), await lb.data(), TRANSCENDENTAL, 'loss');
        const ga = gradients(la, [a]).get(a)!;
        const gb = gradients(lb, [b]).get(b)!;
        expectClose(await ga.data(), await gb.data(), TRANSCENDENTAL, 'gradient');
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  });

  test('an id outside [0, classes) gives NaN for its row only, reading nothing out of bounds', async () => {
    await engine.scope(async () => {
      const logits = engine.parameter([1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3], [4, 3], 'l');
      try {
        const rows = ops.softmaxCrossEntropyIndicesRows(logits, engine.tensor([3, -1, 0.5, 2], [4]));
        const out = Array.from(await rows.data());
        expect(out.slice(0, 3).every(Number.isNaN)).toBe(true);
        expect(out[3]).toBeCloseTo(Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)) - 3, 5);
        const g = Array.from(await gradients(ops.sum(rows), [logits]).get(logits)!.data());
        expect(g.slice(0, 9).every(Number.isNaN)).toBe(true);
        expect(g.slice(9).every(Number.isFinite)).toBe(true);
      } finally {
        logits.dispose();
      }
    });
  });

  test('refuses targets of the wrong shape, naming the op and the shapes', async () => {
    await engine.scope(() => {
      const logits = engine.tensor(new Float32Array(12), [4, 3], 'logits');
      expect(() => ops.softmaxCrossEntropyIndices(logits, engine.tensor([0, 1, 2], [3], 'ids'))).toThrow(/softmaxCrossEntropyIndices: targets ids \[3\] must be \[4\].*logits \[4, ?3\]/);
      expect(() => ops.softmaxCrossEntropyIndices(logits, engine.tensor(new Float32Array(12), [4, 3], 'ids'))).toThrow(/softmaxCrossEntropyIndices: targets ids/);
      expect(() => ops.softmaxCrossEntropyIndices(engine.tensor(new Float32Array(0), [2, 0]), engine.tensor([0, 0], [2]))).toThrow(/no classes/);
    });
  });

  test('checkIndices refuses ids outside [0, classes), negative or fractional, naming the op and the limit', () => {
    expect(() => ops.checkIndices('trainLanguageModel', [0, 5, 2000], 2000)).toThrow('trainLanguageModel: index 2000 at position 2 is not an integer in [0, 2000)');
    expect(() => ops.checkIndices('op', [-1], 10)).toThrow('op: index -1 at position 0 is not an integer in [0, 10)');
    expect(() => ops.checkIndices('op', [1.5], 10)).toThrow(/index 1.5/);
    expect(() => ops.checkIndices('op', [0, 9], 10)).not.toThrow();
  });
});

describe('mse', () => {
  for (const shape of [[5, 7], [33]]) {
    test(`[${shape}]`, async () => {
      await checkOp(`mse [${shape}]`, {
        inputs: [
          { data: ref.normal(shape, 70 + shape.length), shape },
          { data: ref.normal(shape, 72 + shape.length), shape },
        ],
        gpu: ([p, t]) => ops.mse(p!, t!),
        forward: ([p, t]) => ({ data: Float64Array.of(ref.mse(p!, t!)), shape: [] }),
        grad: ([p, t], dy) => ref.mseGrad(p!, t!, dy[0]!),
        tol: ACCUMULATED,
      });
    });
  }
});

// ---------------------------------------------------------------- shape ops

describe('reshape, slice, concat', () => {
  for (const [to, want] of [
    [[12, 5], [12, 5]],
    [[-1, 4], [15, 4]],
    [[60], [60]],
  ] as const) {
    test(`reshape [3,4,5] to [${to}]`, async () => {
      await checkOp(`reshape [${to}]`, {
        inputs: [{ data: ref.normal([3, 4, 5], 80), shape: [3, 4, 5] }],
        gpu: ([x]) => ops.reshape(x!, to),
        forward: ([x]) => ({ data: x!.slice(), shape: [...want] }),
        grad: (_, dy) => [dy.slice()],
      });
    });
  }

  const shape = [4, 5, 6];
  for (const [axis, start, length] of [
    [0, 1, 2],
    [1, 2, 3],
    [2, 1, 4],
    [-1, 0, 6],
    [1, 4, 1],
  ] as const) {
    test(`slice [4,5,6] axis ${axis} [${start}, ${start + length})`, async () => {
      await checkOp(`slice axis ${axis}`, {
        inputs: [{ data: ref.normal(shape, 90), shape }],
        gpu: ([x]) => ops.slice(x!, axis, start, length),
        forward: ([x]) => ref.slice(x!, shape, axis, start, length),
        grad: (_, dy) => [ref.sliceGrad(shape, axis, start, length, dy)],
      });
    });
  }

  for (const [axis, shapes] of [
    [0, [[2, 3, 4], [1, 3, 4], [3, 3, 4]]],
    [1, [[2, 1, 4], [2, 3, 4], [2, 2, 4]]],
    [2, [[2, 3, 1], [2, 3, 5], [2, 3, 2]]],
    [-1, [[3, 2, 3], [3, 2, 7]]],
  ] as const) {
    test(`concat along axis ${axis} of ${shapes.map((s) => `[${s}]`).join(' ')}`, async () => {
      const ss = shapes.map((s) => [...s]);
      await checkOp(`concat axis ${axis}`, {
        inputs: ss.map((s, i) => ({ data: ref.normal(s, 100 + i), shape: s })),
        gpu: (ts) => ops.concat(ts, axis),
        forward: (xs) => ref.concat(xs, ss, axis),
        grad: (_, dy) => ref.concatGrad(ss, axis, dy),
      });
    });
  }
});

// ---------------------------------------------------------------- dropout

describe('dropout', () => {
  test('rate 0.5 on [7,13] against the reference mask, with gradient checks', async () => {
    const shape = [7, 13];
    const mask = ref.dropoutMask(91, 42, 0.5);
    await checkOp('dropout', {
      inputs: [{ data: ref.normal(shape, 110), shape }],
      gpu: ([x]) => ops.dropout(x!, 0.5, 42),
      forward: ([x]) => ({ data: ref.dropout(x!, mask, 0.5), shape }),
      grad: (_, dy) => [ref.dropoutGrad(mask, 0.5, dy)],
    });
  });

  test('kept fraction, kept values, same mask in backward, seeds', async () => {
    const shape = [256, 257];
    const n = 256 * 257;
    const rate = 0.3;
    await engine.scope(async () => {
      const xd = ref.uniform(shape, 120, 0.5, 1.5); // never 0, so y != 0 exactly where kept
      const x = engine.parameter(Float32Array.from(xd), shape, 'dropout.x');
      try {
        const y = ops.dropout(x, rate, 1234);
        const yd = await y.data();
        let kept = 0;
        for (let i = 0; i < n; i++) {
          if (yd[i] !== 0) {
            kept++;
            expect(Math.abs(yd[i]! - xd[i]! / (1 - rate)), `kept value at ${i}`).toBeLessThanOrEqual(1e-6 * Math.abs(yd[i]!));
          }
        }
        // Binomial standard deviation of the fraction is sqrt(0.21 / 65792) = 0.0018.
        expect(Math.abs(kept / n - (1 - rate))).toBeLessThan(0.01);
        // The mask is the documented hash of (seed, index).
        const mask = ref.dropoutMask(n, 1234, rate);
        let maskDiffers = 0;
        for (let i = 0; i < n; i++) if ((yd[i] !== 0 ? 1 : 0) !== mask[i]) maskDiffers++;
        expect(maskDiffers, 'elements whose keep decision differs from the reference hash').toBe(0);

        // Backward: dy * mask / (1 - rate) with the forward's mask.
        const wd = ref.normal(shape, 121);
        const loss = ops.sum(ops.mul(y, engine.tensor(Float32Array.from(wd), shape)));
        const g = await gradients(loss, [x]).get(x)!.data();
        let gradMismatch = 0;
        for (let i = 0; i < n; i++) {
          const want = yd[i] !== 0 ? wd[i]! / (1 - rate) : 0;
          if (!(Math.abs(g[i]! - want) <= 1e-6 * Math.abs(want))) gradMismatch++;
        }
        expect(gradMismatch, 'gradient elements not matching the forward mask').toBe(0);

        // Same seed, same mask; another seed, another mask.
        const again = await ops.dropout(x, rate, 1234).data();
        expect(again).toEqual(yd);
        const other = await ops.dropout(x, rate, 1235).data();
        let differ = 0;
        for (let i = 0; i < n; i++) if ((other[i] !== 0) !== (yd[i] !== 0)) differ++;
        expect(differ / n).toBeGreaterThan(0.3); // independent masks disagree on 2 * 0.3 * 0.7 = 42%
        // No seed: each call draws a fresh one.
        const a = await ops.dropout(x, rate).data();
        const b = await ops.dropout(x, rate).data();
        expect(a).not.toEqual(b);
        // Rate 0 is the identity.
        expect(await ops.dropout(x, 0, 7).data()).toEqual(Float32Array.from(xd));
      } finally {
        x.dispose();
      }
    });
  });
});

// ---------------------------------------------------------------- autograd plumbing

describe('gradient accumulation and selection', () => {
  test('one tensor feeding two consumers: sum(x * x) + sum(relu(x))', async () => {
    const shape = [5, 7];
    const xd = ref.normal(shape, 130);
    xd[3] = 0;
    await checkOp('x*x + relu(x)', {
      inputs: [{ data: xd, shape }],
      gpu: ([x]) => ops.add(ops.sum(ops.mul(x!, x!)), ops.sum(ops.relu(x!))),
      forward: ([x]) => {
        let s = 0;
        for (const v of x!) s += v * v + (v > 0 ? v : 0);
        return { data: Float64Array.of(s), shape: [] };
      },
      grad: ([x], dy) => [x!.map((v) => dy[0]! * (2 * v + (v > 0 ? 1 : 0)))],
      fdSkip: (_, v) => Math.abs(v) < 1e-4,
      tol: ACCUMULATED,
    });
  });

  test('one tensor used three times, through add, mul and concat', async () => {
    const shape = [3, 4];
    await checkOp('(x + x) * x and concat([x, x])', {
      inputs: [{ data: ref.normal(shape, 131), shape }],
      // y = concat([(x + x) * x, x], 0): [6, 4]
      gpu: ([x]) => ops.concat([ops.mul(ops.add(x!, x!), x!), x!], 0),
      forward: ([x]) => ({ data: Float64Array.from([...x!.map((v) => 2 * v * v), ...x!]), shape: [6, 4] }),
      grad: ([x], dy) => [x!.map((v, i) => dy[i]! * 4 * v + dy[i + 12]!)],
    });
  });

  for (const shape of [
    [5, 3],
    [8, 12],
  ]) {
    test(`one tensor as both matmul operands: x x^T for x [${shape}]`, async () => {
      const n = shape[0]!;
      await checkOp(`gram [${shape}]`, {
        inputs: [{ data: ref.normal(shape, 132 + n), shape }],
        gpu: ([x]) => ops.matmul(x!, x!, { transB: true }),
        forward: ([x]) => ref.matmul(x!, shape, x!, shape, false, true),
        grad: ([x], dy) => {
          const [da, db] = ref.matmulGrad(x!, shape, x!, shape, dy, false, true);
          return [da.map((v, i) => v + db[i]!)];
        },
        tol: ACCUMULATED,
        byAbs: true,
      });
    });
  }

  test('inputs whose gradient is not asked for get none', async () => {
    await engine.scope(async () => {
      const xd = ref.normal([4, 3], 140);
      const yd = ref.normal([4, 3], 141);
      const x = engine.parameter(Float32Array.from(xd), [4, 3], 'px');
      const y = engine.parameter(Float32Array.from(yd), [4, 3], 'py');
      const unused = engine.parameter([1, 2], [2], 'punused');
      try {
        const loss = ops.sum(ops.mul(x, y));
        const { result: grads, dispatches } = engine.traceDispatches(() => gradients(loss, [x]));
        expect([...grads.keys()]).toEqual([x]);
        expectClose(await grads.get(x)!.data(), yd, EXACT, 'd(px)');
        expect(dispatches.filter((d) => d.label.includes('d(py)')), 'dispatches computing d(py)').toEqual([]);
        expect(dispatches.length).toBeGreaterThan(0);
        // A parameter that the loss does not depend on gets nothing even when asked for.
        expect(gradients(loss, [unused]).size).toBe(0);
        // A plain tensor is not recorded: asking for its gradient is an error that says what to do,
        // and with requiresGrad set it gets its gradient.
        const plain = engine.tensor(Float32Array.from(xd), [4, 3], 'plain');
        expect(() => gradients(ops.sum(ops.mul(plain, y)), [plain])).toThrow(/plain \[4,3\] is not recorded by autograd; set requiresGrad/);
        plain.requiresGrad = true;
        expectClose(await gradients(ops.sum(ops.mul(plain, y)), [plain]).get(plain)!.data(), yd, EXACT, 'd(plain)');

        // wrt = null: every trainable parameter on the path; frozen ones are skipped.
        expect(new Set(gradients(loss, null).keys())).toEqual(new Set([x, y]));
        y.frozen = true;
        const onlyX = engine.traceDispatches(() => gradients(loss, null));
        expect([...onlyX.result.keys()]).toEqual([x]);
        expect(onlyX.dispatches.filter((d) => d.label.includes('d(py)'))).toEqual([]);
        y.frozen = false;

        // backward() fills .grad of the trainable parameters and accumulates across calls.
        backward(loss);
        expectClose(await x.grad!.data(), yd, EXACT, 'px.grad');
        expectClose(await y.grad!.data(), xd, EXACT, 'py.grad');
        backward(loss);
        expectClose(await x.grad!.data(), yd.map((v) => 2 * v), EXACT, 'px.grad after two backward calls');
        expect(unused.grad).toBeNull();

        // Softmax cross-entropy targets are not differentiable: asked for, they still get none.
        const logits = engine.parameter(Float32Array.from(ref.normal([2, 3], 142)), [2, 3], 'plogits');
        const targets = engine.parameter(Float32Array.from(ref.softTargets(2, 3, 143)), [2, 3], 'ptargets');
        try {
          const g = gradients(ops.softmaxCrossEntropy(logits, targets), [logits, targets]);
          expect([...g.keys()]).toEqual([logits]);
        } finally {
          logits.dispose();
          targets.dispose();
        }
      } finally {
        for (const p of [x, y, unused]) p.dispose();
      }
    });
  });
});

// ---------------------------------------------------------------- errors

describe('error messages', () => {
  test('mismatched shapes name the op and both shapes', async () => {
    await engine.scope(() => {
      const a = engine.zeros([2, 3], 'left');
      const b = engine.zeros([3, 2], 'right');
      for (const [name, f] of [
        ['add', ops.add],
        ['sub', ops.sub],
        ['mul', ops.mul],
      ] as const) {
        let message = '';
        try {
          f(a, b);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          message = (e as Error).message;
        }
        expect(message).toContain(name);
        expect(message).toContain('[2,3]');
        expect(message).toContain('[3,2]');
      }
      const c = engine.zeros([4, 5], 'other');
      for (const [opts, shapes] of [
        [{}, ['[2,3]', '[4,5]']],
        [{ transB: true }, ['[2,3]', '[4,5]']],
        [{ transA: true }, ['[3,2]', '[4,5]']],
      ] as const) {
        const x = shapes[0] === '[2,3]' ? a : b;
        expect(() => ops.matmul(x, c, opts)).toThrow(Error);
        let message = '';
        try {
          ops.matmul(x, c, opts);
        } catch (e) {
          message = (e as Error).message;
        }
        expect(message).toContain('matmul');
        for (const s of shapes) expect(message).toContain(s);
      }
    });
  });

  test('a disposed tensor is named when used', async () => {
    await engine.scope(async () => {
      const ghost = engine.tensor([1, 2, 3, 4], [2, 2], 'ghost');
      const live = engine.tensor([1, 2, 3, 4], [2, 2], 'live');
      ghost.dispose();
      expect(() => ops.relu(ghost)).toThrow(/relu.*ghost/);
      expect(() => ops.add(live, ghost)).toThrow(/add.*ghost/);
      expect(() => ops.matmul(ghost, live)).toThrow(/matmul.*ghost/);
      expect(() => ops.sum(ghost)).toThrow(/ghost/);
      expect(() => ops.reshape(ghost, [4])).toThrow(/ghost/);
      expect(() => ops.concat([live, ghost], 0)).toThrow(/ghost/);
      await expect(ghost.data()).rejects.toThrow(/ghost/);
    });
  });
});
