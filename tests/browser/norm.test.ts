// BatchNorm, LayerNorm and Embedding against the float64 CPU references in tests/reference.ts:
// GPU forward vs reference forward, GPU backward (of loss = sum(op(...) * w), w a fixed random
// weighting) vs the reference gradient, and the reference gradient vs central finite
// differences. Plus running statistics, the frozen-BatchNorm policies and error messages.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import { Sequential } from '../../src/engine/containers.js';
import { BatchNorm, Dense, Embedding, LayerNorm } from '../../src/engine/layers.js';
import * as ops from '../../src/engine/ops/index.js';
import { SGD } from '../../src/engine/optim.js';
import { expectClose, type Tol } from '../close.js';
import { opChecker } from '../op-check.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

/** A normalisation: a few reductions and an inverse square root per value (each a few ulp). */
const NORM: Tol = { atol: 1e-5, rtol: 1e-5 };
/** Gradients through the statistics: sums over the channel or row with cancellation. */
const NORM_GRAD: Tol = { atol: 5e-5, rtol: 5e-5 };
const EXACT: Tol = { atol: 0, rtol: 0 };

const f32 = (data: ArrayLike<number>) => Float32Array.from(data);

const checkOp = opChecker(() => engine, 5000, { tol: NORM, gradTol: NORM_GRAD, fdCount: 16 });

// ---------------------------------------------------------------- BatchNorm (op)

describe('batchNorm', () => {
  const cases: { name: string; shape: number[] }[] = [
    { name: '2-D [N, C] (after Dense)', shape: [6, 5] },
    { name: '4-D [N, C, H, W] (after Conv2d)', shape: [3, 4, 3, 5] },
  ];
  for (const { name, shape } of cases) {
    test(`training mode ${name}`, async () => {
      const C = shape[1]!;
      await checkOp(`batchNorm ${name}`, {
        inputs: [
          { data: ref.normal(shape, 11, 2, 0.5), shape },
          { data: ref.normal([C], 12, 1, 1), shape: [C] },
          { data: ref.normal([C], 13), shape: [C] },
        ],
        gpu: ([x, g, b]) => ops.batchNorm(x!, g!, b!, { training: true }),
        forward: ([x, g, b]) => ({ data: ref.batchNorm(x!, shape, g!, b!), shape: shape }),
        grad: ([x, g], dy) => ref.batchNormGrad(x!, shape, g!, dy),
      });
    });
  }

  test('inference mode uses the running statistics (4-D)', async () => {
    const shape = [2, 3, 2, 3];
    const C = 3;
    const rm = ref.normal([C], 21, 0.5);
    const rv = ref.uniform([C], 22, 0.5, 2);
    await engine.scope(async () => {
      const runningMean = engine.tensor(f32(rm), [C], 'rm');
      const runningVar = engine.tensor(f32(rv), [C], 'rv');
      await checkOp('batchNorm inference', {
        inputs: [
          { data: ref.normal(shape, 23, 1.5), shape },
          { data: ref.normal([C], 24, 1, 1), shape: [C] },
          { data: ref.normal([C], 25), shape: [C] },
        ],
        gpu: ([x, g, b]) => ops.batchNorm(x!, g!, b!, { training: false, runningMean, runningVar }),
        forward: ([x, g, b]) => ({ data: ref.batchNormWith(x!, shape, rm, rv, g!, b!, 1e-5), shape: shape }),
        grad: ([x, g], dy) => ref.batchNormInferenceGrad(x!, shape, rm, rv, g!, dy),
      });
      // Inference mode leaves the running statistics as they were.
      expect(await runningMean.data()).toEqual(f32(rm));
      expect(await runningVar.data()).toEqual(f32(rv));
    });
  });

  test('errors name the op and the shapes', async () => {
    await engine.scope(async () => {
      const x = engine.zeros([4, 3], 'x');
      const g3 = engine.zeros([3], 'g3');
      const g5 = engine.zeros([5], 'g5');
      expect(() => ops.batchNorm(x, g5, g3, { training: true })).toThrow(/batchNorm: gamma \(weight\) g5 has shape \[5\], but x \[4,3\] has 3 channels/);
      expect(() => ops.batchNorm(x, g3, g5, { training: true })).toThrow(/batchNorm: beta \(bias\) g5 has shape \[5\].*x \[4,3\]/);
      expect(() => ops.batchNorm(x, g3, g3, { training: true, runningMean: g5, runningVar: g3 })).toThrow(/batchNorm: runningMean g5 has shape \[5\]/);
      expect(() => ops.batchNorm(engine.zeros([4], 'flat'), g3, g3, { training: true })).toThrow(/batchNorm: flat has shape \[4\]; expected \[N, C\]/);
      expect(() => ops.batchNorm(engine.zeros([1, 3], 'one'), g3, g3, { training: true })).toThrow(/batchNorm: training mode needs more than one value per channel.*one has shape \[1,3\]/);
      expect(() => ops.batchNorm(x, g3, g3, { training: false })).toThrow(/batchNorm: inference mode .* needs runningMean and runningVar/);
      const layer = new BatchNorm(engine, 3);
      try {
        expect(() => layer.forward(engine.zeros([2, 4, 5, 5], 'img'))).toThrow(/BatchNorm\(3\): input img has shape \[2,4,5,5\], expected \[batch, 3\]/);
      } finally {
        layer.dispose();
      }
    });
  });
});

// ---------------------------------------------------------------- BatchNorm (layer)

describe('BatchNorm layer', () => {
  for (const shape of [
    [5, 4],
    [2, 3, 4, 5],
  ]) {
    test(`running statistics after 3 training steps match the CPU ${JSON.stringify(shape)}`, async () => {
      const C = shape[1]!;
      const bn = new BatchNorm(engine, C);
      try {
        const batches = [0, 1, 2].map((k) => ref.normal(shape, 31 + k, 1 + k, k - 1));
        await engine.scope(async () => {
          for (const b of batches) {
            const x = engine.tensor(f32(b), shape, 'batch');
            const y = bn.forward(x);
            backward(ops.sum(ops.mul(y, y)));
          }
        });
        const want = ref.batchNormRunning(batches, shape, new Float64Array(C), new Float64Array(C).fill(1), 0.1);
        expectClose(await bn.runningMean.data(), want.mean, NORM, 'running mean');
        expectClose(await bn.runningVar.data(), want.variance, NORM, 'running var (unbiased)');
        expect([...bn.buffers('bn.').keys()]).toEqual(['bn.running_mean', 'bn.running_var']);
        expect([...bn.parameters().keys()]).toEqual(['weight', 'bias']);

        // Eval mode normalises with the running statistics and does not update them.
        bn.eval();
        const before = [await bn.runningMean.data(), await bn.runningVar.data()];
        const x = ref.normal(shape, 40);
        const y = await engine.scope(async () => bn.forward(engine.tensor(f32(x), shape, 'x')).data());
        const ones = new Float64Array(C).fill(1);
        expectClose(y, ref.batchNormWith(x, shape, Float64Array.from(before[0]!), Float64Array.from(before[1]!), ones, new Float64Array(C), 1e-5), NORM, 'eval forward');
        expect(await bn.runningMean.data()).toEqual(before[0]);
        expect(await bn.runningVar.data()).toEqual(before[1]);
      } finally {
        bn.dispose();
      }
    });
  }

  /** fc (Dense 4 -> 3) then bn, bn frozen, trained 3 SGD steps on mse. */
  async function trainFrozen(policy: 'inference' | 'update') {
    const fc = new Dense(engine, 4, 3, { seed: 7 });
    const bn = new BatchNorm(engine, 3, { frozenStatistics: policy });
    const model = new Sequential({ fc, bn });
    // Non-trivial statistics and affine parameters, as in a pretrained model.
    engine.write(bn.runningMean, f32([0.3, -0.2, 0.1]));
    engine.write(bn.runningVar, f32([0.5, 1.5, 2.0]));
    engine.write(bn.weight, f32([1.2, 0.8, -0.5]));
    engine.write(bn.bias, f32([0.1, 0.2, -0.3]));
    model.freeze('bn');
    const start = {
      rm: await bn.runningMean.data(),
      rv: await bn.runningVar.data(),
      gamma: await bn.weight.data(),
      beta: await bn.bias.data(),
      fc: await fc.weight.data(),
    };
    const opt = new SGD(model.trainableParameters(), { lr: 0.1 });
    for (let step = 0; step < 3; step++) {
      await engine.scope(async () => {
        const x = engine.tensor(f32(ref.normal([8, 4], 50 + step)), [8, 4], 'x');
        const t = engine.tensor(f32(ref.normal([8, 3], 60 + step)), [8, 3], 't');
        opt.zeroGrad();
        backward(ops.mse(model.forward(x), t));
        opt.step();
      });
    }
    return { fc, bn, model, start };
  }

  test("frozen with policy 'inference' (default): running statistics bit-identical, the output uses them", async () => {
    const { fc, bn, model, start } = await trainFrozen('inference');
    try {
      expect(new BatchNorm(engine, 2).frozenStatistics).toBe('inference');
      expect(await bn.runningMean.data()).toEqual(start.rm);
      expect(await bn.runningVar.data()).toEqual(start.rv);
      expect(await bn.weight.data()).toEqual(start.gamma);
      expect(await bn.bias.data()).toEqual(start.beta);
      expect(await fc.weight.data()).not.toEqual(start.fc); // the layer below still trains
      expect(bn.training).toBe(true);
      expect(bn.usesBatchStatistics()).toBe(false);
      const x = ref.normal([5, 3], 70);
      await engine.scope(async () => {
        const xt = engine.tensor(f32(x), [5, 3], 'x');
        const trainOut = await bn.forward(xt).data();
        bn.eval();
        const evalOut = await bn.forward(xt).data();
        bn.train();
        expect(trainOut).toEqual(evalOut);
        const f64 = (a: Float32Array) => Float64Array.from(a);
        expectClose(trainOut, ref.batchNormWith(x, [5, 3], f64(start.rm), f64(start.rv), f64(start.gamma), f64(start.beta), 1e-5), NORM, 'frozen forward');
      });
    } finally {
      model.dispose();
    }
  });

  test("frozen with policy 'update': gamma/beta bit-identical, running statistics change", async () => {
    const { bn, model, start } = await trainFrozen('update');
    try {
      expect(bn.usesBatchStatistics()).toBe(true);
      expect(await bn.weight.data()).toEqual(start.gamma);
      expect(await bn.bias.data()).toEqual(start.beta);
      expect(await bn.runningMean.data()).not.toEqual(start.rm);
      expect(await bn.runningVar.data()).not.toEqual(start.rv);
    } finally {
      model.dispose();
    }
  });
});

// ---------------------------------------------------------------- LayerNorm

describe('layerNorm', () => {
  for (const shape of [
    [5, 7],
    [3, 101],
    [2, 3, 67],
  ]) {
    test(`${JSON.stringify(shape)}`, async () => {
      const D = shape[shape.length - 1]!;
      await checkOp(`layerNorm ${JSON.stringify(shape)}`, {
        inputs: [
          { data: ref.normal(shape, D + 1, 2, 0.7), shape },
          { data: ref.normal([D], D + 2, 1, 1), shape: [D] },
          { data: ref.normal([D], D + 3), shape: [D] },
        ],
        gpu: ([x, g, b]) => ops.layerNorm(x!, g!, b!),
        forward: ([x, g, b]) => ({ data: ref.layerNorm(x!, D, g!, b!), shape: shape }),
        grad: ([x, g], dy) => ref.layerNormGrad(x!, D, g!, dy),
      });
    });
  }

  test('layer and errors', async () => {
    const ln = new LayerNorm(engine, 6);
    try {
      await engine.scope(async () => {
        const x = ref.normal([2, 6], 90);
        const y = await ln.forward(engine.tensor(f32(x), [2, 6], 'x')).data();
        expectClose(y, ref.layerNorm(x, 6, new Float64Array(6).fill(1), new Float64Array(6)), NORM, 'LayerNorm layer');
        expect(() => ln.forward(engine.zeros([2, 5], 'x5'))).toThrow(/LayerNorm\(6\): input x5 has shape \[2,5\], expected \[\.\.\., 6\]/);
        expect(() => ops.layerNorm(engine.zeros([2, 5], 'x5'), ln.weight, ln.bias)).toThrow(/layerNorm: gamma \(weight\) weight has shape \[6\], but x5 \[2,5\] has 5 features/);
      });
    } finally {
      ln.dispose();
    }
  });
});

// ---------------------------------------------------------------- Embedding

describe('embedding', () => {
  test('forward and backward with repeated indices (gradients accumulate)', async () => {
    const vocab = 7;
    const dim = 5;
    const idx = [3, 0, 3, 6, 1, 3, 0, 2, 6, 3, 5, 0]; // row 4 unused, 3 four times
    await checkOp('embedding', {
      inputs: [
        { data: Float64Array.from(idx), shape: [3, 4], diff: false },
        { data: ref.normal([vocab, dim], 80), shape: [vocab, dim] },
      ],
      gpu: ([i, t]) => ops.embedding(i!, t!),
      forward: ([, t]) => ({ data: ref.embedding(idx, t!, dim), shape: [3, 4, dim] }),
      grad: (_, dy) => [null, ref.embeddingGrad(idx, vocab, dim, dy)],
      tol: EXACT,
      gradTol: { atol: 1e-6, rtol: 1e-6 },
    });
  });

  test('backward over rows wider than one chunk of the kernel (37 columns: 16 + 16 + 5)', async () => {
    const vocab = 6;
    const dim = 37;
    const idx = [5, 1, 5, 0, 2, 5, 1, 4];
    await checkOp('embedding', {
      inputs: [
        { data: Float64Array.from(idx), shape: [2, 4], diff: false },
        { data: ref.normal([vocab, dim], 84), shape: [vocab, dim] },
      ],
      gpu: ([i, t]) => ops.embedding(i!, t!),
      forward: ([, t]) => ({ data: ref.embedding(idx, t!, dim), shape: [2, 4, dim] }),
      grad: (_, dy) => [null, ref.embeddingGrad(idx, vocab, dim, dy)],
      tol: EXACT,
      gradTol: { atol: 1e-6, rtol: 1e-6 },
    });
  });

  test('an index that is not an integer in [0, vocab) gives a row of NaN and no gradient', async () => {
    const vocab = 4;
    const dim = 3;
    // Valid: 2, 0, 3, 2. Invalid: vocab, -1, a fraction, NaN, +-inf, -0.5, 2^24 + 2 (exact in f32).
    const idx = [2, 4, -1, 0, 1.5, NaN, 3, Infinity, -Infinity, -0.5, 2, 16777218];
    const invalid = idx.map((v) => !(Number.isInteger(v) && v >= 0 && v < vocab));
    const tableData = ref.normal([vocab, dim], 81);
    const want = ref.embedding(idx, tableData, dim);
    await engine.scope(async () => {
      const table = engine.parameter(f32(tableData), [vocab, dim], 'table');
      try {
        const y = ops.embedding(engine.tensor(idx, [idx.length], 'indices'), table);
        const got = await y.data();
        for (let p = 0; p < idx.length; p++) {
          const row = Array.from(got.slice(p * dim, (p + 1) * dim));
          expect(row.map(Number.isNaN), `row ${p} (index ${idx[p]}) is NaN`).toEqual(new Array(dim).fill(invalid[p]));
          if (!invalid[p]) expect(row, `row ${p} (index ${idx[p]})`).toEqual(Array.from(want.slice(p * dim, (p + 1) * dim)));
        }
        // The gradient: only the valid positions feed the table (row 2 twice, rows 0 and 3 once, row 1 never).
        const dy = ref.normal([idx.length, dim], 83);
        const g = await gradients(ops.sum(ops.mul(y, engine.tensor(f32(dy), y.shape, 'dy'))), [table]).get(table)!.data();
        expectClose(g, ref.embeddingGrad(idx, vocab, dim, dy), { atol: 1e-6, rtol: 1e-6 }, 'd(table)');
        expect(Array.from(g.slice(dim, 2 * dim))).toEqual([0, 0, 0]);
      } finally {
        table.dispose();
      }
    });
  });

  test('layer: seeded normal init, checked indices, backward into the table', async () => {
    const layer = new Embedding(engine, 4, 3, { seed: 9 });
    try {
      const table = await layer.weight.data();
      const again = new Embedding(engine, 4, 3, { seed: 9 });
      expect(await again.weight.data()).toEqual(table);
      again.dispose();
      expect(() => layer.indices([0, 4])).toThrow(/Embedding\(4, 3\)\.indices: index 4 at position 1 is not an integer in \[0, 4\)/);
      expect(() => layer.indices([0.5])).toThrow(/index 0\.5 at position 0/);
      expect(() => ops.embedding(engine.zeros([2], 'i'), engine.zeros([6], 'flat'))).toThrow(/embedding: table flat has shape \[6\], expected \[vocab, dim\]/);
      await engine.scope(async () => {
        const i = layer.indices([1, 1, 2], [3]);
        const y = layer.forward(i);
        expect([...y.shape]).toEqual([3, 3]);
        expect(await y.data()).toEqual(f32([...table.slice(3, 6), ...table.slice(3, 6), ...table.slice(6, 9)]));
        backward(ops.sum(y));
        expect(Array.from(await layer.weight.grad!.data())).toEqual([0, 0, 0, 2, 2, 2, 1, 1, 1, 0, 0, 0]);
      });
    } finally {
      layer.dispose();
    }
  });
});
