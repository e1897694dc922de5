// Multi-task training (src/paradigms/multitask): one step of each task-weighting method against a
// float64 reference (the tiny model's per-task gradients by hand-written backpropagation, the
// combination from the method's definition), missing labels, absent tasks, a frozen trunk, the
// methods' own state, and a shared model that learns Multi-Fashion.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  cagradCoefficients,
  CAGrad,
  CrossStitch,
  deltaM,
  Dense,
  dropLabels,
  DynamicWeightAverage,
  Engine,
  EqualWeighting,
  evaluateMultiTask,
  FAMO,
  GradNorm,
  loadFashionMnist,
  makeWeighting,
  MGDA,
  MMoE,
  minNormCoefficients,
  multiFashion,
  MultiHead,
  PCGrad,
  pcgradCoefficients,
  RandomLossWeighting,
  ReLU,
  Sequential,
  SGD,
  taskCounts,
  trainMultiTask,
  UncertaintyWeighting,
  uniformGenerator,
  WEIGHTINGS,
  type MultiTaskData,
  type Weighting,
} from '../../src/index.js';
import { expectClose } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});
afterAll(() => engine?.device.destroy());

const IN = 6;
const HIDDEN = 5;
const CLASSES = 3;
const ROWS = 8;

/** A tiny task pair: `a` classification (3 classes), `b` regression; `b` unlabelled on rows 2 and 5. */
function tinyData(seed: number, bMask = [1, 1, 0, 1, 1, 0, 1, 1]): MultiTaskData {
  const x = ref.normal([ROWS, IN], seed);
  const y = ref.normal([ROWS], seed + 1);
  return {
    count: ROWS,
    features: IN,
    inputs: Float32Array.from(x),
    tasks: {
      a: { kind: 'classification', width: CLASSES, values: Float32Array.from({ length: ROWS }, (_, r) => (r * 7 + seed) % CLASSES) },
      b: { kind: 'regression', width: 1, values: Float32Array.from(y), mask: Uint8Array.from(bMask) },
    },
  };
}

function tinyModel(e: Engine): MultiHead {
  return new MultiHead(new Sequential({ fc: new Dense(e, IN, HIDDEN, { seed: 3 }), relu: ReLU() }), {
    a: new Dense(e, HIDDEN, CLASSES, { seed: 5 }),
    b: new Dense(e, HIDDEN, 1, { seed: 7 }),
  });
}

async function weightsOf(model: MultiHead): Promise<Map<string, Float64Array>> {
  const out = new Map<string, Float64Array>();
  for (const [name, p] of model.parameters()) out.set(name, Float64Array.from(await p.data()));
  return out;
}

const SHARED = ['trunk.fc.weight', 'trunk.fc.bias'];

/**
 * Float64 backpropagation through the tiny model, task by task: each task's gradient of the
 * shared parameters (concatenated, SHARED order), of its own head, and of the representation h.
 */
function referenceGradients(w: Map<string, Float64Array>, data: MultiTaskData) {
  const W1 = w.get('trunk.fc.weight')!;
  const b1 = w.get('trunk.fc.bias')!;
  const x = data.inputs;
  const pre = new Float64Array(ROWS * HIDDEN);
  const h = new Float64Array(ROWS * HIDDEN);
  for (let r = 0; r < ROWS; r++) {
    for (let j = 0; j < HIDDEN; j++) {
      let s = b1[j]!;
      for (let i = 0; i < IN; i++) s += x[r * IN + i]! * W1[j * IN + i]!;
      pre[r * HIDDEN + j] = s;
      h[r * HIDDEN + j] = Math.max(0, s);
    }
  }
  const tasks = ['a', 'b'] as const;
  return tasks.map((task) => {
    const labels = data.tasks[task]!;
    const Wt = w.get(`${task}.weight`)!;
    const bt = w.get(`${task}.bias`)!;
    const width = labels.width;
    const labelled = Array.from({ length: ROWS }, (_, r) => !labels.mask || labels.mask[r] === 1);
    const n = labelled.filter(Boolean).length;
    const dout = new Float64Array(ROWS * width);
    let loss = 0;
    for (let r = 0; r < ROWS; r++) {
      if (!labelled[r]) continue;
      const out = Array.from({ length: width }, (_, c) => bt[c]! + ref.dot(h.subarray(r * HIDDEN, (r + 1) * HIDDEN), Wt.subarray(c * HIDDEN, (c + 1) * HIDDEN)));
      if (labels.kind === 'classification') {
        const m = Math.max(...out);
        const z = out.reduce((s, v) => s + Math.exp(v - m), 0);
        const y = labels.values[r]!;
        loss += (Math.log(z) + m - out[y]!) / n;
        for (let c = 0; c < width; c++) dout[r * width + c] = (Math.exp(out[c]! - m) / z - (c === y ? 1 : 0)) / n;
      } else {
        const d = out[0]! - labels.values[r]!;
        loss += (d * d) / n;
        dout[r] = (2 * d) / n;
      }
    }
    const dh = new Float64Array(ROWS * HIDDEN);
    const dWt = new Float64Array(width * HIDDEN);
    const dbt = new Float64Array(width);
    for (let r = 0; r < ROWS; r++) {
      for (let c = 0; c < width; c++) {
        const g = dout[r * width + c]!;
        dbt[c]! += g;
        for (let j = 0; j < HIDDEN; j++) {
          dWt[c * HIDDEN + j]! += g * h[r * HIDDEN + j]!;
          dh[r * HIDDEN + j]! += g * Wt[c * HIDDEN + j]!;
        }
      }
    }
    const dW1 = new Float64Array(HIDDEN * IN);
    const db1 = new Float64Array(HIDDEN);
    for (let r = 0; r < ROWS; r++) {
      for (let j = 0; j < HIDDEN; j++) {
        const g = pre[r * HIDDEN + j]! > 0 ? dh[r * HIDDEN + j]! : 0;
        db1[j]! += g;
        for (let i = 0; i < IN; i++) dW1[j * IN + i]! += g * x[r * IN + i]!;
      }
    }
    const shared = new Float64Array(dW1.length + db1.length);
    shared.set(dW1);
    shared.set(db1, dW1.length);
    return { task, loss, shared, head: { weight: dWt, bias: dbt }, representation: dh };
  });
}

function gramOf(vectors: Float64Array[]): Float64Array {
  const k = vectors.length;
  const g = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) g[i * k + j] = ref.dot(vectors[i]!, vectors[j]!);
  return g;
}

function combine(vectors: Float64Array[], c: ArrayLike<number>): Float64Array {
  const out = new Float64Array(vectors[0]!.length);
  vectors.forEach((v, k) => v.forEach((x, i) => (out[i]! += c[k]! * x)));
  return out;
}

/** One SGD step (lr 1) of `method` on the whole tiny batch; returns the weights before and after. */
async function oneStep(method: Weighting, data = tinyData(11), prepare?: (m: MultiHead) => void) {
  const model = tinyModel(engine);
  prepare?.(model);
  const before = await weightsOf(model);
  const result = await trainMultiTask(engine, model, new SGD(model, { lr: 1 }), data, { weighting: method, epochs: 1, batchSize: ROWS, logEvery: 1 });
  const after = await weightsOf(model);
  const own = method.module ? Float64Array.from(await method.module.value.data()) : null;
  model.dispose();
  method.dispose();
  return { before, after, result, own };
}

/** The applied update -(after - before) of the shared parameters (SHARED order) and of head `task`. */
function applied(before: Map<string, Float64Array>, after: Map<string, Float64Array>, names: string[]): Float64Array {
  const parts = names.map((n) => before.get(n)!.map((v, i) => v - after.get(n)![i]!));
  const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const TOL = { atol: 2e-6, rtol: 2e-4 };

describe('one step of each method against a float64 reference', () => {
  async function check(method: Weighting, coefficients: (ref: ReturnType<typeof referenceGradients>) => ArrayLike<number>, headScale: (ref: ReturnType<typeof referenceGradients>) => number[] = () => [1, 1]) {
    const name = method.name;
    const { before, after, own } = await oneStep(method);
    const r = referenceGradients(before, tinyData(11));
    const c = coefficients(r);
    expectClose(applied(before, after, SHARED), combine(r.map((t) => t.shared), c), TOL, `${name}: shared update`);
    const scales = headScale(r);
    r.forEach((t, i) => {
      const want = combine([Float64Array.from([...t.head.weight, ...t.head.bias])], [scales[i]!]);
      expectClose(applied(before, after, [`${t.task}.weight`, `${t.task}.bias`]), want, TOL, `${name}: head ${t.task} update`);
    });
    return { r, own };
  }

  test('EW: the sum of the task gradients', () => check(new EqualWeighting(), () => [1, 1]));

  test('PCGrad: conflicting components projected away, in the seeded order', async () => {
    const seed = 4;
    // The reference projects explicit vectors in the order the method draws for step 0.
    await check(new PCGrad({ seed }), (r) => {
      const g = r.map((t) => t.shared);
      expect(ref.dot(g[0]!, g[1]!), 'the tiny tasks conflict').toBeLessThan(0);
      const random = uniformGenerator(seed * 7919);
      const order = [0, 1].map(() => {
        const p = [0, 1];
        for (let i = p.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [p[i], p[j]] = [p[j]!, p[i]!];
        }
        return p;
      });
      const projected = g.map((gi, i) => {
        const v = Float64Array.from(gi);
        for (const j of order[i]!) {
          const d = ref.dot(v, g[j]!);
          if (d < 0) v.forEach((_, n) => (v[n]! -= (d / (ref.dot(g[j]!, g[j]!) + 1e-8)) * g[j]![n]!));
        }
        return v;
      });
      // Coefficients whose combination is the sum of the projected vectors: solve in the basis g.
      const want = combine(projected, [1, 1]);
      const c = pcgradCoefficients(gramOf(g), 2, { random: uniformGenerator(seed * 7919) });
      expectClose(combine(g, c), want, { atol: 1e-12, rtol: 1e-9 }, 'PCGrad reference: explicit projections');
      return c;
    });
  });

  test('MGDA on the parameters: the min-norm point of the two gradients (closed form)', () =>
    check(new MGDA({ space: 'parameters' }), (r) => {
      const [g1, g2] = r.map((t) => t.shared) as [Float64Array, Float64Array];
      const diff = g1.map((v, i) => v - g2[i]!);
      const alpha = Math.min(1, Math.max(0, ref.dot(diff, g2) * -1 / ref.dot(diff, diff)));
      return [alpha, 1 - alpha];
    }));

  test('MGDA-UB: weights from the representation gradients, one trunk backward', async () => {
    const method = new MGDA();
    expect(method.space).toBe('representation');
    await check(method, (r) => {
      const [d1, d2] = r.map((t) => t.representation) as [Float64Array, Float64Array];
      const diff = d1.map((v, i) => v - d2[i]!);
      const alpha = Math.min(1, Math.max(0, -ref.dot(diff, d2) / ref.dot(diff, diff)));
      expectClose(minNormCoefficients(gramOf([d1, d2]), 2).coefficients, [alpha, 1 - alpha], { atol: 1e-12, rtol: 1e-9 }, 'MGDA solver');
      return [alpha, 1 - alpha];
    });
  });

  test('CAGrad: the mean gradient plus the worst-case direction, rescaled', () =>
    check(new CAGrad(), (r) => {
      const g = r.map((t) => t.shared);
      const G = gramOf(g);
      // Grid search of LibMTL's objective over w = (u, 1 - u), then its formula.
      const g0 = Math.sqrt((G[0]! + G[1]! + G[2]! + G[3]!) / 4 + 1e-8);
      const cc = 0.5 * g0 + 1e-8;
      let best = { u: 0, f: Infinity };
      for (let i = 0; i <= 100_000; i++) {
        const u = i / 100_000;
        const w = [u, 1 - u];
        const gw = combine(g, w);
        const f = ref.dot(gw, combine(g, [0.5, 0.5])) + cc * Math.sqrt(ref.dot(gw, gw) + 1e-8);
        if (f < best.f) best = { u, f };
      }
      const gw = combine(g, [best.u, 1 - best.u]);
      const lambda = cc / (Math.sqrt(ref.dot(gw, gw)) + 1e-8);
      const want = [(0.5 + lambda * best.u) / 1.25, (0.5 + lambda * (1 - best.u)) / 1.25];
      expectClose(cagradCoefficients(G, 2).coefficients, want, { atol: 1e-4, rtol: 1e-4 }, 'CAGrad solver against the grid');
      return want;
    }));

  test('GradNorm: equal weights (2 softmax(0)) at the first step', () => check(new GradNorm(), () => [1, 1]));

  test('UW: gradients weighted by 1 / (2 exp(s)) at s = -0.5, and s moves by its own Adam', async () => {
    const method = new UncertaintyWeighting({ lr: 1e-3 });
    const { r, own } = await check(method, () => [0.5 * Math.exp(0.5), 0.5 * Math.exp(0.5)], () => [0.5 * Math.exp(0.5), 0.5 * Math.exp(0.5)]);
    // d/ds_t of L_t / (2 exp(s_t)) + s_t / 2 is 0.5 - 0.5 exp(-s_t) L_t; Adam's first step moves s by lr against its sign.
    const grad = r.map((t) => 0.5 - 0.5 * Math.exp(0.5) * t.loss);
    expectClose(own!, grad.map((g) => -0.5 - 1e-3 * Math.sign(g)), { atol: 1e-7, rtol: 1e-5 }, 'UW: log-variances after one step');
  });

  test('FAMO: weights z / (c L) from the task losses at the first step', async () => {
    await check(new FAMO(), (r) => {
      const q = r.map((t) => 0.5 / (t.loss + 1e-8));
      const c = q[0]! + q[1]!;
      return q.map((v) => v / c);
    }, (r) => {
      const q = r.map((t) => 0.5 / (t.loss + 1e-8));
      const c = q[0]! + q[1]!;
      return q.map((v) => v / c);
    });
  });

  test('RLW: softmax-of-normal weights, recorded as the step\'s weights', async () => {
    const method = new RandomLossWeighting(3);
    const { before, after, result } = await oneStep(method);
    const w = result.weights[0]!.weights;
    expect(w['a']! + w['b']!).toBeCloseTo(1, 6);
    const r = referenceGradients(before, tinyData(11));
    expectClose(applied(before, after, SHARED), combine(r.map((t) => t.shared), [w['a']!, w['b']!]), TOL, 'RLW: shared update');
  });
});

describe('missing labels, absent tasks, frozen trunks', () => {
  test('a row without its label contributes nothing: its value does not change any weight, for every method', async () => {
    for (const name of Object.keys(WEIGHTINGS)) {
      const runs = [];
      for (const missingValue of [0.5, 1e6]) {
        const data = tinyData(11);
        data.tasks['b']!.values[2] = missingValue; // row 2 is unlabelled for b
        data.tasks['b']!.values[5] = -missingValue;
        const { after } = await oneStep(makeWeighting(name), data);
        runs.push(after);
      }
      for (const [n, v] of runs[0]!) expect([...runs[1]!.get(n)!], `${name}: ${n}`).toEqual([...v]);
    }
  });

  test('a task with no labelled row in the batch is left out: MGDA follows the other task alone', async () => {
    const data = tinyData(11, [0, 0, 0, 0, 0, 0, 0, 0]);
    const { before, after, result } = await oneStep(new MGDA({ space: 'parameters' }), data);
    const r = referenceGradients(before, { ...data, tasks: { a: data.tasks['a']!, b: { ...data.tasks['b']!, mask: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1]) } } });
    expectClose(applied(before, after, SHARED), r[0]!.shared, TOL, 'shared update = task a gradient');
    expect(applied(before, after, ['b.weight', 'b.bias']).every((v) => v === 0)).toBe(true);
    expect(result.history[0]!.losses['b']).toBe(0);
    expect(result.weights[0]!.weights).toEqual({ a: 1, b: 0 });
  });

  test('a frozen trunk stays bit-identical while the heads train, whatever the method', async () => {
    for (const name of ['EW', 'UW', 'FAMO', 'PCGrad', 'MGDA', 'GradNorm']) {
      const model = tinyModel(engine);
      model.freeze('trunk');
      const before = await weightsOf(model);
      await trainMultiTask(engine, model, new Adam(model, { lr: 1e-2 }), tinyData(12), { weighting: makeWeighting(name), epochs: 3, batchSize: 4, logEvery: 2 });
      const after = await weightsOf(model);
      for (const n of SHARED) expect([...after.get(n)!], `${name}: ${n}`).toEqual([...before.get(n)!]);
      expect(after.get('a.weight')!.some((v, i) => v !== before.get('a.weight')![i]), `${name}: head a trains`).toBe(true);
      model.dispose();
    }
  });
});

test('training with any method or architecture and disposing model, optimizer and method leaves no GPU buffer in use', async () => {
  // The engine's own small buffers (the placeholder binding) are made on first use: once, before counting.
  await oneStep(new EqualWeighting());
  const architectures: Record<string, () => MultiHead> = {
    hard: () => tinyModel(engine),
    'cross-stitch': () =>
      new MultiHead(new CrossStitch(engine, { tasks: ['a', 'b'], column: () => [new Dense(engine, IN, HIDDEN)] }), { a: new Dense(engine, HIDDEN, CLASSES), b: new Dense(engine, HIDDEN, 1) }),
    mmoe: () =>
      new MultiHead(new MMoE(engine, { tasks: ['a', 'b'], experts: 2, inputFeatures: IN, expert: () => new Dense(engine, IN, HIDDEN) }), { a: new Dense(engine, HIDDEN, CLASSES), b: new Dense(engine, HIDDEN, 1) }),
  };
  const runs = [...Object.keys(WEIGHTINGS).map((m) => ['hard', m]), ['cross-stitch', 'UW'], ['mmoe', 'PCGrad']] as const;
  for (const [arch, name] of runs) {
    const held = engine.memory().inUseBytes;
    const model = architectures[arch]!();
    const optimizer = new Adam(model, { lr: 1e-2 });
    const method = makeWeighting(name);
    await trainMultiTask(engine, model, optimizer, tinyData(17), { weighting: method, epochs: 2, batchSize: 4, logEvery: 1, conflictEvery: 1 });
    optimizer.dispose();
    method.dispose();
    model.dispose();
    expect(engine.memory().inUseBytes, `${arch} ${name}`).toBe(held);
  }
});

test('trainMultiTask, makeWeighting and deltaM refuse bad arguments, naming them, before training', async () => {
  const model = tinyModel(engine);
  const optimizer = new Adam(model, { lr: 1e-2 });
  const before = await weightsOf(model);
  const held = engine.memory().inUseBytes;
  const run = (options: Partial<Parameters<typeof trainMultiTask>[4]>, data = tinyData(18)) =>
    trainMultiTask(engine, model, optimizer, data, { weighting: new EqualWeighting(), epochs: 1, batchSize: 4, ...options });
  await expect(run({ tasks: ['a', 'c'] })).rejects.toThrow(/no head named "c"/);
  const { b: _, ...onlyA } = tinyData(18).tasks;
  await expect(run({}, { ...tinyData(18), tasks: onlyA })).rejects.toThrow(/trainMultiTask: the data has no task "b"/);
  await expect(run({ conflictEvery: -1 })).rejects.toThrow(/conflictEvery must be an integer >= 0, got -1/);
  await expect(run({ conflictEvery: 1.5 })).rejects.toThrow(/conflictEvery must be an integer >= 0, got 1.5/);
  const badLabels = tinyData(18);
  badLabels.tasks['a']!.values[3] = 7;
  await expect(run({}, badLabels)).rejects.toThrow(/task a label 7 at row 3 is not in 0..2/);
  const nanTarget = tinyData(18);
  nanTarget.tasks['b']!.values[0] = Number.NaN;
  await expect(run({}, nanTarget)).rejects.toThrow(/task b target NaN at row 0 is not finite/);
  const short = tinyData(18);
  short.tasks['b']!.mask = Uint8Array.of(1, 1);
  await expect(run({}, short)).rejects.toThrow(/task b has a mask of 2 rows for 8 rows/);
  expect(engine.memory().inUseBytes, 'nothing left allocated').toBe(held);
  const after = await weightsOf(model);
  for (const [n, v] of before) expect([...after.get(n)!], n).toEqual([...v]);
  expect(() => makeWeighting('Nash-MTL')).toThrow(/unknown method "Nash-MTL" \(methods: EW, UW, DWA, RLW, FAMO, GradNorm, MGDA, PCGrad, CAGrad\)/);
  expect(() => deltaM({ a: 0.5 }, { a: 0.6, b: 0.7 })).toThrow(/no score for task b/);
  expect(() => deltaM({ a: 0.5 }, { a: 0 })).toThrow(/baseline of task a is 0/);
  optimizer.dispose();
  model.dispose();
});

describe('methods over several steps', () => {
  test('DWA: weights 1 for two epochs, then T softmax(loss ratio / 2) from the epoch means', async () => {
    const model = tinyModel(engine);
    const method = new DynamicWeightAverage();
    const epochs: number[][] = [];
    await trainMultiTask(engine, model, new Adam(model, { lr: 1e-2 }), tinyData(13), {
      weighting: method,
      epochs: 3,
      batchSize: 4,
      logEvery: 2,
      onEpoch: async () => {
        epochs.push([...method.lastWeights()]);
      },
    });
    expect(epochs[0]).toEqual([1, 1]);
    expect(epochs[1]).toEqual([1, 1]);
    const w = epochs[2]!;
    expect(w[0]! + w[1]!).toBeCloseTo(2, 6);
    expect(w[0]).not.toBeCloseTo(1, 4);
    model.dispose();
  });

  test('FAMO: after a step, its logits move by Adam along the softmax Jacobian times the decrease of log L on the same batch', async () => {
    for (const updateBatch of ['same', 'next'] as const) {
      const model = tinyModel(engine);
      const before = await weightsOf(model);
      const method = new FAMO({ updateBatch });
      // Two steps on the same full batch: the update happens at the start of the second.
      await trainMultiTask(engine, model, new SGD(model, { lr: 0.1 }), tinyData(11), { weighting: method, epochs: 2, batchSize: ROWS, logEvery: 1 });
      const logits = await method.module!.value.data();
      // The losses before and after the first step, by the float64 reference (the weights after
      // step 1 are what SGD made of the reference's combined gradient).
      const r0 = referenceGradients(before, tinyData(11));
      const q = r0.map((t) => 0.5 / (t.loss + 1e-8));
      const w = q.map((v) => v / (q[0]! + q[1]!));
      const mid = new Map([...before].map(([n, v]) => [n, Float64Array.from(v)]));
      const shared = combine(r0.map((t) => t.shared), w);
      SHARED.forEach((n, k) => mid.get(n)!.forEach((_, i) => (mid.get(n)![i]! -= 0.1 * shared[k === 0 ? i : HIDDEN * IN + i]!)));
      r0.forEach((t, k) => {
        mid.get(`${t.task}.weight`)!.forEach((_, i) => (mid.get(`${t.task}.weight`)![i]! -= 0.1 * w[k]! * t.head.weight[i]!));
        mid.get(`${t.task}.bias`)!.forEach((_, i) => (mid.get(`${t.task}.bias`)![i]! -= 0.1 * w[k]! * t.head.bias[i]!));
      });
      const r1 = referenceGradients(mid, tinyData(11));
      const delta = r0.map((t, k) => Math.log(t.loss + 1e-8) - Math.log(r1[k]!.loss + 1e-8));
      // d = J^T delta with J the softmax Jacobian at 0: 0.25 (delta0 - delta1) (1, -1); Adam's first step is lr sign(d).
      const sign = Math.sign(delta[0]! - delta[1]!);
      expect(sign, updateBatch).not.toBe(0);
      expectClose(logits, [-0.025 * sign, 0.025 * sign], { atol: 1e-6, rtol: 1e-4 }, `FAMO (${updateBatch} batch) logits after one update`);
      method.dispose();
      model.dispose();
    }
  });

  test('GradNorm: the second step\'s weights are 2 softmax of the logits after one Adam step down the float64 gradient of L_grad', async () => {
    const model = tinyModel(engine);
    const before = await weightsOf(model);
    const result = await trainMultiTask(engine, model, new SGD(model, { lr: 0.1 }), tinyData(11), { weighting: new GradNorm({ lr: 0.01 }), epochs: 2, batchSize: ROWS, logEvery: 1 });
    const r = referenceGradients(before, tinyData(11));
    const norms = r.map((t) => Math.sqrt(ref.dot(t.shared, t.shared)));
    // Step 1: w = (1, 1), r_t = 1, target = mean norm; dL/dw_t = sign(n_t - mean) n_t; dw/dlogits = [[.5, -.5], [-.5, .5]].
    const mean = (norms[0]! + norms[1]!) / 2;
    const dw = norms.map((n) => Math.sign(n - mean) * n);
    const dlogit0 = 0.5 * (dw[0]! - dw[1]!);
    const logit0 = -0.01 * Math.sign(dlogit0); // Adam's first step
    const e0 = Math.exp(logit0);
    const e1 = Math.exp(-logit0);
    expect(result.weights[0]!.weights).toEqual({ a: 1, b: 1 });
    expectClose([result.weights[1]!.weights['a']!, result.weights[1]!.weights['b']!], [(2 * e0) / (e0 + e1), (2 * e1) / (e0 + e1)], { atol: 1e-9, rtol: 1e-9 }, 'GradNorm weights at step 2');
    model.dispose();
  });

  test('GradNorm moves its weights toward the slower task and keeps their sum at T', async () => {
    const model = tinyModel(engine);
    const method = new GradNorm({ lr: 0.05 });
    const result = await trainMultiTask(engine, model, new Adam(model, { lr: 1e-2 }), tinyData(14), { weighting: method, epochs: 6, batchSize: 4, logEvery: 1 });
    const last = result.weights.at(-1)!.weights;
    expect(last['a']! + last['b']!).toBeCloseTo(2, 6);
    expect(last['a']).not.toBeCloseTo(1, 3);
    model.dispose();
  });

  test('gradient conflict is measured on the trunk for loss- and gradient-based methods alike', async () => {
    for (const name of ['EW', 'PCGrad', 'MGDA']) {
      const model = tinyModel(engine);
      const result = await trainMultiTask(engine, model, new Adam(model, { lr: 1e-2 }), tinyData(15), { weighting: makeWeighting(name), epochs: 2, batchSize: 4, logEvery: 2, conflictEvery: 1 });
      expect(result.conflicts.length, name).toBe(4);
      for (const c of result.conflicts) {
        expect(c.cosine['a/b']!, name).toBeGreaterThanOrEqual(-1);
        expect(c.cosine['a/b']!, name).toBeLessThanOrEqual(1);
      }
      model.dispose();
    }
    // The first measurement equals the float64 cosine of the reference gradients.
    const model = tinyModel(engine);
    const before = await weightsOf(model);
    const result = await trainMultiTask(engine, model, new SGD(model, { lr: 1 }), tinyData(11), { weighting: new EqualWeighting(), epochs: 1, batchSize: ROWS, conflictEvery: 1 });
    const [g1, g2] = referenceGradients(before, tinyData(11)).map((t) => t.shared) as [Float64Array, Float64Array];
    expect(result.conflicts[0]!.cosine['a/b']).toBeCloseTo(ref.dot(g1, g2) / Math.sqrt(ref.dot(g1, g1) * ref.dot(g2, g2)), 4);
    model.dispose();
  });

  test('the representation-gradient methods refuse a trunk that gives one representation per task', async () => {
    const model = new MultiHead(new CrossStitch(engine, { tasks: ['a', 'b'], column: () => [new Dense(engine, IN, HIDDEN)] }), { a: new Dense(engine, HIDDEN, CLASSES), b: new Dense(engine, HIDDEN, 1) });
    await expect(trainMultiTask(engine, model, new Adam(model, { lr: 1e-2 }), tinyData(16), { weighting: new MGDA(), epochs: 1, batchSize: 4 })).rejects.toThrow(/representation.*one per task.*parameters/);
    // On the parameters it trains.
    await trainMultiTask(engine, model, new Adam(model, { lr: 1e-2 }), tinyData(16), { weighting: new MGDA({ space: 'parameters' }), epochs: 1, batchSize: 4 });
    model.dispose();
  });
});

async function fetchBytes(file: string): Promise<Uint8Array> {
  const response = await fetch(`/tests/data/fashion-mnist/${file}`);
  if (!response.ok) throw new Error(`fetch ${file}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function fashionModel(): MultiHead {
  return new MultiHead(new Sequential({ fc1: new Dense(engine, 784, 128, { seed: 1 }), relu1: ReLU(), fc2: new Dense(engine, 128, 64, { seed: 3 }), relu2: ReLU() }), {
    left: new Dense(engine, 64, 10, { seed: 5 }),
    right: new Dense(engine, 64, 10, { seed: 7 }),
    ink: new Dense(engine, 64, 1, { seed: 9 }),
  });
}

async function fashionComposites() {
  const [trainSet, testSet] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  return { train: multiFashion(trainSet, 3000, { seed: 1 }), test: multiFashion(testSet, 1000, { seed: 2 }) };
}

test('a shared model learns both items of Multi-Fashion (and the ink of the top-left one)', async () => {
  const { train, test } = await fashionComposites();
  const model = fashionModel();
  const result = await trainMultiTask(engine, model, new Adam(model, { lr: 2e-3 }), train, { weighting: new EqualWeighting(), epochs: 4, batchSize: 50, logEvery: 20 });
  const scores = await evaluateMultiTask(engine, model, test);
  console.log(`multi-fashion subset: left ${scores['left']!.score.toFixed(3)}, right ${scores['right']!.score.toFixed(3)}, ink R² ${scores['ink']!.score.toFixed(3)}; ${result.samplesPerSecond.toFixed(0)} samples/s`);
  expect(scores['left']!.score).toBeGreaterThan(0.55); // chance 0.1
  expect(scores['right']!.score).toBeGreaterThan(0.5);
  expect(scores['ink']!.score).toBeGreaterThan(0.3); // R²: 0 is predicting the mean
  model.dispose();
});

test('very unequal data: a task labelled on 5% of the rows still learns, from its own rows only', async () => {
  const { train, test } = await fashionComposites();
  const sparse = dropLabels(train, 'right', 0.05, { seed: 4 });
  expect(taskCounts(sparse)).toEqual({ left: 3000, right: 150, ink: 3000 });
  const model = fashionModel();
  const result = await trainMultiTask(engine, model, new Adam(model, { lr: 2e-3 }), sparse, { weighting: new PCGrad(), epochs: 4, batchSize: 50, logEvery: 20 });
  const scores = await evaluateMultiTask(engine, model, test);
  console.log(`right labelled on 5%: left ${scores['left']!.score.toFixed(3)}, right ${scores['right']!.score.toFixed(3)}, ink R² ${scores['ink']!.score.toFixed(3)}`);
  expect(scores['right']!.score).toBeGreaterThan(0.2); // chance 0.1
  expect(scores['left']!.score).toBeGreaterThan(0.55);
  expect(result.history.every((h) => Number.isFinite(h.losses['right']!))).toBe(true);
  model.dispose();
});
