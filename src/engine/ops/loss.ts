// Losses. Softmax cross-entropy is one fused, numerically stable kernel per direction; MSE is
// composed from elementwise ops and a mean.
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, rank, sameShape } from './check.js';
import { square, sub } from './elementwise.js';
import { mean } from './reduce.js';

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
  // A workgroup per row pays off for many classes; for few, an invocation per row needs no barriers.
  const cooperative = cols > 256;
  const layout = cooperative ? { constants: { COOPERATIVE: true }, workgroups: rowGrid(engine.limits.maxComputeWorkgroupsPerDimension, rows) } : { threads: rows };
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

/** Mean squared error over all elements. */
export function mse(prediction: Tensor, target: Tensor): Tensor {
  sameShape('mse', prediction, target);
  return mean(square(sub(prediction, target)));
}

/** One workgroup per row, over a 2-D grid when rows exceed the per-dimension limit. */
function rowGrid(maxPerDim: number, rows: number): [number, number?] {
  return [Math.min(rows, maxPerDim), Math.ceil(rows / maxPerDim)];
}
