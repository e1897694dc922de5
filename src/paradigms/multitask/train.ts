// Multi-task training: a MultiHead model (a shared trunk, one head per task) trained on data with
// labels for several tasks, some rows labelled for some tasks only, with a task weighting
// (weighting.ts). Each task's loss is a masked mean over its labelled rows (a row without its
// label is left out, not zero-filled). Loss-based methods give one loss that the loop
// backpropagates; for gradient-based ones this file computes each present task's gradient on the
// GPU into a [k, P] stack (rows of the shared parameters' flat gradient region, or of the shared
// representation), their Gram matrix with one kernel, reads only that k×k matrix back, and forms
// the method's combination on the GPU, written straight into the shared parameters' gradients.
import { accumulateGradient, backward, gradients } from '../../engine/autograd.js';
import type { Engine } from '../../engine/engine.js';
import { noGrad } from '../../engine/graph.js';
import type { MultiHead } from '../../engine/containers.js';
import { accuracy, add, concat, dot, gram, mul, reshape, softmaxCrossEntropyRows, square, sub, weightedMean, weightedSum } from '../../engine/ops/index.js';
import type { Optimizer } from '../../engine/optim.js';
import { aligned, type Parameter } from '../../engine/parameters.js';
import { shapeString, Tensor } from '../../engine/tensor.js';
import { takeRows, train, type Dataset, type StepContext, type StepOutput, type TrainOptions, type TrainResult } from '../train.js';
import type { MultiTaskData, TaskLabels } from './data.js';
import { cosines } from './solvers.js';
import { EqualWeighting, type GradientWeighting, type LossWeighting, type Weighting } from './weighting.js';

/** One batch: the inputs and, per task (in the trainer's task order), targets and a 0/1 weight per row. */
export interface MultiTaskBatch {
  rows: number;
  inputs: Float32Array;
  tasks: {
    /** One-hot rows [rows, classes] (all zero where unlabelled) or regression targets [rows, 1]. */
    targets: Float32Array;
    /** 1 where the row is labelled for the task. */
    mask: Float32Array;
    labelled: number;
  }[];
}

function checkTasks(op: string, data: MultiTaskData, tasks: readonly string[]): TaskLabels[] {
  if (tasks.length === 0) throw new Error(`${op}: no tasks given`);
  return tasks.map((t) => {
    const labels = data.tasks[t];
    if (!labels) throw new Error(`${op}: the data has no task "${t}" (tasks: ${Object.keys(data.tasks).join(', ')})`);
    if (labels.values.length !== data.count) throw new Error(`${op}: task ${t} has ${labels.values.length} labels for ${data.count} rows`);
    if (labels.mask && labels.mask.length !== data.count) throw new Error(`${op}: task ${t} has a mask of ${labels.mask.length} rows for ${data.count} rows`);
    // Every label is checked here, before anything trains, rather than when its batch comes up.
    for (let r = 0; r < data.count; r++) {
      if (labels.mask && !labels.mask[r]) continue;
      const v = labels.values[r]!;
      if (labels.kind === 'classification' ? !Number.isInteger(v) || v < 0 || v >= labels.width : !Number.isFinite(v)) {
        throw new Error(`${op}: task ${t} ${labels.kind === 'classification' ? `label ${v} at row ${r} is not in 0..${labels.width - 1}` : `target ${v} at row ${r} is not finite`}`);
      }
    }
    return labels;
  });
}

/** The rows of multi-task data as a Dataset of batches for `tasks`. */
export function multiTaskDataset(data: MultiTaskData, tasks: readonly string[]): Dataset<MultiTaskBatch> {
  const labels = checkTasks('multiTaskDataset', data, tasks);
  if (data.inputs.length !== data.count * data.features) throw new Error(`multiTaskDataset: ${data.inputs.length} input values for ${data.count} rows of ${data.features} features`);
  return {
    count: data.count,
    batch: (indices) => {
      const rows = indices.length;
      return {
        rows,
        inputs: takeRows(data.inputs, data.features, indices),
        tasks: labels.map((l) => {
          const width = l.kind === 'classification' ? l.width : 1;
          const targets = new Float32Array(rows * width);
          const mask = new Float32Array(rows);
          let labelled = 0;
          for (let r = 0; r < rows; r++) {
            const i = indices[r]!;
            if (l.mask && !l.mask[i]) continue;
            const v = l.values[i]!;
            if (l.kind === 'classification') targets[r * width + v] = 1;
            else targets[r] = v;
            mask[r] = 1;
            labelled++;
          }
          return { targets, mask, labelled };
        }),
      };
    },
  };
}

/** Each task's loss on the batch: mean cross-entropy (classification) or squared error (regression) over its labelled rows; 0 when it has none. */
export function taskLosses(engine: Engine, outputs: Record<string, Tensor>, batch: MultiTaskBatch, tasks: readonly string[], kinds: readonly TaskLabels['kind'][]): { losses: Tensor[]; targets: Tensor[] } {
  const targets: Tensor[] = [];
  const losses = tasks.map((task, t) => {
    const out = outputs[task];
    if (!out) throw new Error(`multi-task loss: the model has no head "${task}" (heads: ${Object.keys(outputs).join(', ')})`);
    const b = batch.tasks[t]!;
    const width = b.targets.length / batch.rows;
    if (out.rank !== 2 || out.shape[0] !== batch.rows || out.shape[1] !== width) {
      throw new Error(`multi-task loss: head ${task} gives ${shapeString(out.shape)}; task ${task} (${kinds[t]}) needs [${batch.rows}, ${width}]`);
    }
    const target = engine.tensor(b.targets, [batch.rows, width], `${task}.targets`);
    const mask = engine.tensor(b.mask, [batch.rows], `${task}.mask`);
    targets.push(target);
    const perRow = kinds[t] === 'classification' ? softmaxCrossEntropyRows(out, target) : reshape(square(sub(out, target)), [batch.rows]);
    return weightedMean(perRow, mask);
  });
  return { losses, targets };
}

/** The scalars as one [n] tensor. */
function stack(scalars: Tensor[]): Tensor {
  return concat(scalars.map((s) => reshape(s, [1])), 0);
}

/**
 * Where the shared parameters (the trunk's) sit in the model's flat buffers: one contiguous
 * region [start, start + size) that no head parameter enters (the trunk comes first in a MultiHead).
 */
interface SharedRegion {
  start: number;
  size: number;
  trainable: Parameter[];
}

function sharedRegion(model: MultiHead<Tensor>): SharedRegion | null {
  const trunk = [...model.trunk.parameters().values()];
  if (trunk.length === 0) return null;
  model.store();
  const start = Math.min(...trunk.map((p) => p.flatOffset));
  const end = Math.max(...trunk.map((p) => p.flatOffset + aligned(p.size)));
  const inTrunk = new Set(trunk);
  for (const [name, p] of model.parameters()) {
    if (!inTrunk.has(p) && p.flatOffset < end && p.flatOffset + p.size > start) {
      throw new Error(`trainMultiTask: head parameter ${name} lies inside the trunk's region of the flat parameters; the trunk must be the model's first part (MultiHead puts it first)`);
    }
  }
  return { start, size: end - start, trainable: trunk.filter((p) => !p.frozen) };
}

export interface MultiTaskOptions extends Omit<TrainOptions<MultiTaskBatch>, 'step'> {
  weighting: Weighting;
  /** The tasks to train, each a head of the model and a task of the data (default: the model's heads). */
  tasks?: string[];
  /**
   * Every this many steps, the cosine between each pair of task gradients on the shared
   * parameters (how much the tasks conflict) is measured: free for methods that compute those
   * gradients anyway, one extra backward per task at those steps for the others. 0: never.
   */
  conflictEvery?: number;
}

export interface MultiTaskResult extends TrainResult {
  tasks: string[];
  /** Each readback: the step's task weights (or gradient coefficients), by task. */
  weights: { step: number; weights: Record<string, number> }[];
  /** Each measurement: the cosine of each pair of task gradients on the shared parameters, by 'a/b'. */
  conflicts: { step: number; cosine: Record<string, number> }[];
}

/**
 * Trains a multi-task model: each step every task's masked loss on the batch, combined by
 * `options.weighting`, then the optimizers (and the weighting's own) step.
 */
export async function trainMultiTask(engine: Engine, model: MultiHead<Tensor>, optimizers: Optimizer | readonly Optimizer[], data: MultiTaskData, options: MultiTaskOptions): Promise<MultiTaskResult> {
  const tasks = options.tasks ?? model.headNames();
  for (const t of tasks) model.head(t);
  const kinds = checkTasks('trainMultiTask', data, tasks).map((l) => l.kind);
  const conflictEvery = options.conflictEvery ?? 0;
  if (!Number.isInteger(conflictEvery) || conflictEvery < 0) throw new Error(`trainMultiTask: conflictEvery must be an integer >= 0, got ${conflictEvery}`);
  const weighting = options.weighting;
  weighting.bind(engine, tasks);
  const region = sharedRegion(model);
  const heads = tasks.map((t) => [...model.head(t).parameters().values()].filter((p) => !p.frozen));
  const gradientMethod = weighting.kind === 'gradient' ? (weighting as GradientWeighting) : null;
  const lossMethod = weighting.kind === 'loss' ? (weighting as LossWeighting) : null;
  const logEvery = options.logEvery ?? 20;
  const totalSteps = options.epochs * Math.floor(data.count / options.batchSize);
  const pairs = tasks.flatMap((a, i) => tasks.slice(i + 1).map((b) => [i, a, tasks.indexOf(b), b] as const));
  const weightLog: Promise<{ step: number; weights: Record<string, number> }>[] = [];
  const conflicts: MultiTaskResult['conflicts'] = [];
  let previous: MultiTaskBatch | null = null;

  const input = (e: Engine, b: MultiTaskBatch) => e.tensor(b.inputs, [b.rows, data.features], 'batch.inputs');

  /**
   * Backpropagates each of the k present tasks' losses once: its gradients of the `shared`
   * tensors go into row i of a [k, rowSize] stack (each at offsetOf(tensor) in the row, zeros
   * elsewhere), and, when `withHeads`, its head's gradients into the head's parameters.
   */
  const stackTaskGradients = (e: Engine, losses: Tensor[], present: number[], shared: Tensor[], rowSize: number, offsetOf: (t: Tensor) => number, withHeads: boolean): Tensor => {
    const stackOf = e.zeros([present.length, rowSize], 'taskGradients');
    present.forEach((t, i) => {
      const grads = gradients(losses[t]!, withHeads ? [...shared, ...heads[t]!] : shared);
      for (const x of shared) {
        const g = grads.get(x);
        if (!g) continue;
        const row = e.view(stackOf, x.shape, `taskGradients[${tasks[t]}].${x.name}`, i * rowSize + offsetOf(x));
        e.copy(g, row);
        row.dispose();
        g.dispose();
      }
      if (withHeads) for (const p of heads[t]!) if (grads.has(p)) accumulateGradient(p, grads.get(p)!);
    });
    return stackOf;
  };

  /** The present tasks' gradients of the trainable shared parameters, as rows laid out like the trunk's region of the flat gradients. */
  const parameterGradients = (e: Engine, losses: Tensor[], present: number[], withHeads: boolean): Tensor =>
    stackTaskGradients(e, losses, present, region!.trainable, region!.size, (p) => (p as Parameter).flatOffset - region!.start, withHeads);

  const recordConflict = (step: number, gramValues: Float64Array, present: number[]) => {
    const k = present.length;
    const cos = cosines(gramValues, k);
    const cosine: Record<string, number> = {};
    for (const [i, a, j, b] of pairs) {
      const pi = present.indexOf(i);
      const pj = present.indexOf(j);
      if (pi >= 0 && pj >= 0) cosine[`${a}/${b}`] = cos[pi * k + pj]!;
    }
    conflicts.push({ step, cosine });
  };

  const readGram = async (stackOf: Tensor): Promise<Float64Array> => {
    const g = gram(stackOf);
    const values = Float64Array.from(await g.data());
    g.dispose();
    return values;
  };

  const step = async (b: MultiTaskBatch, ctx: StepContext): Promise<StepOutput> => {
    const e = ctx.engine;
    const present = b.tasks.flatMap((t, i) => (t.labelled > 0 ? [i] : []));
    const presentFlags = b.tasks.map((t) => t.labelled > 0);
    if (lossMethod?.update && lossMethod.updateBatch === 'same' && previous) {
      // FAMO: the previous batch's losses under the updated parameters.
      const prev = previous;
      const after = noGrad(() => stack(taskLosses(e, model.forward(input(e, prev)), prev, tasks, kinds).losses));
      lossMethod.update(after, prev.tasks.map((t) => t.labelled > 0));
    }
    const x = input(e, b);
    const representation = gradientMethod?.space === 'representation' && region && region.trainable.length > 0 ? model.trunk.forward(x) : null;
    if (representation && !(representation instanceof Tensor)) {
      throw new Error(`trainMultiTask: ${weighting.name} takes gradients of the shared representation, but the trunk gives one per task; use space 'parameters'`);
    }
    const outputs = representation ? model.forwardHeads(representation) : model.forward(x);
    const { losses, targets } = taskLosses(e, outputs, b, tasks, kinds);
    const named = Object.fromEntries(tasks.map((t, i) => [t, losses[i]!]));
    const reading = (ctx.step + 1) % logEvery === 0 || ctx.step + 1 === totalSteps;
    const metrics: Record<string, Tensor> = {};
    if (reading) tasks.forEach((t, i) => kinds[i] === 'classification' && (metrics[`${t}.accuracy`] = accuracy(outputs[t]!, targets[i]!)));
    const probe = conflictEvery > 0 && ctx.step % conflictEvery === 0 && region !== null && region.trainable.length > 0 && present.length > 1;

    if (lossMethod) {
      if (probe) {
        const g = parameterGradients(e, losses, present, false);
        recordConflict(ctx.step, await readGram(g), present);
        g.dispose();
      }
      const lossVector = lossMethod instanceof EqualWeighting ? losses[0]! : stack(losses);
      if (lossMethod.update && lossMethod.updateBatch === 'next') lossMethod.update(noGrad(() => stack(losses)), presentFlags);
      const loss = lossMethod.combine({ engine: e, losses, lossVector, present: presentFlags, step: ctx.step });
      if (lossMethod.update) previous = b;
      logWeights(e, ctx.step, reading);
      return { loss, losses: named, metrics };
    }

    // Gradient-based. Without trainable shared parameters there is nothing to combine: each head learns its own task.
    if (!region || region.trainable.length === 0 || present.length === 0) {
      return { ...(present.length ? { loss: losses.reduce((a, c) => add(a, c)) } : {}), losses: named, metrics };
    }
    const method = gradientMethod!;
    const stackOf = representation
      ? stackTaskGradients(e, losses, present, [representation], aligned(representation.size), () => 0, true)
      : parameterGradients(e, losses, present, true);

    const [gramValues, lossValues] = await Promise.all([
      present.length > 1 ? readGram(stackOf) : Promise.resolve(Float64Array.of(1)),
      method.needsLosses ? stack(losses).data().then((v) => Float64Array.from(v)) : Promise.resolve(new Float64Array(tasks.length)),
    ]);
    const coefficients = method.coefficients(gramValues, present.length, lossValues, present, ctx.step);
    if (probe && !representation) recordConflict(ctx.step, gramValues, present);
    const c = e.tensor(Float32Array.from(coefficients), [present.length], `${method.name}.coefficients`);
    if (representation) {
      const combined = weightedSum(stackOf, c);
      backward(dot(representation, e.view(combined, representation.shape, 'combinedRepresentationGradient')));
    } else {
      const { start, size, trainable } = region;
      const store = trainable[0]!.store;
      const into = e.view(store.grads(), [size], 'sharedGradients', start);
      weightedSum(stackOf, c, { into });
      into.dispose();
      for (const p of trainable) {
        p.markGradient();
        if (p.mask) e.copy(mul(p.gradView(), p.mask), p.gradView());
      }
    }
    if (probe && representation) {
      const g = parameterGradients(e, losses, present, false);
      recordConflict(ctx.step, await readGram(g), present);
      g.dispose();
    }
    logWeights(e, ctx.step, reading);
    return { losses: named, metrics };
  };

  const logWeights = (e: Engine, at: number, reading: boolean) => {
    if (!reading) return;
    const w = weighting.lastWeights(e);
    const named = (v: ArrayLike<number>) => ({ step: at + 1, weights: Object.fromEntries(tasks.map((t, i) => [t, v[i] ?? 0])) });
    weightLog.push(w instanceof Float64Array ? Promise.resolve(named(w)) : w.data().then(named));
  };

  const result = await train(engine, model, [...(Array.isArray(optimizers) ? optimizers : [optimizers as Optimizer]), ...weighting.optimizers()], multiTaskDataset(data, tasks), {
    ...options,
    step,
    onEpoch: async (epoch) => {
      await weighting.endEpoch();
      await options.onEpoch?.(epoch);
    },
  });
  return { ...result, tasks, weights: await Promise.all(weightLog), conflicts };
}
