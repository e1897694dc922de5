// Losses. Softmax cross-entropy is one fused, numerically stable kernel per direction; MSE is
// composed from elementwise ops and a mean.
import type { Engine } from '../engine.js';
import { noGrad, record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, rank, sameShape } from './check.js';
import { MAX_EMBEDDING_VOCAB } from './embedding.js';
import { add, scale, square, sub } from './elementwise.js';
import { mean } from './reduce.js';
import { softmax } from './softmax.js';

/**
 * Per-row cross-entropy between softmax(logits) and target distributions, both [rows, classes].
 * Targets are constants (no gradient flows into them): one-hot rows for hard labels, soft rows
 * for distillation.
 */
export function softmaxCrossEntropyRows(logits: Tensor, targets: Tensor): Tensor {
  alive('softmaxCrossEntropy', logits, targets);
  rank('softmaxCrossEntropy', logits, 2);
  sameShape('softmaxCrossEntropy', logits, targets);
  const [rows, cols] = logits.shape as [number, number];
  if (cols === 0) throw new Error(`softmaxCrossEntropy: logits ${shapeString(logits.shape)} have no classes`);
  const engine = logits.engine;
  const loss = engine.empty([rows], 'softmaxCrossEntropy');
  const layout = rowLayout(engine, rows, cols);
  engine.dispatch('softmax_cross_entropy', { bindings: { logits, targets, loss }, uniforms: { rows, cols }, ...layout });
  return record(loss, 'softmaxCrossEntropy', [logits, targets], [
    (dloss) => {
      const dlogits = engine.empty(logits.shape, `d(${logits.name})`);
      engine.dispatch('softmax_cross_entropy_backward', { bindings: { logits, targets, dloss, dlogits }, uniforms: { rows, cols }, ...layout });
      return dlogits;
    },
    null,
  ]);
}

/** Mean over rows of the softmax cross-entropy: the usual classification loss. */
export function softmaxCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  return mean(softmaxCrossEntropyRows(logits, targets));
}

/**
 * Per-row cross-entropy between softmax(logits [rows, classes]) and targets [rows] given as class
 * ids (f32 tensors holding integers, as embedding ids are): the one-hot case of
 * softmaxCrossEntropyRows without the [rows, classes] one-hot matrix. The forward saves each row's
 * log-sum-exp ([rows]), so the backward forms the softmax with one exp per logit:
 *   dlogits[r, j] = dloss[r] * (exp(logits[r, j] - lse[r]) - [j == targets[r]]).
 * Ids must be integers in [0, classes); they are not checked here (that would need a readback):
 * check them where they come from the CPU (`checkIndices`). A row whose id is anything else
 * (out of range, negative, fractional, NaN) is read nowhere and gets a NaN loss and gradient, so
 * that a finite check stops the training. No gradient flows into the targets.
 */
export function softmaxCrossEntropyIndicesRows(logits: Tensor, targets: Tensor): Tensor {
  const op = 'softmaxCrossEntropyIndices';
  alive(op, logits, targets);
  rank(op, logits, 2);
  const [rows, cols] = logits.shape as [number, number];
  if (targets.rank !== 1 || targets.shape[0] !== rows) {
    throw new Error(`${op}: targets ${targets.name} ${shapeString(targets.shape)} must be [${rows}], one class id per row of logits ${shapeString(logits.shape)}`);
  }
  if (cols === 0) throw new Error(`${op}: logits ${shapeString(logits.shape)} have no classes`);
  if (cols > MAX_EMBEDDING_VOCAB) throw new Error(`${op}: logits ${shapeString(logits.shape)} have more classes than f32 ids can address exactly (${MAX_EMBEDDING_VOCAB})`);
  const engine = logits.engine;
  const loss = engine.empty([rows], op);
  const lse = engine.empty([rows], `${op}.lse`);
  const layout = rowLayout(engine, rows, cols);
  if (rows > 0) engine.dispatch('softmax_cross_entropy_indices', { bindings: { logits, targets, loss, lse }, uniforms: { rows, cols }, ...layout });
  return record(loss, op, [logits, targets], [
    (dloss) => {
      const dlogits = engine.empty(logits.shape, `d(${logits.name})`);
      const n = rows * cols;
      if (n > 0) engine.dispatch('softmax_cross_entropy_indices_backward', { bindings: { logits, targets, lse, dloss, dlogits }, uniforms: { n, cols }, threads: n });
      return dlogits;
    },
    null,
  ]);
}

/** Mean over rows of softmaxCrossEntropyIndicesRows: the classification loss for class-id targets. */
export function softmaxCrossEntropyIndices(logits: Tensor, targets: Tensor): Tensor {
  return mean(softmaxCrossEntropyIndicesRows(logits, targets));
}

/** Mean squared error over all elements. */
export function mse(prediction: Tensor, target: Tensor): Tensor {
  sameShape('mse', prediction, target);
  return mean(square(sub(prediction, target)));
}

export interface DistillationOptions {
  /** Softens both distributions: logits / temperature. Default 4. */
  temperature?: number;
  /** Weight of the soft (teacher) term; the hard (label) term gets 1 - alpha. Default 0.9. */
  alpha?: number;
}

/**
 * Hinton et al.'s knowledge-distillation loss over [rows, classes] logits:
 *   alpha * T^2 * mean_rows KL(softmax(teacher / T) || softmax(student / T))
 *   + (1 - alpha) * mean_rows CE(targets, softmax(student)).
 * T^2 keeps the soft term's gradients on the scale of the hard term's as T changes. The teacher
 * is a constant (no gradient flows into it). Targets are one-hot rows; an all-zero row (an
 * unlabelled example) adds no hard term, though it still counts in the mean over rows.
 */
export function distillationLoss(student: Tensor, teacher: Tensor, targets: Tensor, options: DistillationOptions = {}): Tensor {
  const { temperature = 4, alpha = 0.9 } = options;
  alive('distillationLoss', student, teacher, targets);
  rank('distillationLoss', student, 2);
  sameShape('distillationLoss', student, teacher);
  sameShape('distillationLoss', student, targets);
  if (student.shape[1] === 0) throw new Error(`distillationLoss: logits ${shapeString(student.shape)} have no classes`);
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new Error(`distillationLoss: temperature must be a positive finite number, got ${temperature}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`distillationLoss: alpha must be in [0, 1], got ${alpha}`);
  const terms: Tensor[] = [];
  if (alpha > 0) {
    // KL(p || q) = CE(p, student / T) - CE(p, teacher / T): the fused, stable kernel twice, and
    // the teacher's entropy term (a constant) computed without recording.
    const [p, teacherCE] = noGrad(() => {
      const soft = scale(teacher, 1 / temperature);
      const probs = softmax(soft);
      return [probs, softmaxCrossEntropyRows(soft, probs)] as const;
    });
    const kl = sub(softmaxCrossEntropyRows(scale(student, 1 / temperature), p), teacherCE);
    terms.push(scale(mean(kl), alpha * temperature * temperature));
  }
  // A weight of 0 skips its term: no dispatches, and no 0 * Infinity from a term that is unused.
  if (alpha < 1) terms.push(scale(softmaxCrossEntropy(student, targets), 1 - alpha));
  return terms.length === 2 ? add(terms[0]!, terms[1]!) : terms[0]!;
}

/**
 * The dispatch of a row-wise loss kernel: a workgroup per row (COOPERATIVE, over a 2-D grid when
 * rows exceed the per-dimension limit) pays off for many classes; for few, an invocation per row
 * needs no barriers.
 */
function rowLayout(engine: Engine, rows: number, cols: number) {
  if (cols <= 256) return { threads: rows };
  const maxPerDim = engine.limits.maxComputeWorkgroupsPerDimension;
  return { constants: { COOPERATIVE: true }, workgroups: [Math.min(rows, maxPerDim), Math.ceil(rows / maxPerDim)] as [number, number] };
}
