// The shared training loop. `train` runs a step function over batches of any structure (several
// inputs and targets, per-row weights, missing labels): each step builds its loss from a batch,
// the loop backpropagates it and steps the optimizers, one submit per step, and reads back the
// named losses and metrics every `logEvery` steps without stalling the GPU. `fit` is
// classification on top of it. Each loop works in its own engine context, so loops (and
// evaluations) running concurrently never free each other's tensors.
import { backward } from '../engine/autograd.js';
import type { Engine } from '../engine/engine.js';
import type { LoopPosition } from '../engine/io/checkpoint.js';
import type { AnyModule, Module } from '../engine/module.js';
import { nonFiniteCount, softmaxCrossEntropy } from '../engine/ops/index.js';
import type { Optimizer } from '../engine/optim.js';
import type { Parameter } from '../engine/parameters.js';
import { permutation } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import type { Augment } from './augment.js';

/** Rows of training data: `batch` assembles the rows `indices` (in that order) into whatever a step takes. */
export interface Dataset<B> {
  count: number;
  batch(indices: Uint32Array): B;
}

/** Where a step stands; `engine` is the loop's own context: make the step's tensors with it. */
export interface StepContext {
  engine: Engine;
  epoch: number;
  /** Steps done before this one. */
  step: number;
  indices: Uint32Array;
}

/**
 * What a step gives back: `loss` is backpropagated by the loop (leave it out when the step
 * accumulated gradients itself); `losses` and `metrics` are scalar tensors read back and
 * reported by name every `logEvery` steps.
 */
export interface StepOutput {
  loss?: Tensor;
  losses?: Record<string, Tensor>;
  metrics?: Record<string, Tensor>;
}


export interface Progress {
  epoch: number;
  step: number;
  totalSteps: number;
  /** The backpropagated loss (NaN when the step gave none). */
  loss: number;
  losses: Record<string, number>;
  metrics: Record<string, number>;
  samples: number;
  /** Training time so far, without the time spent in onEpoch and onStep. */
  elapsedMs: number;
}

export interface TrainOptions<B> {
  epochs: number;
  batchSize: number;
  /** May be async (a step that reads back a small matrix to solve on the CPU); it runs inside the step's scope either way. */
  step: (batch: B, context: StepContext) => StepOutput | Promise<StepOutput>;
  /** Seed of the shuffling (epoch e uses seed + e). */
  seed?: number;
  /** Steps between readbacks of the losses and metrics (and progress callbacks). */
  logEvery?: number;
  /**
   * At every readback, throw when a loss is not finite or a weight of the model holds NaN or
   * infinity (counted on the GPU; the error names the parameters). (An optimizer with
   * `nonFinite: 'throw'` that skipped a step throws at every readback, checked or not.)
   */
  checkFinite?: boolean;
  /** Start here instead of at the beginning (see saveTrainingState / loadTrainingState). */
  resume?: LoopPosition;
  onProgress?: (p: Progress) => void | Promise<void>;
  /** Called after each epoch (evaluate there, draw charts...). */
  onEpoch?: (epoch: number) => void | Promise<void>;
  /** Called after each step with the position after it, awaited before the next step (save a checkpoint there); returning false stops the run. */
  onStep?: (position: LoopPosition & { step: number }) => void | boolean | Promise<void | boolean>;
}

export interface TrainResult {
  steps: number;
  samples: number;
  /** Training time, without the time spent in onEpoch and onStep. */
  seconds: number;
  samplesPerSecond: number;
  /** The backpropagated loss at each readback. */
  losses: { step: number; loss: number }[];
  /** Every readback: named losses and metrics. */
  history: { step: number; epoch: number; losses: Record<string, number>; metrics: Record<string, number> }[];
  /** Where the run stopped. */
  position: LoopPosition;
}

function checkPositiveInteger(op: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${op}: ${what} must be a positive integer, got ${v}`);
}

/**
 * Trains `model` with `optimizers` on `data`: each epoch a seeded shuffle into full batches (the
 * remainder is skipped), `step` builds the batch's loss, the loop backpropagates it, steps every
 * optimizer and drops the gradients.
 */
export async function train<B>(engine: Engine, model: AnyModule, optimizers: Optimizer | readonly Optimizer[], data: Dataset<B>, options: TrainOptions<B>): Promise<TrainResult> {
  const { epochs, batchSize } = options;
  checkPositiveInteger('train', 'epochs', epochs);
  checkPositiveInteger('train', 'batchSize', batchSize);
  const logEvery = options.logEvery ?? 20;
  checkPositiveInteger('train', 'logEvery', logEvery);
  const opts = Array.isArray(optimizers) ? [...optimizers] : [optimizers as Optimizer];
  const stepsPerEpoch = Math.floor(data.count / batchSize);
  if (stepsPerEpoch === 0) throw new Error(`train: batch size ${batchSize} is larger than the ${data.count} rows of data`);
  const resume = options.resume ?? { epoch: 0, stepInEpoch: 0 };
  if (!Number.isInteger(resume.epoch) || !Number.isInteger(resume.stepInEpoch) || resume.epoch < 0 || resume.stepInEpoch < 0 || resume.stepInEpoch >= stepsPerEpoch) {
    throw new Error(`train: cannot resume at epoch ${resume.epoch}, step ${resume.stepInEpoch} (${stepsPerEpoch} steps per epoch)`);
  }
  const totalSteps = epochs * stepsPerEpoch;
  const ctx = engine.context();
  // The flat layout the optimizers' kernels work on (a no-op for a built container).
  if (model.parameters().size > 0) model.store();
  const indices = new Uint32Array(batchSize);
  const losses: TrainResult['losses'] = [];
  const history: TrainResult['history'] = [];
  model.train();
  const start = performance.now();
  // Time in onEpoch and onStep (evaluation, drawing, checkpoints) is not training time.
  let asideMs = 0;
  let step = resume.epoch * stepsPerEpoch + resume.stepInEpoch;
  let position: LoopPosition = { ...resume };
  // Readings are awaited only when the next one is due (or at the end), so the GPU never idles
  // while the CPU waits for a number.
  let inFlight: Promise<void> = Promise.resolve();
  run: for (let epoch = resume.epoch; epoch < epochs; epoch++) {
    const order = permutation(data.count, (options.seed ?? 1) + epoch);
    for (let b = epoch === resume.epoch ? resume.stepInEpoch : 0; b < stepsPerEpoch; b++) {
      indices.set(order.subarray(b * batchSize, (b + 1) * batchSize));
      const batch = data.batch(indices);
      const readNow = (step + 1) % logEvery === 0 || step + 1 === totalSteps;
      const reading = await ctx.scope(async () => {
        const out = await options.step(batch, { engine: ctx, epoch, step, indices });
        if (out.loss) backward(out.loss);
        // step() first brings each optimizer in step with its model, so the check sees what they cover.
        for (const o of opts) o.step();
        uncovered(model, new Set(opts.flatMap((o) => o.parameters())));
        for (const o of opts) o.zeroGrad();
        // data() records each copy now, before the scope frees the tensors; wrapped so that the scope does not wait.
        const value = readNow ? { promise: readBack(model, out, options.checkFinite ?? false) } : null;
        await ctx.flush();
        return value;
      });
      step++;
      position = b + 1 === stepsPerEpoch ? { epoch: epoch + 1, stepInEpoch: 0 } : { epoch, stepInEpoch: b + 1 };
      if (reading) {
        const at = { epoch, step, elapsedMs: performance.now() - start - asideMs };
        await inFlight;
        inFlight = reading.promise.then(async (r) => {
          await Promise.all(opts.map((o) => o.check()));
          if (options.checkFinite) await checkFinite(model, r, at);
          if (r.hasLoss) losses.push({ step: at.step, loss: r.loss });
          history.push({ step: at.step, epoch: at.epoch, losses: r.losses, metrics: r.metrics });
          await options.onProgress?.({ ...at, totalSteps, loss: r.loss, losses: r.losses, metrics: r.metrics, samples: at.step * batchSize });
        });
      }
      if (options.onStep) {
        await inFlight;
        const before = performance.now();
        const go = await options.onStep({ ...position, step });
        asideMs += performance.now() - before;
        if (go === false) break run;
      }
    }
    await inFlight;
    const before = performance.now();
    await options.onEpoch?.(epoch);
    asideMs += performance.now() - before;
  }
  await inFlight;
  await engine.sync();
  const seconds = (performance.now() - start - asideMs) / 1000;
  const done = step - (resume.epoch * stepsPerEpoch + resume.stepInEpoch);
  return { steps: done, samples: done * batchSize, seconds, samplesPerSecond: (done * batchSize) / seconds, losses, history, position };
}

interface Reading {
  hasLoss: boolean;
  loss: number;
  losses: Record<string, number>;
  metrics: Record<string, number>;
  nonFiniteWeights: number;
}

/** Records the copies of the step's named values (and, when checking, of the weights' non-finite count) and resolves to them. */
function readBack(model: AnyModule, o: StepOutput, checking: boolean): Promise<Reading> {
  const scalar = (what: string, t: Tensor) => {
    if (t.size !== 1) throw new Error(`train: ${what} has shape [${t.shape.join(',')}]; losses and metrics are scalars`);
    return t.item();
  };
  const named = async (record: Record<string, Tensor> | undefined, what: string) =>
    Object.fromEntries(await Promise.all(Object.entries(record ?? {}).map(async ([k, t]) => [k, await scalar(`${what} ${k}`, t)] as const)));
  let bad: Promise<number> = Promise.resolve(0);
  if (checking) {
    // The model's tensors belong to its engine, not the loop's context: freed here (item() has recorded its copy).
    const weights = model.flatWeights();
    const count = nonFiniteCount(weights);
    bad = count.item();
    count.dispose();
    weights.dispose();
  }
  const loss = o.loss ? scalar('the loss', o.loss) : Promise.resolve(Number.NaN);
  return Promise.all([loss, named(o.losses, 'loss'), named(o.metrics, 'metric'), bad]).then(([l, ls, ms, b]) => ({ hasLoss: o.loss !== undefined, loss: l, losses: ls, metrics: ms, nonFiniteWeights: b }));
}

/** Throws naming every non-finite loss and every parameter holding NaN or infinity. */
async function checkFinite(model: AnyModule, r: Reading, at: { epoch: number; step: number }): Promise<void> {
  const values = { ...(r.hasLoss ? { loss: r.loss } : {}), ...r.losses };
  const problems = Object.entries(values)
    .filter(([, v]) => !Number.isFinite(v))
    .map(([k, v]) => `${k} is ${v}`);
  if (r.nonFiniteWeights > 0) {
    const named: string[] = [];
    for (const [name, p] of model.parameters()) {
      const weights = await p.data();
      let count = 0;
      for (const v of weights) if (!Number.isFinite(v)) count++;
      if (count) named.push(`${name} (${count} of ${weights.length})`);
    }
    problems.push(`weights hold NaN or infinity: ${named.join(', ')}`);
  }
  if (problems.length) throw new Error(`train: after step ${at.step} (epoch ${at.epoch + 1}): ${problems.join('; ')}`);
}

/** Throws when a trainable parameter of the model got a gradient that no optimizer will apply (a layer added after the optimizer was made). */
function uncovered(model: AnyModule, covered: Set<Parameter>): void {
  for (const [name, p] of model.parameters()) {
    if (p.hasGradient && !p.frozen && !covered.has(p)) {
      throw new Error(`train: parameter ${name} has a gradient but no optimizer updates it (a layer added or replaced after the optimizer was made?); make the optimizer over the model (new Adam(model, ...)) or add the parameter`);
    }
  }
}

// ---------------------------------------------------------------- classification

/** Inputs as rows of `features` floats with one integer class label each. */
export interface ClassificationData {
  inputs: Float32Array;
  labels: ArrayLike<number>;
  count: number;
  features: number;
  classes: number;
}

/** The rows of one classification batch: which rows of the data, and their labels. */
export interface Batch {
  indices: Uint32Array;
  labels: Uint32Array;
}

/** The loss of a batch from the model's output and the one-hot targets (and the batch's rows, for per-row extras such as a teacher's logits). */
export type LossFn = (output: Tensor, targets: Tensor, batch: Batch) => Tensor;

export interface FitOptions extends Omit<TrainOptions<unknown>, 'step'> {
  lossFn?: LossFn;
  /** Transforms each batch's input rows in place before its step (data augmentation, e.g. imageAugmentation); the data itself is untouched. */
  augment?: Augment;
}

export type FitResult = TrainResult;

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

function checkData(op: string, data: ClassificationData): void {
  if (data.inputs.length !== data.count * data.features) {
    throw new Error(`${op}: ${data.inputs.length} input values for ${data.count} rows of ${data.features} features`);
  }
  if (data.labels.length !== data.count) throw new Error(`${op}: ${data.labels.length} labels for ${data.count} rows`);
}

/** Trains a classifier (one output row of logits per input row) with softmax cross-entropy, or `lossFn`. */
export async function fit(engine: Engine, model: Module, optimizer: Optimizer | readonly Optimizer[], data: ClassificationData, options: FitOptions): Promise<FitResult> {
  checkData('fit', data);
  const lossFn = options.lossFn ?? softmaxCrossEntropy;
  const x = new Float32Array(options.batchSize * data.features);
  const targets = new Float32Array(options.batchSize * data.classes);
  const batch: Batch = { indices: new Uint32Array(options.batchSize), labels: new Uint32Array(options.batchSize) };
  const rows: Dataset<Batch> = {
    count: data.count,
    batch: (indices) => {
      batch.indices.set(indices);
      for (let r = 0; r < indices.length; r++) batch.labels[r] = data.labels[indices[r]!]!;
      return batch;
    },
  };
  return train(engine, model, optimizer, rows, {
    ...options,
    step: (b, { engine: e }) => {
      takeRows(data.inputs, data.features, b.indices, x);
      options.augment?.(x, b.indices.length);
      oneHot(b.labels, data.classes, targets);
      const input = e.tensor(x, [b.indices.length, data.features], 'batch.inputs');
      const target = e.tensor(targets, [b.indices.length, data.classes], 'batch.targets');
      return { loss: lossFn(model.forward(input), target, b) };
    },
  });
}

/**
 * Runs the model in inference mode over the rows of `inputs` (rows of `features` values) in
 * batches of `batchSize`, in a context of its own: `read` gets each batch's output (in that
 * batch's scope: it must read what it needs before its promise resolves), its first row and its
 * number of rows. What `outputs` and the multi-task evaluation share.
 */
export async function inferBatches<Out>(engine: Engine, model: Module<Tensor, Out>, inputs: Float32Array, features: number, batchSize: number, read: (out: Out, start: number, rows: number) => Promise<void>): Promise<void> {
  const count = inputs.length / features;
  if (!Number.isInteger(count)) throw new Error(`inference: ${inputs.length} input values are not rows of ${features} features`);
  const size = Math.max(1, Math.min(batchSize, count));
  const ctx = engine.context();
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < count; start += size) {
      const rows = Math.min(size, count - start);
      await ctx.scope(() => read(model.predict(ctx.tensor(inputs.subarray(start * features, (start + rows) * features), [rows, features], 'outputs.inputs')), start, rows));
    }
  } finally {
    model.train(wasTraining);
  }
}

/**
 * The model's outputs for every row of `inputs` (rows of `features` values), in inference mode
 * and batches of `batchSize`, read back as rows of `width` values: logits for evaluation and
 * distillation, features of a frozen base for feature caching.
 */
export async function outputs(engine: Engine, model: Module, inputs: Float32Array, features: number, options: { batchSize?: number } = {}): Promise<{ values: Float32Array; width: number; count: number }> {
  const count = inputs.length / features;
  let values = new Float32Array(0);
  let width = 0;
  await inferBatches(engine, model, inputs, features, options.batchSize ?? 250, async (y, start, rows) => {
    const out = await y.data();
    if (start === 0) {
      width = out.length / rows;
      values = new Float32Array(count * width);
    }
    values.set(out, start * width);
  });
  return { values, width, count };
}

/** A row of logits' predicted class (the first largest) and, given its label, the row's cross-entropy in float64 (else NaN). */
export function scoreLogits(row: ArrayLike<number>, label?: number): { predicted: number; loss: number } {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c]! > row[best]!) best = c;
  if (label === undefined) return { predicted: best, loss: Number.NaN };
  let sum = 0;
  for (let c = 0; c < row.length; c++) sum += Math.exp(row[c]! - row[best]!);
  return { predicted: best, loss: Math.log(sum) + row[best]! - row[label]! };
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
    const { predicted, loss } = scoreLogits(row, label);
    if (predicted === label) correct++;
    lossSum += loss;
  }
  return { accuracy: correct / data.count, loss: lossSum / data.count };
}
