// A tiny data-efficiency sweep with real training: the pretrained MNIST base transferred to three
// Fashion-MNIST classes of the committed subset, against the same CNN from scratch, at 1 and 5
// labels per class over 2 seeds. The curve's means and spreads are checked against a float64
// computation from the per-run accuracies written out here.
import { beforeAll, expect, test } from 'vitest';
import {
  Adam,
  buildModel,
  classSplit,
  Dense,
  efficiencyCurve,
  Engine,
  evaluate,
  fit,
  fitHead,
  loadFashionMnist,
  loadPretrained,
  stepBudget,
  transfer,
  type ClassificationData,
} from '../../src/index.js';

const CLASSES = [1, 7, 8]; // trouser, sneaker, bag
let engine: Engine;
let base: Uint8Array;
let train: ClassificationData;
let test_: ClassificationData;

async function fetchBytes(path: string): Promise<Uint8Array> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`fetch ${path}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

beforeAll(async () => {
  engine = await Engine.create();
  base = await fetchBytes('/models/mnist-cnn.safetensors');
  const [tr, te] = await Promise.all(['train', 'test'].map((s) => loadFashionMnist((f) => fetchBytes(`/tests/data/fashion-mnist/${f}`), s as 'train' | 'test')));
  const all = (s: typeof tr): ClassificationData => ({ inputs: s!.images, labels: s!.labels, count: s!.count, features: 784, classes: 10 });
  train = classSplit(all(tr!), CLASSES).data;
  test_ = classSplit(all(te!), CLASSES, { perClass: 50, seed: 1 }).data;
});

test('a tiny sweep of scratch and transfer: every cell runs, and the curve is the mean and spread of its runs', async () => {
  const prepared: string[] = [];
  const { runs, curve } = await efficiencyCurve({
    labelsPerClass: [1, 5],
    seeds: [1, 2],
    prepare: (point, seed) => {
      prepared.push(`${point}/${seed}`);
      return stepBudget(classSplit(train, [0, 1, 2], { perClass: point as number, seed }).data, 10, 10, seed);
    },
    methods: {
      scratch: async (task, _, seed) => {
        const { info } = loadPretrained(engine, base);
        const model = buildModel(engine, [...info.architecture.slice(0, -1), { name: 'fc2', type: 'dense', in: 128, out: 3, bias: true }], { seed: 10 + seed });
        const opt = new Adam(model.parameters(), { lr: 2e-3 });
        const r = await fit(engine, model, opt, task.data, { epochs: task.epochs, batchSize: task.batchSize, seed });
        const { accuracy } = await evaluate(engine, model, test_);
        opt.dispose();
        model.dispose();
        return { accuracy, seconds: r.seconds };
      },
      transfer: async (task, _, seed) => {
        const { model } = loadPretrained(engine, base);
        model.get('fc2').dispose();
        const tm = transfer(model, { cutAfter: 'relu3', head: { head: new Dense(engine, 128, 3, { seed: 20 + seed }) } });
        const opt = new Adam(tm.head.parameters(), { lr: 1e-2 });
        const r = await fitHead(engine, tm, opt, task.data, { epochs: task.epochs, batchSize: task.batchSize, seed, cacheFeatures: true });
        const { accuracy } = await evaluate(engine, tm.model, test_);
        opt.dispose();
        tm.model.dispose();
        return { accuracy, seconds: r.seconds };
      },
    },
  });
  expect(prepared).toEqual(['1/1', '1/2', '5/1', '5/2']);
  expect(runs.map((r) => `${r.labelsPerClass}/${r.seed}/${r.method}`)).toEqual(['1/1/scratch', '1/1/transfer', '1/2/scratch', '1/2/transfer', '5/1/scratch', '5/1/transfer', '5/2/scratch', '5/2/transfer']);
  for (const r of runs) {
    expect(Number.isFinite(r.accuracy) && r.accuracy >= 0 && r.accuracy <= 1, `${r.method} ${r.labelsPerClass}/${r.seed}: ${r.accuracy}`).toBe(true);
    expect(r.seconds).toBeGreaterThan(0);
  }
  expect(Object.keys(curve)).toEqual(['scratch', 'transfer']);
  for (const method of ['scratch', 'transfer']) {
    expect(curve[method]!.map((p) => p.labelsPerClass)).toEqual([1, 5]);
    for (const point of curve[method]!) {
      const xs = runs.filter((r) => r.method === method && r.labelsPerClass === point.labelsPerClass).map((r) => r.accuracy);
      const mean = (xs[0]! + xs[1]!) / 2;
      const std = Math.abs(xs[0]! - xs[1]!) / Math.SQRT2; // the sample standard deviation of two values
      expect(point.accuracies).toEqual(xs);
      expect(point.accuracy.mean).toBeCloseTo(mean, 12);
      expect(point.accuracy.std).toBeCloseTo(std, 12);
    }
  }
  const at = (method: string, point: number) => curve[method]!.find((p) => p.labelsPerClass === point)!.accuracy.mean;
  console.log(`tiny sweep (mnist-cnn -> fashion ${CLASSES}): scratch ${at('scratch', 1)} / ${at('scratch', 5)}, transfer ${at('transfer', 1)} / ${at('transfer', 5)}`);
  // The MNIST features separate trousers, sneakers and bags from 5 labels each (chance is 1/3).
  expect(at('transfer', 5)).toBeGreaterThan(0.6);
});
