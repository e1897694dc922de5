// Data-efficiency curves: the target accuracy of each method against the number of labelled
// examples per class, over seeds. The sweep knows nothing of models: each method is a callback
// that trains on one (labels per class, seed) task and reports its test accuracy and seconds; the
// curve is their mean and spread per method and point.
import { permutation } from '../engine/random.js';
import { takeRows, type ClassificationData } from './train.js';

/** A number of labelled examples per class, or every labelled example of the target classes. */
export type LabelsPerClass = number | 'all';

/** What one method's training on one task gives. */
export interface MethodRun {
  accuracy: number;
  seconds: number;
}

/** One cell of the grid. */
export interface EfficiencyRun extends MethodRun {
  method: string;
  labelsPerClass: LabelsPerClass;
  seed: number;
}

/** The mean and sample standard deviation (n - 1; 0 for a single value). */
export interface Spread {
  mean: number;
  std: number;
}

/** One point of a method's curve: its runs' accuracies and seconds, summarised. */
export interface EfficiencyPoint {
  labelsPerClass: LabelsPerClass;
  accuracy: Spread;
  seconds: Spread;
  /** Per seed, in the order of the seeds. */
  accuracies: number[];
}

export interface EfficiencyOptions<Task> {
  labelsPerClass: readonly LabelsPerClass[];
  seeds: readonly number[];
  /** The task of one point and seed (the labelled examples drawn), shared by every method. */
  prepare: (labelsPerClass: LabelsPerClass, seed: number) => Task | Promise<Task>;
  /** Each method trains a model of its own on the task. */
  methods: Record<string, (task: Task, labelsPerClass: LabelsPerClass, seed: number) => Promise<MethodRun>>;
  /** Called after each run (draw the chart so far). */
  onRun?: (run: EfficiencyRun, runs: readonly EfficiencyRun[]) => void | Promise<void>;
}

/** The mean and sample standard deviation of some values. */
export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) throw new Error('spread: no values');
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
  return { mean, std };
}

/** Per method (in first-run order), its points in the order first run, each over its seeds. */
export function aggregateRuns(runs: readonly EfficiencyRun[]): Record<string, EfficiencyPoint[]> {
  const curve: Record<string, EfficiencyPoint[]> = {};
  const grouped = new Map<string, Map<LabelsPerClass, EfficiencyRun[]>>();
  for (const r of runs) {
    const points = grouped.get(r.method) ?? grouped.set(r.method, new Map()).get(r.method)!;
    (points.get(r.labelsPerClass) ?? points.set(r.labelsPerClass, []).get(r.labelsPerClass)!).push(r);
  }
  for (const [method, points] of grouped) {
    curve[method] = [...points].map(([labelsPerClass, rs]) => {
      const accuracies = rs.map((r) => r.accuracy);
      return { labelsPerClass, accuracy: spread(accuracies), seconds: spread(rs.map((r) => r.seconds)), accuracies };
    });
  }
  return curve;
}

/**
 * Runs every method on every (labels per class, seed) task, points outermost, and aggregates the
 * runs. A run whose accuracy is not a finite number in [0, 1] is an error naming the cell.
 */
export async function efficiencyCurve<Task>(options: EfficiencyOptions<Task>): Promise<{ runs: EfficiencyRun[]; curve: Record<string, EfficiencyPoint[]> }> {
  const { labelsPerClass, seeds, methods } = options;
  if (!labelsPerClass.length || !seeds.length || !Object.keys(methods).length) {
    throw new Error(`efficiencyCurve: needs points, seeds and methods (got ${labelsPerClass.length} points, ${seeds.length} seeds, ${Object.keys(methods).length} methods)`);
  }
  const bad = labelsPerClass.filter((p) => p !== 'all' && !(Number.isInteger(p) && p >= 1));
  if (bad.length || new Set(labelsPerClass).size !== labelsPerClass.length) {
    throw new Error(`efficiencyCurve: labels per class [${labelsPerClass.join(', ')}] must be distinct positive integers or 'all'`);
  }
  const runs: EfficiencyRun[] = [];
  for (const point of labelsPerClass) {
    for (const seed of seeds) {
      const task = await options.prepare(point, seed);
      for (const [method, train] of Object.entries(methods)) {
        const { accuracy, seconds } = await train(task, point, seed);
        if (!(Number.isFinite(accuracy) && accuracy >= 0 && accuracy <= 1)) throw new Error(`efficiencyCurve: ${method} at ${point} labels per class, seed ${seed}, gave accuracy ${accuracy}`);
        const run = { method, labelsPerClass: point, seed, accuracy, seconds };
        runs.push(run);
        await options.onRun?.(run, runs);
      }
    }
  }
  return { runs, curve: aggregateRuns(runs) };
}

/**
 * A fixed step budget: `data` itself when `steps` batches of `batchSize` cover it at least once,
 * else a seeded random sample of steps x batchSize rows (one epoch), so that a method's cost does
 * not grow with the number of labels. Also the batch (at most the rows) and epochs to train for.
 */
export function stepBudget(data: ClassificationData, steps: number, batchSize: number, seed: number): { data: ClassificationData; batchSize: number; epochs: number } {
  const batch = Math.min(batchSize, data.count);
  const rows = steps * batch;
  if (data.count <= rows) return { data, batchSize: batch, epochs: Math.max(1, Math.round(steps / Math.floor(data.count / batch))) };
  const picked = permutation(data.count, seed).subarray(0, rows);
  const labels = Uint8Array.from(picked, (r) => data.labels[r]!);
  return { data: { ...data, inputs: takeRows(data.inputs, data.features, picked), labels, count: rows }, batchSize: batch, epochs: 1 };
}
