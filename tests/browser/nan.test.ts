// NaN and infinity through every op, forward and backward. Each op gets inputs holding NaN (and
// +-inf where it matters); the float64 references of tests/reference.ts, computed with JS numbers
// (IEEE semantics), say what comes out. Element by element, the GPU's output and input gradients
// must be NaN exactly where the reference's are, an infinity of the same sign where the
// reference's is one, and finite where it is finite. (The finite values themselves are checked by
// the other test files; here only where a case says so.) The gradients are those of
// loss = sum(op(x) * w) for a fixed random w, so the op's backward gets a finite dy.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import { Kernel } from '../../src/engine/kernel.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { expectClose, type Tol } from '../close.js';
import * as ref from '../reference.js';
import reduceProbe from './workgroup_reduce_probe.wgsl';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

type Kind = 'NaN' | '+inf' | '-inf' | 'finite';

const kindOf = (v: number): Kind => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+inf' : v === -Infinity ? '-inf' : 'finite');

function expectKinds(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: number of elements`).toBe(expected.length);
  const bad: number[] = [];
  for (let i = 0; i < expected.length; i++) if (kindOf(actual[i]!) !== kindOf(expected[i]!)) bad.push(i);
  if (bad.length > 0) {
    const detail = bad
      .slice(0, 8)
      .map((i) => `[${i}] got ${actual[i]} want ${kindOf(expected[i]!)} (${expected[i]})`)
      .join('; ');
    throw new Error(`${what}: ${bad.length} of ${expected.length} elements of the wrong kind: ${detail}`);
  }
}

/** Finite values compared too, where the reference is finite. */
function expectFiniteClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, what: string): void {
  const finite: number[] = [];
  for (let i = 0; i < expected.length; i++) if (Number.isFinite(expected[i]!)) finite.push(i);
  expectClose(
    finite.map((i) => actual[i]!),
    finite.map((i) => expected[i]!),
    tol,
    what,
  );
}

interface Input {
  data: Float64Array;
  shape: number[];
  /** false for inputs that are not differentiated (targets, indices). */
  diff?: boolean;
}

interface Case {
  inputs: Input[];
  gpu: (t: Tensor[]) => Tensor;
  forward: (x: Float64Array[]) => Float64Array;
  /** Reference gradients of the inputs given dy; none for an op without a backward. */
  grad?: (x: Float64Array[], dy: Float64Array) => (Float64Array | null)[];
  /** Also compare the finite values of the outputs and gradients with this tolerance. */
  values?: Tol;
}

let caseSeed = 9000;

async function check(name: string, c: Case): Promise<void> {
  const seed = caseSeed++;
  await engine.scope(async () => {
    const params: Tensor[] = [];
    const ts = c.inputs.map((inp, i) => {
      if (inp.diff === false) return engine.tensor(Float32Array.from(inp.data), inp.shape, `${name}.x${i}`);
      const p = engine.parameter(Float32Array.from(inp.data), inp.shape, `${name}.x${i}`);
      params.push(p);
      return p;
    });
    try {
      const xs = c.inputs.map((inp) => inp.data);
      const want = c.forward(xs);
      // A case whose reference output holds no NaN would test nothing here.
      expect(want.some(Number.isNaN), `${name}: the reference output holds a NaN`).toBe(true);
      const y = c.gpu(ts);
      const got = await y.data();
      expectKinds(got, want, `${name}: forward`);
      if (c.values) expectFiniteClose(got, want, c.values, `${name}: forward values`);
      if (!c.grad) return;

      const w = ref.normal([want.length], seed);
      const loss = ops.sum(ops.mul(y, engine.tensor(Float32Array.from(w), y.shape, `${name}.w`)));
      const diff = c.inputs.flatMap((inp, i) => (inp.diff === false ? [] : [i]));
      const grads = gradients(loss, diff.map((i) => ts[i]!));
      const refGrads = c.grad(xs, w);
      for (const i of diff) {
        const g = await grads.get(ts[i]!)!.data();
        expectKinds(g, refGrads[i]!, `${name}: backward d(x${i})`);
        if (c.values) expectFiniteClose(g, refGrads[i]!, c.values, `${name}: backward d(x${i}) values`);
      }
    } finally {
      for (const p of params) p.dispose();
    }
  });
}

/** x with the given values placed at the given flat positions. */
function place(x: Float64Array, specials: Record<number, number>): Float64Array {
  for (const [at, v] of Object.entries(specials)) x[Number(at)] = v;
  return x;
}

/** Normal data (float32 values) with the given values placed at the given flat positions. */
function withSpecials(shape: number[], seed: number, specials: Record<number, number>, std = 1): Float64Array {
  return place(ref.normal(shape, seed, std), specials);
}

const NaN_ = Number.NaN;
const INF = Infinity;

// ---------------------------------------------------------------- elementwise

describe('elementwise', () => {
  const shape = [4, 9];
  const specials = { 0: NaN_, 5: INF, 9: -INF, 13: 0, 17: -0, 22: NaN_, 30: INF, 35: -INF };
  const cases: [string, ref.UnaryName, number, (x: Tensor) => Tensor][] = [
    ['relu', 'relu', 0, ops.relu],
    ['leakyRelu', 'leaky_relu', Math.fround(0.2), (x) => ops.leakyRelu(x, 0.2)],
    ['gelu', 'gelu', 0, ops.gelu],
    ['sigmoid', 'sigmoid', 0, ops.sigmoid],
    ['tanh', 'tanh', 0, ops.tanh],
    ['square', 'square', 0, ops.square],
    ['scale', 'scale', Math.fround(-1.7), (x) => ops.scale(x, -1.7)],
    ['exp', 'exp', 0, ops.exp],
  ];
  for (const [name, op, alpha, gpu] of cases) {
    test(name, async () => {
      await check(name, {
        inputs: [{ data: withSpecials(shape, 1, specials, 2), shape }],
        gpu: ([x]) => gpu(x!),
        forward: ([x]) => ref.unary(op, x!, alpha),
        grad: ([x], dy) => [ref.unaryGrad(op, x!, dy, alpha)],
      });
    });
  }

  test('log: NaN below 0 and at NaN, -inf at 0, +inf at +inf', async () => {
    const data = place(ref.uniform(shape, 2, 0.05, 5), { ...specials, 1: -1, 2: -1e-3, 3: Math.fround(1e-30) });
    await check('log', {
      inputs: [{ data, shape }],
      gpu: ([x]) => ops.log(x!),
      forward: ([x]) => ref.unary('log', x!),
      grad: ([x], dy) => [ref.unaryGrad('log', x!, dy)],
    });
  });

  test('clip_factor (no gradient): NaN for a NaN squared norm, 0 for an infinite one', async () => {
    const data = Float64Array.from([NaN_, INF, 0, 4, 1e-8, 1e6, NaN_, 2.25]);
    await check('clip_factor', {
      inputs: [{ data, shape: [8], diff: false }],
      gpu: ([x]) => ops.unary('clip_factor', x!, 1.5),
      forward: ([x]) => ref.clipFactor(x!, Math.fround(1.5)),
      values: { atol: 1e-6, rtol: 1e-5 },
    });
  });

  for (const op of ['add', 'sub', 'mul'] as const) {
    test(op, async () => {
      const shape2 = [3, 7];
      // inf - inf, inf + -inf, 0 * inf and NaN on either side.
      const a = withSpecials(shape2, 3, { 0: NaN_, 1: INF, 2: INF, 3: 0, 4: -INF, 9: 2 });
      const b = withSpecials(shape2, 4, { 1: INF, 2: -INF, 3: INF, 4: 5, 9: NaN_ });
      await check(op, {
        inputs: [
          { data: a, shape: shape2 },
          { data: b, shape: shape2 },
        ],
        gpu: ([x, y]) => ops[op](x!, y!),
        forward: ([x, y]) => ref.binary(op, x!, y!),
        grad: ([x, y], dy) => ref.binaryGrad(op, x!, y!, dy),
      });
    });
  }

  test('addBias', async () => {
    await check('addBias', {
      inputs: [
        { data: withSpecials([5, 4], 5, { 0: NaN_, 6: INF }), shape: [5, 4] },
        { data: Float64Array.from([1, NaN_, -INF, 0.5]), shape: [4] },
      ],
      gpu: ([x, b]) => ops.addBias(x!, b!),
      forward: ([x, b]) => ref.addBias(x!, b!),
      grad: ([x, b], dy) => ref.addBiasGrad(x!, b!, dy),
    });
  });
});

// ---------------------------------------------------------------- matmul and linear

describe('matmul and linear', () => {
  for (const [M, K, N] of [
    [5, 7, 3],
    [8, 8, 8],
  ] as const) {
    for (const transA of [false, true]) {
      test(`matmul [${M},${K}]x[${K},${N}] transA=${transA} (${M % 4 === 0 ? 'vec4' : 'scalar'} path)`, async () => {
        const aShape = transA ? [K, M] : [M, K];
        const bShape = [K, N];
        await check('matmul', {
          inputs: [
            { data: withSpecials(aShape, 10 + M, { 2: NaN_, 9: INF }), shape: aShape },
            { data: withSpecials(bShape, 11 + M, { 4: -INF, 10: NaN_ }), shape: bShape },
          ],
          gpu: ([a, b]) => ops.matmul(a!, b!, { transA }),
          forward: ([a, b]) => ref.matmul(a!, aShape, b!, bShape, transA).data,
          grad: ([a, b], dy) => ref.matmulGrad(a!, aShape, b!, bShape, dy, transA),
        });
      });
    }
  }

  for (const activation of [null, 'relu', 'leaky_relu', 'sigmoid', 'tanh'] as const) {
    test(`linear with ${activation ?? 'no activation'} in the epilogue`, async () => {
      const [rows, inF, outF] = [6, 5, 4];
      const slope = Math.fround(0.2);
      // One NaN input, one +inf and one -inf input (rows 1, 2, 3), a NaN bias: NaN and infinite pre-activations.
      const x = withSpecials([rows, inF], 20, { 5: NaN_, 10: INF, 15: -INF });
      const pre = (xv: Float64Array, w: Float64Array, b: Float64Array) => ref.addBias(ref.matmul(xv, [rows, inF], w, [outF, inF], false, true).data, b);
      await check(`linear ${activation}`, {
        inputs: [
          { data: x, shape: [rows, inF] },
          { data: ref.normal([outF, inF], 21), shape: [outF, inF] },
          { data: Float64Array.from([0.1, NaN_, -0.3, 0.2]), shape: [outF] },
        ],
        gpu: ([xt, w, b]) => ops.linear(xt!, w!, b!, activation, slope),
        forward: ([xv, w, b]) => {
          const z = pre(xv!, w!, b!);
          return activation ? ref.unary(activation, z, slope) : z;
        },
        grad: ([xv, w, b], dy) => {
          const z = pre(xv!, w!, b!);
          const dz = activation ? ref.unaryGrad(activation, z, dy, slope) : dy;
          const [dx, dw] = ref.matmulGrad(xv!, [rows, inF], w!, [outF, inF], dz, false, true);
          return [dx, dw, ref.addBiasGrad(z, b!, dz)[1]];
        },
      });
    });
  }
});

// ---------------------------------------------------------------- convolution and pooling

describe('conv2d', () => {
  const geometries: ref.ConvGeometry[] = [
    { N: 2, C: 2, H: 5, W: 6, OC: 3, KH: 3, KW: 3, stride: 1, padding: 1 },
    // Stride 2: some taps have no output for some pixels; a NaN weight there must not reach them.
    { N: 1, C: 2, H: 7, W: 9, OC: 5, KH: 3, KW: 3, stride: 2, padding: 1 },
  ];
  geometries.forEach((g, n) => {
    for (const activation of [null, 'relu', 'sigmoid'] as const) {
      test(`stride ${g.stride} padding ${g.padding}${activation ? ` + ${activation}` : ''}`, async () => {
        const xShape = [g.N, g.C, g.H, g.W];
        const wShape = [g.OC, g.C, g.KH, g.KW];
        const x = withSpecials(xShape, 30 + n, { 7: NaN_, 40: INF });
        // Weight: a NaN at tap (0, 0) of channel 1's first input channel, -inf in the last channel.
        const w = withSpecials(wShape, 31 + n, { [g.C * g.KH * g.KW]: NaN_, [(g.OC - 1) * g.C * g.KH * g.KW + 4]: -INF }, 0.5);
        await check(`conv2d ${n} ${activation}`, {
          inputs: [
            { data: x, shape: xShape },
            { data: w, shape: wShape },
            { data: ref.normal([g.OC], 32 + n), shape: [g.OC] },
          ],
          gpu: ([xt, wt, b]) => ops.conv2d(xt!, wt!, b!, { stride: g.stride, padding: g.padding, activation }),
          forward: ([xv, wv, b]) => {
            const z = ref.conv2d(xv!, wv!, b!, g).data;
            return activation ? ref.unary(activation, z) : z;
          },
          grad: ([xv, wv, b], dy) => {
            const dz = activation ? ref.unaryGrad(activation, ref.conv2d(xv!, wv!, b!, g).data, dy) : dy;
            return ref.conv2dGrad(xv!, wv!, g, dz);
          },
        });
      });
    }
  });
});

describe('pooling', () => {
  // Windows of 2x2 (stride 2) over one 6x6 plane: a NaN after the maximum, a NaN first, two NaNs,
  // all -inf, a +inf, -inf among finite values; the second plane all finite.
  const plane = [
    [1, 5, NaN_, 2, 3, 1],
    [2, 0, 1, 7, NaN_, 4],
    [-INF, -INF, 3, INF, -INF, 2],
    [-INF, -INF, 1, 0, 1, -1],
    [0, 1, 2, 3, 4, 5],
    [6, 7, 8, 9, 10, NaN_],
  ].flat();
  const x = Float64Array.from([...plane, ...ref.normal([36], 40)]);
  const shape = [1, 2, 6, 6];
  for (const [k, stride] of [
    [2, 2],
    [3, 1],
  ] as const) {
    const g: ref.PoolGeometry = { N: 1, C: 2, H: 6, W: 6, k, stride };
    test(`maxPool2d k ${k} stride ${stride}: NaN windows give NaN; the gradient goes to the window's first NaN`, async () => {
      await check(`maxPool2d ${k}`, {
        inputs: [{ data: x, shape }],
        gpu: ([t]) => ops.maxPool2d(t!, k, { stride }),
        forward: ([v]) => ref.pool2d(v!, g, true).data,
        grad: ([v], dy) => [ref.pool2dGrad(v!, g, true, dy)],
        values: { atol: 1e-6, rtol: 1e-6 },
      });
    });
    test(`avgPool2d k ${k} stride ${stride}`, async () => {
      await check(`avgPool2d ${k}`, {
        inputs: [{ data: x, shape }],
        gpu: ([t]) => ops.avgPool2d(t!, k, { stride }),
        forward: ([v]) => ref.pool2d(v!, g, false).data,
        grad: ([v], dy) => [ref.pool2dGrad(v!, g, false, dy)],
      });
    });
  }
});

// ---------------------------------------------------------------- dropout

test('dropout: a dropped NaN or infinity stays NaN (x * mask / (1 - p))', async () => {
  const shape = [8, 16];
  const specials: Record<number, number> = {};
  for (let i = 0; i < 128; i += 5) specials[i] = [NaN_, INF, -INF][(i / 5) % 3]!;
  const x = withSpecials(shape, 50, specials);
  const [seed, rate] = [77, 0.5];
  const mask = ref.dropoutMask(128, seed, rate);
  const droppedNaN = Object.entries(specials).filter(([at, v]) => Number.isNaN(v) && mask[Number(at)] === 0).length;
  expect(droppedNaN, 'NaNs that the mask drops').toBeGreaterThan(0);
  await check('dropout', {
    inputs: [{ data: x, shape }],
    gpu: ([t]) => ops.dropout(t!, rate, seed),
    forward: ([v]) => ref.dropout(v!, mask, rate),
    grad: (_, dy) => [ref.dropoutGrad(mask, rate, dy)],
    values: { atol: 1e-6, rtol: 1e-6 },
  });
});

// ---------------------------------------------------------------- softmax and losses

/** Rows: a NaN, a +inf, two +inf, a -inf among finite values, all -inf, all finite. */
function logitRows(cols: number, seed: number): Float64Array {
  const x = ref.normal([6, cols], seed, 2);
  x[1] = NaN_;
  x[cols + 2] = INF;
  x[2 * cols] = INF;
  x[2 * cols + cols - 1] = INF;
  x[3 * cols + 3] = -INF;
  x.fill(-INF, 4 * cols, 5 * cols);
  return x;
}

describe('softmax and softmax cross-entropy', () => {
  test('softmax', async () => {
    const cols = 7;
    await check('softmax', {
      inputs: [{ data: logitRows(cols, 60), shape: [6, cols] }],
      gpu: ([t]) => ops.softmax(t!),
      forward: ([v]) => ref.softmax(v!, 6, cols),
      grad: ([v], dy) => [ref.softmaxGrad(v!, 6, cols, dy)],
    });
  });

  for (const cols of [7, 300]) {
    test(`softmaxCrossEntropyRows, ${cols} classes (${cols > 256 ? 'a workgroup per row' : 'an invocation per row'})`, async () => {
      const logits = logitRows(cols, 61);
      const targets = ref.softTargets(6, cols, 62);
      targets[3 * cols + 3] = 0; // against the -inf logit: no term (0 log 0 = 0)
      await check(`softmaxCrossEntropyRows ${cols}`, {
        inputs: [
          { data: logits, shape: [6, cols] },
          { data: targets, shape: [6, cols], diff: false },
        ],
        gpu: ([l, tt]) => ops.softmaxCrossEntropyRows(l!, tt!),
        forward: ([l, tt]) => ref.softmaxCrossEntropyRows(l!, tt!, 6, cols),
        grad: ([l, tt], dy) => [ref.softmaxCrossEntropyRowsGrad(l!, tt!, 6, cols, dy), null],
        values: { atol: 1e-4, rtol: 1e-4 },
      });
      // A NaN target makes its row NaN; a -inf logit with a non-zero target makes the loss +inf.
      const t2 = place(ref.softTargets(3, cols, 63), { [cols + 1]: NaN_ });
      const l2 = place(ref.normal([3, cols], 64), { [2 * cols + 2]: -INF });
      await check(`softmaxCrossEntropyRows ${cols}, NaN target`, {
        inputs: [
          { data: l2, shape: [3, cols] },
          { data: t2, shape: [3, cols], diff: false },
        ],
        gpu: ([l, tt]) => ops.softmaxCrossEntropyRows(l!, tt!),
        forward: ([l, tt]) => ref.softmaxCrossEntropyRows(l!, tt!, 3, cols),
        grad: ([l, tt], dy) => [ref.softmaxCrossEntropyRowsGrad(l!, tt!, 3, cols, dy), null],
      });
    });
  }
});

// ---------------------------------------------------------------- normalisation

describe('normalisation', () => {
  const shape = [4, 3, 2, 2];
  // Channel 0 holds a NaN, channel 1 a +inf, channel 2 is finite.
  const x = withSpecials(shape, 70, { 1: NaN_, [4 + 2]: INF });
  const gamma = Float64Array.from([1.5, -0.5, 2]);
  const beta = Float64Array.from([0.1, 0.2, -0.3]);

  test('batchNorm, training (batch statistics)', async () => {
    await check('batchNorm training', {
      inputs: [
        { data: x, shape },
        { data: gamma, shape: [3] },
        { data: beta, shape: [3] },
      ],
      gpu: ([xt, g, b]) => ops.batchNorm(xt!, g!, b!, { training: true }),
      forward: ([xv, g, b]) => ref.batchNorm(xv!, shape, g!, b!),
      grad: ([xv, g], dy) => ref.batchNormGrad(xv!, shape, g!, dy),
    });
  });

  test('batchNorm, inference (running statistics); a NaN gamma', async () => {
    const mean = Float64Array.from([0.1, -0.2, 0.3]);
    const variance = Float64Array.from([1.5, 0.5, 2]);
    const g = Float64Array.from([1.5, NaN_, 2]);
    await check('batchNorm inference', {
      inputs: [
        { data: x, shape },
        { data: g, shape: [3] },
        { data: beta, shape: [3] },
      ],
      gpu: ([xt, gt, b]) => {
        const runningMean = engine.tensor(Float32Array.from(mean), [3], 'runningMean');
        const runningVar = engine.tensor(Float32Array.from(variance), [3], 'runningVar');
        return ops.batchNorm(xt!, gt!, b!, { training: false, runningMean, runningVar });
      },
      forward: ([xv, gv, b]) => ref.batchNormWith(xv!, shape, mean, variance, gv!, b!, 1e-5),
      grad: ([xv, gv], dy) => ref.batchNormInferenceGrad(xv!, shape, mean, variance, gv!, dy),
    });
  });

  test('layerNorm', async () => {
    const D = 6;
    // Row 0 a NaN, row 1 a -inf, row 2 finite, row 3 a +inf; gamma with a NaN.
    const xl = withSpecials([4, D], 71, { 2: NaN_, 7: -INF, [3 * D + 5]: INF });
    await check('layerNorm', {
      inputs: [
        { data: xl, shape: [4, D] },
        { data: Float64Array.from([1, 2, NaN_, -1, 0.5, 1]), shape: [D] },
        { data: ref.normal([D], 72), shape: [D] },
      ],
      gpu: ([xt, g, b]) => ops.layerNorm(xt!, g!, b!),
      forward: ([xv, g, b]) => ref.layerNorm(xv!, D, g!, b!),
      grad: ([xv, g], dy) => ref.layerNormGrad(xv!, D, g!, dy),
    });
  });
});

// ---------------------------------------------------------------- reductions and embedding

describe('sum and mean', () => {
  const cases: { shape: number[]; axis: number | undefined; specials: Record<number, number> }[] = [
    { shape: [3, 4, 5], axis: 1, specials: { 0: NaN_, 21: INF, 26: -INF, 42: INF } },
    { shape: [3, 4, 5], axis: undefined, specials: { 7: INF, 9: NaN_ } },
    // A workgroup per output (few outputs over a long axis): the tree reduction.
    { shape: [2, 1100], axis: 1, specials: { 3: NaN_, [1100 + 1099]: -INF } },
    { shape: [1037], axis: undefined, specials: { 1036: NaN_ } },
  ];
  for (const mean of [false, true]) {
    for (const { shape, axis, specials } of cases) {
      const name = `${mean ? 'mean' : 'sum'} of [${shape}] over ${axis ?? 'everything'}`;
      test(name, async () => {
        await check(name, {
          inputs: [{ data: withSpecials(shape, 80, specials), shape }],
          gpu: ([t]) => (mean ? ops.mean(t!, axis) : ops.sum(t!, axis)),
          forward: ([v]) => ref.reduce(v!, shape, axis, mean).data,
          grad: (_, dy) => [ref.reduceGrad(shape, axis, mean, dy)],
        });
      });
    }
  }
});

test('workgroup reductions (lib/workgroup_reduce.wgsl): a NaN in any lane makes the sum and the max NaN', async () => {
  const WG = 64;
  // Workgroup g < WG: a NaN in lane g; then one with +inf and -inf (sum NaN, max +inf), one with
  // -inf only among finite values, one all finite.
  const groups = WG + 3;
  const x = ref.normal([groups * WG], 100);
  for (let g = 0; g < WG; g++) x[g * WG + g] = NaN_;
  place(x, { [WG * WG + 5]: INF, [WG * WG + 40]: -INF, [(WG + 1) * WG + 63]: -INF });
  const want = Array.from({ length: groups }, (_, g) => {
    const lanes = x.subarray(g * WG, (g + 1) * WG);
    return [lanes.reduce((a, b) => a + b, 0), Math.max(...lanes)];
  }).flat();
  await engine.scope(async () => {
    const out = engine.zeros([2 * groups], 'reduced');
    engine.dispatch(new Kernel('workgroup_reduce_probe', reduceProbe), { bindings: { x: engine.tensor(Float32Array.from(x), [x.length]), out }, constants: { WG }, workgroups: [groups] });
    const got = await out.data();
    expectKinds(got, want, 'reduce_sum and reduce_max');
    expectFiniteClose(got, want, { atol: 1e-5, rtol: 1e-5 }, 'reduce_sum and reduce_max values');
  });
});

test('embedding: a NaN in the table reaches the positions that pick its row', async () => {
  const [vocab, dim] = [5, 3];
  const idx = [0, 2, 2, 4, 1];
  const table = withSpecials([vocab, dim], 90, { [2 * dim + 1]: NaN_, [4 * dim]: INF });
  await check('embedding', {
    inputs: [
      { data: Float64Array.from(idx), shape: [5], diff: false },
      { data: table, shape: [vocab, dim] },
    ],
    gpu: ([i, t]) => ops.embedding(i!, t!),
    forward: ([, t]) => ref.embedding(idx, t!, dim),
    grad: (_, dy) => [null, ref.embeddingGrad(idx, vocab, dim, dy)],
    values: { atol: 1e-6, rtol: 1e-6 },
  });
});
