// 2-D convolution over NCHW tensors with a PyTorch-layout weight [outC, inC, kH, kW]. Every pass
// is one implicit matrix product (src/shaders/conv2d.wgsl) over an input zero-padded on every
// side, the column matrix of im2col gathered inside the product instead of written out:
//   forward:         y_n = W[OC, K] . col(x_n), K = C*KH*KW (the bias and the activation in the
//                    product's epilogue)
//   weight gradient: dW = sum over images of dz_n[OC, OH*OW] . col(x_n)^T (per image, then summed),
//                    on the forward's padded input where it kept it (see keepInput)
//   input gradient:  for stride 1, the convolution of dz with the flipped, axis-swapped kernel:
//                    dx_n = W'[C, OC*KH*KW] . flipcol(dz_n), the same product; for other strides
//                    (and fewer than FLIPPED_MIN_CHANNELS input channels), dcol_n = W^T . dz_n on
//                    the matmul kernel summed back onto the pixels by col2im
// and the bias gradient is two sums. Input, weight and bias have separate gradient functions, so a
// frozen weight costs no weight-gradient kernels.
import { record, willRecord } from '../graph.js';
import { Parameter } from '../parameters.js';
import { shapeString, type Tensor } from '../tensor.js';
import type { Engine } from '../engine.js';
import { checkFused, UNARY_OPS, type FusedActivation } from './activation.js';
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
   * Most bytes of the per-image intermediates the backward holds at once: the weight gradient's
   * per-image shares [OC, C*KH*KW] and, where the input gradient goes through col2im, its column
   * matrices [C*KH*KW, OH*OW]; the batch is taken a chunk of images at a time. Default 64 MiB,
   * and never more than the device's maxStorageBufferBindingSize.
   */
  chunkBytes?: number;
}

/** Fewest input channels for which the input gradient is a convolution (fewer rows than the product's 8-row block waste it). */
const FLIPPED_MIN_CHANNELS = 8;

/** Default chunkBytes. */
export const CHUNK_BYTES = 64 * 2 ** 20;

/** conv2d.wgsl's block of C per invocation: 8 x 8. */
const BLOCK = 8;
/**
 * Invocations per conv2d.wgsl workgroup: two 32-lane warps on GPUs that have them (SwiftShader ran
 * workgroups of 4, 16 and 64 alike on the CNN's shapes). As many go down C's rows as M has 8-row
 * blocks (a power of 2, at most 8), so that few rows of the tile idle where M is small; the rest
 * go across.
 */
const INVOCATIONS = 64;

function workgroupShape(M: number): { WG_X: number; WG_Y: number } {
  const WG_Y = Math.min(8, 2 ** Math.ceil(Math.log2(Math.ceil(M / BLOCK))));
  return { WG_X: INVOCATIONS / WG_Y, WG_Y };
}

function pair(op: string, what: string, v: number | readonly [number, number] | undefined, fallback: number, min: number): [number, number] {
  const p: [number, number] = v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x >= min)) throw new Error(`${op}: ${what} ${JSON.stringify(v)} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer or a pair of them`);
  return p;
}

/** An NCHW tensor zero-padded on every side: HP x WP images (the tensor itself where nothing is padded). */
interface Padded {
  tensor: Tensor;
  HP: number;
  WP: number;
}

function padded(t: Tensor, PH: number, PW: number, name: string): Padded {
  const [N, C, H, W] = t.shape as [number, number, number, number];
  const HP = H + 2 * PH;
  const WP = W + 2 * PW;
  if (PH === 0 && PW === 0) return { tensor: t, HP, WP };
  const tensor = t.engine.zeros([N, C, HP, WP], name);
  copyColumns(t, tensor, H, W, W, 0, WP, PH * WP + PW, { count: N * C, srcStride: H * W, dstStride: HP * WP });
  return { tensor, HP, WP };
}

/** conv2d.wgsl's u32 offset tables, their bits in an f32 tensor. */
function offsetTable(engine: Engine, offsets: Uint32Array, name: string): Tensor {
  return engine.tensor(new Float32Array(offsets.buffer), [offsets.length], name);
}

/** Where tap (c, kh, kw) sits in a padded image [C, HP, WP]; `flip`: where tap (c, KH-1-kh, KW-1-kw) does. */
function taps(C: number, KH: number, KW: number, p: Padded, flip: boolean): Uint32Array {
  const out = new Uint32Array(C * KH * KW);
  for (let c = 0, k = 0; c < C; c++) {
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++, k++) out[k] = c * p.HP * p.WP + (flip ? KH - 1 - kh : kh) * p.WP + (flip ? KW - 1 - kw : kw);
    }
  }
  return out;
}

/** Where output pixel (oh, ow)'s window starts in a padded image of width p.WP. */
function windows(OH: number, OW: number, SH: number, SW: number, p: Padded): Uint32Array {
  const out = new Uint32Array(OH * OW);
  for (let oh = 0, i = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++, i++) out[i] = oh * SH * p.WP + ow * SW;
  return out;
}

/** A padded input with its offset tables: what the forward and the weight gradient gather through. */
interface Gather {
  input: Padded;
  taps: Tensor;
  windows: Tensor;
}

/** One conv2d.wgsl product: C_z[M, N] = A_i[M, K] . gathered_i[K, N] for images i = z0 + z, z < batch. */
interface ImplicitProduct {
  batch: number;
  z0?: number;
  M: number;
  N: number;
  K: number;
  /** A_i starts at element i * aStride; its rows are aRow apart. */
  a: Tensor;
  aRow: number;
  aStride: number;
  x: Padded;
  columns: Tensor;
  steps: Tensor;
  /** C_z starts at element z * cStride. */
  c: Tensor;
  cStride: number;
  bias?: Tensor | null;
  activation?: FusedActivation | null;
  alpha?: number;
}

function implicitProduct(p: ImplicitProduct): void {
  const [, C] = p.x.tensor.shape as [number, number];
  const { WG_X, WG_Y } = workgroupShape(p.M);
  p.a.engine.dispatch('conv2d', {
    bindings: { a: p.a, x: p.x.tensor, columns: p.columns, steps: p.steps, c: p.c, bias: p.bias ?? p.a.engine.placeholder() },
    uniforms: { M: p.M, N: p.N, K: p.K, alpha: p.alpha ?? 0, a_row: p.aRow, a_stride: p.aStride, x_stride: C * p.x.HP * p.x.WP, c_stride: p.cStride, z0: p.z0 ?? 0 },
    constants: {
      WG_X,
      WG_Y,
      ALIGNED: p.aRow % 4 === 0 && p.aStride % 4 === 0,
      HAS_BIAS: !!p.bias,
      ...(p.activation ? { ACT: UNARY_OPS[p.activation] } : {}),
    },
    workgroups: [Math.ceil(p.N / (BLOCK * WG_X)), Math.ceil(p.M / (BLOCK * WG_Y)), p.batch],
    flops: 2 * p.batch * p.M * p.N * p.K,
  });
}

/** Images per chunk: as many as fit the limit with `floats` (`what`) each. */
function imagesPerChunk(op: string, engine: Engine, N: number, floats: number, what: string, options: Conv2dOptions, describe: () => string): number {
  const deviceMax = engine.limits.maxStorageBufferBindingSize;
  const limit = Math.min(options.chunkBytes ?? CHUNK_BYTES, deviceMax);
  const bytes = floats * 4;
  if (bytes > limit) {
    throw new Error(
      `${op}: one image's ${what} floats need ${bytes} bytes, over the limit of ${limit} (chunkBytes ${options.chunkBytes ?? CHUNK_BYTES}, maxStorageBufferBindingSize ${deviceMax}) (${describe()})`,
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
 * OH = floor((H + 2p - KH) / s) + 1. The products load their matrix operand in vec4s where its rows
 * are a multiple of 4 long (C*KH*KW is padded to one; the weight gradient's OH*OW is not).
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
  if (options.chunkBytes !== undefined && !(Number.isInteger(options.chunkBytes) && options.chunkBytes > 0)) {
    throw new Error(`${op}: chunkBytes ${options.chunkBytes} must be a positive integer (${describe()})`);
  }
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1;
  const OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  const OHW = OH * OW;
  const K = C * KH * KW;
  const engine = x.engine;
  // Stride 1 with padding below the kernel's size: the input gradient is a 'full' convolution of dz.
  const asConvolution = SH === 1 && SW === 1 && PH < KH && PW < KW && C >= FLIPPED_MIN_CHANNELS;
  // The backward's chunks, checked here so that a batch too large for them fails at the op.
  const shareChunk = () => imagesPerChunk(op, engine, N, OC * K, `weight-gradient share [${OC}, ${K}]`, options, describe);
  const columnChunk = () => imagesPerChunk(op, engine, N, K * OHW, `input-gradient columns [${K}, ${OHW}]`, options, describe);
  if (willRecord([weight])) shareChunk();
  if (willRecord([x]) && !asConvolution) columnChunk();

  const out = engine.empty([N, OC, OH, OW], op);
  // The weight gradient gathers from the same padded input as the forward: where the weight may
  // be differentiated, the forward keeps it and its offset tables (saved with the node, freed
  // with the scope) instead of the backward making them again.
  const keepInput = N > 0 && willRecord([weight]) && !(weight instanceof Parameter && weight.frozen);
  let kept: Gather | null = null;
  const gatherTables = (input: Padded): Gather => ({
    input,
    taps: offsetTable(engine, taps(C, KH, KW, input, false), `${op}.taps`),
    windows: offsetTable(engine, windows(OH, OW, SH, SW, input), `${op}.windows`),
  });
  const release = (g: Gather) => {
    if (g.input.tensor !== x) g.input.tensor.dispose();
    g.taps.dispose();
    g.windows.dispose();
  };
  if (N > 0) {
    const g = gatherTables(padded(x, PH, PW, `${op}.input.padded`));
    // The weight's rows padded to a multiple of 4 for the vec4 loads (the padding is never read).
    const KA = Math.ceil(K / 4) * 4;
    const w = KA === K ? weight : engine.empty([OC, KA], `${op}.weight.aligned`);
    if (w !== weight) copyColumns(weight, w, OC, K, K, 0, KA, 0);
    implicitProduct({ batch: N, M: OC, N: OHW, K, a: w, aRow: KA, aStride: 0, x: g.input, columns: g.windows, steps: g.taps, c: out, cStride: OC * OHW, bias, activation, alpha: slope });
    if (w !== weight) w.dispose();
    if (keepInput) kept = g;
    else release(g);
  }

  // With a fused activation, the gradient before it, dz = dy * act'(out), is computed once for all inputs.
  const preActivation = epilogueGradient(activation, out, slope);
  const dInput = (dy: Tensor): Tensor => {
    const per = asConvolution ? N : columnChunk();
    const dz = preActivation(dy);
    const dx = engine.empty(x.shape, `d(${x.name})`);
    if (N === 0) return dx;
    if (asConvolution) {
      // dx[n, c, h, w] = sum over oc, kh, kw of W[oc, c, kh, kw] dz[n, oc, h + PH - kh, w + PW - kw]:
      // the product of W' [C, OC*KH*KW], W'[c, (oc, kh, kw)] = W[oc, c, kh, kw] (rows padded to a
      // multiple of 4), with dz padded by KH-1-PH, KW-1-PW, its taps read flipped.
      const tapsPerChannel = KH * KW;
      const K2 = OC * tapsPerChannel;
      const KA2 = Math.ceil(K2 / 4) * 4;
      const swapped = engine.empty([C, KA2], `${op}.weight.swapped`);
      copyColumns(weight, swapped, OC, tapsPerChannel, C * tapsPerChannel, 0, tapsPerChannel, 0, { count: C, srcStride: tapsPerChannel, dstStride: KA2 });
      const dzPadded = padded(dz, KH - 1 - PH, KW - 1 - PW, `d(${x.name}).padded`);
      const flipped = offsetTable(engine, taps(OC, KH, KW, dzPadded, true), `d(${x.name}).taps`);
      const pixels = offsetTable(engine, windows(H, W, 1, 1, dzPadded), `d(${x.name}).windows`);
      implicitProduct({ batch: N, M: C, N: H * W, K: K2, a: swapped, aRow: KA2, aStride: 0, x: dzPadded, columns: pixels, steps: flipped, c: dx, cStride: C * H * W });
      for (const t of [swapped, flipped, pixels]) t.dispose();
      if (dzPadded.tensor !== dz) dzPadded.tensor.dispose();
      return dx;
    }
    const dcol = engine.empty([per, K, OHW], `d(${x.name}).columns`);
    const WB = Math.ceil(W / 4);
    chunks(N, per, (n0, batch) => {
      batchedGemm(op, { batch, M: K, N: OHW, K: OC, a: { tensor: weight }, transA: true, b: { tensor: dz, offset: n0 * OC * OHW, stride: OC * OHW }, c: { tensor: dcol, stride: K * OHW } });
      const total = batch * C * H * WB;
      engine.dispatch('col2im', { bindings: { dcol, dx }, uniforms: { C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, K, WB, n0, total }, threads: total });
    });
    dcol.dispose();
    return dx;
  };
  const dWeight = (dy: Tensor, into?: Tensor): Tensor => {
    // Per image, dz_n[OC, OH*OW] . col(x_n)^T is its [OC, K] share of dW; the shares are summed
    // over the chunk's images, then over the chunks.
    const per = shareChunk();
    const dz = preActivation(dy);
    const dw = output(op, engine, weight.shape, `d(${weight.name})`, into);
    if (N === 0) {
      engine.dispatch('fill', { bindings: { out: dw }, uniforms: { n: dw.size, value: 0 }, threads: dw.size });
      return dw;
    }
    const g = kept ?? gatherTables(padded(x, PH, PW, `d(${weight.name}).input.padded`));
    const count = Math.ceil(N / per);
    const shares = engine.empty([per, OC * K], `d(${weight.name}).per_image`);
    const chunkSums = count > 1 ? engine.empty([count, OC * K], `d(${weight.name}).per_chunk`) : null;
    chunks(N, per, (n0, batch, i) => {
      implicitProduct({ batch, z0: n0, M: OC, N: K, K: OHW, a: dz, aRow: OHW, aStride: OC * OHW, x: g.input, columns: g.taps, steps: g.windows, c: shares, cStride: OC * K });
      const rows = engine.view(shares, [batch, ...weight.shape], `d(${weight.name}).per_image.rows`);
      if (chunkSums) {
        const total = sum(rows, 0);
        copyColumns(total, chunkSums, 1, OC * K, 0, 0, 0, i * OC * K);
        total.dispose();
      } else {
        sum(rows, 0, dw);
      }
      rows.dispose();
    });
    shares.dispose();
    if (chunkSums) {
      const rows = engine.view(chunkSums, [count, ...weight.shape], `d(${weight.name}).per_chunk.rows`);
      sum(rows, 0, dw);
      rows.dispose();
      chunkSums.dispose();
    }
    if (g !== kept) release(g);
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
  const saved = kept ? [out, kept.taps, kept.windows, ...(kept.input.tensor !== x ? [kept.input.tensor] : [])] : [out];
  return record(out, name, bias ? [x, weight, bias] : [x, weight], bias ? [dInput, dWeight, dBias] : [dInput, dWeight], saved);
}
