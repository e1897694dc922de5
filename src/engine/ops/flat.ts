// Whole-model arithmetic on flat vectors (a model's parameters as one f32 vector, or a [K, P]
// stack of K replicas): dot products, norms, scaling by GPU scalars, clipping, seeded noise,
// weighted averages and sums, Gram matrices and pairwise distances of stacks, coordinate-wise
// medians and trimmed means, counts of non-finite values, masked means
// and accuracy. Everything stays on the GPU: a scalar that one op computes (a norm, a clipping
// factor) is read by the next kernel from its one-element tensor, never through a readback.
//
// Kernels:
//   flat_reduce         first pass of a full reduction: a partial result per workgroup (dot, sum
//                       of squares, (sum w*v, sum w) pairs, non-finite count), vec4 loads
//   accuracy            first pass of accuracy: (correct, labelled) rows per workgroup
//   flat_reduce_finish  second pass: one workgroup sums the partials and applies an epilogue
//                       (identity, sqrt, clipping factor, ratio)
//   flat_axpy           out = base + c * b, c = alpha * s[0] / d[i] from GPU scalars: the forward of
//                       the scaling ops and the backward of the reductions
//   gram, gram_finish   the Gram matrix or the squared distances of a stack: pair sums per workgroup
//                       and tile pair, then the symmetric matrix
//   trimmed_mean        coordinate-wise median and trimmed mean of a stack (a sort per coordinate)
//   clip_to_norm_backward, weighted_average(_backward) (also weightedSum), gaussian_noise (Philox4x32-10)
import type { Engine } from '../engine.js';
import { record } from '../graph.js';
import { shapeSize, shapeString, type Shape, type Tensor } from '../tensor.js';
import { alive, rank, sameShape } from './check.js';

/**
 * Workgroup size of the reduction kernels (a multiple of 16, at most 256). Their two barriers cost
 * far more per workgroup of 256 than of 64 on SwiftShader (1e6 elements over 245 workgroups:
 * 45 ms against 8 ms), and 64 is a good size on GPUs too.
 */
const REDUCE_WG = 64;
/** Each invocation of a first pass gets at least this many vec4s before another workgroup is added. */
const VEC4_PER_INVOCATION = 32;
/** At most this many partial results (the second pass is one workgroup). */
const MAX_PARTIALS = 1024;

type ReduceOp = 'dot' | 'sum_squares' | 'weighted' | 'non_finite';
const REDUCE_OPS: Record<ReduceOp, number> = { dot: 0, sum_squares: 1, weighted: 2, non_finite: 3 };

const EPILOGUES = { sum: 0, sqrt: 1, clip_factor: 2, ratio: 3 } as const;
type Epilogue = keyof typeof EPILOGUES;

/** Number of first-pass workgroups for n elements: enough to fill a GPU, few enough for one finishing workgroup. */
export function reduceWorkgroups(n: number): number {
  return Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(Math.ceil(n / 4) / (REDUCE_WG * VEC4_PER_INVOCATION))));
}

/** Second pass: sums `count` partials (pairs when `pairs`) into a scalar through the epilogue. */
function finish(partials: Tensor, count: number, pairs: boolean, epilogue: Epilogue, name: string, alpha = 0): Tensor {
  const engine = partials.engine;
  const out = engine.empty([], name);
  engine.dispatch('flat_reduce_finish', {
    bindings: { partials, out },
    uniforms: { count, alpha },
    constants: { WG: REDUCE_WG, PAIRS: pairs, EPILOGUE: EPILOGUES[epilogue] },
    workgroups: [1],
  });
  return out;
}

/**
 * A full reduction of a (and b) in two passes; returns the scalar and the partials tensor (whose
 * first two elements hold the totals after a 'ratio' epilogue; the caller disposes it).
 */
function reduceFlat(op: string, kind: ReduceOp, a: Tensor, b: Tensor, epilogue: Epilogue, alpha = 0): { out: Tensor; partials: Tensor } {
  const engine = a.engine;
  const n = a.size;
  const groups = reduceWorkgroups(n);
  const pairs = kind === 'weighted';
  const partials = engine.empty([groups * (pairs ? 2 : 1)], `${op}.partials`);
  engine.dispatch('flat_reduce', {
    bindings: { a, b, partials },
    uniforms: { n },
    constants: { WG: REDUCE_WG, OP: REDUCE_OPS[kind] },
    workgroups: [groups],
    flops: 2 * n,
  });
  const out = finish(partials, groups, pairs, epilogue, epilogue === 'clip_factor' ? `${op}.factor` : op, alpha);
  return { out, partials };
}

/** reduceFlat for ops that need only the scalar. */
function reduceScalar(op: string, kind: ReduceOp, a: Tensor, b: Tensor, epilogue: Epilogue, alpha = 0): Tensor {
  const { out, partials } = reduceFlat(op, kind, a, b, epilogue, alpha);
  partials.dispose();
  return out;
}

interface AxpySpec {
  name: string;
  /** out = base + c * b (BASE 1). */
  base?: Tensor;
  /** out += c * b in place (BASE 2); no new tensor. */
  inPlace?: Tensor;
  /** c *= s[0] */
  s?: Tensor;
  /** c *= alpha (default 1) */
  alpha?: number;
  /** c /= d[dIndex], and c = 0 where that is 0 */
  divideBy?: Tensor;
  dIndex?: number;
}

/** out = base + c * b with c from numbers and one-element GPU tensors (flat_axpy.wgsl). */
function axpyKernel(b: Tensor, spec: AxpySpec): Tensor {
  const engine = (spec.base ?? b).engine; // the context of the op's first input

  const out = spec.inPlace ?? engine.empty(b.shape, spec.name);
  const unused = engine.placeholder();
  engine.dispatch('flat_axpy', {
    bindings: { a: spec.base ?? unused, b, s: spec.s ?? unused, d: spec.divideBy ?? unused, out },
    uniforms: { n: b.size, alpha: spec.alpha ?? 1, d_index: spec.dIndex ?? 0 },
    constants: { BASE: spec.inPlace ? 2 : spec.base ? 1 : 0, SCALE_BY: spec.s !== undefined, DIVIDE: spec.divideBy !== undefined },
    threads: Math.ceil(b.size / 4),
    flops: (spec.base || spec.inPlace ? 2 : 1) * b.size,
  });
  return out;
}

function checkScalarTensor(op: string, s: Tensor, what: string): void {
  if (s.size !== 1) throw new Error(`${op}: ${what} ${s.name} has shape ${shapeString(s.shape)}; expected a one-element tensor`);
}

function checkFactor(op: string, s: number | Tensor, what: string): void {
  if (typeof s === 'number') {
    if (!Number.isFinite(s)) throw new Error(`${op}: ${what} ${s} must be a finite number`);
  } else checkScalarTensor(op, s, what);
}

// ---------------------------------------------------------------- reductions

/** sum(a * b) over all elements of two same-shape tensors, as a scalar (shape []), without a temporary a * b. */
export function dot(a: Tensor, b: Tensor): Tensor {
  alive('dot', a, b);
  sameShape('dot', a, b);
  const out = reduceScalar('dot', 'dot', a, b, 'sum');
  return record(out, 'dot', [a, b], [(dy) => axpyKernel(b, { name: `d(${a.name})`, s: dy }), (dy) => axpyKernel(a, { name: `d(${b.name})`, s: dy })]);
}

/** sum(x * x) over all elements, as a scalar. */
export function sumOfSquares(x: Tensor): Tensor {
  alive('sumOfSquares', x);
  const out = reduceScalar('sumOfSquares', 'sum_squares', x, x, 'sum');
  return record(out, 'sumOfSquares', [x], [(dy) => axpyKernel(x, { name: `d(${x.name})`, s: dy, alpha: 2 })]);
}

/** The L2 norm sqrt(sum(x * x)) over all elements, as a scalar. Its gradient x / ||x|| is 0 at x = 0 (as PyTorch). */
export function norm(x: Tensor): Tensor {
  alive('norm', x);
  const out = reduceScalar('norm', 'sum_squares', x, x, 'sqrt');
  return record(out, 'norm', [x], [(dy) => axpyKernel(x, { name: `d(${x.name})`, s: dy, divideBy: out })], [out]);
}

/**
 * The number of NaN and infinite elements of x, as a scalar (a count in f32: exact up to 2^24).
 * Not differentiable. Read it with `await t.item()` when the answer is needed on the CPU.
 */
export function nonFiniteCount(x: Tensor): Tensor {
  alive('nonFiniteCount', x);
  return reduceScalar('nonFiniteCount', 'non_finite', x, x, 'sum');
}

/**
 * sum(weights * values) / sum(weights) over all elements, as a scalar; 0 when the weights sum to
 * 0 (a batch in which a task has no labels). Differentiable in values; the weights are constants.
 */
export function weightedMean(values: Tensor, weights: Tensor): Tensor {
  const op = 'weightedMean';
  alive(op, values, weights);
  sameShape(op, values, weights);
  // The finishing pass leaves sum(weights) in partials[1]: the backward divides by it.
  const { out, partials } = reduceFlat(op, 'weighted', values, weights, 'ratio');
  record(out, op, [values, weights], [(dy) => axpyKernel(weights, { name: `d(${values.name})`, s: dy, divideBy: partials, dIndex: 1 }), null], [partials]);
  if (!out.node) partials.dispose();
  return out;
}

/**
 * The fraction of labelled rows whose largest logit is at their largest target, for logits and
 * targets [rows, classes] (one-hot or probability targets), as a scalar. Rows whose targets are
 * all zero are unlabelled and left out; 0 when no row is labelled. Ties go to the first index (as
 * argmax in PyTorch and NumPy); a row with a NaN logit counts as wrong. Not differentiable.
 */
export function accuracy(logits: Tensor, targets: Tensor): Tensor {
  const op = 'accuracy';
  alive(op, logits, targets);
  rank(op, logits, 2);
  sameShape(op, logits, targets);
  const [rows, cols] = logits.shape as [number, number];
  if (cols === 0 && rows > 0) throw new Error(`${op}: logits ${logits.name} ${shapeString(logits.shape)} have no classes`);
  const engine = logits.engine;
  const groups = Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(rows / REDUCE_WG)));
  const partials = engine.empty([2 * groups], `${op}.partials`);
  engine.dispatch('accuracy', { bindings: { logits, targets, partials }, uniforms: { rows, cols }, constants: { WG: REDUCE_WG }, workgroups: [groups] });
  const out = finish(partials, groups, true, 'ratio', op);
  partials.dispose();
  return out;
}

// ---------------------------------------------------------------- scaling

/** x times the value of a one-element GPU tensor s. Differentiable in x (s dy) and s (dot(dy, x)). */
export function scaleBy(x: Tensor, s: Tensor): Tensor {
  const op = 'scaleBy';
  alive(op, x, s);
  checkScalarTensor(op, s, 'scale');
  const out = axpyKernel(x, { name: op, s });
  return record(out, op, [x, s], [(dy) => axpyKernel(dy, { name: `d(${x.name})`, s }), (dy) => dot(dy, x)]);
}

/** a + s * b for same-shape a and b, s a number or a one-element GPU tensor. Differentiable in a, b and a tensor s. */
export function axpy(a: Tensor, s: number | Tensor, b: Tensor): Tensor {
  const op = 'axpy';
  alive(op, a, b, ...(typeof s === 'number' ? [] : [s]));
  sameShape(op, a, b);
  checkFactor(op, s, 's');
  if (typeof s === 'number') {
    const out = axpyKernel(b, { name: op, base: a, alpha: s });
    return record(out, op, [a, b], [(dy) => dy, (dy) => axpyKernel(dy, { name: `d(${b.name})`, alpha: s })]);
  }
  const out = axpyKernel(b, { name: op, base: a, s });
  return record(out, op, [a, b, s], [(dy) => dy, (dy) => axpyKernel(dy, { name: `d(${b.name})`, s }), (dy) => dot(dy, b)]);
}

/**
 * y += s * x in place (s a number or a one-element GPU tensor); returns y. Not recorded by
 * autograd: for accumulators such as gradient sums and model deltas. y must not share a buffer
 * with x or s.
 */
export function addScaledInPlace(y: Tensor, x: Tensor, s: number | Tensor = 1): Tensor {
  const op = 'addScaledInPlace';
  alive(op, y, x, ...(typeof s === 'number' ? [] : [s]));
  sameShape(op, y, x);
  checkFactor(op, s, 's');
  for (const [t, what] of [[x, 'x'], ...(typeof s === 'number' ? [] : [[s, 's']])] as [Tensor, string][]) {
    if (t.storage === y.storage) {
      throw new Error(`${op}: y ${y.name} ${shapeString(y.shape)} and ${what} ${t.name} ${shapeString(t.shape)} share a buffer; y is written in place`);
    }
  }
  axpyKernel(x, { name: op, inPlace: y, ...(typeof s === 'number' ? { alpha: s } : { s }) });
  return y;
}

/**
 * x * min(1, maxNorm / ||x||): x scaled down to L2 norm maxNorm when it is longer (a zero x
 * stays zero). The factor is computed on the GPU and applied without a readback. Differentiable.
 */
export function clipToNorm(x: Tensor, maxNorm: number): Tensor {
  const op = 'clipToNorm';
  alive(op, x);
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new Error(`${op}: maxNorm ${maxNorm} must be a positive finite number (${x.name} ${shapeString(x.shape)})`);
  const factor = reduceScalar(op, 'sum_squares', x, x, 'clip_factor', maxNorm);
  const out = axpyKernel(x, { name: op, s: factor });
  record(out, op, [x], [
    (dy) => {
      const engine = x.engine;
      const g = dot(dy, x);
      const dx = engine.empty(x.shape, `d(${x.name})`);
      engine.dispatch('clip_to_norm_backward', { bindings: { x, dy, factor, dydotx: g, dx }, uniforms: { n: x.size, max_norm: maxNorm }, threads: Math.ceil(x.size / 4), flops: 3 * x.size });
      g.dispose();
      return dx;
    },
  ], [factor]);
  if (!out.node) factor.dispose();
  return out;
}

// ---------------------------------------------------------------- averaging

/**
 * Checks a stack [K, ...] and its weights (K numbers or a [K] GPU tensor) for weightedAverage and
 * weightedSum; returns K, the size of one replica and the weights when they are a tensor.
 */
function stackWeights(op: string, stack: Tensor, weights: readonly number[] | Tensor | undefined): { K: number; cols: number; weightTensor: Tensor | null } {
  const weightTensor = weights !== undefined && !Array.isArray(weights) ? (weights as Tensor) : null;
  alive(op, stack, ...(weightTensor ? [weightTensor] : []));
  if (stack.rank < 1) throw new Error(`${op}: stack ${stack.name} has shape ${shapeString(stack.shape)}; expected [K, ...] (K replicas)`);
  const K = stack.shape[0]!;
  if (K === 0) throw new Error(`${op}: stack ${stack.name} ${shapeString(stack.shape)} holds K = 0 replicas`);
  if (weightTensor) {
    if (weightTensor.rank !== 1 || weightTensor.shape[0] !== K) {
      throw new Error(`${op}: weights ${weightTensor.name} have shape ${shapeString(weightTensor.shape)}, expected [${K}] for stack ${stack.name} ${shapeString(stack.shape)}`);
    }
  } else if (weights !== undefined) {
    const w = weights as readonly number[];
    if (w.length !== K) throw new Error(`${op}: ${w.length} weights for stack ${stack.name} ${shapeString(stack.shape)} of K = ${K} replicas`);
    if (w.some((v) => !Number.isFinite(v))) throw new Error(`${op}: weights [${w.join(', ')}] must be finite numbers`);
  }
  return { K, cols: stack.size / K, weightTensor };
}

/** out = sum_k w_k stack[k] (/ sum_k w_k when normalize) in weighted_average.wgsl; recorded unless written into `into`. */
function combine(op: string, stack: Tensor, weights: readonly number[] | Tensor | undefined, weightTensor: Tensor | null, K: number, cols: number, normalize: boolean, into?: Tensor): Tensor {
  const engine = stack.engine;
  const w = weightTensor ?? engine.tensor(weights === undefined ? new Float32Array(K).fill(1) : Float32Array.from(weights as readonly number[]), [K], `${op}.weights`);
  const out = into ?? engine.empty(stack.shape.slice(1), op);
  const constants = { NORMALIZE: normalize };
  engine.dispatch('weighted_average', { bindings: { x: stack, weights: w, out }, uniforms: { k: K, cols }, constants, threads: Math.ceil(cols / 4), flops: 2 * stack.size });
  if (into) {
    if (!weightTensor) w.dispose();
    return into;
  }
  record(out, op, weightTensor ? [stack, weightTensor] : [stack], [
    (dy) => {
      const dx = engine.empty(stack.shape, `d(${stack.name})`);
      engine.dispatch('weighted_average_backward', { bindings: { dy, weights: w, dx }, uniforms: { k: K, cols }, constants, threads: Math.ceil(cols / 4), flops: stack.size });
      return dx;
    },
    null,
  ], [w]);
  if (!out.node && !weightTensor) w.dispose();
  return out;
}

/**
 * sum_k w_k stack[k] / sum_k w_k for a stack [K, ...] of K tensors (FedAvg of K client replicas),
 * in one kernel; the result has the shape of one replica. Weights: K numbers, a [K] GPU tensor (a
 * zero total there gives zeros) or none (the mean). Differentiable in the stack; the weights are
 * constants.
 */
export function weightedAverage(stack: Tensor, weights?: readonly number[] | Tensor): Tensor {
  const op = 'weightedAverage';
  const { K, cols, weightTensor } = stackWeights(op, stack, weights);
  if (!weightTensor && weights !== undefined) {
    const w = weights as readonly number[];
    if (w.every((v) => v === 0)) throw new Error(`${op}: all ${K} weights are zero for stack ${stack.name} ${shapeString(stack.shape)}`);
    const total = w.reduce((s, v) => s + v, 0);
    if (total === 0 || !Number.isFinite(Math.fround(total))) throw new Error(`${op}: weights [${w.join(', ')}] sum to ${total}; the sum must be a nonzero f32`);
  }
  return combine(op, stack, weights, weightTensor, K, cols, true);
}

export interface WeightedSumOptions {
  /**
   * Write the result into this tensor of one replica's size (a view of a model's flat gradients,
   * say) instead of a new one. The write is not recorded by autograd; `into` must not share a
   * buffer with the stack or the weights.
   */
  into?: Tensor;
}

/**
 * sum_k w_k stack[k] for a stack [K, ...] of K tensors, without weightedAverage's normalisation
 * (combinations of per-task gradients, whose coefficients need not sum to 1), in one kernel; the
 * result has the shape of one replica. Weights: K numbers or a [K] GPU tensor. Differentiable in
 * the stack (the weights are constants) when no `into` is given.
 */
export function weightedSum(stack: Tensor, weights: readonly number[] | Tensor, options: WeightedSumOptions = {}): Tensor {
  const op = 'weightedSum';
  const { K, cols, weightTensor } = stackWeights(op, stack, weights);
  const into = options.into;
  if (into) {
    alive(op, stack, into);
    if (into.size !== cols) {
      throw new Error(`${op}: into ${into.name} ${shapeString(into.shape)} has ${into.size} elements; one replica of stack ${stack.name} ${shapeString(stack.shape)} has ${cols}`);
    }
    for (const t of [stack, ...(weightTensor ? [weightTensor] : [])]) {
      if (t.storage === into.storage) throw new Error(`${op}: into ${into.name} ${shapeString(into.shape)} and ${t.name} ${shapeString(t.shape)} share a buffer; into is written`);
    }
  }
  return combine(op, stack, weights, weightTensor, K, cols, false, into);
}

// ---------------------------------------------------------------- Gram matrix, distances

/** At most this many vectors in gram's and pairwiseSquaredDistances' stack. */
export const MAX_GRAM_VECTORS = 128;
/** Up to this many vectors, one tile holds them all: T (T + 1) / 2 <= 136 pairs, each element read once. */
const GRAM_ONE_TILE = 16;
/** Rows per tile above GRAM_ONE_TILE vectors: 64 pairs per tile pair, each row read once per tile pair it is in. */
const GRAM_TILE = 8;

/**
 * Sums over n of x[i, n] x[j, n] (or (x[i, n] - x[j, n])^2 when `distance`) for every pair of a
 * stack [T, ...], as a symmetric [T, T] tensor: gram.wgsl's partials per workgroup and tile pair,
 * then gram_finish.wgsl.
 */
function pairSums(op: string, stack: Tensor, distance: boolean): Tensor {
  alive(op, stack);
  if (stack.rank < 1 || stack.shape[0] === 0) throw new Error(`${op}: stack ${stack.name} has shape ${shapeString(stack.shape)}; expected [T, ...] with T >= 1 vectors`);
  const T = stack.shape[0]!;
  if (T > MAX_GRAM_VECTORS) throw new Error(`${op}: stack ${stack.name} ${shapeString(stack.shape)} holds T = ${T} vectors; at most ${MAX_GRAM_VECTORS} are supported`);
  const n = stack.size / T;
  const tile = T <= GRAM_ONE_TILE ? T : GRAM_TILE;
  const tiles = Math.ceil(T / tile);
  const tilePairs = (tiles * (tiles + 1)) / 2;
  const pairs = tile === T ? (T * (T + 1)) / 2 : tile * tile;
  // The workgroup's pair sums live in workgroup memory (pairs * WG floats, within 16 KiB).
  const wg = Math.min(REDUCE_WG, 2 ** Math.floor(Math.log2(4096 / pairs)));
  const engine = stack.engine;
  const groups = Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(Math.ceil(n / 4) / (wg * VEC4_PER_INVOCATION))));
  const partials = engine.empty([tilePairs, groups, pairs], `${op}.partials`);
  const constants = { T, TILE: tile };
  engine.dispatch('gram', { bindings: { x: stack, partials }, uniforms: { n }, constants: { ...constants, WG: wg, DISTANCE: distance }, workgroups: [groups, tilePairs], flops: tilePairs * pairs * (distance ? 3 : 2) * n });
  const out = engine.empty([T, T], op);
  engine.dispatch('gram_finish', { bindings: { partials, gram: out }, uniforms: { count: groups }, constants, workgroups: [tilePairs] });
  partials.dispose();
  return out;
}

/**
 * The Gram matrix G[i][j] = sum_n stack[i, n] stack[j, n] of a stack [T, ...] of T flat vectors
 * (per-task gradients, for MGDA, PCGrad or CAGrad), as a [T, T] tensor. Two passes, as the flat
 * reductions: the first sums the pairs per workgroup (all T (T + 1) / 2 of them, reading each
 * element once, up to 16 vectors; above that, per tile pair of 8-row tiles), the second sums the
 * partials into the symmetric matrix. T is at most MAX_GRAM_VECTORS. Not differentiable.
 */
export function gram(stack: Tensor): Tensor {
  return pairSums('gram', stack, false);
}

/**
 * The squared Euclidean distances D[i][j] = sum_n (stack[i, n] - stack[j, n])^2 between the T
 * vectors of a stack [T, ...] (client updates, for Krum), as a [T, T] tensor with a zero
 * diagonal, summed directly (not as G_ii + G_jj - 2 G_ij, which cancels catastrophically for
 * close vectors far from the origin). As gram: T is at most MAX_GRAM_VECTORS. Not differentiable.
 */
export function pairwiseSquaredDistances(stack: Tensor): Tensor {
  return pairSums('pairwiseSquaredDistances', stack, true);
}

// ---------------------------------------------------------------- order statistics

/** At most this many vectors in coordinateMedian's and trimmedMean's stack (trimmed_mean.wgsl sorts each coordinate's values in a private array). */
export const MAX_ORDER_STATISTIC_VECTORS = 128;

/** The mean of the sorted values at ranks [low, high) of each coordinate of a stack [K, ...] (trimmed_mean.wgsl). */
function sortedMean(op: string, stack: Tensor, low: (K: number) => number, high: (K: number) => number, detail: string): Tensor {
  alive(op, stack);
  if (stack.rank < 1 || stack.shape[0] === 0) throw new Error(`${op}: stack ${stack.name} has shape ${shapeString(stack.shape)}; expected [K, ...] with K >= 1 vectors${detail}`);
  const K = stack.shape[0]!;
  if (K > MAX_ORDER_STATISTIC_VECTORS) throw new Error(`${op}: stack ${stack.name} ${shapeString(stack.shape)} holds K = ${K} vectors; at most ${MAX_ORDER_STATISTIC_VECTORS} are supported${detail}`);
  const cols = stack.size / K;
  const engine = stack.engine;
  const out = engine.empty(stack.shape.slice(1), op);
  // Insertion sort: about K^2 / 4 compares and moves per coordinate.
  engine.dispatch('trimmed_mean', { bindings: { x: stack, out }, uniforms: { k: K, cols, low: low(K), high: high(K) }, threads: cols, flops: cols * (K * K) / 4 });
  return out;
}

/**
 * The coordinate-wise median of a stack [K, ...] of K tensors (FedMedian), with the shape of one:
 * the middle value, or the mean of the two middle values for even K (as numpy.median). NaN sorts
 * after +inf, so a NaN shows only where it is a middle value (numpy.median gives NaN for any NaN).
 * K is at most MAX_ORDER_STATISTIC_VECTORS. Not differentiable.
 */
export function coordinateMedian(stack: Tensor): Tensor {
  return sortedMean('coordinateMedian', stack, (K) => Math.floor((K - 1) / 2), (K) => Math.floor(K / 2) + 1, '');
}

/**
 * The coordinate-wise trimmed mean of a stack [K, ...] of K tensors (FedTrimmedAvg), with the
 * shape of one: the floor(proportionToCut K) smallest and as many largest values of each
 * coordinate are dropped and the rest averaged (as scipy.stats.trim_mean and Flower's
 * aggregate_trimmed_avg). proportionToCut is in [0, 0.5); NaN sorts after +inf (as numpy's
 * partition there). K is at most MAX_ORDER_STATISTIC_VECTORS. Not differentiable.
 */
export function trimmedMean(stack: Tensor, proportionToCut: number): Tensor {
  const op = 'trimmedMean';
  const detail = ` (proportionToCut ${proportionToCut})`;
  if (!(proportionToCut >= 0 && proportionToCut < 0.5)) throw new Error(`${op}: proportionToCut ${proportionToCut} must be in [0, 0.5) (stack ${stack.name} ${shapeString(stack.shape)})`);
  const cut = (K: number) => Math.floor(proportionToCut * K);
  return sortedMean(op, stack, cut, (K) => K - cut(K), detail);
}

// ---------------------------------------------------------------- noise

export interface GaussianNoiseOptions {
  /** An integer in [0, 2^53): the Philox key is its low and high 32 bits. Default: the engine's next seed. */
  seed?: number;
  mean?: number;
  std?: number;
}

/** How the noise kernel is launched; element values do not depend on it (tests vary it). */
export interface NoiseLaunch {
  workgroupSize?: number;
  /** Number of workgroups (invocations stride over the blocks of 4 elements). */
  workgroups?: number;
  /** Write the raw 32-bit words (two f32 halves per element, into a tensor of 2n elements). */
  raw?: boolean;
}

const NOISE_WG = 256;

/**
 * Gaussian noise of the given shape from the counter-based generator Philox4x32-10: element i
 * depends only on (seed, i), so it is reproducible and independent of how the kernel is launched,
 * and a longer vector starts with the values of a shorter one (see gaussian_noise.wgsl).
 */
export function gaussianNoise(engine: Engine, shape: Shape, options: GaussianNoiseOptions = {}): Tensor {
  return launchGaussianNoise(engine, shape, options, {});
}

/** gaussianNoise with control over the launch, and the raw generator words for tests. */
export function launchGaussianNoise(engine: Engine, shape: Shape, options: GaussianNoiseOptions, launch: NoiseLaunch): Tensor {
  const op = 'gaussianNoise';
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${op}: invalid shape ${shapeString(shape)}`);
  const seed = options.seed ?? engine.nextSeed();
  const mean = options.mean ?? 0;
  const std = options.std ?? 1;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${op}: seed ${seed} must be an integer in [0, 2^53) (shape ${shapeString(shape)})`);
  if (!Number.isFinite(mean)) throw new Error(`${op}: mean ${mean} must be finite`);
  if (!(std >= 0) || !Number.isFinite(std)) throw new Error(`${op}: std ${std} must be a finite number >= 0`);
  const wg = launch.workgroupSize ?? NOISE_WG;
  const n = shapeSize(shape);
  const blocks = Math.ceil(n / 4);
  const groups = launch.workgroups ?? Math.min(Math.ceil(blocks / wg), engine.limits.maxComputeWorkgroupsPerDimension);
  const out = engine.empty(launch.raw ? [n, 2] : shape, launch.raw ? `${op}.bits` : op);
  engine.dispatch('gaussian_noise', {
    bindings: { out },
    uniforms: { n, key0: seed % 2 ** 32, key1: Math.floor(seed / 2 ** 32), mean, stddev: std },
    constants: { WG: wg, RAW: launch.raw ?? false },
    workgroups: [n === 0 ? 0 : Math.max(1, groups)],
  });
  return out;
}
