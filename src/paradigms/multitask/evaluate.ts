// Scoring a multi-task model: each task's metric on its labelled rows (accuracy for
// classification, R² and mean squared error for regression), the predictions, and LibMTL's
// Δm, the mean relative change of each task's metric against single-task models.
import type { Engine } from '../../engine/engine.js';
import type { Module } from '../../engine/module.js';
import type { Tensor } from '../../engine/tensor.js';
import { inferBatches, scoreLogits } from '../train.js';
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
  const outputs = Object.fromEntries(tasks.map((t) => [t, new Float32Array(data.count * data.tasks[t]!.width)]));
  await inferBatches(engine, model, data.inputs, data.features, options.batchSize ?? 250, async (out, start, rows) => {
    const values = await Promise.all(
      tasks.map((t) => {
        const y = out[t];
        const width = data.tasks[t]!.width;
        if (!y || y.size !== rows * width) throw new Error(`evaluateMultiTask: head ${t} gives ${y ? `[${y.shape.join(', ')}]` : 'nothing'}; task ${t} needs [${rows}, ${width}]`);
        return y.data();
      }),
    );
    tasks.forEach((t, i) => outputs[t]!.set(values[i]!, start * data.tasks[t]!.width));
  });
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
      const isLabelled = !labels.mask || labels.mask[r] !== 0;
      const label = labels.values[r]!;
      const { predicted, loss } = scoreLogits(out.subarray(r * width, (r + 1) * width), isLabelled ? label : undefined);
      predictions[r] = predicted;
      if (!isLabelled) continue;
      labelled++;
      if (predicted === label) correct++;
      lossSum += loss;
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
