// The shared training loop: batches from CPU arrays, forward, loss, backward, optimizer step,
// one submit per step, loss read back every `logEvery` steps. The paradigms build on this.
import { backward } from '../engine/autograd.js';
import type { Engine } from '../engine/engine.js';
import type { Module } from '../engine/layers.js';
import { softmaxCrossEntropy } from '../engine/ops/index.js';
import type { Optimizer } from '../engine/optim.js';
import { permutation } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';

/** Inputs as rows of `features` floats with one integer class label each. */
export interface ClassificationData {
  inputs: Float32Array;
  labels: ArrayLike<number>;
  count: number;
  features: number;
  classes: number;
}

/** The rows of one training batch: which rows of the data, and their labels (overwritten by the next batch). */
export interface Batch {
  indices: Uint32Array;
  labels: Uint32Array;
}

/** The loss of a batch from the model's output and the one-hot targets (and the batch's rows, for per-row extras such as a teacher's logits). */
export type LossFn = (output: Tensor, targets: Tensor, batch: Batch) => Tensor;

export interface Progress {
  epoch: number;
  step: number;
  totalSteps: number;
  loss: number;
  samples: number;
  /** Training time so far, without the time spent in onEpoch. */
  elapsedMs: number;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  /** Seed of the shuffling. */
  seed?: number;
  /** Steps between loss readbacks (and progress callbacks). */
  logEvery?: number;
  /** Throw when a read-back loss is NaN or infinite. */
  checkFinite?: boolean;
  lossFn?: LossFn;
  onProgress?: (p: Progress) => void | Promise<void>;
  /** Called after each epoch (evaluate there, draw charts...). */
  onEpoch?: (epoch: number) => void | Promise<void>;
}

export interface FitResult {
  steps: number;
  samples: number;
  /** Training time, without the time spent in onEpoch. */
  seconds: number;
  samplesPerSecond: number;
  losses: { step: number; loss: number }[];
}

export function oneHot(labels: ArrayLike<number>, classes: number, into = new Float32Array(labels.length * classes)): Float32Array {
  into.fill(0);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= classes) throw new Error(`oneHot: label ${c} at row ${i} is not in 0..${classes - 1}`);
    into[i * classes + c] = 1;
  }
  return into;
}

/** The rows `indices` of a row-major array of `width`-wide rows, in that order (into `out`). */
export function takeRows(values: Float32Array, width: number, indices: ArrayLike<number>, out: Float32Array = new Float32Array(indices.length * width)): Float32Array {
  for (let r = 0; r < indices.length; r++) out.set(values.subarray(indices[r]! * width, (indices[r]! + 1) * width), r * width);
  return out;
}

/** Fills the batch with the rows `order[start .. start + batch.indices.length]` of the data. */
function gather(data: ClassificationData, order: ArrayLike<number>, start: number, x: Float32Array, batch: Batch): void {
  for (let r = 0; r < batch.indices.length; r++) {
    const i = order[start + r]!;
    batch.indices[r] = i;
    batch.labels[r] = data.labels[i]!;
  }
  takeRows(data.inputs, data.features, batch.indices, x);
}

function checkData(op: string, data: ClassificationData): void {
  if (data.inputs.length !== data.count * data.features) {
    throw new Error(`${op}: ${data.inputs.length} input values for ${data.count} rows of ${data.features} features`);
  }
  if (data.labels.length !== data.count) throw new Error(`${op}: ${data.labels.length} labels for ${data.count} rows`);
}

/** Trains `model` on `data` with `optimizer`; full batches only (the remainder of an epoch is skipped). */
export async function fit(engine: Engine, model: Module, optimizer: Optimizer, data: ClassificationData, options: FitOptions): Promise<FitResult> {
  checkData('fit', data);
  const { epochs, batchSize } = options;
  const logEvery = options.logEvery ?? 20;
  const lossFn = options.lossFn ?? softmaxCrossEntropy;
  const stepsPerEpoch = Math.floor(data.count / batchSize);
  if (stepsPerEpoch === 0) throw new Error(`fit: batch size ${batchSize} is larger than the ${data.count} rows of data`);
  const totalSteps = epochs * stepsPerEpoch;
  const x = new Float32Array(batchSize * data.features);
  const batch: Batch = { indices: new Uint32Array(batchSize), labels: new Uint32Array(batchSize) };
  const targets = new Float32Array(batchSize * data.classes);
  const losses: { step: number; loss: number }[] = [];
  model.train();
  const start = performance.now();
  // Time in onEpoch (evaluation, drawing) is not training time: left out of seconds and elapsedMs.
  let asideMs = 0;
  let step = 0;
  // The loss is read back without waiting: each reading is awaited only when the next one is
  // due (or at the end), so the GPU never idles while the CPU waits for a number.
  let inFlight: Promise<void> = Promise.resolve();
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = permutation(data.count, (options.seed ?? 1) + epoch);
    for (let b = 0; b < stepsPerEpoch; b++) {
      gather(data, order, b * batchSize, x, batch);
      oneHot(batch.labels, data.classes, targets);
      const readLoss = (step + 1) % logEvery === 0 || step + 1 === totalSteps;
      const reading = await engine.scope(async () => {
        const input = engine.tensor(x, [batchSize, data.features], 'batch.inputs');
        const target = engine.tensor(targets, [batchSize, data.classes], 'batch.targets');
        const l = lossFn(model.forward(input), target, batch);
        backward(l);
        optimizer.step();
        optimizer.zeroGrad();
        // data() records the copy of the loss now, before the scope frees it; wrapped so that
        // the scope does not wait for it.
        const value = readLoss ? { promise: l.data() } : null;
        await engine.flush();
        return value;
      });
      step++;
      if (reading) {
        const at = { epoch, step, elapsedMs: performance.now() - start - asideMs };
        await inFlight;
        inFlight = reading.promise.then(async ([loss]) => {
          if (options.checkFinite && !Number.isFinite(loss)) {
            throw new Error(`fit: loss is ${loss} at epoch ${at.epoch + 1}, step ${at.step} (batch [${batchSize}, ${data.features}])`);
          }
          losses.push({ step: at.step, loss: loss! });
          await options.onProgress?.({ epoch: at.epoch, step: at.step, totalSteps, loss: loss!, samples: at.step * batchSize, elapsedMs: at.elapsedMs });
        });
      }
    }
    await inFlight;
    const before = performance.now();
    await options.onEpoch?.(epoch);
    asideMs += performance.now() - before;
  }
  await engine.sync();
  const seconds = (performance.now() - start - asideMs) / 1000;
  return { steps: step, samples: step * batchSize, seconds, samplesPerSecond: (step * batchSize) / seconds, losses };
}

/**
 * The model's outputs for every row of `inputs` (rows of `features` values), in inference mode
 * and batches of `batchSize`, read back as rows of `width` values: logits for evaluation and
 * distillation, features of a frozen base for feature caching.
 */
export async function outputs(engine: Engine, model: Module, inputs: Float32Array, features: number, options: { batchSize?: number } = {}): Promise<{ values: Float32Array; width: number; count: number }> {
  const count = inputs.length / features;
  if (!Number.isInteger(count)) throw new Error(`outputs: ${inputs.length} input values are not rows of ${features} features`);
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 250, count));
  const wasTraining = model.training;
  model.eval();
  let values = new Float32Array(0);
  let width = 0;
  try {
    for (let start = 0; start < count; start += batchSize) {
      const rows = Math.min(batchSize, count - start);
      const out = await engine.scope(() => {
        const x = engine.tensor(inputs.subarray(start * features, (start + rows) * features), [rows, features], 'outputs.inputs');
        return model.predict(x).data();
      });
      if (start === 0) {
        width = out.length / rows;
        values = new Float32Array(count * width);
      }
      values.set(out, start * width);
    }
  } finally {
    model.train(wasTraining);
  }
  return { values, width, count };
}

/** Accuracy and mean cross-entropy (computed in float64 from the logits) of the model on the data, in inference mode. */
export async function evaluate(engine: Engine, model: Module, data: ClassificationData, options: { batchSize?: number } = {}): Promise<{ accuracy: number; loss: number }> {
  checkData('evaluate', data);
  const { values: logits, width } = await outputs(engine, model, data.inputs, data.features, options);
  if (width !== data.classes) throw new Error(`evaluate: the model gives ${width} outputs per row for ${data.classes} classes`);
  let correct = 0;
  let lossSum = 0;
  for (let r = 0; r < data.count; r++) {
    const row = logits.subarray(r * width, (r + 1) * width);
    const label = data.labels[r]!;
    if (!Number.isInteger(label) || label < 0 || label >= width) throw new Error(`evaluate: label ${label} at row ${r} is not in 0..${width - 1}`);
    let best = 0;
    for (let c = 1; c < width; c++) if (row[c]! > row[best]!) best = c;
    if (best === label) correct++;
    let sum = 0;
    for (let c = 0; c < width; c++) sum += Math.exp(row[c]! - row[best]!);
    lossSum += Math.log(sum) + row[best]! - row[label]!;
  }
  return { accuracy: correct / data.count, loss: lossSum / data.count };
}
