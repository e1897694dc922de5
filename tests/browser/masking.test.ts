// Buffer-level gradient masking: frozen layers and parameters, partial element masks, and the
// backward pass skipping work for frozen parts of the network. "Frozen" means exactly zero
// change: the values read back are bit-identical (compared as Uint32 words), optimizer state
// included.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  AdamW,
  backward,
  Dense,
  Engine,
  ReLU,
  SGD,
  Sequential,
  softmaxCrossEntropy,
  type DispatchRecord,
  type Optimizer,
  type Parameter,
  type Tensor,
} from '../../src/index.js';
import { oneHot } from '../../src/paradigms/train.js';
import { randomUniform } from '../../src/engine/random.js';

const BATCH = 8;
const IN = 12;
const CLASSES = 3;

let engine: Engine;
let x: Tensor;
let targets: Tensor;

beforeAll(async () => {
  engine = await Engine.create();
  x = engine.keep(engine.randn([BATCH, IN], { seed: 5, name: 'x' }));
  const labels = Array.from({ length: BATCH }, (_, i) => (i * 7 + 1) % CLASSES);
  targets = engine.keep(engine.tensor(oneHot(labels, CLASSES), [BATCH, CLASSES], 'targets'));
});

function makeModel(seed = 1): Sequential {
  const model = new Sequential({
    fc1: new Dense(engine, IN, 16, { seed }),
    relu1: ReLU(),
    fc2: new Dense(engine, 16, 8, { seed: seed + 10 }),
    relu2: ReLU(),
    fc3: new Dense(engine, 8, CLASSES, { seed: seed + 20 }),
  });
  model.parameters(); // names the parameters fc1.weight, ...
  return model;
}

type MakeOptimizer = (params: Map<string, Parameter>) => Optimizer;

const OPTIMIZERS: [string, MakeOptimizer][] = [
  ['SGD', (ps) => new SGD(ps, { lr: 0.1 })],
  ['SGD momentum + Nesterov + weight decay', (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
  ['Adam + weight decay', (ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.01 })],
  ['AdamW', (ps) => new AdamW(ps, { lr: 0.01 })],
];

async function train(model: Sequential, optimizer: Optimizer, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = await engine.scope(async () => {
      const l = softmaxCrossEntropy(model.forward(x), targets);
      backward(l);
      optimizer.step();
      optimizer.zeroGrad();
      return l.item();
    });
    losses.push(loss);
  }
  return losses;
}

/** The raw bits of a tensor's values. */
async function bits(t: Tensor): Promise<Uint32Array> {
  return new Uint32Array((await t.data()).buffer);
}

async function snapshot(model: Sequential): Promise<Map<string, Uint32Array>> {
  const out = new Map<string, Uint32Array>();
  for (const [name, p] of model.parameters()) out.set(name, await bits(p));
  return out;
}

function changedCount(a: Uint32Array, b: Uint32Array): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function expectIdentical(a: Uint32Array, b: Uint32Array, what: string): void {
  expect(changedCount(a, b), `${what}: elements changed`).toBe(0);
}

function expectChanged(a: Uint32Array, b: Uint32Array, what: string): void {
  expect(changedCount(a, b), `${what}: elements changed`).toBeGreaterThan(0);
}

/** The optimizer's per-parameter state tensors (velocity, or Adam's two moments). */
function optimizerState(optimizer: Optimizer, p: Parameter): Tensor[] {
  const s = optimizer.stateOf(p);
  if (s.length === 0) throw new Error(`no optimizer state for ${p.name}`);
  return s;
}

function param(model: Sequential, name: string): Parameter {
  const p = model.parameters().get(name);
  if (!p) throw new Error(`no parameter ${name}`);
  return p;
}

describe('frozen layers stay bit-identical', () => {
  for (const [name, make] of OPTIMIZERS) {
    test(`${name}: fc1 frozen for 10 steps`, async () => {
      const model = makeModel();
      model.freeze('fc1');
      const optimizer = make(model.parameters());
      const before = await snapshot(model);
      const losses = await train(model, optimizer, 10);
      const after = await snapshot(model);
      expectIdentical(before.get('fc1.weight')!, after.get('fc1.weight')!, 'fc1.weight');
      expectIdentical(before.get('fc1.bias')!, after.get('fc1.bias')!, 'fc1.bias');
      for (const p of ['fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias']) expectChanged(before.get(p)!, after.get(p)!, p);
      expect(param(model, 'fc1.weight').grad).toBeNull();
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses.at(-1)!).toBeLessThan(losses[0]!);
      optimizer.dispose();
      model.dispose();
    });
  }

  test('freeze, train, unfreeze, train: the layer changes only after unfreezing', async () => {
    const model = makeModel(2);
    const optimizer = new Adam(model.parameters(), { lr: 0.01, weightDecay: 0.01 });
    model.freeze('fc1');
    const start = await snapshot(model);
    await train(model, optimizer, 4);
    const frozen = await snapshot(model);
    expectIdentical(start.get('fc1.weight')!, frozen.get('fc1.weight')!, 'fc1.weight while frozen');
    expectIdentical(start.get('fc1.bias')!, frozen.get('fc1.bias')!, 'fc1.bias while frozen');
    expectChanged(start.get('fc3.weight')!, frozen.get('fc3.weight')!, 'fc3.weight');
    model.unfreeze('fc1');
    await train(model, optimizer, 4);
    const thawed = await snapshot(model);
    // Adam with weight decay moves every element of an unfrozen parameter.
    expect(changedCount(frozen.get('fc1.weight')!, thawed.get('fc1.weight')!)).toBe(16 * IN);
    expect(changedCount(frozen.get('fc1.bias')!, thawed.get('fc1.bias')!)).toBe(16);
    optimizer.dispose();
    model.dispose();
  });

  test('freezing a single parameter by name (fc2.bias)', async () => {
    const model = makeModel(3);
    model.freeze('fc2.bias');
    expect(param(model, 'fc2.bias').frozen).toBe(true);
    expect(param(model, 'fc2.weight').frozen).toBe(false);
    const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 0.01 });
    const before = await snapshot(model);
    await train(model, optimizer, 10);
    const after = await snapshot(model);
    expectIdentical(before.get('fc2.bias')!, after.get('fc2.bias')!, 'fc2.bias');
    for (const p of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc3.weight', 'fc3.bias']) expectChanged(before.get(p)!, after.get(p)!, p);
    optimizer.dispose();
    model.dispose();
  });
});

describe('partial element masks', () => {
  const N = 8 * 16; // fc2.weight
  const randomMask = (seed: number) => Array.from(randomUniform(N, seed), (u) => (u < 0.5 ? 0 : 1));

  const MASKED: [string, MakeOptimizer][] = [
    ['Adam + weight decay', (ps) => new Adam(ps, { lr: 0.01, weightDecay: 0.05 })],
    ['SGD momentum', (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9 })],
  ];

  for (const [name, make] of MASKED) {
    test(`${name}: masked elements and their state never move, even when the mask changes`, async () => {
      const model = makeModel(4);
      const w = param(model, 'fc2.weight');
      const optimizer = make(model.parameters());
      const mask1 = randomMask(77);
      expect(mask1.filter((m) => m === 0).length).toBeGreaterThan(N / 4);
      expect(mask1.filter((m) => m === 1).length).toBeGreaterThan(N / 4);
      w.setMask(mask1);

      // Phase 1: 10 steps under mask1.
      const w0 = await bits(w);
      await train(model, optimizer, 10);
      const w1 = await bits(w);
      let unmaskedChanged = 0;
      let unmasked = 0;
      for (let i = 0; i < N; i++) {
        if (mask1[i] === 0) expect(w1[i], `element ${i} is masked`).toBe(w0[i]);
        else {
          unmasked++;
          if (w1[i] !== w0[i]) unmaskedChanged++;
        }
      }
      expect(unmaskedChanged).toBeGreaterThanOrEqual(Math.ceil(0.75 * unmasked));
      const state1 = await Promise.all(optimizerState(optimizer, w).map(bits));
      for (const s of state1) for (let i = 0; i < N; i++) if (mask1[i] === 0) expect(s[i], `state of masked element ${i}`).toBe(0);

      // Phase 2: swap the mask. Elements masked before become trainable; elements trainable
      // before (with momentum / moments built up) become masked and must not move at all.
      const mask2 = mask1.map((m) => 1 - m);
      w.setMask(mask2);
      await train(model, optimizer, 5);
      const w2 = await bits(w);
      const state2 = await Promise.all(optimizerState(optimizer, w).map(bits));
      let nowTrainable = 0;
      let nowTrainableChanged = 0;
      let nowMaskedWithState = 0;
      for (let i = 0; i < N; i++) {
        if (mask2[i] === 0) {
          expect(w2[i], `element ${i} masked in phase 2`).toBe(w1[i]);
          for (const [k, s] of state2.entries()) expect(s[i], `state ${k} of element ${i} masked in phase 2`).toBe(state1[k]![i]);
          if (state1.some((s) => s[i] !== 0)) nowMaskedWithState++;
        } else {
          nowTrainable++;
          if (w2[i] !== w1[i]) nowTrainableChanged++;
        }
      }
      // The test means something only if masked elements had state that would have moved them.
      expect(nowMaskedWithState).toBeGreaterThan(N / 4);
      expect(nowTrainableChanged).toBeGreaterThanOrEqual(Math.ceil(0.75 * nowTrainable));

      // Removing the mask makes every element trainable again.
      w.setMask(null);
      expect(w.mask).toBeNull();
      await train(model, optimizer, 2);
      const w3 = await bits(w);
      expect(changedCount(w2, w3)).toBeGreaterThanOrEqual(Math.ceil(0.75 * N));
      optimizer.dispose();
      model.dispose();
    });
  }

  test('the masked gradient is exactly zero where the mask is 0', async () => {
    const model = makeModel(5);
    const w = param(model, 'fc2.weight');
    const mask = randomMask(78);
    w.setMask(mask);
    await engine.scope(async () => {
      backward(softmaxCrossEntropy(model.forward(x), targets));
    });
    const g = await w.grad!.data();
    let nonzero = 0;
    for (let i = 0; i < N; i++) {
      if (mask[i] === 0) expect(Math.abs(g[i]!), `gradient of masked element ${i}`).toBe(0); // +0 or -0
      else if (g[i] !== 0) nonzero++;
    }
    expect(nonzero).toBeGreaterThan(0);
    model.dispose();
  });
});

describe('backward skips frozen parts of the network', () => {
  type Mode = 'layer by layer' | 'Sequential.forward';
  /**
   * Forward, then a traced backward. 'layer by layer' runs each layer on its own and names its
   * output `<layer>.out`, so labels say which tensor a backward kernel produced; Sequential's own
   * forward fuses each Dense with the activation after it (one node per pair).
   */
  async function tracedBackward(model: Sequential, mode: Mode): Promise<DispatchRecord[]> {
    return engine.scope(async () => {
      let h = x;
      if (mode === 'Sequential.forward') h = model.forward(x);
      else {
        for (const name of model.names()) {
          h = model.get(name).forward(h);
          h.name = `${name}.out`;
        }
      }
      const loss = softmaxCrossEntropy(h, targets);
      const { dispatches } = engine.traceDispatches(() => backward(loss));
      await engine.sync();
      return dispatches;
    });
  }

  const count = (ds: DispatchRecord[], pred: (d: DispatchRecord) => boolean) => ds.filter(pred).length;
  const labelled = (ds: DispatchRecord[], s: string) => count(ds, (d) => d.label.includes(s));
  const kernels = (ds: DispatchRecord[], kernel: string) => count(ds, (d) => d.kernel === kernel);

  for (const mode of ['layer by layer', 'Sequential.forward'] as const) {
    describe(mode, () => {
      test('fc1 frozen: no gradient kernel for fc1, nothing below relu1', async () => {
        const full = makeModel(6);
        const all = await tracedBackward(full, mode);
        // The unfrozen network computes every weight and bias gradient and both ReLU derivatives.
        for (const p of full.parameters().keys()) expect(labelled(all, `d(${p})`), p).toBeGreaterThan(0);
        expect(kernels(all, 'unary_backward')).toBe(2);
        expect(count(all, (d) => d.kernel.startsWith('matmul'))).toBe(5); // d(W) of 3 layers, d(input) of fc3 and fc2
        if (mode === 'layer by layer') {
          expect(labelled(all, 'd(fc1.out)')).toBe(1); // relu1's backward
          expect(labelled(all, 'd(relu1.out)')).toBe(1); // fc2's input gradient
        }

        const model = makeModel(6);
        model.freeze('fc1');
        const ds = await tracedBackward(model, mode);
        expect(labelled(ds, 'd(fc1.weight)')).toBe(0);
        expect(labelled(ds, 'd(fc1.bias)')).toBe(0);
        // The gradient stops at fc2's input: no relu1 derivative, no gradient for fc2's input.
        expect(kernels(ds, 'unary_backward')).toBe(1);
        expect(count(ds, (d) => d.kernel.startsWith('matmul'))).toBe(3); // d(fc3.weight), d(fc3 input), d(fc2.weight)
        if (mode === 'layer by layer') {
          expect(labelled(ds, 'd(relu1.out)')).toBe(0);
          expect(labelled(ds, 'd(fc1.out)')).toBe(0);
        }
        expect(count(ds, (d) => d.kernel.startsWith('matmul') && d.label.includes('d(fc2.weight)'))).toBe(1);
        expect(count(ds, (d) => d.kernel.startsWith('matmul') && d.label.includes('d(fc3.weight)'))).toBe(1);
        expect(ds.length).toBeLessThan(all.length);

        expect(param(model, 'fc1.weight').grad).toBeNull();
        expect(param(model, 'fc1.bias').grad).toBeNull();
        for (const p of ['fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias']) expect(param(model, p).grad, p).not.toBeNull();
        for (const p of full.parameters().values()) expect(p.grad, p.name).not.toBeNull();
        full.dispose();
        model.dispose();
      });

      test('fc1 and fc2 frozen: only fc3 gradients, no activation backward at all', async () => {
        const full = makeModel(7);
        const all = await tracedBackward(full, mode);
        const model = makeModel(7);
        model.freeze('fc1', 'fc2');
        const ds = await tracedBackward(model, mode);
        expect(kernels(ds, 'unary_backward')).toBe(0);
        for (const p of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) expect(labelled(ds, `d(${p})`), p).toBe(0);
        if (mode === 'layer by layer') for (const n of ['fc1', 'fc2', 'relu1', 'relu2']) expect(labelled(ds, `d(${n}.out)`), n).toBe(0);
        // Only fc3's weight gradient needs a matmul.
        expect(count(ds, (d) => d.kernel.startsWith('matmul'))).toBe(1);
        expect(count(ds, (d) => d.kernel.startsWith('matmul') && d.label.includes('d(fc3.weight)'))).toBe(1);
        expect(labelled(ds, 'd(fc3.bias)')).toBeGreaterThan(0);
        expect(ds.length).toBeLessThan(all.length);
        for (const p of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) expect(param(model, p).grad, p).toBeNull();
        full.dispose();
        model.dispose();
      });

      test('everything frozen: backward dispatches at most the seed fill', async () => {
        const model = makeModel(8);
        model.freeze();
        expect(model.trainableParameters().size).toBe(0);
        const ds = await tracedBackward(model, mode);
        expect(ds.length).toBeLessThanOrEqual(1);
        for (const d of ds) expect(d.kernel).toBe('fill');
        for (const p of model.parameters().values()) expect(p.grad, p.name).toBeNull();
        model.dispose();
      });
    });
  }

  test('a frozen step holds less GPU memory than a full step', async () => {
    const run = async (freeze: boolean): Promise<number> => {
      const e = await Engine.create();
      const model = new Sequential({
        fc1: new Dense(e, 64, 64, { seed: 1 }),
        relu1: ReLU(),
        fc2: new Dense(e, 64, 4, { seed: 2 }),
      });
      if (freeze) model.freeze('fc1');
      const optimizer = new Adam(model.parameters(), { lr: 0.01 });
      const input = e.randn([4, 64], { seed: 3 });
      const target = e.tensor(oneHot([0, 1, 2, 3], 4), [4, 4]);
      await e.scope(async () => {
        backward(softmaxCrossEntropy(model.forward(input), target));
        optimizer.step();
        optimizer.zeroGrad();
        await e.sync();
      });
      const bytes = e.memory().bytes;
      e.device.destroy();
      return bytes;
    };
    const full = await run(false);
    const frozen = await run(true);
    // fc1.weight alone is 16 KiB: no Adam moments for it (32 KiB). Its gradient region is part of
    // the model's flat gradient buffer, whose layout is the model's.
    expect(full - frozen).toBeGreaterThanOrEqual(2 * 64 * 64 * 4);
  });
});
