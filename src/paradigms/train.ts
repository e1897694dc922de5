// The shared training loop: batches from CPU arrays, forward, loss, backward, optimizer step,
// one submit per step, loss read back every `logEvery` steps. The paradigms build on this.
import { backward } from '../engine/autograd.js';
import type { Engine } from '../engine/engine.js';
import type { Module } from '../engine/layers.js';
import { softmaxCrossEntropy, softmaxCrossEntropyRows } from '../engine/ops/index.js';
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

export type LossFn = (output: Tensor, targets: Tensor) => Tensor;

export interface Progress {
  epoch: number;
  step: number;
  totalSteps: number;
  loss: number;
  samples: number;
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

/** Copies the rows `order[start .. start + rows]` of the data into the batch arrays. */
function gather(data: ClassificationData, order: ArrayLike<number>, start: number, rows: number, x: Float32Array, labels: Uint32Array): void {
  const f = data.features;
  for (let r = 0; r < rows; r++) {
    const i = order[start + r]!;
    x.set(data.inputs.subarray(i * f, (i + 1) * f), r * f);
    labels[r] = data.labels[i]!;
  }
}

function checkData(op: string, model: Module, data: ClassificationData): void {
  if (data.inputs.length !== data.count * data.features) {
    throw new Error(`${op}: ${data.inputs.length} input values for ${data.count} rows of ${data.features} features`);
  }
  if (data.labels.length !== data.count) throw new Error(`${op}: ${data.labels.length} labels for ${data.count} rows`);
  void model;
}

/** Trains `model` on `data` with `optimizer`; full batches only (the remainder of an epoch is skipped). */
export async function fit(engine: Engine, model: Module, optimizer: Optimizer, data: ClassificationData, options: FitOptions): Promise<FitResult> {
  checkData('fit', model, data);
  const { epochs, batchSize } = options;
  const logEvery = options.logEvery ?? 20;
  const lossFn = options.lossFn ?? softmaxCrossEntropy;
  const stepsPerEpoch = Math.floor(data.count / batchSize);
  if (stepsPerEpoch === 0) throw new Error(`fit: batch size ${batchSize} is larger than the ${data.count} rows of data`);
  const totalSteps = epochs * stepsPerEpoch;
  const x = new Float32Array(batchSize * data.features);
  const labels = new Uint32Array(batchSize);
  const targets = new Float32Array(batchSize * data.classes);
  const losses: { step: number; loss: number }[] = [];
  model.train();
  const start = performance.now();
  let step = 0;
  // The loss is read back without waiting: each reading is awaited only when the next one is
  // due (or at the end), so the GPU never idles while the CPU waits for a number.
  let inFlight: Promise<void> = Promise.resolve();
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = permutation(data.count, (options.seed ?? 1) + epoch);
    for (let b = 0; b < stepsPerEpoch; b++) {
      gather(data, order, b * batchSize, batchSize, x, labels);
      oneHot(labels, data.classes, targets);
      const readLoss = (step + 1) % logEvery === 0 || step + 1 === totalSteps;
      const reading = await engine.scope(async () => {
        const input = engine.tensor(x, [batchSize, data.features], 'batch.inputs');
        const target = engine.tensor(targets, [batchSize, data.classes], 'batch.targets');
        const l = lossFn(model.forward(input), target);
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
        const at = { epoch, step, elapsedMs: performance.now() - start };
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
    await options.onEpoch?.(epoch);
  }
  await engine.sync();
  const seconds = (performance.now() - start) / 1000;
  return { steps: step, samples: step * batchSize, seconds, samplesPerSecond: (step * batchSize) / seconds, losses };
}

/** Accuracy and mean cross-entropy of the model on the data, in inference mode. */
export async function evaluate(engine: Engine, model: Module, data: ClassificationData, options: { batchSize?: number } = {}): Promise<{ accuracy: number; loss: number }> {
  checkData('evaluate', model, data);
  const batchSize = Math.min(options.batchSize ?? 250, data.count);
  const order = Array.from({ length: data.count }, (_, i) => i);
  let correct = 0;
  let lossSum = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < data.count; start += batchSize) {
      const rows = Math.min(batchSize, data.count - start);
      const x = new Float32Array(rows * data.features);
      const labels = new Uint32Array(rows);
      gather(data, order, start, rows, x, labels);
      const [logits, rowLoss] = await engine.scope(async () => {
        const input = engine.tensor(x, [rows, data.features], 'eval.inputs');
        const target = engine.tensor(oneHot(labels, data.classes), [rows, data.classes], 'eval.targets');
        const out = model.predict(input);
        return Promise.all([out.data(), softmaxCrossEntropyRows(out, target).data()]);
      });
      for (let r = 0; r < rows; r++) {
        let best = 0;
        for (let c = 1; c < data.classes; c++) if (logits[r * data.classes + c]! > logits[r * data.classes + best]!) best = c;
        if (best === labels[r]) correct++;
        lossSum += rowLoss[r]!;
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return { accuracy: correct / data.count, loss: lossSum / data.count };
}
