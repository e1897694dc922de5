// Soft-sharing trunks (src/paradigms/multitask/architectures.ts) against float64 CPU references
// of the same computation with the module's weights read back: forward, and the GPU gradients of
// a scalar loss against finite differences of the reference; as MultiHead trunks (per-head
// representations), frozen, saved and loaded, replicated. Also train() with async steps.
import { beforeAll, describe, expect, test } from 'vitest';
import { gradients } from '../../src/engine/autograd.js';
import { MultiHead, Sequential } from '../../src/engine/containers.js';
import { Engine } from '../../src/engine/engine.js';
import { loadWeights, saveWeights } from '../../src/engine/io/weights.js';
import { Dense, Tanh } from '../../src/engine/layers.js';
import type { AnyModule } from '../../src/engine/module.js';
import { add, gram, mse, mul, scale, sum } from '../../src/engine/ops/index.js';
import { Adam } from '../../src/engine/optim.js';
import { replicate } from '../../src/engine/replicas.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { CrossStitch, MMoE } from '../../src/paradigms/multitask/architectures.js';
import { train } from '../../src/paradigms/train.js';
import { expectClose } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

type Weights = Map<string, Float64Array>;

async function readWeights(m: AnyModule): Promise<Weights> {
  const out: Weights = new Map();
  for (const [name, p] of m.parameters()) out.set(name, Float64Array.from(await p.data()));
  return out;
}

/** tanh(x W^T + b) for x [B, in], W [out, in]. */
function denseTanh(x: Float64Array, B: number, w: Float64Array, b: Float64Array): Float64Array {
  const out = b.length;
  const y = ref.matmul(x, [B, x.length / B], w, [out, w.length / out], false, true).data;
  return ref.unary('tanh', ref.addBias(y, b));
}

// ---------------------------------------------------------------- references

const TASKS = ['a', 'b', 'c'];
const B = 4;
const IN = 3;
const WIDTHS = [5, 2];

function crossStitch(seed: number): CrossStitch {
  return new CrossStitch(engine, {
    tasks: TASKS,
    column: (task) => WIDTHS.map((w, s) => new Sequential({ fc: new Dense(engine, s === 0 ? IN : WIDTHS[s - 1]!, w, { seed: seed + 10 * TASKS.indexOf(task) + 2 * s }), act: Tanh() })),
  });
}

/** Cross-stitch forward in float64: each column's stage, then z~_t = sum_u alpha[t, u] z_u. */
function crossStitchRef(p: Weights, x: Float64Array): Float64Array[] {
  const T = TASKS.length;
  let zs = TASKS.map(() => x);
  WIDTHS.forEach((_, s) => {
    const ys = TASKS.map((t, i) => denseTanh(zs[i]!, B, p.get(`${t}.${s}.fc.weight`)!, p.get(`${t}.${s}.fc.bias`)!));
    const alpha = p.get(`stitch${s}.alpha`)!;
    zs = TASKS.map((_, t) => {
      const z = new Float64Array(ys[0]!.length);
      for (let u = 0; u < T; u++) for (let k = 0; k < z.length; k++) z[k] += alpha[t * T + u]! * ys[u]![k]!;
      return z;
    });
  });
  return zs;
}

const E = 3;
const F = 2;
const MMOE_IN = 4;

function mmoe(seed: number): MMoE {
  return new MMoE(engine, { tasks: ['a', 'b'], experts: E, inputFeatures: MMOE_IN, seed, expert: (i) => new Sequential({ fc: new Dense(engine, MMOE_IN, F, { seed: seed + 100 + 2 * i }), act: Tanh() }) });
}

/** MMoE forward in float64: out_t[b, f] = sum_e softmax(x G_t^T + c_t)[b, e] expert_e(x)[b, f]. */
function mmoeRef(p: Weights, x: Float64Array): Float64Array[] {
  const experts = new Float64Array(E * B * F);
  for (let e = 0; e < E; e++) experts.set(denseTanh(x, B, p.get(`expert${e}.fc.weight`)!, p.get(`expert${e}.fc.bias`)!), e * B * F);
  return ['a', 'b'].map((t) => {
    const logits = ref.addBias(ref.matmul(x, [B, MMOE_IN], p.get(`gate_${t}.weight`)!, [E, MMOE_IN], false, true).data, p.get(`gate_${t}.bias`)!);
    return ref.mixture(experts, ref.softmax(logits, B, E), E, B, F);
  });
}

/**
 * The module's outputs against the reference; then the gradients of loss = sum_t sum(out_t * w_t)
 * with respect to every parameter against central differences of the reference loss.
 */
async function checkAgainstReference(model: AnyModule, inputs: number, reference: (p: Weights, x: Float64Array) => Float64Array[], names: string[]): Promise<void> {
  const x = ref.normal([B, inputs], 7);
  const weights = await readWeights(model);
  const want = reference(weights, x);
  const ws = want.map((o, i) => ref.normal([o.length], 20 + i));
  await engine.scope(async () => {
    const out = model.forward(engine.tensor(Float32Array.from(x), [B, inputs])) as Record<string, Tensor>;
    expect(Object.keys(out)).toEqual(names);
    let loss: Tensor | null = null;
    for (const [i, name] of names.entries()) {
      expectClose(await out[name]!.data(), want[i]!, { atol: 1e-5, rtol: 1e-4 }, `forward ${name}`);
      const term = sum(mul(out[name]!, engine.tensor(Float32Array.from(ws[i]!), out[name]!.shape)));
      loss = loss ? add(loss, term) : term;
    }
    const params = [...model.parameters()];
    const grads = gradients(loss!, params.map(([, p]) => p));
    for (const [name, p] of params) {
      const at = weights.get(name)!;
      const idx = ref.sampleIndices(at.length, 6, name.length);
      const fd = ref.finiteDifferences(
        (v) => {
          const probe = new Map(weights).set(name, v);
          return reference(probe, x).reduce((s, o, i) => s + ref.dot(o, ws[i]!), 0);
        },
        at,
        idx,
      );
      const g = await grads.get(p)!.data();
      expectClose(idx.map((j) => g[j]!), fd, { atol: 1e-5, rtol: 1e-3 }, `d(${name}) against finite differences`);
    }
  });
}

// ---------------------------------------------------------------- tests

describe('CrossStitch', () => {
  test('parameter names; balanced initial alpha; forward and gradients against the float64 reference', async () => {
    const model = crossStitch(1);
    expect([...model.parameters().keys()]).toEqual([
      ...TASKS.flatMap((t) => WIDTHS.flatMap((_, s) => [`${t}.${s}.fc.weight`, `${t}.${s}.fc.bias`])),
      'stitch0.alpha',
      'stitch1.alpha',
    ]);
    expect(Array.from(await model.parameters().get('stitch0.alpha')!.data())).toEqual(
      [0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.9].map(Math.fround),
    );
    // Move alpha off its initial value, so that the check sees an asymmetric mix.
    engine.write(model.parameters().get('stitch1.alpha')!, Float32Array.from(ref.normal([3, 3], 8)));
    await checkAgainstReference(model, IN, crossStitchRef, TASKS);
    model.dispose();
  });

  test('refuses fewer than two tasks, reserved or repeated names, and columns of different depths', () => {
    const stage = () => [new Dense(engine, 3, 2)];
    expect(() => new CrossStitch(engine, { tasks: ['a'], column: stage })).toThrow(/CrossStitch: 1 tasks .*at least 2/);
    expect(() => new CrossStitch(engine, { tasks: ['a', 'stitch0'], column: stage })).toThrow(/"stitch0"/);
    expect(() => new CrossStitch(engine, { tasks: ['a', 'a'], column: stage })).toThrow(/"a" is used twice/);
    expect(() => new CrossStitch(engine, { tasks: ['a', 'b'], column: (t) => (t === 'a' ? stage() : [...stage(), ...stage()]) })).toThrow(/a: 1, b: 2 stages/);
  });

  test('columns whose outputs differ in shape are refused at the stitch, naming the tasks and shapes', async () => {
    const model = new CrossStitch(engine, { tasks: ['a', 'b'], column: (t) => [new Dense(engine, 3, t === 'a' ? 2 : 4)] });
    await engine.scope(() => {
      expect(() => model.forward(engine.zeros([1, 3]))).toThrow(/CrossStitch stage 0: .*a \[1,2\], b \[1,4\]/);
    });
    model.dispose();
  });
});

describe('MMoE', () => {
  test('parameter names; forward and gradients against the float64 reference', async () => {
    const model = mmoe(30);
    expect([...model.parameters().keys()]).toEqual([
      ...Array.from({ length: E }, (_, e) => [`expert${e}.fc.weight`, `expert${e}.fc.bias`]).flat(),
      'gate_a.weight',
      'gate_a.bias',
      'gate_b.weight',
      'gate_b.bias',
    ]);
    await checkAgainstReference(model, MMOE_IN, mmoeRef, ['a', 'b']);
    model.dispose();
  });

  test('refuses a bad expert count', () => {
    expect(() => new MMoE(engine, { tasks: ['a'], experts: 0, inputFeatures: 2, expert: () => new Dense(engine, 2, 2) })).toThrow(/MMoE: experts 0/);
  });
});

describe('soft-sharing trunks in MultiHead', () => {
  const heads = () => ({ a: new Dense(engine, 2, 1, { seed: 61 }), b: new Dense(engine, 2, 1, { seed: 62 }), c: new Dense(engine, 2, 1, { seed: 63 }) });
  const X = Float32Array.from(ref.normal([8, IN], 64));
  const Y = Float32Array.from(ref.normal([8, 1], 65));

  test('each head gets its own representation; a trunk record with other keys is refused naming both lists', async () => {
    const model = new MultiHead(crossStitch(3), heads());
    await engine.scope(async () => {
      const x = engine.tensor(X, [8, IN]);
      const out = model.forward(x);
      const features = model.trunk.forward(x) as Record<string, Tensor>;
      for (const t of TASKS) expect(Array.from(await out[t]!.data())).toEqual(Array.from(await model.head(t).forward(features[t]!).data()));
      expect(() => model.forwardHeads({ a: features.a!, b: features.b! })).toThrow('MultiHead: the trunk gave representations for [a, b]; the heads are [a, b, c]');
    });
    const wrong = new MultiHead(crossStitch(3), { a: new Dense(engine, 2, 1), b: new Dense(engine, 2, 1), d: new Dense(engine, 2, 1) });
    await engine.scope(() => {
      expect(() => wrong.forward(engine.tensor(X, [8, IN]))).toThrow('[a, b, c]; the heads are [a, b, d]');
    });
    model.dispose();
    wrong.dispose();
  });

  test('freeze("trunk.stitch1") keeps that unit bit-identical while the rest trains (with an async step)', async () => {
    const model = new MultiHead(crossStitch(4), heads());
    model.freeze('trunk.stitch1');
    const frozen = Array.from(await model.parameters().get('trunk.stitch1.alpha')!.data());
    const stitch0 = Array.from(await model.parameters().get('trunk.stitch0.alpha')!.data());
    const optimizer = new Adam(model, { lr: 0.01 });
    let readbacks = 0;
    const result = await train(engine, model, optimizer, { count: 8, batch: (i) => i }, {
      epochs: 30,
      batchSize: 8,
      logEvery: 10,
      step: async (_rows, { engine: e }) => {
        const out = model.forward(e.tensor(X, [8, IN]));
        const y = e.tensor(Y, [8, 1]);
        const losses = TASKS.map((t) => mse(out[t]!, y));
        // A step that reads a small matrix back before building its loss (as MGDA would).
        const g = await gram(e.tensor(Float32Array.of(1, 2, 3, 4), [2, 2])).data();
        readbacks++;
        return { loss: scale(losses.reduce((s, l) => add(s, l)), 5 / g[0]!), losses: Object.fromEntries(TASKS.map((t, i) => [t, losses[i]!])) };
      },
    });
    expect(readbacks).toBe(30);
    expect(result.history.at(-1)!.losses.a!).toBeLessThan(result.history[0]!.losses.a!);
    expect(Array.from(await model.parameters().get('trunk.stitch1.alpha')!.data())).toEqual(frozen);
    expect(Array.from(await model.parameters().get('trunk.stitch0.alpha')!.data())).not.toEqual(stitch0);
    optimizer.dispose();
    model.dispose();
  });

  test('an error thrown by an async step rejects train with it, and frees the step tensors', async () => {
    const model = new MultiHead(mmoe(70), { a: new Dense(engine, F, 1), b: new Dense(engine, F, 1) });
    const optimizer = new Adam(model, { lr: 0.01 });
    await engine.sync();
    const before = engine.memory().inUseBuffers;
    await expect(
      train(engine, model, optimizer, { count: 8, batch: (i) => i }, {
        epochs: 1,
        batchSize: 4,
        step: async (_rows, { engine: e, step }) => {
          model.forward(e.tensor(Float32Array.from(ref.normal([4, MMOE_IN], 71)), [4, MMOE_IN]));
          await e.sync();
          if (step === 1) throw new Error('solver failed at step 1');
          return {};
        },
      }),
    ).rejects.toThrow('solver failed at step 1');
    await engine.sync();
    expect(engine.memory().inUseBuffers).toBe(before);
    optimizer.dispose();
    model.dispose();
  });

  const trunks = {
    CrossStitch: { make: (seed: number) => crossStitch(seed), inputs: IN, width: 2, tasks: TASKS },
    MMoE: { make: (seed: number) => mmoe(seed), inputs: MMOE_IN, width: F, tasks: ['a', 'b'] },
  };
  for (const [name, t] of Object.entries(trunks)) {
    test(`${name}: saveWeights / loadWeights round trip; replicas compute what the model does`, async () => {
      const build = (seed: number) => new MultiHead(t.make(seed), Object.fromEntries(t.tasks.map((task, i) => [task, new Dense(engine, t.width, 1, { seed: seed + i })])));
      const x = Float32Array.from(ref.normal([8, t.inputs], 66));
      const outputs = (m: AnyModule) =>
        engine.scope(async () => {
          const out = m.forward(engine.tensor(x, [8, t.inputs])) as Record<string, Tensor>;
          return Promise.all(t.tasks.map((task) => out[task]!.data()));
        });
      const model = build(5);
      const other = build(500);
      expect(await outputs(other)).not.toEqual(await outputs(model));
      loadWeights(other, await saveWeights(model));
      expect(await outputs(other)).toEqual(await outputs(model));
      const replicas = replicate(model, 2);
      expect(await outputs(replicas.model(1))).toEqual(await outputs(model));
      replicas.dispose();
      model.dispose();
      other.dispose();
    });
  }
});
