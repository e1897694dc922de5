// 2-D convolution over NCHW tensors with a PyTorch-layout weight [outC, inC, kH, kW], as matrix
// products on the matmul kernel (batchedGemm). im2col (src/shaders/im2col.wgsl) gathers each
// image's input windows into a column matrix col[K, OH*OW] (K = C*KH*KW); then
//   forward:         y_n = W[OC, K] . col_n (one image per batch entry; the bias as a column of W
//                    against a row of ones in col, the activation in the matmul's epilogue)
//   weight gradient: dW = sum over images of dz_n[OC, OH*OW] . col_n^T (per image, then summed),
//                    on the forward's own columns where it kept them (see keepColumns)
//   input gradient:  for stride 1, the convolution of dz with the flipped, axis-swapped kernel:
//                    dx_n = W'[C, OC*KH*KW] . flipcol(dz_n) (the same im2col and product);
//                    for other strides, dcol_n = W^T . dz_n summed back onto the pixels by col2im
// and the bias gradient is two sums. The column matrices of a batch are built a chunk of images at
// a time, each at most `columnBytes`. Input, weight and bias have separate gradient functions, so a
// frozen weight costs no weight-gradient kernels.
import { record, willRecord } from '../graph.js';
import { Parameter } from '../parameters.js';
import { shapeString, type Tensor } from '../tensor.js';
import { checkFused, type FusedActivation } from './activation.js';
import { alive, output, rank } from './check.js';
import { epilogueGradient } from './elementwise.js';
import { batchedGemm } from './matmul.js';
import { sum } from './reduce.js';
import { copyColumns } from './shape.js';

export interface Conv2dOptions {
  /** Stride, one number for both axes or [vertical, horizontal]; default 1. */
  stride?: number | readonly [number, number];
  /** Zero padding on each side, one number for both axes or [vertical, horizontal]; default 0. */
  padding?: number | readonly [number, number];
  /** An activation applied in the product's epilogue (one whose derivative follows from the output). */
  activation?: FusedActivation | null;
  /** leaky_relu's slope (positive); default 0.01. */
  slope?: number;
  /**
   * Most bytes of one chunk's column matrix (im2col); the batch is convolved a chunk of images at
   * a time. Default 64 MiB, and never more than the device's maxStorageBufferBindingSize.
   */
  columnBytes?: number;
}

/** Fewest input channels for which the input gradient is a convolution (fewer rows than the matmul's block waste it). */
const FLIPPED_MIN_CHANNELS = 8;

/** Default columnBytes: the batch-64 FedAvg CNN's conv2 (40 MB of columns) runs as one chunk. */
export const COLUMN_BYTES = 64 * 2 ** 20;

function pair(op: string, what: string, v: number | readonly [number, number] | undefined, fallback: number, min: number): [number, number] {
  const p: [number, number] = v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x >= min)) throw new Error(`${op}: ${what} ${JSON.stringify(v)} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer or a pair of them`);
  return p;
}

/** A convolution's shape: input [N, C, H, W], kernel KH x KW, output OH x OW. */
interface Geometry {
  C: number;
  H: number;
  W: number;
  OH: number;
  OW: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
}

interface ColumnLayout {
  /** Row K of the columns is ones (the bias's row). */
  onesRow?: boolean;
  /** Tap (kh, kw) reads the window at (KH-1-kh, KW-1-kw). */
  flipTaps?: boolean;
}

/**
 * Writes the column matrices of images n0 .. n0 + batch - 1 of x into col [batch, KP, OH*OW] (see
 * im2col.wgsl). Past row C*KH*KW come zeros, but a row of ones first with `onesRow`.
 */
function im2col(x: Tensor, g: Geometry, n0: number, batch: number, KP: number, col: Tensor, layout: ColumnLayout = {}): void {
  const rows = batch * KP * g.OH;
  x.engine.dispatch('im2col', {
    bindings: { x, col },
    uniforms: { ...g, K: g.C * g.KH * g.KW, KP, n0, rows },
    constants: { ONES_ROW: layout.onesRow ?? false, FLIP_TAPS: layout.flipTaps ?? false },
    threads: rows,
  });
}

/** Images per chunk: as many as fit the limit with `floats` (`what`) each. */
function imagesPerChunk(op: string, x: Tensor, N: number, floats: number, what: string, options: Conv2dOptions, describe: () => string): number {
  const deviceMax = x.engine.limits.maxStorageBufferBindingSize;
  const limit = Math.min(options.columnBytes ?? COLUMN_BYTES, deviceMax);
  const bytes = floats * 4;
  if (bytes > limit) {
    throw new Error(
      `${op}: one image's columns (${what} floats) need ${bytes} bytes, over the limit of ${limit} (columnBytes ${options.columnBytes ?? COLUMN_BYTES}, maxStorageBufferBindingSize ${deviceMax}) (${describe()})`,
    );
  }
  return Math.max(1, Math.min(N, Math.floor(limit / bytes)));
}

/** Calls fn(n0, batch) for consecutive chunks of at most `per` of N images. */
function chunks(N: number, per: number, fn: (n0: number, batch: number, index: number) => void): void {
  for (let n0 = 0, i = 0; n0 < N; n0 += per, i++) fn(n0, Math.min(per, N - n0), i);
}

/**
 * y[n, oc, oh, ow] = bias[oc] + sum over ic, kh, kw of weight[oc, ic, kh, kw] * x[n, ic, oh*s - p + kh, ow*s - p + kw]
 * (zero outside x), for x [N, C, H, W] and weight [OC, C, KH, KW]; y is [N, OC, OH, OW] with
 * OH = floor((H + 2p - KH) / s) + 1. The products take the matmul kernel's vec4 path where OH*OW
 * is a multiple of 4 (and, for the input gradient, C*KH*KW).
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  alive(op, x, weight, ...(bias ? [bias] : []));
  rank(op, x, 4);
  rank(op, weight, 4);
  const [SH, SW] = pair(op, 'stride', options.stride, 1, 1);
  const [PH, PW] = pair(op, 'padding', options.padding, 0, 0);
  const activation = options.activation ?? null;
  const slope = options.slope ?? 0.01;
  checkFused(op, activation, slope);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [OC, WC, KH, KW] = weight.shape as [number, number, number, number];
  const describe = () => `input ${x.name} ${shapeString(x.shape)}, weight ${weight.name} ${shapeString(weight.shape)}${bias ? `, bias ${bias.name} ${shapeString(bias.shape)}` : ''}, stride [${SH},${SW}], padding [${PH},${PW}]`;
  if (WC !== C) throw new Error(`${op}: input has ${C} channels but the weight expects ${WC} (${describe()})`);
  if (OC === 0 || C === 0 || KH === 0 || KW === 0) throw new Error(`${op}: empty weight (${describe()})`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== OC)) throw new Error(`${op}: bias must have shape [${OC}] (${describe()})`);
  if (KH > H + 2 * PH || KW > W + 2 * PW) {
    throw new Error(`${op}: kernel ${KH}x${KW} is larger than the padded input ${H + 2 * PH}x${W + 2 * PW} (${describe()})`);
  }
  if (options.columnBytes !== undefined && !(Number.isInteger(options.columnBytes) && options.columnBytes > 0)) {
    throw new Error(`${op}: columnBytes ${options.columnBytes} must be a positive integer (${describe()})`);
  }
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1;
  const OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  const OHW = OH * OW;
  const K = C * KH * KW;
  const g: Geometry = { C, H, W, OH, OW, KH, KW, SH, SW, PH, PW };
  const engine = x.engine;
  // The forward's W has KP columns, a multiple of 4 for the matmul's vec4 loads: the weight, then
  // the bias (against a row of ones in col), then zeros.
  const KP = Math.ceil((K + (bias ? 1 : 0)) / 4) * 4;
  const perChunk = imagesPerChunk(op, x, N, KP * OHW, `[${KP}, ${OHW}]`, options, describe);
  const out = engine.empty([N, OC, OH, OW], op);
  // The weight gradient's products read the same columns as the forward's: where the whole batch
  // is one chunk and the weight may be differentiated, the forward keeps them (saved with the
  // node, freed with the scope) instead of the backward building them again.
  const keepColumns = N > 0 && perChunk >= N && willRecord([weight]) && !(weight instanceof Parameter && weight.frozen);
  let forwardColumns: Tensor | null = null;
  if (N > 0) {
    const w = KP === K ? weight : engine.zeros([OC, KP], `${op}.weight+bias`);
    if (w !== weight) {
      copyColumns(weight, w, OC, K, K, 0, KP, 0);
      if (bias) copyColumns(bias, w, OC, 1, 1, 0, KP, K);
    }
    const col = engine.empty([perChunk, KP, OHW], `${op}.columns`);
    chunks(N, perChunk, (n0, batch) => {
      im2col(x, g, n0, batch, KP, col, { onesRow: bias !== null });
      batchedGemm(op, {
        batch,
        M: OC,
        N: OHW,
        K: KP,
        a: { tensor: w },
        b: { tensor: col, stride: KP * OHW },
        c: { tensor: out, offset: n0 * OC * OHW, stride: OC * OHW },
        activation,
        alpha: slope,
      });
    });
    if (keepColumns) forwardColumns = col;
    else col.dispose();
    if (w !== weight) w.dispose();
  }

  // With a fused activation, the gradient before it, dz = dy * act'(out), is computed once for all inputs.
  const preActivation = epilogueGradient(activation, out, slope);
  // Stride 1 with padding below the kernel's size: the input gradient is a 'full' convolution of dz.
  const asConvolution = SH === 1 && SW === 1 && PH < KH && PW < KW && C >= FLIPPED_MIN_CHANNELS;
  const dInput = (dy: Tensor): Tensor => {
    if (asConvolution) {
      // dx[n, c, h, w] = sum over oc, kh, kw of W[oc, c, kh, kw] dz[n, oc, h + PH - kh, w + PW - kw]:
      // im2col of dz (OC channels, padding KH-1-PH, taps flipped) times W' [C, KP2] with
      // W'[c, (oc, kh, kw)] = W[oc, c, kh, kw] (zeros past OC*KH*KW, for the vec4 loads).
      const taps = KH * KW;
      const K2 = OC * taps;
      const KP2 = Math.ceil(K2 / 4) * 4;
      const HW = H * W;
      const per = imagesPerChunk(op, x, N, KP2 * HW, `[${KP2}, ${HW}]`, options, describe);
      const gz: Geometry = { C: OC, H: OH, W: OW, OH: H, OW: W, KH, KW, SH: 1, SW: 1, PH: KH - 1 - PH, PW: KW - 1 - PW };
      const dz = preActivation(dy);
      const dx = engine.empty(x.shape, `d(${x.name})`);
      const swapped = KP2 === K2 ? engine.empty([C, KP2], `${op}.weight.swapped`) : engine.zeros([C, KP2], `${op}.weight.swapped`);
      copyColumns(weight, swapped, OC, taps, C * taps, 0, taps, 0, { count: C, srcStride: taps, dstStride: KP2 });
      const col = engine.empty([per, KP2, HW], `d(${x.name}).columns`);
      chunks(N, per, (n0, batch) => {
        im2col(dz, gz, n0, batch, KP2, col, { flipTaps: true });
        batchedGemm(op, { batch, M: C, N: HW, K: KP2, a: { tensor: swapped }, b: { tensor: col, stride: KP2 * HW }, c: { tensor: dx, offset: n0 * C * HW, stride: C * HW } });
      });
      col.dispose();
      swapped.dispose();
      return dx;
    }
    const per = imagesPerChunk(op, x, N, K * OHW, `[${K}, ${OHW}]`, options, describe);
    const dz = preActivation(dy);
    const dx = engine.empty(x.shape, `d(${x.name})`);
    const dcol = engine.empty([per, K, OHW], `d(${x.name}).columns`);
    const WB = Math.ceil(W / 4);
    chunks(N, per, (n0, batch) => {
      batchedGemm(op, { batch, M: K, N: OHW, K: OC, a: { tensor: weight }, transA: true, b: { tensor: dz, offset: n0 * OC * OHW, stride: OC * OHW }, c: { tensor: dcol, stride: K * OHW } });
      const total = batch * C * H * WB;
      engine.dispatch('col2im', { bindings: { dcol, dx }, uniforms: { ...g, K, WB, n0, total }, threads: total });
    });
    dcol.dispose();
    return dx;
  };
  const dWeight = (dy: Tensor, into?: Tensor): Tensor => {
    // Per image, dz_n[OC, OH*OW] . col_n^T gives its [OC, KC] share of dW (col_n the forward's
    // columns with their KC rows, or this pass's, KC = K rounded up to a multiple of 4 for the
    // vec4 loads); the shares are summed over the chunk's images, then over the chunks, and cut
    // to K columns.
    const KC = forwardColumns ? KP : Math.ceil(K / 4) * 4;
    const per = forwardColumns ? N : imagesPerChunk(op, x, N, KC * OHW + OC * KC, `[${KC}, ${OHW}] and [${OC}, ${KC}]`, options, describe);
    const count = Math.ceil(N / per);
    const dz = preActivation(dy);
    const dw = output(op, engine, weight.shape, `d(${weight.name})`, into);
    if (N === 0) {
      engine.dispatch('fill', { bindings: { out: dw }, uniforms: { n: dw.size, value: 0 }, threads: dw.size });
      return dw;
    }
    const col = forwardColumns ?? engine.empty([per, KC, OHW], `d(${weight.name}).columns`);
    const shares = engine.empty([per, OC * KC], `d(${weight.name}).per_image`);
    const chunkSums = count > 1 ? engine.empty([count, OC * KC], `d(${weight.name}).per_chunk`) : null;
    let total: Tensor | null = null;
    chunks(N, per, (n0, batch, i) => {
      if (!forwardColumns) im2col(x, g, n0, batch, KC, col);
      batchedGemm(op, { batch, M: OC, N: KC, K: OHW, a: { tensor: dz, offset: n0 * OC * OHW, stride: OC * OHW }, b: { tensor: col, stride: KC * OHW }, transB: true, c: { tensor: shares, stride: OC * KC } });
      const rows = engine.view(shares, [batch, OC * KC], `d(${weight.name}).per_image.rows`);
      total = sum(rows, 0);
      rows.dispose();
      if (chunkSums) {
        copyColumns(total, chunkSums, 1, OC * KC, 0, 0, 0, i * OC * KC);
        total.dispose();
      }
    });
    if (col !== forwardColumns) col.dispose();
    shares.dispose();
    if (chunkSums) {
      total = sum(chunkSums, 0);
      chunkSums.dispose();
    }
    copyColumns(total!, dw, OC, K, KC, 0, K, 0);
    total!.dispose();
    return dw;
  };
  const dBias = (dy: Tensor, into?: Tensor): Tensor => {
    dy = preActivation(dy);
    const rows = engine.view(dy, [N, OC, OH * OW], `${dy.name}.rows`);
    const perImage = sum(rows, 2);
    rows.dispose();
    const db = sum(perImage, 0, into);
    perImage.dispose();
    return db;
  };
  const name = activation ? `${op}+${activation}` : op;
  return record(out, name, bias ? [x, weight, bias] : [x, weight], bias ? [dInput, dWeight, dBias] : [dInput, dWeight], forwardColumns ? [out, forwardColumns] : [out]);
}
