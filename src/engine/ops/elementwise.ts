// Elementwise ops. Unary ops share unary.wgsl / unary_backward.wgsl, which take the op's number
// (from lib/activation.wgsl, see ./activation.ts) as their OP override.
import { record } from '../graph.js';
import type { Tensor } from '../tensor.js';
import { UNARY_OPS, type FusedActivation, type UnaryOp } from './activation.js';
import { alive, sameShape } from './check.js';

const NOT_DIFFERENTIABLE: ReadonlySet<UnaryOp> = new Set(['clip_factor']);

/** y = f(x) elementwise, with `alpha` the op's parameter where it has one. */
export function unary(op: UnaryOp, x: Tensor, alpha = 0): Tensor {
  alive(op, x);
  const out = x.engine.empty(x.shape, op);
  x.engine.dispatch('unary', { bindings: { x, out }, uniforms: { n: x.size, alpha }, constants: { OP: UNARY_OPS[op] }, threads: x.size });
  return record(out, op, [x], [NOT_DIFFERENTIABLE.has(op) ? null : (dy) => unaryBackward(op, x, out, dy, alpha)], [out]);
}

/** dx = dy * f'(x), where f' may read f's output y. */
export function unaryBackward(op: UnaryOp, x: Tensor, y: Tensor, dy: Tensor, alpha: number): Tensor {
  const dx = x.engine.empty(x.shape, `d(${x.name})`);
  x.engine.dispatch('unary_backward', { bindings: { x, y, dy, dx }, uniforms: { n: x.size, alpha }, constants: { OP: UNARY_OPS[op] }, threads: x.size });
  return dx;
}

export const relu = (x: Tensor) => unary('relu', x);
export const leakyRelu = (x: Tensor, slope = 0.01) => unary('leaky_relu', x, slope);
export const gelu = (x: Tensor) => unary('gelu', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const square = (x: Tensor) => unary('square', x);
export const scale = (x: Tensor, factor: number) => unary('scale', x, factor);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);

const BINARY_OPS = { add: 0, sub: 1, mul: 2 } as const;

function binary(op: keyof typeof BINARY_OPS, a: Tensor, b: Tensor, grads: (((dy: Tensor) => Tensor) | null)[]): Tensor {
  alive(op, a, b);
  sameShape(op, a, b);
  const out = a.engine.empty(a.shape, op);
  a.engine.dispatch('binary', { bindings: { a, b, out }, uniforms: { n: a.size }, constants: { OP: BINARY_OPS[op] }, threads: a.size });
  return record(out, op, [a, b], grads);
}

export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', a, b, [(dy) => dy, (dy) => dy]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', a, b, [(dy) => dy, (dy) => scale(dy, -1)]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  return binary('mul', a, b, [(dy) => mul(dy, b), (dy) => mul(dy, a)]);
}

/**
 * For an activation applied in another kernel's epilogue (matmul, conv2d): maps dy to the
 * gradient before the activation, dy * act'(y), from the output y alone. Computed once per dy,
 * since the op's gradient functions for each input all need it. null: no activation.
 */
export function epilogueGradient(op: FusedActivation | null, y: Tensor, alpha: number): (dy: Tensor) => Tensor {
  if (!op) return (dy) => dy;
  let dzFor: Tensor | null = null;
  let dz: Tensor | null = null;
  return (dy) => {
    if (dzFor !== dy || !dz || dz.disposed) {
      dz = unaryBackward(op, y, y, dy, alpha);
      dzFor = dy;
    }
    return dz;
  };
}
