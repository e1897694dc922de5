// Sums and means over one axis or over everything; their backward repeats dy along that axis.
import { record } from '../graph.js';
import type { Shape, Tensor } from '../tensor.js';
import { alive, around, axisOf, output } from './check.js';

function reduce(op: string, x: Tensor, axis: number | undefined, mean: boolean, into?: Tensor): Tensor {
  alive(op, x);
  const full = axis === undefined;
  const ax = full ? 0 : axisOf(op, x.shape, axis);
  const [outer, len, inner] = full ? [1, x.size, 1] : around(x.shape, ax);
  const outShape = full ? [] : x.shape.filter((_, i) => i !== ax);
  const factor = mean ? 1 / Math.max(len, 1) : 1;
  const out = output(op, x.engine, outShape, op, into);
  const outputs = outer * inner;
  const maxPerDim = x.engine.limits.maxComputeWorkgroupsPerDimension;
  // A workgroup per output only pays off for few outputs over a long axis; otherwise a loop per
  // output needs no barriers (which are costly, above all on CPU-emulated adapters).
  const cooperative = outputs < 64 && len > 1024;
  x.engine.dispatch('reduce', {
    bindings: { x, out },
    uniforms: { outer, len, inner, scale: factor },
    constants: { COOPERATIVE: cooperative },
    ...(cooperative ? { workgroups: [Math.min(outputs, maxPerDim), Math.ceil(outputs / maxPerDim)] } : { threads: outputs }),
  });
  return record(out, op, [x], [(dy) => broadcast(dy, x.shape, outer, len, inner, factor)]);
}

/** Repeats dy [outer, inner] along a middle axis of length len, times scale, into `shape`. */
function broadcast(dy: Tensor, shape: Shape, outer: number, len: number, inner: number, factor: number): Tensor {
  const out = dy.engine.empty(shape, 'broadcast');
  const n = outer * len * inner;
  dy.engine.dispatch('broadcast', { bindings: { x: dy, out }, uniforms: { n, len, inner, scale: factor }, threads: n });
  return out;
}

/** Sum over `axis`, or over all elements (a scalar of shape []) when no axis is given; into `out` when given. */
export function sum(x: Tensor, axis?: number, out?: Tensor): Tensor {
  return reduce('sum', x, axis, false, out);
}

/** Mean over `axis`, or over all elements when no axis is given; into `out` when given. */
export function mean(x: Tensor, axis?: number, out?: Tensor): Tensor {
  return reduce('mean', x, axis, true, out);
}
