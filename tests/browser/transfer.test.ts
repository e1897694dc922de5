// Transfer learning, fine-tuning and distillation as paradigms, on the committed Fashion-MNIST
// subset: a small CNN base trained on classes 0-4, the target task classes 5-9. "Unchanged"
// means bit-identical (values compared with Object.is on the read-back floats).
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  backward,
  BatchNorm,
  classSplit,
  Conv2d,
  Dense,
  discriminativeGroups,
  distill,
  Engine,
  evaluate,
  extractFeatures,
  finetune,
  fit,
  fitHead,
  Flatten,
  GradualUnfreezing,
  layerGroups,
  loadFashionMnist,
  loadWeights,
  MaxPool2d,
  oneHot,
  outputs,
  ReLU,
  Reshape,
  saveWeights,
  selectGroups,
  Sequential,
  softmaxCrossEntropy,
  transfer,
  type ClassificationData,
  type Tensor,
} from '../../src/index.js';

const PIXELS = 784;
let engine: Engine;
let source: ClassificationData;
let target: ClassificationData;
let targetTest: ClassificationData;
let baseWeights: Uint8Array;

async function fetchBytes(file: string): Promise<Uint8Array> {
  const response = await fetch(`/tests/data/fashion-mnist/${file}`);
  if (!response.ok) throw new Error(`fetch ${file}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function cnn(classes: number, seed = 1): Sequential {
  const model = new Sequential({
    image: new Reshape([1, 28, 28]),
    conv1: new Conv2d(engine, 1, 4, 5, { padding: 2, bias: false, seed }),
    bn1: new BatchNorm(engine, 4),
    relu1: ReLU(),
    pool1: new MaxPool2d(2),
    conv2: new Conv2d(engine, 4, 8, 5, { padding: 2, bias: false, seed: seed + 2 }),
    bn2: new BatchNorm(engine, 8),
    relu2: ReLU(),
    pool2: new MaxPool2d(2),
    flatten: new Flatten(),
    fc1: new Dense(engine, 8 * 7 * 7, 32, { seed: seed + 4 }),
    relu3: ReLU(),
    fc2: new Dense(engine, 32, classes, { seed: seed + 6 }),
  });
  model.parameters(); // names the parameters
  return model;
}

/** A copy of the trained base cut after `relu3`, with a new 5-way head. */
function transferModel(seed = 7, batchNorm: 'inference' | 'update' = 'inference') {
  const copy = cnn(5);
  loadWeights(copy, baseWeights);
  copy.get('fc2').dispose();
  return transfer(copy, { cutAfter: 'relu3', head: { head: new Dense(engine, 32, 5, { seed }) }, batchNorm });
}

async function snapshot(ts: Iterable<Tensor>): Promise<Float32Array[]> {
  return Promise.all([...ts].map((t) => t.data()));
}

function identical(a: Float32Array[], b: Float32Array[]): boolean {
  return a.length === b.length && a.every((x, i) => x.length === b[i]!.length && x.every((v, j) => Object.is(v, b[i]![j])));
}

beforeAll(async () => {
  engine = await Engine.create();
  const [train, test] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  const all = (s: typeof train): ClassificationData => ({ inputs: s.images, labels: s.labels, count: s.count, features: PIXELS, classes: 10 });
  source = classSplit(all(train), [0, 1, 2, 3, 4]).data;
  target = classSplit(all(train), [5, 6, 7, 8, 9], { perClass: 20, seed: 1 }).data;
  targetTest = classSplit(all(test), [5, 6, 7, 8, 9]).data;
  const base = cnn(5);
  const optimizer = new Adam(base.parameters(), { lr: 3e-3 });
  await fit(engine, base, optimizer, source, { epochs: 1, batchSize: 50, seed: 1 });
  baseWeights = await saveWeights(base);
  optimizer.dispose();
  base.dispose();
});

describe('classSplit', () => {
  test('keeps the chosen classes, renumbers them, and draws perClass rows of each', () => {
    expect(source.count).toBe(1500);
    expect(source.classes).toBe(5);
    expect(target.count).toBe(100);
    const perClass = [0, 0, 0, 0, 0];
    for (let i = 0; i < target.count; i++) perClass[target.labels[i]!]!++;
    expect(perClass).toEqual([20, 20, 20, 20, 20]);
  });

  test('the labelled rows and the rest partition the classes, and other seeds draw other rows', async () => {
    const [train] = await Promise.all([loadFashionMnist(fetchBytes, 'train')]);
    const all: ClassificationData = { inputs: train.images, labels: train.labels, count: train.count, features: PIXELS, classes: 10 };
    const a = classSplit(all, [8, 3], { perClass: 5, seed: 1 });
    const b = classSplit(all, [8, 3], { perClass: 5, seed: 2 });
    expect(a.data.count + a.rest.count).toBe(600);
    // Class 8 is label 0, class 3 is label 1; the rows are the original images.
    const row = (d: ClassificationData, r: number) => d.inputs.subarray(r * PIXELS, (r + 1) * PIXELS);
    const original = (img: Float32Array) => {
      for (let i = 0; i < train.count; i++) if (train.images.subarray(i * PIXELS, (i + 1) * PIXELS).every((v, j) => v === img[j])) return i;
      return -1;
    };
    for (let r = 0; r < a.data.count; r++) expect(train.labels[original(row(a.data, r))]).toBe([8, 3][a.data.labels[r]!]);
    expect(Array.from(a.data.inputs)).not.toEqual(Array.from(b.data.inputs));
    expect(() => classSplit(all, [1, 1])).toThrow(/distinct/);
    expect(() => classSplit(all, [1, 12])).toThrow(/0\.\.9/);
    expect(() => classSplit(all, [1, 2], { perClass: 301 })).toThrow(/301 examples per class asked, class 1 has 300/);
  });
});

describe('transfer', () => {
  test('the frozen base is bit-identical after training the head, and the head learns', async () => {
    const tm = transferModel();
    expect([...tm.base.parameters().values()].every((p) => p.frozen)).toBe(true);
    expect([...tm.model.trainableParameters().keys()]).toEqual(['head.weight', 'head.bias']);
    const frozen = [...tm.base.parameters().values(), ...tm.base.buffers().values()];
    const before = await snapshot(frozen);
    const headBefore = await snapshot(tm.head.parameters().values());
    const accBefore = (await evaluate(engine, tm.model, targetTest)).accuracy;
    const optimizer = new Adam(tm.head.parameters(), { lr: 1e-2 });
    await fitHead(engine, tm, optimizer, target, { epochs: 15, batchSize: 20, seed: 3 });
    expect(identical(await snapshot(frozen), before)).toBe(true);
    expect(identical(await snapshot(tm.head.parameters().values()), headBefore)).toBe(false);
    const accAfter = (await evaluate(engine, tm.model, targetTest)).accuracy;
    console.log(`transfer head on 100 target images: ${accBefore} -> ${accAfter}`);
    expect(accAfter).toBeGreaterThan(Math.max(0.5, accBefore + 0.2));
    optimizer.dispose();
    tm.model.dispose();
  });

  test('a training step of the transfer model runs no backward kernel below the head', async () => {
    const tm = transferModel();
    const optimizer = new Adam(tm.head.parameters(), { lr: 1e-2 });
    const x = target.inputs.subarray(0, 10 * PIXELS);
    const t = oneHot(Array.from(target.labels).slice(0, 10), 5);
    const kernels = await engine.scope(async () => {
      const { dispatches } = engine.traceDispatches(() => {
        backward(softmaxCrossEntropy(tm.model.forward(engine.tensor(x, [10, PIXELS])), engine.tensor(t, [10, 5])));
        optimizer.step();
      });
      await engine.flush();
      return dispatches.map((d) => d.kernel);
    });
    expect(kernels.some((k) => /^matmul(_\w+)?$/.test(k))).toBe(true);
    expect(kernels.filter((k) => /col2im|pool2d_backward|batchnorm.*backward/.test(k))).toEqual([]);
    // A conv's input or weight gradient would run its product again: conv2d runs for the forward only.
    const forwardProducts = await engine.scope(() => engine.traceDispatches(() => tm.model.forward(engine.tensor(x, [10, PIXELS]))).dispatches.filter((d) => d.kernel === 'conv2d').length);
    expect(forwardProducts).toBeGreaterThan(0);
    expect(kernels.filter((k) => k === 'conv2d').length).toBe(forwardProducts);
    optimizer.dispose();
    tm.model.dispose();
  });

  test('training the head on cached features gives the same head as training through the frozen base', async () => {
    const through = transferModel();
    const cached = transferModel();
    const features = await extractFeatures(engine, cached.base, target);
    expect(features.features).toBe(32);
    expect(features.count).toBe(100);
    const options = { epochs: 4, batchSize: 20, seed: 5 };
    const o1 = new Adam(through.head.parameters(), { lr: 1e-2 });
    const o2 = new Adam(cached.head.parameters(), { lr: 1e-2 });
    await fitHead(engine, through, o1, target, options);
    const r = await fitHead(engine, cached, o2, target, { ...options, cacheFeatures: true });
    expect(r.featureSeconds).toBeGreaterThan(0);
    const [a, b] = [await snapshot(through.head.parameters().values()), await snapshot(cached.head.parameters().values())];
    for (let i = 0; i < a.length; i++) for (let j = 0; j < a[i]!.length; j++) expect(Math.abs(a[i]![j]! - b[i]![j]!)).toBeLessThan(1e-5);
    for (const o of [o1, o2]) o.dispose();
    for (const m of [through, cached]) m.model.dispose();
  });

  test("the BatchNorm policy: 'inference' keeps the running statistics, 'update' re-estimates them (and cannot cache features)", async () => {
    const keep = transferModel(7, 'inference');
    const update = transferModel(7, 'update');
    const stats = (tm: typeof keep) => snapshot((tm.model.get('bn2') as BatchNorm).buffers().values());
    const [keepBefore, updateBefore] = [await stats(keep), await stats(update)];
    for (const tm of [keep, update]) {
      const o = new Adam(tm.head.parameters(), { lr: 1e-2 });
      await fitHead(engine, tm, o, target, { epochs: 1, batchSize: 20, seed: 1 });
      o.dispose();
    }
    expect(identical(await stats(keep), keepBefore)).toBe(true);
    expect(identical(await stats(update), updateBefore)).toBe(false);
    const o = new Adam(update.head.parameters(), { lr: 1e-2 });
    await expect(fitHead(engine, update, o, target, { epochs: 1, batchSize: 20, cacheFeatures: true })).rejects.toThrow(/cannot cache features.*bn1, bn2/);
    o.dispose();
    keep.model.dispose();
    update.model.dispose();
  });

  test('bad cuts and head names are reported', () => {
    const model = cnn(5);
    expect(() => transfer(model, { cutAfter: 'nope', head: { head: new Dense(engine, 32, 5) } })).toThrow(/no layer named "nope"/);
    expect(() => transfer(model, { cutAfter: 'relu3', head: { fc1: new Dense(engine, 32, 5) } })).toThrow(/head layer names fc1 are already used/);
    model.dispose();
  });
});

describe('fine-tuning', () => {
  test('layer groups join BatchNorm to the layer below; selection by depth and by name', () => {
    const tm = transferModel();
    expect(layerGroups(tm.model)).toEqual([['conv1', 'bn1'], ['conv2', 'bn2'], ['fc1'], ['head']]);
    expect(selectGroups(tm.model, 2)).toEqual([['fc1'], ['head']]);
    expect(selectGroups(tm.model, ['bn1', 'head'])).toEqual([['conv1', 'bn1'], ['head']]);
    expect(() => selectGroups(tm.model, 5)).toThrow(/depth 5 must be an integer in 1\.\.4/);
    expect(() => selectGroups(tm.model, ['relu1'])).toThrow(/"relu1" is not a layer with parameters/);
    tm.model.dispose();
  });

  test('discriminative rates divide by 2.6 per group below the top', () => {
    const tm = transferModel();
    const groups = discriminativeGroups(tm.model, layerGroups(tm.model), { lr: 1e-2 });
    expect(groups.map((g) => g.name)).toEqual(['conv1+bn1', 'conv2+bn2', 'fc1', 'head']);
    const rates = groups.map((g) => g.lr!);
    [1e-2 / 2.6 ** 3, 1e-2 / 2.6 ** 2, 1e-2 / 2.6, 1e-2].forEach((r, i) => expect(rates[i]).toBeCloseTo(r, 12));
    expect([...groups[0]!.params].map((p) => p.name)).toEqual(['conv1.weight', 'bn1.weight', 'bn1.bias']);
    tm.model.dispose();
  });

  test('a group with learning rate zero stays bit-identical while the others train', async () => {
    const tm = transferModel();
    tm.model.unfreeze();
    const groups = discriminativeGroups(tm.model, layerGroups(tm.model), { lr: 1e-2 });
    groups[1]!.lr = 0; // conv2 + bn2
    const zero = [...groups[1]!.params];
    const others = groups.filter((_, i) => i !== 1).flatMap((g) => [...g.params]);
    const [zeroBefore, othersBefore] = [await snapshot(zero), await snapshot(others)];
    const optimizer = new Adam(groups, { lr: 1e-2 });
    await fit(engine, tm.model, optimizer, target, { epochs: 2, batchSize: 20, seed: 2 });
    expect(identical(await snapshot(zero), zeroBefore)).toBe(true);
    const after = await snapshot(others);
    othersBefore.forEach((b, i) => expect(identical([after[i]!], [b]), `${others[i]!.name} trained`).toBe(false));
    optimizer.dispose();
    tm.model.dispose();
  });

  test('gradual unfreezing unfreezes one group per epoch, top down, and frozen groups stay bit-identical until then', async () => {
    const tm = transferModel();
    const unfreezing = new GradualUnfreezing(tm.model, layerGroups(tm.model));
    expect(unfreezing.order).toEqual([['head'], ['fc1'], ['conv2', 'bn2'], ['conv1', 'bn1']]);
    const trainedPerEpoch: string[][][] = [];
    const conv1Before = await snapshot(tm.model.select('conv1'));
    const conv1AfterEpoch: boolean[] = [];
    const result = await finetune(engine, tm.model, target, {
      lr: 5e-3,
      gradual: true,
      warmup: 2,
      epochs: 5,
      batchSize: 20,
      seed: 4,
      onEpoch: async (_, trained) => {
        trainedPerEpoch.push(trained);
        conv1AfterEpoch.push(identical(await snapshot(tm.model.select('conv1')), conv1Before));
      },
    });
    expect(trainedPerEpoch).toEqual([
      [['head']],
      [['head'], ['fc1']],
      [['head'], ['fc1'], ['conv2', 'bn2']],
      [['head'], ['fc1'], ['conv2', 'bn2'], ['conv1', 'bn1']],
      [['head'], ['fc1'], ['conv2', 'bn2'], ['conv1', 'bn1']],
    ]);
    // conv1 is unfrozen for the fourth epoch: unchanged after epochs 1-3, changed after it.
    expect(conv1AfterEpoch).toEqual([true, true, true, false, false]);
    expect(result.optimizer.groups.map((g) => g.lr)).toEqual([5e-3 / 2.6 ** 3, 5e-3 / 2.6 ** 2, 5e-3 / 2.6, 5e-3]);
    result.optimizer.dispose();
    tm.model.dispose();
  });

  test("BatchNorm while fine-tuning: 'inference' keeps the running statistics as gamma trains, 'update' re-estimates them", async () => {
    for (const policy of ['inference', 'update'] as const) {
      const tm = transferModel();
      const bn = tm.model.get('bn1') as BatchNorm;
      const [stats, gamma] = [await snapshot(bn.buffers().values()), await snapshot([bn.weight])];
      const result = await finetune(engine, tm.model, target, { lr: 5e-3, epochs: 1, batchSize: 20, batchNorm: policy });
      expect(identical(await snapshot([bn.weight]), gamma), `${policy}: gamma trains`).toBe(false);
      expect(identical(await snapshot(bn.buffers().values()), stats), `${policy}: running statistics kept`).toBe(policy === 'inference');
      expect(bn.fixedStatistics, "the layer's own setting is back afterwards").toBe(false);
      result.optimizer.dispose();
      tm.model.dispose();
    }
  });

  test('fine-tuning the top layers only leaves the rest frozen', async () => {
    const tm = transferModel();
    const below = [...tm.model.select('conv1'), ...tm.model.select('bn1'), ...tm.model.select('conv2'), ...tm.model.select('bn2')];
    const before = await snapshot(below);
    const result = await finetune(engine, tm.model, target, { lr: 5e-3, layers: 2, epochs: 2, batchSize: 20 });
    expect(identical(await snapshot(below), before)).toBe(true);
    expect([...tm.model.trainableParameters().keys()]).toEqual(['fc1.weight', 'fc1.bias', 'head.weight', 'head.bias']);
    result.optimizer.dispose();
    tm.model.dispose();
  });
});

describe('distillation', () => {
  test('a student distilled from a teacher alone (alpha 1, unlabelled rows) learns to agree with it', async () => {
    const teacher = transferModel();
    const o = new Adam(teacher.head.parameters(), { lr: 1e-2 });
    await fitHead(engine, teacher, o, target, { epochs: 15, batchSize: 20, seed: 3, cacheFeatures: true });
    o.dispose();
    const student = new Sequential({ fc1: new Dense(engine, PIXELS, 16, { seed: 9 }), relu: ReLU(), fc2: new Dense(engine, 16, 5, { seed: 10 }) });
    // No labels at all: the first labelled row is kept (distill needs a data set), alpha 1 ignores it.
    const labelled: ClassificationData = { ...target, inputs: target.inputs.subarray(0, PIXELS), labels: [target.labels[0]!], count: 1 };
    const unlabelled = targetTest.inputs.subarray(0, 400 * PIXELS);
    const agreement = async () => {
      const [t, s] = await Promise.all([outputs(engine, teacher.model, unlabelled, PIXELS), outputs(engine, student, unlabelled, PIXELS)]);
      let same = 0;
      const argmax = (v: Float32Array, r: number) => [...v.subarray(r * 5, r * 5 + 5)].reduce((b, x, i, a) => (x > a[b]! ? i : b), 0);
      for (let r = 0; r < 400; r++) if (argmax(t.values, r) === argmax(s.values, r)) same++;
      return same / 400;
    };
    const before = await agreement();
    const so = new Adam(student.parameters(), { lr: 3e-3 });
    const result = await distill(engine, teacher.model, student, so, labelled, { unlabelled, alpha: 1, temperature: 2, epochs: 15, batchSize: 40, seed: 1, logEvery: 5 });
    const after = await agreement();
    console.log(`distillation: student agrees with the teacher on ${before} -> ${after} of 400 images`);
    expect(result.teacherSeconds).toBeGreaterThan(0);
    expect(result.losses.at(-1)!.loss).toBeLessThan(result.losses[0]!.loss);
    expect(after).toBeGreaterThan(Math.max(0.75, before + 0.3));
    so.dispose();
    student.dispose();
    teacher.model.dispose();
  });

  test('bad inputs are reported', async () => {
    const student = new Sequential({ fc: new Dense(engine, PIXELS, 3) });
    const teacher = new Sequential({ fc: new Dense(engine, PIXELS, 5) });
    const so = new Adam(student.parameters(), { lr: 1e-3 });
    await expect(distill(engine, teacher, student, so, target, { epochs: 1, batchSize: 20, unlabelled: new Float32Array(10) })).rejects.toThrow(/10 unlabelled values are not rows of 784/);
    const teacher3 = new Sequential({ fc: new Dense(engine, PIXELS, 3) });
    await expect(distill(engine, teacher3, student, so, target, { epochs: 1, batchSize: 20 })).rejects.toThrow(/teacher gives 3 outputs per row for 5 classes/);
    so.dispose();
    for (const m of [student, teacher, teacher3]) m.dispose();
  });
});
