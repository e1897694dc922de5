// Memory that is safe under async code, and no silent failures: concurrent training loops and an
// evaluation running during training neither leak nor free each other's tensors; interleaved
// scopes of one engine are refused with an error that says how to fix it; bad arguments are
// refused before anything is allocated; non-finite gradients are skipped or thrown on the GPU;
// a NaN that reaches the weights stops `train`; optimizer settings are validated as PyTorch does;
// backward through a freed graph names the freed tensor.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  AdamW,
  backward,
  conv2d,
  Dense,
  Engine,
  evaluate,
  fit,
  linear,
  matmul,
  mul,
  MultiHead,
  ReLU,
  replicate,
  Sequential,
  SGD,
  softmaxCrossEntropy,
  sum,
  train,
  type ClassificationData,
  type Optimizer,
  type Parameter,
} from '../../src/index.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const tick = () => new Promise((r) => setTimeout(r, 0));

function mlp(seed: number): Sequential {
  return new Sequential({ fc1: new Dense(engine, 6, 12, { seed }), relu: ReLU(), fc2: new Dense(engine, 12, 3, { seed: seed + 1 }) });
}

function dataset(seed: number, count = 48): ClassificationData {
  return { inputs: Float32Array.from(ref.normal([count, 6], seed)), labels: Array.from({ length: count }, (_, i) => (i * 5 + seed) % 3), count, features: 6, classes: 3 };
}

async function bits(m: Sequential): Promise<Uint32Array[]> {
  return Promise.all([...m.parameters().values()].map(async (p) => new Uint32Array((await p.data()).buffer)));
}

describe('async-safe memory', () => {
  test('three models trained concurrently with Promise.all give what they give one after another, and leak nothing', async () => {
    const seeds = [1, 2, 3];
    const sequential: Uint32Array[][] = [];
    for (const s of seeds) {
      const m = mlp(s);
      const o = new Adam(m, { lr: 0.01 });
      await fit(engine, m, o, dataset(s), { epochs: 2, batchSize: 8, logEvery: 3 });
      sequential.push(await bits(m));
      o.dispose();
      m.dispose();
    }
    await engine.sync();
    const before = engine.memory();
    const models = seeds.map(mlp);
    const optimizers = models.map((m) => new Adam(m, { lr: 0.01 }));
    const evaluations: Promise<unknown>[] = [];
    await Promise.all(
      models.map((m, i) =>
        fit(engine, m, optimizers[i]!, dataset(seeds[i]!), {
          epochs: 2,
          batchSize: 8,
          logEvery: 3,
          // An evaluation that runs while training goes on (not awaited here).
          onProgress: () => void evaluations.push(evaluate(engine, m, dataset(9, 16))),
        }),
      ),
    );
    await Promise.all(evaluations);
    expect(evaluations.length).toBeGreaterThan(0);
    for (let i = 0; i < seeds.length; i++) expect(await bits(models[i]!)).toEqual(sequential[i]);
    for (const o of optimizers) o.dispose();
    for (const m of models) m.dispose();
    await engine.sync();
    const after = engine.memory();
    expect(after.inUseBuffers).toBe(before.inUseBuffers);
    expect(after.inUseBytes).toBe(before.inUseBytes);
  });

  test('interleaved scopes of one engine are refused, saying what happened and what to do; contexts make them safe', async () => {
    const a = engine.scope(async () => {
      engine.zeros([4], 'a');
      await tick();
      await tick();
      return 1;
    });
    const b = engine.scope(async () => {
      await tick();
      await tick();
      await tick();
      return 2;
    });
    await expect(a).rejects.toThrow(/two async tasks .* used scopes of one engine at once.*engine\.context\(\)/);
    await expect(b).resolves.toBe(2);

    const one = engine.context();
    const two = engine.context();
    const before = engine.memory().inUseBuffers;
    let madeByTwo: ReturnType<Engine['zeros']> | null = null;
    const first = one.scope(async () => {
      const t = one.zeros([4], 'one');
      await tick();
      return t.disposed;
    });
    const second = two.scope(async () => {
      madeByTwo = two.zeros([4], 'two');
      await tick();
      await tick();
      await tick();
      // The first task's scope has ended by now; this one's tensor is untouched.
      return madeByTwo.disposed;
    });
    expect(await first).toBe(false);
    expect(await second).toBe(false);
    expect(madeByTwo!.disposed).toBe(true);
    expect(engine.memory().inUseBuffers).toBe(before);
  });
});

describe('no silent failures', () => {
  test('bad arguments are refused before anything is allocated', async () => {
    const model = mlp(4);
    const params = model.parameters();
    const a = engine.keep(engine.zeros([2, 3]));
    const x4 = engine.keep(engine.zeros([1, 2, 5, 5]));
    const w4 = engine.keep(engine.zeros([3, 4, 3, 3]));
    await engine.sync();
    const before = engine.memory();
    const bad: [string, () => unknown, RegExp][] = [
      ['tensor', () => engine.tensor([1, 2, 3], [2, 2]), /3 values do not fill shape \[2,2\]/],
      ['matmul', () => matmul(a, a), /inner dimensions differ/],
      ['linear bias', () => linear(a, engine.placeholder(), a), /expected rank 1/],
      ['conv2d', () => conv2d(x4, w4), /input has 2 channels but the weight expects 4/],
      ['Dense', () => new Dense(engine, 0, 3), /features must be positive integers/],
      ['Adam lr', () => new Adam(params, { lr: -1 }), /Adam: invalid learning rate: -1/],
      ['replicate', () => replicate(model, 0), /count 0 must be a positive integer/],
      ['setFlatWeights', () => model.setFlatWeights(a), /has 6 elements, the model's flat weights/],
      ['softmaxCrossEntropy', () => softmaxCrossEntropy(a, engine.placeholder()), /shapes \[2,3\] .* differ/],
    ];
    for (const [what, f, message] of bad) expect(f, what).toThrow(message);
    await engine.sync();
    const after = engine.memory();
    expect(after.inUseBuffers).toBe(before.inUseBuffers);
    expect(after.inUseBytes).toBe(before.inUseBytes);
    for (const t of [a, x4, w4]) t.dispose();
    model.dispose();
  });

  test('train and MultiHead refuse bad arguments, naming them', async () => {
    const model = mlp(9);
    const optimizer = new SGD(model, { lr: 0.1 });
    const data = { count: 8, batch: (i: Uint32Array) => i };
    const step = () => ({});
    await expect(train(engine, model, optimizer, data, { epochs: 0, batchSize: 4, step })).rejects.toThrow(/train: epochs must be a positive integer, got 0/);
    await expect(train(engine, model, optimizer, data, { epochs: 1, batchSize: 2.5, step })).rejects.toThrow(/train: batchSize must be a positive integer, got 2.5/);
    await expect(train(engine, model, optimizer, data, { epochs: 1, batchSize: 16, step })).rejects.toThrow(/batch size 16 is larger than the 8 rows of data/);
    await expect(train(engine, model, optimizer, data, { epochs: 1, batchSize: 4, step, resume: { epoch: 0, stepInEpoch: 2 } })).rejects.toThrow(/cannot resume at epoch 0, step 2 \(2 steps per epoch\)/);
    expect(() => new MultiHead(mlp(10), { trunk: new Dense(engine, 3, 2) })).toThrow(/MultiHead: layer name "trunk" is used twice \(it is reserved\)/);
    expect(() => new MultiHead(mlp(11), {})).toThrow(/MultiHead: no heads given/);
    optimizer.dispose();
    model.dispose();
  });

  test('optimizer settings are validated as PyTorch does', () => {
    const p = engine.parameter([1, 2], [2], 'p');
    const cases: [() => Optimizer, RegExp][] = [
      [() => new SGD([p], { lr: -0.1 }), /SGD: invalid learning rate: -0\.1/],
      [() => new SGD([p], { lr: Number.NaN }), /SGD: invalid learning rate: NaN/],
      [() => new SGD([p], { lr: 0.1, momentum: -0.5 }), /SGD: invalid momentum value: -0\.5/],
      [() => new SGD([p], { lr: 0.1, weightDecay: -1 }), /SGD: invalid weight_decay value: -1/],
      [() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum requires a momentum > 0/],
      [() => new Adam([p], { lr: 0.1, eps: -1e-8 }), /Adam: invalid epsilon value: -1e-8/],
      [() => new Adam([p], { lr: 0.1, betas: [1, 0.999] }), /Adam: invalid beta parameter at index 0: 1/],
      [() => new AdamW([p], { lr: 0.1, betas: [0.9, -0.1] }), /AdamW: invalid beta parameter at index 1: -0\.1/],
      [() => new Adam([{ params: [p], lr: -1 }], { lr: 0.1 }), /invalid learning rate of group group0: -1/],
      [() => new Adam([p], { lr: 0.1, clipNorm: 0 }), /invalid clipNorm: 0/],
      [() => new Adam([], { lr: 0.1 }), /no parameters given/],
    ];
    for (const [make, message] of cases) expect(make).toThrow(message);
    // The boundary values torch accepts are accepted.
    for (const o of [new SGD([p], { lr: 0, momentum: 0 }), new Adam([p], { lr: 0, eps: 0, betas: [0, 0] })]) o.dispose();
    p.dispose();
  });

  test('non-finite gradients: skip leaves weights and state bit-identical, throw reports the step', async () => {
    for (const mode of ['skip', 'throw'] as const) {
      const p = engine.parameter([1, 2, 3, 4], [4], 'p');
      const optimizer = new Adam([p], { lr: 0.1, nonFinite: mode, clipNorm: 10 });
      const stepWith = (c: number[]) =>
        engine.scope(async () => {
          backward(sum(mul(p, engine.tensor(c, [4]))));
          optimizer.step();
          optimizer.zeroGrad();
          await engine.flush();
        });
      await stepWith([1, 1, 1, 1]);
      const w = new Uint32Array((await p.data()).buffer);
      const m = new Uint32Array((await optimizer.stateOf(p)[0]!.data()).buffer);
      await stepWith([1, Number.NaN, 1, 1]);
      await stepWith([1, 1, Number.POSITIVE_INFINITY, 1]);
      expect(new Uint32Array((await p.data()).buffer)).toEqual(w);
      expect(new Uint32Array((await optimizer.stateOf(p)[0]!.data()).buffer)).toEqual(m);
      if (mode === 'skip') await optimizer.check();
      else await expect(optimizer.check()).rejects.toThrow(/Adam: gradients held NaN or infinity at step 2 \(2 steps skipped so far/);
      expect(optimizer.skippedSteps).toBe(2);
      await stepWith([1, 1, 1, 1]);
      expect(new Uint32Array((await p.data()).buffer)).not.toEqual(w);
      optimizer.dispose();
      p.dispose();
    }
  });

  test("train stops at the readback after an optimizer with nonFinite 'throw' skipped a step; the weights were left alone", async () => {
    const model = mlp(8);
    const optimizer = new Adam(model, { lr: 0.01, nonFinite: 'throw' });
    const data = dataset(8);
    const inputs = Float32Array.from(data.inputs);
    inputs[6 * 5 + 2] = Number.POSITIVE_INFINITY; // row 5: its batch's gradients are not finite
    const before = await bits(model);
    await expect(fit(engine, model, optimizer, { ...data, inputs }, { epochs: 1, batchSize: 48, logEvery: 1 })).rejects.toThrow(/Adam: gradients held NaN or infinity at step 1 \(1 step skipped so far/);
    expect(await bits(model)).toEqual(before);
    optimizer.dispose();
    model.dispose();
  });

  test('train throws when a NaN reaches the weights, naming the parameter', async () => {
    const model = mlp(6);
    const optimizer = new SGD(model, { lr: 0.01 });
    const w = model.parameters().get('fc2.weight') as Parameter;
    await expect(
      fit(engine, model, optimizer, dataset(6), {
        epochs: 1,
        batchSize: 8,
        logEvery: 2,
        checkFinite: true,
        onStep: ({ step }) => {
          if (step === 3) engine.write(w, Float32Array.from({ length: w.size }, (_, i) => (i === 5 ? Number.NaN : 0.1)));
        },
      }),
    ).rejects.toThrow(/train: after step 4 \(epoch 1\): loss is NaN; weights hold NaN or infinity: .*fc2\.weight \(\d+ of 36\)/);
    optimizer.dispose();
    model.dispose();
  });

  test('backward through a graph whose scope ended names the freed tensor', async () => {
    const model = mlp(7);
    const x = engine.keep(engine.tensor(ref.normal([2, 6], 3), [2, 6]));
    const t = engine.keep(engine.tensor([1, 0, 0, 0, 1, 0], [2, 3]));
    const loss = await engine.scope(() => softmaxCrossEntropy(model.forward(x), t));
    expect(() => backward(loss)).toThrow(/backward: the graph of mean was freed: .* was disposed\. Run backward before the scope that made the forward pass ends/);
    loss.dispose();
    expect(() => backward(loss)).toThrow(/the loss mean \[\] was disposed/);
    x.dispose();
    t.dispose();
    model.dispose();
  });
});
