// 2-D pooling over NCHW tensors (no padding): max pooling, average pooling, and global average
// pooling (a mean over H*W, composed). What the backward needs: for max pooling, the offset of
// each window's first maximum (ties send the gradient to exactly one element), which the forward
// saves in a u32 buffer only when the graph is recorded; the backward routes dy with it (one
// invocation per window when windows do not overlap, else a gather per input element over the
// windows that contain it). Average pooling needs only dy.
import { record, willRecord } from '../graph.js';
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
  // The window maxima's offsets within their planes (u32 bits), kept for the backward.
  const argmax = max && willRecord([x]) ? engine.empty([N, C, OH, OW], `${op}.argmax`) : null;
  engine.dispatch('pool2d', {
    bindings: { x, out, argmax: argmax ?? engine.placeholder() },
    uniforms: { ...dims, total: out.size },
    constants: { MAX: max, SAVE_ARGMAX: argmax !== null },
    threads: out.size,
  });
  return record(
    out,
    op,
    [x],
    [
      (dy) => {
        const dx = engine.empty(x.shape, `d(${x.name})`);
        // Windows that share no element: one invocation per window writes its stride cell; else a gather per input element.
        const overlap = KH > SH || KW > SW;
        const threads = overlap ? x.size : out.size;
        engine.dispatch('pool2d_backward', {
          bindings: { argmax: argmax ?? engine.placeholder(), dy, dx },
          uniforms: { ...dims, total: threads },
          constants: { MAX: max, OVERLAP: overlap },
          threads,
        });
        return dx;
      },
    ],
    argmax ? [argmax] : [],
  );
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
