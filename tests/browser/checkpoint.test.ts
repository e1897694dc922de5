// The full training state (weights, buffers, masks, optimizer state and step counters, the seed
// sequence and the loop's position) saved as safetensors mid-run and loaded into a model built
// again, on the same engine or on a new one after the device was lost: training continues with
// exactly the results of an uninterrupted run.
import { describe, expect, test } from 'vitest';
import {
  Adam,
  BatchNorm,
  decodeSafetensors,
  Dense,
  Dropout,
  Engine,
  loadTrainingState,
  ReLU,
  saveTrainingState,
  Sequential,
  SGD,
  softmaxCrossEntropy,
  train,
  type Dataset,
  type LoopPosition,
  type Optimizer,
} from '../../src/index.js';
import { oneHot, takeRows } from '../../src/paradigms/train.js';
import * as ref from '../reference.js';

const ROWS = 40;
const X = Float32Array.from(ref.normal([ROWS, 6], 1));
const T = oneHot(Array.from({ length: ROWS }, (_, i) => (i * 7) % 4), 4);
const data: Dataset<Uint32Array> = { count: ROWS, batch: (indices) => indices };

interface Run {
  model: Sequential;
  optimizers: Optimizer[];
}

function build(engine: Engine): Run {
  const model = new Sequential({
    fc1: new Dense(engine, 6, 16, { seed: 1 }),
    bn: new BatchNorm(engine, 16),
    relu: ReLU(),
    drop: new Dropout(0.3),
    fc2: new Dense(engine, 16, 4, { seed: 2 }),
  });
  model.parameters().get('fc1.weight')!.setMask(Float32Array.from({ length: 96 }, (_, i) => (i % 5 === 0 ? 0 : 1)));
  // Two optimizers over disjoint parts, each with its own state.
  return { model, optimizers: [new Adam(model.select('fc1'), { lr: 0.01 }), new SGD([...model.select('bn'), ...model.select('fc2')], { lr: 0.05, momentum: 0.9 })] };
}

function run(engine: Engine, r: Run, options: { resume?: LoopPosition; stopAfter?: number; onStop?: (position: LoopPosition) => Promise<void> } = {}) {
  return train(engine, r.model, r.optimizers, data, {
    epochs: 3,
    batchSize: 8,
    seed: 7,
    resume: options.resume,
    step: (indices, { engine: e }) => ({
      loss: softmaxCrossEntropy(r.model.forward(e.tensor(takeRows(X, 6, indices), [8, 6])), e.tensor(takeRows(T, 4, indices), [8, 4])),
    }),
    onStep: async (p) => {
      if (options.stopAfter === undefined || p.step !== options.stopAfter) return true;
      await options.onStop!(p);
      return false;
    },
  });
}

/** Everything that must come out the same: weights and buffers bit for bit, and optimizer state. */
async function fingerprint(r: Run): Promise<Uint32Array[]> {
  const out: Uint32Array[] = [];
  for (const t of [...r.model.parameters().values(), ...r.model.buffers().values()]) out.push(new Uint32Array((await t.data()).buffer));
  for (const o of r.optimizers) for (const p of o.parameters()) for (const s of o.stateOf(p)) out.push(new Uint32Array((await s.data()).buffer));
  return out;
}

describe('training state', () => {
  test('saved mid-run and loaded after a device loss into a new engine, training continues with the same results', async () => {
    const straightEngine = await Engine.create();
    const straight = build(straightEngine);
    await run(straightEngine, straight);
    const want = await fingerprint(straight);

    const first = await Engine.create();
    const interrupted = build(first);
    let saved: Uint8Array | null = null;
    let at: LoopPosition | null = null;
    await run(first, interrupted, {
      stopAfter: 7, // 7 of 15 steps: inside the second epoch
      onStop: async (position) => {
        at = position;
        saved = await saveTrainingState({ model: interrupted.model, optimizers: interrupted.optimizers, position });
      },
    });
    expect(at).toEqual({ epoch: 1, stepInEpoch: 2, step: 7 });
    const names = [...decodeSafetensors(saved!).tensors.keys()];
    expect(names).toContain('model.bn.running_mean');
    expect(names).toContain('mask.fc1.weight');
    expect(names).toContain('optimizer0.fc1.weight.m');
    expect(names).toContain('optimizer1.fc2.weight.velocity');

    // The device is lost; a new engine restores the last saved state and goes on.
    const lost = new Promise<Error>((resolve) => first.onLost(resolve));
    first.device.destroy();
    expect((await lost).message).toMatch(/GPU device lost/);
    expect(() => first.zeros([1])).toThrow(/GPU device lost/);
    const second = await Engine.create();
    const resumed = build(second);
    const { position } = loadTrainingState(saved!, { model: resumed.model, optimizers: resumed.optimizers });
    expect(position).toEqual({ epoch: 1, stepInEpoch: 2, step: 7 });
    await run(second, resumed, { resume: position! });
    const got = await fingerprint(resumed);
    expect(got.length).toBe(want.length);
    got.forEach((g, i) => expect(g, `tensor ${i}`).toEqual(want[i]));
  });

  test('a state that does not fit is refused before anything is written', async () => {
    const engine = await Engine.create();
    const a = build(engine);
    const bytes = await saveTrainingState({ model: a.model, optimizers: a.optimizers });
    const other = new Sequential({ fc1: new Dense(engine, 6, 16, { seed: 1 }), fc2: new Dense(engine, 16, 5, { seed: 2 }) });
    const before = await other.parameters().get('fc1.weight')!.data();
    expect(() => loadTrainingState(bytes, { model: other, optimizers: [] })).toThrow(/model\.fc2\.weight is \[4,16\] in the file but \[5,16\] here/);
    expect(() => loadTrainingState(bytes, { model: a.model, optimizers: a.optimizers.slice(0, 1) })).toThrow(/the state of 2 optimizer\(s\) \(Adam, SGD\), 1 given/);
    expect(Array.from(await other.parameters().get('fc1.weight')!.data())).toEqual(Array.from(before));
  });
});
