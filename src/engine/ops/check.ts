// Shape checks shared by the ops: each error names the op and the shapes.
import type { Engine } from '../engine.js';
import { shapeString, type Shape, type Tensor } from '../tensor.js';

export function alive(op: string, ...tensors: Tensor[]): void {
  for (const t of tensors) t.assertAlive(op);
  const engine = tensors[0]?.engine;
  for (const t of tensors) if (!t.engine.sharesDevice(engine!)) throw new Error(`${op}: tensors ${tensors[0]!.name} and ${t.name} belong to different engines (devices)`);
}

export function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shapes ${shapeString(a.shape)} (${a.name}) and ${shapeString(b.shape)} (${b.name}) differ; ${op} does not broadcast`);
  }
}

export function rank(op: string, t: Tensor, r: number): void {
  if (t.rank !== r) throw new Error(`${op}: ${t.name} has shape ${shapeString(t.shape)}, expected rank ${r}`);
}

/** Normalises a possibly negative axis. */
export function axisOf(op: string, shape: Shape, axis: number): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) throw new Error(`${op}: axis ${axis} is out of range for shape ${shapeString(shape)}`);
  return a;
}

/** [outer, len, inner] around an axis. */
export function around(shape: Shape, axis: number): [number, number, number] {
  const outer = shape.slice(0, axis).reduce((x, y) => x * y, 1);
  const inner = shape.slice(axis + 1).reduce((x, y) => x * y, 1);
  return [outer, shape[axis]!, inner];
}

/**
 * The tensor an op writes its result into: `into` when given (it must have exactly `shape`: a
 * gradient written straight into a parameter's gradient region), else a new one.
 */
export function output(op: string, engine: Engine, shape: Shape, name: string, into?: Tensor): Tensor {
  if (!into) return engine.empty(shape, name);
  into.assertAlive(op);
  if (into.shape.length !== shape.length || into.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${op}: output ${into.name} has shape ${shapeString(into.shape)}, the result has ${shapeString(shape)}`);
  }
  return into;
}
