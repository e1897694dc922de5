// Model-owned flat parameters: one store per model laid out in parameter order, parameters with
// stable identities, gradients written straight into the flat gradient buffer, whole-model
// arithmetic on flat tensors, optimizers that own only their state (several at once over
// disjoint parameters), and a model whose tree changes after its optimizer was made.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  accuracy,
  Adam,
  add,
  applyLoRA,
  ALIGNMENT,
  backward,
  decodeSafetensors,
  Dense,
  Engine,
  gradients,
  loadWeights,
  mse,
  MultiHead,
  ReLU,
  saveWeights,
  SGD,
  Sequential,
  softmaxCrossEntropy,
  softmaxCrossEntropyRows,
  sum,
  takeRows,
  train,
  weightedMean,
  type Module,
  type Tensor,
} from '../../src/index.js';
import { oneHot } from '../../src/paradigms/train.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

function mlp(seed: number): Sequential {
  return new Sequential({ fc1: new Dense(engine, 5, 7, { seed }), relu: ReLU(), fc2: new Dense(engine, 7, 3, { seed: seed + 1 }) });
}

async function bits(t: Tensor): Promise<Uint32Array> {
  return new Uint32Array((await t.data()).buffer);
}

/** The flat layout read on the CPU: each parameter's values at its offset, zeros between. */
async function expectedFlat(model: Module): Promise<Float32Array> {
  const store = model.store();
  const out = new Float32Array(store.size);
  for (const [i, p] of [...model.parameters().values()].entries()) out.set(await p.data(), store.slots[i]!.offset);
  return out;
}

const X = Float32Array.from(ref.normal([6, 5], 1));
const T = oneHot([0, 2, 1, 1, 0, 2], 3);

function loss(model: Module, e: Engine = engine): Tensor {
  return softmaxCrossEntropy(model.forward(e.tensor(X, [6, 5], 'x')), e.tensor(T, [6, 3], 't'));
}

describe('flat parameter store', () => {
  test('a built model holds its parameters in one buffer, in parameter order, aligned, with zero gaps', async () => {
    const model = mlp(1);
    const store = model.store();
    const params = [...model.parameters().values()];
    expect(store.slots.map((s) => s.name)).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    expect(store.slots.map((s) => s.offset)).toEqual([0, 64, 128, 192]);
    expect(store.size).toBe(256);
    for (const p of params) {
      expect(p.storage).toBe(store.weights.storage);
      expect(p.offset % ALIGNMENT).toBe(0);
    }
    const flat = model.flatWeights();
    expect(Array.from(await flat.data())).toEqual(Array.from(await expectedFlat(model)));
    // Writing the flat tensor writes the parameters.
    const doubled = Float32Array.from(await flat.data(), (v) => 2 * v);
    model.setFlatWeights(engine.tensor(doubled, [store.size]));
    expect(Array.from(await params[2]!.data())).toEqual(Array.from(doubled.subarray(128, 128 + 21)));
    flat.dispose();
    model.dispose();
  });

  test('identity does not depend on who lists a parameter; a module shared by two parents is one set', async () => {
    const shared = new Dense(engine, 4, 4, { seed: 3 });
    const a = new Dense(engine, 4, 2, { seed: 4 });
    const model = new Sequential({ first: shared, relu: ReLU(), second: shared, head: a });
    const names = [...model.parameters().keys()];
    expect(names).toEqual(['first.weight', 'first.bias', 'head.weight', 'head.bias']);
    const w = shared.weight;
    expect(w.name).toBe('first.weight');
    // Listing through another container neither renames nor moves it.
    const sub = new Sequential({ only: shared });
    expect([...sub.parameters().keys()]).toEqual(['only.weight', 'only.bias']);
    expect(shared.weight).toBe(w);
    // Used twice in the forward pass, its gradient is the sum over both uses (float64 reference).
    const x = Float32Array.from(ref.normal([3, 4], 5));
    await engine.scope(async () => {
      model.store();
      const y = model.forward(engine.tensor(x, [3, 4]));
      backward(sum(y));
      const W = Float64Array.from(await shared.weight.data());
      const b = Float64Array.from(await shared.bias!.data());
      const A = Float64Array.from(await a.weight.data());
      // h1 = relu(x W^T + b), h2 = h1 W^T + b, y = h2 A^T + c; d sum(y)/dW by the chain rule on the CPU.
      const lin = (inp: Float64Array, rows: number, M: Float64Array, bias: Float64Array | null, outF: number, inF: number) => {
        const o = new Float64Array(rows * outF);
        for (let r = 0; r < rows; r++) for (let j = 0; j < outF; j++) {
          let s = bias ? bias[j]! : 0;
          for (let k = 0; k < inF; k++) s += inp[r * inF + k]! * M[j * inF + k]!;
          o[r * outF + j] = s;
        }
        return o;
      };
      const x64 = Float64Array.from(x);
      const z1 = lin(x64, 3, W, b, 4, 4);
      const h1 = z1.map((v) => Math.max(v, 0));
      // dy = 1 -> dh2 = 1 A (sum over outputs) -> dW(second) = dh2^T h1; dh1 = dh2 W; dz1 = dh1 * (z1 > 0); dW(first) = dz1^T x.
      const dh2 = new Float64Array(12);
      for (let r = 0; r < 3; r++) for (let k = 0; k < 4; k++) dh2[r * 4 + k] = A[k]! + A[4 + k]!;
      const dh1 = lin(dh2, 3, Float64Array.from({ length: 16 }, (_, i) => W[(i % 4) * 4 + Math.floor(i / 4)]!), null, 4, 4);
      const dz1 = dh1.map((v, i) => (z1[i]! > 0 ? v : 0));
      const dW = new Float64Array(16);
      for (let j = 0; j < 4; j++) for (let k = 0; k < 4; k++) for (let r = 0; r < 3; r++) dW[j * 4 + k] += dh2[r * 4 + j]! * h1[r * 4 + k]! + dz1[r * 4 + j]! * x64[r * 4 + k]!;
      const got = await shared.weight.grad!.data();
      got.forEach((v, i) => expect(v).toBeCloseTo(dW[i]!, 4));
    });
    model.dispose();
  });

  test('backward writes gradients straight into the flat gradient buffer; flatGradients() is their layout', async () => {
    const model = mlp(5);
    const store = model.store();
    await engine.scope(async () => {
      const { dispatches } = engine.traceDispatches(() => backward(loss(model)));
      for (const p of model.parameters().values()) expect(p.grad!.storage).toBe(store.grads().storage);
      // No accumulation kernel: each gradient was written where it lives.
      expect(dispatches.filter((d) => d.label.includes('accumulate'))).toEqual([]);
      const flat = await model.flatGradients().data();
      const params = [...model.parameters().values()];
      for (const [i, p] of params.entries()) {
        expect(Array.from(flat.subarray(store.slots[i]!.offset, store.slots[i]!.offset + p.size))).toEqual(Array.from(await p.grad!.data()));
      }
      // A second backward adds to what is there.
      const first = Float32Array.from(await params[0]!.grad!.data());
      backward(loss(model));
      const twice = await params[0]!.grad!.data();
      twice.forEach((v, i) => expect(v).toBeCloseTo(2 * first[i]!, 5));
      // zeroGrad drops them; the flat view then reads zeros.
      model.zeroGrad();
      expect(params[0]!.grad).toBeNull();
      expect((await model.flatGradients().data()).every((v) => v === 0)).toBe(true);
    });
    model.dispose();
  });

  test('Adam keeps 4 floats per parameter: weights, gradients and two moments', async () => {
    const big = new Sequential({ fc1: new Dense(engine, 256, 256, { seed: 1 }), fc2: new Dense(engine, 256, 128, { seed: 2 }) });
    const P = big.store().size;
    const before = engine.memory().inUseBytes;
    const optimizer = new Adam(big, { lr: 1e-3 });
    const x = engine.keep(engine.randn([4, 256], { seed: 3 }));
    await engine.scope(async () => {
      backward(sum(big.forward(x)));
      optimizer.step();
      optimizer.zeroGrad();
      await engine.flush();
    });
    await engine.sync();
    // Gradients (P) and two moments (P each), plus a few small tables.
    const added = engine.memory().inUseBytes - before;
    expect(added).toBeGreaterThanOrEqual(3 * P * 4);
    expect(added).toBeLessThan(3 * P * 4 + 64 * 1024);
    expect(big.store().weights.size).toBe(P);
    optimizer.dispose();
    x.dispose();
    big.dispose();
  });
});

describe('optimizers over a model', () => {
  test('two optimizers over disjoint parameters of one model give what one optimizer gives', async () => {
    const one = mlp(7);
    const two = mlp(7);
    const single = new SGD(one, { lr: 0.1, momentum: 0.9 });
    const low = new SGD(two.select('fc1'), { lr: 0.1, momentum: 0.9 });
    const high = new SGD(two.select('fc2'), { lr: 0.1, momentum: 0.9 });
    for (let i = 0; i < 3; i++) {
      await engine.scope(async () => {
        backward(loss(one));
        single.step();
        single.zeroGrad();
        backward(loss(two));
        low.step();
        high.step();
        low.zeroGrad();
        high.zeroGrad();
        await engine.flush();
      });
    }
    const a = [...one.parameters().values()];
    const b = [...two.parameters().values()];
    for (let i = 0; i < a.length; i++) expect(await bits(b[i]!)).toEqual(await bits(a[i]!));
    for (const o of [single, low, high]) o.dispose();
    one.dispose();
    two.dispose();
  });

  test('a head replaced after the optimizer was made: followed by an optimizer over the model, refused by one over parameters', async () => {
    const model = mlp(9);
    const following = new Adam(model, { lr: 0.05 });
    const fixed = new Adam(model.parameters(), { lr: 0.05 });
    const old = model.replace('fc2', new Dense(engine, 7, 3, { seed: 30 }));
    const head = model.get('fc2') as Dense;
    expect(old.parameters().get('weight')!.orphaned).toBe(true);
    const before = await bits(head.weight);
    await engine.scope(async () => {
      backward(loss(model));
      following.step();
      await engine.flush();
    });
    expect(await bits(head.weight)).not.toEqual(before);
    expect(following.parameters()).toContain(head.weight);
    expect(following.parameters()).not.toContain(old.parameters().get('weight'));
    await engine.scope(() => {
      expect(() => fixed.step()).toThrow(/parameter fc2\.weight is no longer in its model \(its layer was replaced\)/);
    });
    // The training loop refuses a parameter with a gradient that no optimizer updates.
    const headOnly = new Adam([head.weight], { lr: 0.05 });
    const data = { count: 6, batch: () => null };
    await expect(train(engine, model, headOnly, data, { epochs: 1, batchSize: 6, step: (_b, { engine: e }) => ({ loss: loss(model, e) }) })).rejects.toThrow(
      /parameter fc1\.weight has a gradient but no optimizer updates it/,
    );
    for (const o of [following, fixed, headOnly]) o.dispose();
    old.dispose();
    model.dispose();
  });
});

describe('modules with any inputs and outputs', () => {
  test('a batch with missing labels: masked rows add nothing to the loss or the gradients', async () => {
    const model = mlp(11);
    // Rows 1 and 4 have no label for this task: their targets are junk and their weight 0.
    const labelled = Float32Array.of(1, 0, 1, 1, 0, 1);
    const junk = Float32Array.from(T, (v, i) => (labelled[Math.floor(i / 3)] ? v : 7));
    const keep = [0, 2, 3, 5];
    await engine.scope(async () => {
      const w = model.parameters().get('fc1.weight')!;
      const masked = weightedMean(softmaxCrossEntropyRows(model.forward(engine.tensor(X, [6, 5])), engine.tensor(junk, [6, 3])), engine.tensor(labelled, [6]));
      const only = softmaxCrossEntropy(
        model.forward(engine.tensor(takeRows(X, 5, keep), [4, 5])),
        engine.tensor(takeRows(T, 3, keep), [4, 3]),
      );
      expect(await masked.item()).toBeCloseTo(await only.item(), 6);
      const gMasked = await gradients(masked, [w]).get(w)!.data();
      const gOnly = await gradients(only, [w]).get(w)!.data();
      gMasked.forEach((v, i) => expect(v).toBeCloseTo(gOnly[i]!, 6));
    });
    model.dispose();
  });

  test('a trunk with two named heads trains on two losses with train(); each head gets only its own loss', async () => {
    const model = new MultiHead(new Sequential({ fc: new Dense(engine, 5, 8, { seed: 40 }), relu: ReLU() }), {
      cls: new Dense(engine, 8, 3, { seed: 41 }),
      reg: new Dense(engine, 8, 1, { seed: 42 }),
    });
    expect([...model.parameters().keys()]).toEqual(['trunk.fc.weight', 'trunk.fc.bias', 'cls.weight', 'cls.bias', 'reg.weight', 'reg.bias']);
    // Per-task gradients of the shared layer add up to the joint gradient.
    await engine.scope(async () => {
      const x = engine.tensor(X, [6, 5]);
      const y = engine.tensor(Float32Array.from(ref.normal([6, 1], 43)), [6, 1]);
      const t = engine.tensor(T, [6, 3]);
      const out = model.forward(x);
      const a = softmaxCrossEntropy(out.cls!, t);
      const b = mse(out.reg!, y);
      const w = model.trunk.parameters().get('fc.weight')!;
      const ga = await gradients(a, [w]).get(w)!.data();
      const gb = await gradients(b, [w]).get(w)!.data();
      backward(add(a, b));
      const joint = await w.grad!.data();
      joint.forEach((v, i) => expect(v).toBeCloseTo(ga[i]! + gb[i]!, 5));
      // The regression loss alone gives the classification head no gradient.
      model.zeroGrad();
      backward(b);
      expect((model.head('cls') as Dense).weight.grad).toBeNull();
      expect((model.head('reg') as Dense).weight.grad).not.toBeNull();
      model.zeroGrad();
    });
    const rows = 6;
    const targetsReg = Float32Array.from(ref.normal([rows, 1], 44));
    const optimizer = new Adam(model, { lr: 0.02 });
    const result = await train(engine, model, optimizer, { count: rows, batch: (i) => i }, {
      epochs: 40,
      batchSize: rows,
      logEvery: 10,
      step: (_indices, { engine: e }) => {
        const out = model.forward(e.tensor(X, [rows, 5]));
        const cls = softmaxCrossEntropy(out.cls!, e.tensor(T, [rows, 3]));
        const reg = mse(out.reg!, e.tensor(targetsReg, [rows, 1]));
        return { loss: add(cls, reg), losses: { cls, reg }, metrics: { accuracy: accuracy(out.cls!, e.tensor(T, [rows, 3])) } };
      },
    });
    const first = result.history[0]!.losses;
    const last = result.history.at(-1)!.losses;
    expect(Object.keys(last)).toEqual(['cls', 'reg']);
    expect(last.cls!).toBeLessThan(0.5 * first.cls!);
    expect(last.reg!).toBeLessThan(0.5 * first.reg!);
    // The metric is the float64 accuracy of the logits it was computed from.
    const metric = result.history.at(-1)!.metrics.accuracy!;
    const logits = await model.predict(engine.tensor(X, [rows, 5])).cls!.data();
    let correct = 0;
    for (let r = 0; r < rows; r++) {
      const row = Array.from(logits.subarray(3 * r, 3 * r + 3));
      if (row.indexOf(Math.max(...row)) === T.subarray(3 * r, 3 * r + 3).indexOf(1)) correct++;
    }
    expect(metric).toBeGreaterThanOrEqual(0.5);
    expect(Math.abs(metric - correct / rows)).toBeLessThanOrEqual(1 / rows); // one more step was taken since
    optimizer.dispose();
    model.dispose();
  });

  test('a multi-head model freezes, saves and takes LoRA as a Sequential does', async () => {
    const model = new MultiHead(new Sequential({ fc: new Dense(engine, 5, 8, { seed: 50 }), relu: ReLU() }), {
      a: new Dense(engine, 8, 3, { seed: 51 }),
      b: new Dense(engine, 8, 2, { seed: 52 }),
    });
    model.freeze('trunk');
    const trunk = await bits(model.parameters().get('trunk.fc.weight')!);
    const optimizer = new Adam(model, { lr: 0.05 });
    for (let i = 0; i < 3; i++) {
      await engine.scope(async () => {
        const out = model.forward(engine.tensor(X, [6, 5]));
        backward(add(sum(out.a!), sum(out.b!)));
        optimizer.step();
        optimizer.zeroGrad();
        await engine.flush();
      });
    }
    expect(await bits(model.parameters().get('trunk.fc.weight')!)).toEqual(trunk);
    const bytes = await saveWeights(model);
    expect([...decodeSafetensors(bytes).tensors.keys()].sort()).toEqual(['a.bias', 'a.weight', 'b.bias', 'b.weight', 'trunk.fc.bias', 'trunk.fc.weight']);
    const copy = new MultiHead(new Sequential({ fc: new Dense(engine, 5, 8) , relu: ReLU() }), { a: new Dense(engine, 8, 3), b: new Dense(engine, 8, 2) });
    loadWeights(copy, bytes);
    const x = engine.tensor(X, [6, 5]);
    expect(Array.from(await copy.predict(x).a!.data())).toEqual(Array.from(await model.predict(x).a!.data()));
    // LoRA on one head: the rest frozen, the adapted head starts as it was.
    applyLoRA(copy, ['a'], { rank: 2, seed: 3 });
    expect([...copy.trainableParameters().keys()]).toEqual(['a.lora_a', 'a.lora_b']);
    expect(Array.from(await copy.predict(x).a!.data())).toEqual(Array.from(await model.predict(x).a!.data()));
    x.dispose();
    optimizer.dispose();
    model.dispose();
    copy.dispose();
  });
});

