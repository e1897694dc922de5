// Server-side checks of one round's client updates before any aggregate sees them: wrong lengths
// (on the CPU, before anything runs), non-finite values and norms far above the round's others
// (counted and measured on the GPU per row; only 2K numbers come back), and the stack of the
// accepted rows alone, copied, so that a rejected row cannot reach an aggregate through a zero
// weight (0 * inf is NaN).
import type { Engine } from '../../engine/engine.js';
import { concat, nonFiniteCount, norm, slice } from '../../engine/ops/index.js';
import { shapeString, type Tensor } from '../../engine/tensor.js';

/** Element offsets of views are multiples of this (256-byte storage-buffer binding alignment). */
const VIEW_ALIGN = 64;

/**
 * Default normFactor: honest clients of one round train the same model with the same settings,
 * so their update norms lie within a small factor of each other; a model-replacement or boosting
 * attack scales its update by about the number of clients (Bagdasaryan et al. 2020, Bhagoji et
 * al. 2019), far above 10 for any real cohort, while 10 leaves room for clients with much more or
 * more varied data than the median one.
 */
export const DEFAULT_NORM_FACTOR = 10;

export interface CheckOptions {
  /** A row is rejected when its norm exceeds normFactor times the median norm of the finite rows (> 1; default 10; Infinity turns the rule off). */
  normFactor?: number;
  /** Where the reasons for rejections go (default console.warn); one call per rejected row. */
  log?: (message: string) => void;
}

export interface CheckResult {
  /** Indices of the accepted rows (clients), ascending. */
  accepted: number[];
  /** Each rejected row and why, naming the numbers. */
  rejected: { index: number; reason: string }[];
  /** The L2 norm of every row as computed in f32 on the GPU (NaN for a row of the wrong length, which never ran). */
  norms: Float64Array;
}

/** Row k of a [K, P] stack as a [P] tensor: a view where the offset allows one, else a copy (the caller disposes either). */
export function row(stack: Tensor, k: number): Tensor {
  const P = stack.shape[1]!;
  return (k * P) % VIEW_ALIGN === 0 ? stack.engine.view(stack, [P], `${stack.name}[${k}]`, k * P) : slice(stack, 0, k, 1);
}

/**
 * The L2 norm and the number of non-finite values of each of the given [P] tensors, computed on
 * the GPU and read back together (one readback of 2K numbers).
 */
export async function rowStatistics(engine: Engine, rows: readonly Tensor[]): Promise<{ norms: Float64Array; nonFinite: Float64Array }> {
  return engine.scope(async () => {
    const scalars = rows.flatMap((r) => [norm(r), nonFiniteCount(r)]);
    // concat needs rank >= 1: each scalar is viewed as [1] (offset 0, so always a valid view).
    const all = concat(scalars.map((s) => engine.view(s, [1])), 0);
    const data = await all.data();
    const K = rows.length;
    return {
      norms: Float64Array.from({ length: K }, (_, k) => data[2 * k]!),
      nonFinite: Float64Array.from({ length: K }, (_, k) => data[2 * k + 1]!),
    };
  });
}

/** The median of the values (the mean of the two middle ones for an even count, as numpy.median); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Checks one round's client updates: a [K, P] stack, or K per-client tensors (where one may have
 * the wrong length). A row is rejected, with a reason passed to options.log, when it does not
 * hold expectedP values (checked before any GPU work), when it holds NaN or infinite values, or
 * when its norm exceeds normFactor times the median norm of the rows without non-finite values
 * (the rule is skipped when that median is 0: all-zero updates give no scale to compare with).
 */
export async function checkUpdates(updates: Tensor | readonly Tensor[], expectedP: number, options: CheckOptions = {}): Promise<CheckResult> {
  const op = 'checkUpdates';
  const normFactor = options.normFactor ?? DEFAULT_NORM_FACTOR;
  const log = options.log ?? console.warn;
  if (!Number.isInteger(expectedP) || expectedP < 1) throw new Error(`${op}: expectedP ${expectedP} must be a positive integer`);
  if (!(normFactor > 1)) throw new Error(`${op}: normFactor ${normFactor} must be a number > 1 (Infinity: no norm rule)`);
  const list = Array.isArray(updates) ? (updates as readonly Tensor[]) : null;
  const stack = list ? null : (updates as Tensor);
  if (list) {
    if (list.length === 0) throw new Error(`${op}: no client updates (an empty list)`);
    list.forEach((t, k) => t.assertAlive(`${op} (client ${k})`));
  } else {
    stack!.assertAlive(op);
    if (stack!.rank !== 2 || stack!.shape[0] === 0) throw new Error(`${op}: updates ${stack!.name} have shape ${shapeString(stack!.shape)}; expected [K, P] with K >= 1 clients`);
  }
  const K = list ? list.length : stack!.shape[0]!;
  const lengths = list ? list.map((t) => t.size) : new Array<number>(K).fill(stack!.shape[1]!);

  const rejected: { index: number; reason: string }[] = [];
  const reject = (index: number, reason: string) => {
    rejected.push({ index, reason });
    log(`${op}: client ${index} rejected: ${reason}`);
  };
  const norms = new Float64Array(K).fill(NaN);
  const sized: number[] = [];
  for (let k = 0; k < K; k++) {
    if (lengths[k] === expectedP) sized.push(k);
    else reject(k, `${lengths[k]} values (shape ${shapeString(list ? list[k]!.shape : stack!.shape.slice(1))}); expected ${expectedP}`);
  }
  if (sized.length > 0) {
    const engine = (list ? list[0]! : stack!).engine;
    const rows = sized.map((k) => (list ? list[k]! : row(stack!, k)));
    const stats = await rowStatistics(engine, rows);
    if (!list) for (const r of rows) r.dispose();
    sized.forEach((k, i) => (norms[k] = stats.norms[i]!));
    const finite = sized.filter((_, i) => stats.nonFinite[i] === 0);
    sized.forEach((k, i) => {
      if (stats.nonFinite[i] !== 0) reject(k, `${stats.nonFinite[i]} of ${expectedP} values are NaN or infinite`);
    });
    const typical = median(finite.map((k) => norms[k]!));
    if (typical > 0 && Number.isFinite(normFactor)) {
      for (const k of finite) {
        // An f32 overflow of the sum of squares makes the norm infinite: rejected here too.
        if (!(norms[k]! <= normFactor * typical)) reject(k, `norm ${norms[k]} exceeds ${normFactor} x the median norm ${typical} of the ${finite.length} finite updates`);
      }
    }
  }
  const out = new Set(rejected.map((r) => r.index));
  rejected.sort((a, b) => a.index - b.index);
  return { accepted: Array.from({ length: K }, (_, k) => k).filter((k) => !out.has(k)), rejected, norms };
}

/**
 * The [A, P] stack of the accepted rows (indices into a [K, P] stack or a list of K [P] tensors),
 * copied in order; a new tensor the caller owns. Rejected rows are never read, so a non-finite
 * one cannot reach the result.
 */
export function acceptedStack(updates: Tensor | readonly Tensor[], accepted: readonly number[]): Tensor {
  const op = 'acceptedStack';
  const list = Array.isArray(updates) ? (updates as readonly Tensor[]) : null;
  const K = list ? list.length : (updates as Tensor).shape[0]!;
  if (accepted.length === 0) throw new Error(`${op}: no accepted updates out of ${K}; there is nothing to aggregate`);
  for (const k of accepted) {
    if (!Number.isInteger(k) || k < 0 || k >= K) throw new Error(`${op}: accepted index ${k} is not a client of the K = ${K} updates`);
  }
  if (list) {
    const sizes = new Set(accepted.map((k) => list[k]!.size));
    if (sizes.size !== 1) throw new Error(`${op}: the accepted updates have different lengths (${[...sizes].join(', ')})`);
    const P = list[accepted[0]!]!.size;
    // Views of each whole tensor (offset 0) as a [1, P] row, joined by one copy.
    const views = accepted.map((k) => list[k]!.engine.view(list[k]!, [1, P]));
    const out = concat(views, 0);
    for (const v of views) v.dispose();
    return out;
  }
  const stack = updates as Tensor;
  const pieces = accepted.map((k) => slice(stack, 0, k, 1));
  if (pieces.length === 1) return pieces[0]!;
  const out = concat(pieces, 0);
  for (const p of pieces) p.dispose();
  return out;
}
