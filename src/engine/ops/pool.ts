// 2-D pooling over NCHW tensors (no padding): max pooling (the gradient goes to the first maximum
// of each window, recomputed in the backward gather kernel, so ties send it to exactly one
// element), average pooling, and global average pooling (a mean over H*W, composed).
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, rank } from './check.js';
import { mean } from './reduce.js';
import { reshape } from './shape.js';

export interface Pool2dOptions {
  /** Stride, one number or [vertical, horizontal]; defaults to the kernel size. */
  stride?: number | readonly [number, number];
}

function pool(op: string, max: boolean, x: Tensor, kernel: number | readonly [number, number], options: Pool2dOptions): Tensor {
  alive(op, x);
  rank(op, x, 4);
  const k: [number, number] = typeof kernel === 'number' ? [kernel, kernel] : [kernel[0], kernel[1]];
  const s: [number, number] = options.stride === undefined ? k : typeof options.stride === 'number' ? [options.stride, options.stride] : [options.stride[0], options.stride[1]];
  if (![...k, ...s].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`${op}: kernel ${JSON.stringify(kernel)} and stride ${JSON.stringify(options.stride)} must be positive integers`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [KH, KW] = k;
  const [SH, SW] = s;
  if (KH > H || KW > W) throw new Error(`${op}: kernel ${KH}x${KW} is larger than the input ${x.name} ${shapeString(x.shape)}`);
  const OH = Math.floor((H - KH) / SH) + 1;
  const OW = Math.floor((W - KW) / SW) + 1;
  const engine = x.engine;
  const out = engine.empty([N, C, OH, OW], op);
  const dims = { planes: N * C, H, W, OH, OW, KH, KW, SH, SW };
  engine.dispatch('pool2d', { bindings: { x, out }, uniforms: { ...dims, total: out.size }, constants: { MAX: max }, threads: out.size });
  return record(out, op, [x], [
    (dy) => {
      const dx = engine.empty(x.shape, `d(${x.name})`);
      engine.dispatch('pool2d_backward', {
        bindings: { x: max ? x : dy, dy, dx },
        uniforms: { ...dims, total: x.size },
        constants: { MAX: max },
        threads: x.size,
      });
      return dx;
    },
  ]);
}

/** Max over kernel windows of x [N, C, H, W] (stride defaults to the kernel size). */
export function maxPool2d(x: Tensor, kernel: number | readonly [number, number], options: Pool2dOptions = {}): Tensor {
  return pool('maxPool2d', true, x, kernel, options);
}

/** Mean over kernel windows of x [N, C, H, W] (stride defaults to the kernel size). */
export function avgPool2d(x: Tensor, kernel: number | readonly [number, number], options: Pool2dOptions = {}): Tensor {
  return pool('avgPool2d', false, x, kernel, options);
}

/** Mean over H and W: [N, C, H, W] to [N, C]. */
export function globalAvgPool(x: Tensor): Tensor {
  alive('globalAvgPool', x);
  rank('globalAvgPool', x, 4);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  return mean(reshape(x, [N, C, H * W]), 2);
}
