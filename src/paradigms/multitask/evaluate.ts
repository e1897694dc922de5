// Scoring a multi-task model: each task's metric on its labelled rows (accuracy for
// classification, R² and mean squared error for regression), the predictions, and LibMTL's
// Δm, the mean relative change of each task's metric against single-task models.
import type { Engine } from '../../engine/engine.js';
import type { Module } from '../../engine/module.js';
import type { Tensor } from '../../engine/tensor.js';
import type { MultiTaskData } from './data.js';

export interface TaskScore {
  kind: 'classification' | 'regression';
  /** Rows labelled for the task (the rows scored). */
  labelled: number;
  /** Accuracy (classification) or R² (regression): higher is better. */
  score: number;
  /** Mean cross-entropy (classification) or mean squared error (regression), in float64. */
  loss: number;
  /** Per row: the predicted class, or the predicted value. */
  predictions: Float32Array;
}

/** Each task's score on the rows labelled for it, the model in inference mode, batches of `batchSize`. */
export async function evaluateMultiTask(engine: Engine, model: Module<Tensor, Record<string, Tensor>>, data: MultiTaskData, options: { tasks?: string[]; batchSize?: number } = {}): Promise<Record<string, TaskScore>> {
  const tasks = options.tasks ?? Object.keys(data.tasks);
  for (const t of tasks) if (!data.tasks[t]) throw new Error(`evaluateMultiTask: the data has no task "${t}" (tasks: ${Object.keys(data.tasks).join(', ')})`);
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 250, data.count));
  const outputs = Object.fromEntries(tasks.map((t) => [t, new Float32Array(data.count * data.tasks[t]!.width)]));
  const ctx = engine.context();
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < data.count; start += batchSize) {
      const rows = Math.min(batchSize, data.count - start);
      const values = await ctx.scope(async () => {
        const x = ctx.tensor(data.inputs.subarray(start * data.features, (start + rows) * data.features), [rows, data.features], 'evaluate.inputs');
        const out = model.predict(x);
        return Promise.all(
          tasks.map((t) => {
            const y = out[t];
            const width = data.tasks[t]!.width;
            if (!y || y.size !== rows * width) throw new Error(`evaluateMultiTask: head ${t} gives ${y ? `[${y.shape.join(', ')}]` : 'nothing'}; task ${t} needs [${rows}, ${width}]`);
            return y.data();
          }),
        );
      });
      tasks.forEach((t, i) => outputs[t]!.set(values[i]!, start * data.tasks[t]!.width));
    }
  } finally {
    model.train(wasTraining);
  }
  return Object.fromEntries(tasks.map((t) => [t, score(data, t, outputs[t]!)]));
}

function score(data: MultiTaskData, task: string, out: Float32Array): TaskScore {
  const labels = data.tasks[task]!;
  const width = labels.width;
  const predictions = new Float32Array(data.count);
  let labelled = 0;
  let lossSum = 0;
  if (labels.kind === 'classification') {
    let correct = 0;
    for (let r = 0; r < data.count; r++) {
      const row = out.subarray(r * width, (r + 1) * width);
      let best = 0;
      for (let c = 1; c < width; c++) if (row[c]! > row[best]!) best = c;
      predictions[r] = best;
      if (labels.mask && !labels.mask[r]) continue;
      const label = labels.values[r]!;
      labelled++;
      if (best === label) correct++;
      let sum = 0;
      for (let c = 0; c < width; c++) sum += Math.exp(row[c]! - row[best]!);
      lossSum += Math.log(sum) + row[best]! - row[label]!;
    }
    return { kind: 'classification', labelled, score: labelled ? correct / labelled : Number.NaN, loss: labelled ? lossSum / labelled : Number.NaN, predictions };
  }
  let targetSum = 0;
  for (let r = 0; r < data.count; r++) {
    predictions[r] = out[r]!;
    if (labels.mask && !labels.mask[r]) continue;
    labelled++;
    targetSum += labels.values[r]!;
    lossSum += (out[r]! - labels.values[r]!) ** 2;
  }
  const meanTarget = targetSum / labelled;
  let total = 0;
  for (let r = 0; r < data.count; r++) if (!labels.mask || labels.mask[r]) total += (labels.values[r]! - meanTarget) ** 2;
  return { kind: 'regression', labelled, score: labelled && total > 0 ? 1 - lossSum / total : Number.NaN, loss: labelled ? lossSum / labelled : Number.NaN, predictions };
}

/**
 * Δm (%) as LibMTL reports it: the mean over tasks of the relative change of each task's metric
 * against the baseline's (single-task models), sign-flipped for metrics where lower is better.
 */
export function deltaM(scores: Record<string, number>, baseline: Record<string, number>, lowerIsBetter: Record<string, boolean> = {}): number {
  const tasks = Object.keys(baseline);
  if (tasks.length === 0) throw new Error('deltaM: no baseline tasks');
  let total = 0;
  for (const t of tasks) {
    const m = scores[t];
    const b = baseline[t]!;
    if (m === undefined) throw new Error(`deltaM: no score for task ${t} (scores: ${Object.keys(scores).join(', ')})`);
    if (b === 0) throw new Error(`deltaM: the baseline of task ${t} is 0, so a relative change is undefined`);
    total += ((lowerIsBetter[t] ? -1 : 1) * (m - b)) / Math.abs(b);
  }
  return (100 * total) / tasks.length;
}
