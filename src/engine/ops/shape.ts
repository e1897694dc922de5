// Reshape (a view, no copy), slice and concat along any axis (copies of column blocks: the
// pieces a shared trunk with several heads needs).
import type { Engine } from '../engine.js';
import { record } from '../graph.js';
import { shapeSize, shapeString, type Shape, type Tensor } from '../tensor.js';
import { alive, around, axisOf } from './check.js';

export function reshape(x: Tensor, shape: Shape): Tensor {
  alive('reshape', x);
  const resolved = [...shape];
  const free = resolved.indexOf(-1);
  if (free >= 0) {
    const rest = resolved.reduce((a, b, i) => (i === free ? a : a * b), 1);
    if (rest === 0 || x.size % rest !== 0) throw new Error(`reshape: cannot reshape ${x.name} ${shapeString(x.shape)} to ${shapeString(shape)}`);
    resolved[free] = x.size / rest;
  }
  if (shapeSize(resolved) !== x.size) throw new Error(`reshape: cannot reshape ${x.name} ${shapeString(x.shape)} (${x.size} elements) to ${shapeString(shape)}`);
  const out = x.engine.view(x, resolved, `${x.name}.reshape`);
  return record(out, 'reshape', [x], [(dy) => dy.engine.view(dy, x.shape)]);
}

/**
 * Copies a block of `width` columns from rows of src into rows of dst; with `blocks`, that many
 * such blocks, each `srcStride`/`dstStride` elements after the last (see copy_block.wgsl).
 */
export function copyColumns(
  src: Tensor,
  dst: Tensor,
  rows: number,
  width: number,
  srcStride: number,
  srcOffset: number,
  dstStride: number,
  dstOffset: number,
  blocks: { count: number; srcStride: number; dstStride: number } = { count: 1, srcStride: 0, dstStride: 0 },
): void {
  src.engine.dispatch('copy_block', {
    bindings: { src, dst },
    uniforms: { blocks: blocks.count, rows, width, src_block: blocks.srcStride, src_stride: srcStride, src_offset: srcOffset, dst_block: blocks.dstStride, dst_stride: dstStride, dst_offset: dstOffset },
    threads: blocks.count * rows * width,
  });
}

/** x[..., start : start + length, ...] along `axis`. */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  alive('slice', x);
  const ax = axisOf('slice', x.shape, axis);
  const [outer, len, inner] = around(x.shape, ax);
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > len) {
    throw new Error(`slice: [${start}, ${start + length}) is out of range for axis ${axis} of ${x.name} ${shapeString(x.shape)}`);
  }
  const shape = x.shape.map((d, i) => (i === ax ? length : d));
  const out = x.engine.empty(shape, 'slice');
  copyColumns(x, out, outer, length * inner, len * inner, start * inner, length * inner, 0);
  return record(out, 'slice', [x], [
    (dy) => {
      const dx = dy.engine.zeros(x.shape, `d(${x.name})`);
      copyColumns(dy, dx, outer, length * inner, length * inner, 0, len * inner, start * inner);
      return dx;
    },
  ]);
}

/** Joins tensors along `axis`; all other axes must match. */
export function concat(tensors: Tensor[], axis: number): Tensor {
  if (tensors.length === 0) throw new Error('concat: no tensors given');
  alive('concat', ...tensors);
  const first = tensors[0]!;
  const ax = axisOf('concat', first.shape, axis);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`concat: ${t.name} ${shapeString(t.shape)} does not match ${first.name} ${shapeString(first.shape)} outside axis ${axis}`);
    }
  }
  const total = tensors.reduce((s, t) => s + t.shape[ax]!, 0);
  const shape = first.shape.map((d, i) => (i === ax ? total : d));
  const out = first.engine.empty(shape, 'concat');
  const [outer, , inner] = around(shape, ax);
  const starts: number[] = [];
  let at = 0;
  for (const t of tensors) {
    starts.push(at);
    const len = t.shape[ax]!;
    copyColumns(t, out, outer, len * inner, len * inner, 0, total * inner, at * inner);
    at += len;
  }
  return record(
    out,
    'concat',
    tensors,
    tensors.map((t, i) => (dy: Tensor) => slice(dy, ax, starts[i]!, t.shape[ax]!)),
  );
}

/**
 * x copied into a tensor of `engine`'s context (differentiable: the gradient passes through).
 * An op's output belongs to its first input's context and a parameter's is the engine that made
 * it, so an op of a training loop whose first input is a parameter would put its output where
 * the loop's scopes never free it; starting from inContext(loopEngine, parameter) keeps it there.
 */
export function inContext(engine: Engine, x: Tensor): Tensor {
  alive('inContext', x);
  const out = engine.empty(x.shape, `${x.name}.inContext`);
  engine.copy(x, out);
  return record(out, 'inContext', [x], [(dy) => dy]);
}
