// Replicas: K copies of a model's weights in one [K, P] block, each a model of its own; one
// optimizer steps all K with one kernel per group, and their (weighted) average is one reduction.
import { beforeAll, describe, expect, test } from 'vitest';
import { Adam, backward, BatchNorm, Dense, Engine, ReLU, replicate, Sequential, SGD, softmaxCrossEntropy, type Module, type Tensor } from '../../src/index.js';
import { oneHot } from '../../src/paradigms/train.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

function model(seed: number): Sequential {
  return new Sequential({ fc1: new Dense(engine, 4, 6, { seed }), bn: new BatchNorm(engine, 6), relu: ReLU(), fc2: new Dense(engine, 6, 3, { seed: seed + 1 }) });
}

/** Replica k's batch: its own rows, so that replicas train apart. */
function batch(k: number): { x: Float32Array; t: Float32Array } {
  return { x: Float32Array.from(ref.normal([8, 4], 100 + k)), t: oneHot(Array.from({ length: 8 }, (_, i) => (i + k) % 3), 3) };
}

function loss(m: Module, k: number): Tensor {
  const b = batch(k);
  return softmaxCrossEntropy(m.forward(engine.tensor(b.x, [8, 4])), engine.tensor(b.t, [8, 3]));
}

async function flat(m: Module): Promise<Float32Array> {
  const t = m.flatWeights();
  const v = await t.data();
  t.dispose();
  return v;
}

describe('replicas', () => {
  test('each replica starts as the model and computes what it computes', async () => {
    const source = model(1);
    const reps = replicate(source, 4);
    expect(reps.count).toBe(4);
    expect(reps.store.rows).toBe(4);
    const x = engine.tensor(Float32Array.from(ref.normal([5, 4], 2)), [5, 4]);
    source.eval();
    const want = await source.predict(x).data();
    for (const m of reps.models) {
      m.eval();
      expect(Array.from(await m.predict(x).data())).toEqual(Array.from(want));
      expect(Array.from(await flat(m))).toEqual(Array.from(await flat(source)));
    }
    // Each replica is its own model: its parameters are views of its row.
    const w = [...reps.model(2).parameters().values()][0]!;
    expect(w.row).toBe(2);
    expect(w.storage).toBe(reps.store.weights.storage);
    x.dispose();
    reps.dispose();
    source.dispose();
  });

  test('replicas and their optimizer leave nothing behind when disposed', async () => {
    const source = model(2);
    engine.placeholder(); // made once per engine and kept
    await engine.sync();
    const before = engine.memory();
    const reps = replicate(source, 3);
    const optimizer = new Adam(reps, { lr: 0.01 });
    await engine.scope(async () => {
      for (let k = 0; k < 3; k++) backward(loss(reps.model(k), k));
      optimizer.step();
      optimizer.zeroGrad();
      reps.average().dispose();
      reps.averageInto(source);
      await engine.flush();
    });
    optimizer.dispose();
    reps.dispose();
    await engine.sync();
    const after = engine.memory();
    expect(after.inUseBuffers).toBe(before.inUseBuffers);
    expect(after.inUseBytes).toBe(before.inUseBytes);
    source.dispose();
  });

  test('one optimizer steps all replicas with one kernel per group, as K separate optimizers would', async () => {
    const source = model(3);
    const reps = replicate(source, 3);
    const separate = [0, 1, 2].map(() => replicate(source, 1));
    const joint = new Adam(reps, { lr: 0.05, weightDecay: 0.01 });
    const alone = separate.map((r) => new Adam(r.model(0), { lr: 0.05, weightDecay: 0.01 }));
    for (let step = 0; step < 3; step++) {
      await engine.scope(async () => {
        for (let k = 0; k < 3; k++) backward(loss(reps.model(k), k));
        const { dispatches } = engine.traceDispatches(() => joint.step());
        expect(dispatches.filter((d) => d.kernel === 'adam').length).toBe(1);
        joint.zeroGrad();
        for (let k = 0; k < 3; k++) {
          backward(loss(separate[k]!.model(0), k));
          alone[k]!.step();
          alone[k]!.zeroGrad();
        }
        await engine.flush();
      });
    }
    for (let k = 0; k < 3; k++) {
      const a = await flat(reps.model(k));
      const b = await flat(separate[k]!.model(0));
      expect(new Uint32Array(a.buffer)).toEqual(new Uint32Array(b.buffer));
    }
    // They trained apart.
    expect(Array.from(await flat(reps.model(0)))).not.toEqual(Array.from(await flat(reps.model(1))));
    // State per replica: replica 1's moments are its own.
    const p = [...reps.model(0).parameters().values()][0]!;
    const m1 = await joint.stateOf(p, 1)[0]!.data();
    const q = [...separate[1]!.model(0).parameters().values()][0]!;
    expect(Array.from(m1)).toEqual(Array.from(await alone[1]!.stateOf(q)[0]!.data()));
    joint.dispose();
    for (const o of alone) o.dispose();
    for (const r of [reps, ...separate]) r.dispose();
    source.dispose();
  });

  test('average and weighted average of the replicas, into the model, BatchNorm statistics included', async () => {
    const source = model(5);
    const reps = replicate(source, 4);
    const optimizer = new SGD(reps, { lr: 0.1 });
    await engine.scope(async () => {
      for (let k = 0; k < 4; k++) backward(loss(reps.model(k), k)); // training mode: BatchNorm statistics move apart too
      optimizer.step();
      optimizer.zeroGrad();
      await engine.flush();
    });
    const rows = await Promise.all(reps.models.map(flat));
    const weights = [1, 2, 3, 10];
    const total = weights.reduce((a, b) => a + b, 0);
    const mean = await reps.average().data();
    const weighted = await reps.average(weights).data();
    for (let i = 0; i < mean.length; i++) {
      const m = rows.reduce((s, r) => s + r[i]!, 0) / 4;
      const w = rows.reduce((s, r, k) => s + weights[k]! * r[i]!, 0) / total;
      expect(mean[i]).toBeCloseTo(m, 5);
      expect(weighted[i]).toBeCloseTo(w, 5);
    }
    const runningMeans = await Promise.all(reps.models.map((m) => m.buffers().get('bn.running_mean')!.data()));
    reps.averageInto(source, weights);
    expect(Array.from(await flat(source))).toEqual(Array.from(weighted));
    const averaged = await source.buffers().get('bn.running_mean')!.data();
    averaged.forEach((v, i) => expect(v).toBeCloseTo(runningMeans.reduce((s, r, k) => s + weights[k]! * r[i]!, 0) / total, 5));
    // load() sets every replica back to the model.
    reps.load(source);
    for (const m of reps.models) expect(Array.from(await flat(m))).toEqual(Array.from(weighted));
    // A model laid out differently is refused, naming the parameter.
    const other = new Sequential({ fc1: new Dense(engine, 4, 5) });
    expect(() => reps.averageInto(other)).toThrow(/parameter 0 is fc1\.weight \[5,4\] there and fc1\.weight \[6,4\] here/);
    other.dispose();
    optimizer.dispose();
    reps.dispose();
    source.dispose();
  });
});
