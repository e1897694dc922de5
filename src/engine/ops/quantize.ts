// 8-bit quantisation of flat f32 vectors with stochastic rounding (QSGD, Alistarh et al. 2017;
// Konečný et al. 2016, "Federated Learning: Strategies for Improving Communication Efficiency"):
// federated clients' updates in a quarter of the bytes, unbiased, so averaging many of them (or
// error feedback, src/paradigms/federated/compression.ts) removes the rounding.
//
// Format. The vector is cut into blocks of `blockSize` elements (the last may be shorter). Block b
// has a minimum lo and a maximum hi, and 256 levels lo + c * step, step = (hi - lo) / 255, c an
// 8-bit code. Asymmetric (min, max) rather than symmetric (max |x|): the levels cover only the
// values there are, so a one-sided block (a bias that only grows, a ReLU layer's delta) gets up to
// twice the resolution, for one more float per block; zero is then not a level, but rounding is
// unbiased either way, and an all-zero (any constant) block is exact (step 0).
// Each element rounds down or up to its two neighbouring levels with probability proportional to
// its distance from the other one (E[decoded] = x), with random bits from Philox4x32-10 keyed by
// the seed: the same (x, seed) always gives the same codes.
//   codes:  [ceil(n / 4)] f32 tensor holding u32 words, element i in byte i % 4 of word i / 4
//           (the tensor's bytes are the codes in element order); read its words with
//           `new Uint32Array((await codes.data()).buffer)` (copies keep the bits).
//   scales: [blocks, 2] f32, (lo, step) per block.
// A block holding NaN or +-Infinity (or whose range overflows f32) is poisoned rather than
// rejected (rejecting would need a readback): its scales are NaN and all its elements decode to
// NaN, so a server's nonFiniteCount or a NaN check sees it; other blocks are unaffected.
//
// Kernels:
//   quantize8    one workgroup per block: the block's (min, max) by a workgroup tree, then the
//                codes, four per invocation word, one Philox call per word; optionally adds and
//                rewrites an error-feedback residual in the same pass
//   dequantize8  one invocation per code word: four elements lo + c * step
import type { Engine } from '../engine.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive } from './check.js';

/**
 * Default block size: 1024 elements. Scales cost 8 bytes per block, 0.8% of the 1024 code bytes
 * (256: 3.1%), while a block stays small enough that one large coordinate widens the step of
 * only 1023 others (QSGD's buckets are 512 to 8192), and a parameter tensor of the flat layout
 * (starting at multiples of 64 elements) spans few blocks that it shares with a neighbour.
 */
export const DEFAULT_QUANTIZE_BLOCK = 1024;
/** Block sizes are multiples of 4 (a code word never straddles two blocks) up to this. */
export const MAX_QUANTIZE_BLOCK = 2 ** 26;
/** Bytes of the header that travels with the codes and scales: n and blockSize as u32. */
export const QUANTIZED_HEADER_BYTES = 8;

/** Invocations per quantize8 workgroup: 64, as flat.ts's reductions (barriers cost per invocation on SwiftShader). */
const QUANTIZE_WG = 64;
const DEQUANTIZE_WG = 256;

export interface QuantizeOptions {
  /** An integer in [0, 2^53): the Philox key is its low and high 32 bits. Default: the engine's next seed. */
  seed?: number;
  /** Elements per block: a multiple of 4 in [4, 2^26] (default 1024). One block for the whole vector: any multiple of 4 >= n. */
  blockSize?: number;
  /**
   * Error feedback: quantise x + residual instead of x, and overwrite residual (same size as x, not
   * sharing its buffer) with (x + residual) - decoded. Used by UpdateCompressor.
   */
  residual?: Tensor;
}

export interface Quantized {
  /** [ceil(n / 4)] u32 words in an f32 tensor (bit patterns, not values). */
  codes: Tensor;
  /** [blocks, 2]: (lo, step) per block. */
  scales: Tensor;
  n: number;
  blockSize: number;
}

/** Number of blocks of n elements. */
export function quantizedBlocks(n: number, blockSize = DEFAULT_QUANTIZE_BLOCK): number {
  return Math.ceil(n / blockSize);
}

/**
 * Bytes of quantize8's output for n elements: the codes (n bytes, padded to whole u32 words), 8
 * bytes of scales per block and the header (n, blockSize); against 4n for f32.
 */
export function quantizedBytes(n: number, blockSize = DEFAULT_QUANTIZE_BLOCK): number {
  checkQuantizeSizes('quantizedBytes', n, blockSize);
  return 4 * Math.ceil(n / 4) + 8 * quantizedBlocks(n, blockSize) + QUANTIZED_HEADER_BYTES;
}

/** Throws unless n elements in blocks of blockSize can be quantised, naming the op (and `what`). */
export function checkQuantizeSizes(op: string, n: number, blockSize: number, what = ''): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${op}: n ${n} must be an integer >= 0${what}`);
  if (!Number.isInteger(blockSize) || blockSize < 4 || blockSize > MAX_QUANTIZE_BLOCK || blockSize % 4 !== 0) {
    throw new Error(`${op}: blockSize ${blockSize} must be a multiple of 4 in [4, 2^26]${what}`);
  }
}

/** A 2D grid of `count` workgroups within the per-dimension limit. */
function grid(engine: Engine, count: number): [number, number] {
  const max = engine.limits.maxComputeWorkgroupsPerDimension;
  const x = Math.min(count, max);
  return [x, x === 0 ? 0 : Math.ceil(count / x)];
}

/**
 * x (any shape, read as its n elements in order) quantised to 8-bit codes by blocks with
 * stochastic rounding (see the file comment). Returns new tensors; not differentiable.
 */
export function quantize8(x: Tensor, options: QuantizeOptions = {}): Quantized {
  const op = 'quantize8';
  const residual = options.residual;
  alive(op, x, ...(residual ? [residual] : []));
  const n = x.size;
  const blockSize = options.blockSize ?? DEFAULT_QUANTIZE_BLOCK;
  checkQuantizeSizes(op, n, blockSize, ` (x ${x.name} ${shapeString(x.shape)})`);
  const engine = x.engine;
  const seed = options.seed ?? engine.nextSeed();
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${op}: seed ${seed} must be an integer in [0, 2^53) (x ${x.name} ${shapeString(x.shape)})`);
  if (residual) {
    if (residual.size !== n) throw new Error(`${op}: residual ${residual.name} ${shapeString(residual.shape)} has ${residual.size} elements; x ${x.name} ${shapeString(x.shape)} has ${n}`);
    if (residual.storage === x.storage) throw new Error(`${op}: residual ${residual.name} and x ${x.name} share a buffer; the residual is written in place`);
  }
  const blocks = quantizedBlocks(n, blockSize);
  const codes = engine.empty([Math.ceil(n / 4)], `${op}.codes`);
  const scales = engine.empty([blocks, 2], `${op}.scales`);
  if (n > 0) {
    engine.dispatch('quantize8', {
      bindings: { x, residual: residual ?? engine.placeholder(), codes, scales },
      uniforms: { n, key0: seed % 2 ** 32, key1: Math.floor(seed / 2 ** 32) },
      constants: { WG: QUANTIZE_WG, BLOCK: blockSize, FEEDBACK: residual !== undefined },
      workgroups: grid(engine, blocks),
    });
  }
  return { codes, scales, n, blockSize };
}

/** The f32 vector [n] that quantize8's codes and scales stand for: lo + code * step per element. */
export function dequantize8(codes: Tensor, scales: Tensor, n: number, blockSize = DEFAULT_QUANTIZE_BLOCK): Tensor {
  const op = 'dequantize8';
  alive(op, codes, scales);
  const shapes = ` (codes ${codes.name} ${shapeString(codes.shape)}, scales ${scales.name} ${shapeString(scales.shape)}, n ${n}, blockSize ${blockSize})`;
  checkQuantizeSizes(op, n, blockSize, shapes);
  if (codes.size !== Math.ceil(n / 4)) throw new Error(`${op}: expected ${Math.ceil(n / 4)} code words for n = ${n}${shapes}`);
  const blocks = quantizedBlocks(n, blockSize);
  if (scales.size !== 2 * blocks) throw new Error(`${op}: expected ${2 * blocks} scales ([${blocks},2]: lo and step of ${blocks} blocks)${shapes}`);
  const engine = codes.engine;
  const out = engine.empty([n], op);
  if (n > 0) {
    engine.dispatch('dequantize8', {
      bindings: { codes, scales, out },
      uniforms: { n },
      constants: { WG: DEQUANTIZE_WG, BLOCK: blockSize },
      threads: Math.ceil(n / 4),
      flops: 2 * n,
    });
  }
  return out;
}
