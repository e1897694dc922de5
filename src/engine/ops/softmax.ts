// Softmax over the last axis of a [rows, cols] tensor. The backward needs only the forward
// output, so nothing else is kept.
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, rank } from './check.js';

/** y[r] = softmax(x[r]) for each row of a [rows, cols] tensor, stable for large logits. */
export function softmax(x: Tensor): Tensor {
  alive('softmax', x);
  rank('softmax', x, 2);
  const [rows, cols] = x.shape as [number, number];
  if (cols === 0) throw new Error(`softmax: ${x.name} ${shapeString(x.shape)} has no columns`);
  const engine = x.engine;
  const y = engine.empty(x.shape, 'softmax');
  engine.dispatch('softmax', { bindings: { x, y }, uniforms: { rows, cols }, threads: rows });
  return record(y, 'softmax', [x], [
    (dy) => {
      const dx = engine.empty(x.shape, `d(${x.name})`);
      engine.dispatch('softmax_backward', { bindings: { y, dy, dx }, uniforms: { rows, cols }, threads: rows });
      return dx;
    },
  ], [y]);
}
