// Compressed client updates: a client encodes its round's delta [P] to 8-bit codes and per-block
// scales (src/engine/ops/quantize.ts: stochastic rounding, unbiased) and sends those; the server
// decodes each back to f32 [P] and stacks them for its Strategy.
//
// Error feedback (Seide et al. 2014, "1-bit SGD"; Karimireddy et al. 2019, "Error Feedback Fixes
// SignSGD"): the client keeps what rounding lost, residual = (delta + residual) - decoded, and adds
// it to the next round's delta, so nothing is lost for good: over R rounds
//   sum_r decoded_r = sum_r delta_r - residual_R
// (to f32 rounding). The quantize8 kernel adds and rewrites the residual in the same pass.
//
// Seeds: round r (counted by encode) uses seed + r, so rounds draw independent rounding bits and a
// client's sequence of codes is reproducible from its seed.
import { dequantize8, DEFAULT_QUANTIZE_BLOCK, quantize8, quantizedBytes } from '../../engine/ops/quantize.js';
import { shapeString, type Tensor } from '../../engine/tensor.js';

export interface UpdateCompressorOptions {
  /** Bits per element: 8 (the only width so far). */
  bits?: 8;
  /** Keep the rounding residual and add it to the next delta (default false). */
  errorFeedback?: boolean;
  /** An integer in [0, 2^53): round r quantises with seed + r. */
  seed: number;
  /** Elements per scale block (a multiple of 4; default 1024). */
  blockSize?: number;
}

/** One encoded update, as a client sends it: `bytes` is what it costs on the wire. */
export interface EncodedUpdate {
  /** [ceil(n / 4)] u32 code words in an f32 tensor (see quantize.ts). */
  codes: Tensor;
  /** [blocks, 2] (lo, step) per block. */
  scales: Tensor;
  n: number;
  blockSize: number;
  /** Codes + scales + header, against 4n for f32. */
  bytes: number;
}

export class UpdateCompressor {
  readonly bits = 8;
  readonly errorFeedback: boolean;
  readonly seed: number;
  readonly blockSize: number;
  private round = 0;
  private residualTensor: Tensor | null = null;
  private disposed = false;

  constructor(options: UpdateCompressorOptions) {
    const op = 'UpdateCompressor';
    if ((options.bits ?? 8) !== 8) throw new Error(`${op}: bits ${options.bits} is not supported; only 8`);
    if (!Number.isSafeInteger(options.seed) || options.seed < 0) throw new Error(`${op}: seed ${options.seed} must be an integer in [0, 2^53)`);
    this.errorFeedback = options.errorFeedback ?? false;
    this.seed = options.seed;
    this.blockSize = options.blockSize ?? DEFAULT_QUANTIZE_BLOCK;
    quantizedBytes(0, this.blockSize); // checks blockSize
  }

  /** The residual kept for the next round (a kept [P] tensor the compressor owns), or null before the first encode or without error feedback. */
  get residual(): Tensor | null {
    return this.residualTensor;
  }

  /** Rounds encoded so far. */
  get rounds(): number {
    return this.round;
  }

  /**
   * Encodes one round's delta (any shape; its elements in order). With error feedback the residual
   * is added first and updated; every delta must then have the same number of elements. The
   * returned tensors belong to the caller (scope-tracked like any op's output).
   */
  encode(delta: Tensor): EncodedUpdate {
    const op = 'UpdateCompressor.encode';
    if (this.disposed) throw new Error(`${op}: the compressor has been disposed`);
    delta.assertAlive(op);
    const n = delta.size;
    const seed = this.seed + this.round;
    if (!Number.isSafeInteger(seed)) throw new Error(`${op}: seed ${this.seed} + round ${this.round} passes 2^53`);
    let residual: Tensor | undefined;
    if (this.errorFeedback) {
      if (this.residualTensor && this.residualTensor.size !== n) {
        throw new Error(`${op}: delta ${delta.name} ${shapeString(delta.shape)} has ${n} elements; the residual kept from earlier rounds has ${this.residualTensor.size}`);
      }
      residual = this.residualTensor ?? delta.engine.keep(delta.engine.zeros([n], 'UpdateCompressor.residual'));
      this.residualTensor = residual;
    }
    const q = quantize8(delta, { seed, blockSize: this.blockSize, ...(residual ? { residual } : {}) });
    this.round++;
    return { ...q, bytes: quantizedBytes(n, this.blockSize) };
  }

  /** The f32 vector [n] an encoded update stands for (the server's side; needs no state). */
  decode(update: Pick<EncodedUpdate, 'codes' | 'scales' | 'n' | 'blockSize'>): Tensor {
    return dequantize8(update.codes, update.scales, update.n, update.blockSize);
  }

  /** Frees the residual; the compressor cannot encode afterwards. */
  dispose(): void {
    this.disposed = true;
    this.residualTensor?.dispose();
    this.residualTensor = null;
  }
}
