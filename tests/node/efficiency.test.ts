// The data-efficiency sweep's bookkeeping without a GPU: the grid's order, the aggregation against
// a float64 mean and sample standard deviation written out here, its refusals, and the step budget.
import { expect, test } from 'vitest';
import { aggregateRuns, efficiencyCurve, stepBudget, type ClassificationData, type EfficiencyRun } from '../../src/index.js';

test('the grid runs every method on each (point, seed) task, points outermost, and aggregates per method and point', async () => {
  const prepared: string[] = [];
  // Accuracy a made-up function of method, point and seed, so that every cell differs.
  const accuracy = (m: number, p: number, s: number) => (m * 0.1 + Math.log(p + 1) * 0.05 + s * 0.013) % 1;
  const { runs, curve } = await efficiencyCurve({
    labelsPerClass: [1, 10, 'all'],
    seeds: [1, 2, 3],
    prepare: (p, s) => {
      prepared.push(`${p}/${s}`);
      return { p, s };
    },
    methods: Object.fromEntries(['a', 'b'].map((name, m) => [name, async (task: { p: number | 'all'; s: number }, p: number | 'all', s: number) => {
      expect(task).toEqual({ p, s });
      return { accuracy: accuracy(m, p === 'all' ? 100 : p, s), seconds: m + 1 };
    }])),
  });
  expect(prepared).toEqual(['1/1', '1/2', '1/3', '10/1', '10/2', '10/3', 'all/1', 'all/2', 'all/3']);
  expect(runs.map((r) => `${r.labelsPerClass}/${r.seed}/${r.method}`).slice(0, 4)).toEqual(['1/1/a', '1/1/b', '1/2/a', '1/2/b']);
  expect(Object.keys(curve)).toEqual(['a', 'b']);
  for (const [m, name] of ['a', 'b'].entries()) {
    expect(curve[name]!.map((p) => p.labelsPerClass)).toEqual([1, 10, 'all']);
    for (const point of curve[name]!) {
      const xs = [1, 2, 3].map((s) => accuracy(m, point.labelsPerClass === 'all' ? 100 : point.labelsPerClass, s));
      const mean = (xs[0]! + xs[1]! + xs[2]!) / 3;
      const std = Math.sqrt(((xs[0]! - mean) ** 2 + (xs[1]! - mean) ** 2 + (xs[2]! - mean) ** 2) / 2);
      expect(point.accuracies).toEqual(xs);
      expect(point.accuracy.mean).toBeCloseTo(mean, 14);
      expect(point.accuracy.std).toBeCloseTo(std, 14);
      expect(point.seconds).toEqual({ mean: m + 1, std: 0 });
    }
  }
});

test('one seed has a spread of 0; runs in any order aggregate by method and point', () => {
  const runs: EfficiencyRun[] = [
    { method: 'x', labelsPerClass: 5, seed: 1, accuracy: 0.5, seconds: 1 },
    { method: 'y', labelsPerClass: 5, seed: 1, accuracy: 0.7, seconds: 2 },
    { method: 'x', labelsPerClass: 1, seed: 1, accuracy: 0.25, seconds: 3 },
    { method: 'x', labelsPerClass: 5, seed: 2, accuracy: 0.75, seconds: 5 },
  ];
  const curve = aggregateRuns(runs);
  const xStd = Math.sqrt((0.5 - 0.625) ** 2 + (0.75 - 0.625) ** 2); // n - 1 = 1
  expect(curve['x']!.map((p) => [p.labelsPerClass, p.accuracy.mean, p.accuracy.std, p.seconds.mean])).toEqual([
    [5, 0.625, xStd, 3],
    [1, 0.25, 0, 3],
  ]);
  expect(curve['y']!).toEqual([{ labelsPerClass: 5, accuracy: { mean: 0.7, std: 0 }, seconds: { mean: 2, std: 0 }, accuracies: [0.7] }]);
});

test('a run that is not an accuracy, and a bad grid, are refused naming what', async () => {
  const grid = { seeds: [1], prepare: () => null };
  await expect(efficiencyCurve({ ...grid, labelsPerClass: [1, 2], methods: { m: async (_: null, p) => ({ accuracy: p === 2 ? NaN : 0.5, seconds: 1 }) } })).rejects.toThrow(/m at 2 labels per class, seed 1, gave accuracy NaN/);
  await expect(efficiencyCurve({ ...grid, labelsPerClass: [0], methods: { m: async () => ({ accuracy: 0.5, seconds: 1 }) } })).rejects.toThrow(/labels per class \[0\] must be distinct positive integers or 'all'/);
  await expect(efficiencyCurve({ ...grid, labelsPerClass: [1, 1], methods: { m: async () => ({ accuracy: 0.5, seconds: 1 }) } })).rejects.toThrow(/distinct/);
  await expect(efficiencyCurve({ ...grid, labelsPerClass: [1], methods: {} })).rejects.toThrow(/0 methods/);
});

test('the step budget keeps small sets whole and samples steps x batch distinct rows of large ones', () => {
  const rows = (n: number): ClassificationData => ({ inputs: Float32Array.from({ length: n * 2 }, (_, i) => Math.floor(i / 2)), labels: Uint8Array.from({ length: n }, (_, i) => i % 3), count: n, features: 2, classes: 3 });
  const few = rows(5);
  expect(stepBudget(few, 100, 20, 1)).toEqual({ data: few, batchSize: 5, epochs: 100 });
  const some = rows(60);
  expect(stepBudget(some, 30, 20, 1)).toEqual({ data: some, batchSize: 20, epochs: 10 });
  const many = rows(1000);
  const b = stepBudget(many, 10, 20, 7);
  expect([b.batchSize, b.epochs, b.data.count]).toEqual([20, 1, 200]);
  const picked = Array.from({ length: 200 }, (_, r) => b.data.inputs[2 * r]!);
  expect(new Set(picked).size).toBe(200);
  picked.forEach((row, r) => {
    expect(b.data.inputs[2 * r + 1]).toBe(row);
    expect(b.data.labels[r]).toBe(row % 3);
  });
  expect(stepBudget(many, 10, 20, 8).data.inputs).not.toEqual(b.data.inputs);
});
