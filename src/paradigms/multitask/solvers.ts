// The CPU side of gradient-based multi-task weighting, in float64.
//
// The GPU computes the per-task gradients g_1..g_T (of the shared parameters, or of the shared
// representation) and only their T×T Gram matrix G[i][j] = g_i·g_j comes to the CPU. Each method
// here turns G (and small scalars such as the task losses) into combination coefficients c, so
// that the combined shared gradient is sum_k c_k g_k, which the GPU then forms. Nothing here
// touches the GPU: it is pure math on Float64Array / number[].
//
// The methods follow LibMTL (https://github.com/median-research-group/LibMTL, LibMTL/weighting/),
// whose defaults are kept and named at each function.
//
// Gram matrices are row-major, length T*T. They should be symmetric; a GPU-computed one may
// differ from its transpose by rounding, so every function reads the symmetric part
// (G + G^T)/2. A non-finite entry throws an error that names the function and the entry.
//
// Absent tasks: a task with no labelled rows in a batch has an all-zero gradient (a zero row and
// column in G). The caller should pass only the tasks present in the batch (the sub-matrix of G);
// all the functions nevertheless accept zero rows and columns without producing NaN, with the
// behaviour stated at each one.

import { shuffleInPlace } from '../../engine/random.js';

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** A row-major T×T Gram matrix (G[i*T + j] = g_i·g_j). */
export type Gram = ArrayLike<number>;

function checkTaskCount(T: number, fn: string): void {
  if (!Number.isInteger(T) || T < 1) throw new Error(`${fn}: task count T = ${T} must be a positive integer`);
}

/** Validates G (size, finiteness) and returns its symmetric part as a fresh Float64Array. */
function readGram(gram: Gram, T: number, fn: string): Float64Array {
  checkTaskCount(T, fn);
  if (gram.length !== T * T) {
    throw new Error(`${fn}: the Gram matrix has ${gram.length} entries, expected T*T = ${T * T}`);
  }
  for (let i = 0; i < T * T; i++) {
    const v = gram[i]!;
    if (!Number.isFinite(v)) {
      throw new Error(`${fn}: Gram entry [${Math.floor(i / T)}][${i % T}] is ${v}, not finite`);
    }
  }
  const G = new Float64Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) G[i * T + j] = 0.5 * (gram[i * T + j]! + gram[j * T + i]!);
  }
  return G;
}

/** Validates a vector of T finite numbers and returns it as a Float64Array. */
function readVector(v: ArrayLike<number>, T: number, fn: string, name: string): Float64Array {
  if (v.length !== T) throw new Error(`${fn}: ${name} has ${v.length} entries, expected T = ${T}`);
  const out = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    const x = v[t]!;
    if (!Number.isFinite(x)) throw new Error(`${fn}: ${name}[${t}] is ${x}, not finite`);
    out[t] = x;
  }
  return out;
}

/** x^T G y. */
function bilinear(G: Float64Array, T: number, x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < T; i++) {
    let r = 0;
    for (let j = 0; j < T; j++) r += G[i * T + j]! * y[j]!;
    s += x[i]! * r;
  }
  return s;
}

/** G x. */
function matVec(G: Float64Array, T: number, x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    let r = 0;
    for (let j = 0; j < T; j++) r += G[i * T + j]! * x[j]!;
    out[i] = r;
  }
  return out;
}

function softmax(z: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < z.length; i++) m = Math.max(m, z[i]!);
  const out = new Float64Array(z.length);
  let s = 0;
  for (let i = 0; i < z.length; i++) s += out[i] = Math.exp(z[i]! - m);
  for (let i = 0; i < z.length; i++) out[i]! /= s;
  return out;
}

/**
 * Euclidean projection onto the probability simplex {x >= 0, sum x = 1} (the sort-based method,
 * as `_projection2simplex` in LibMTL's MGDA).
 */
export function projectToSimplex(y: ArrayLike<number>): Float64Array {
  const m = y.length;
  const sorted = Float64Array.from(y).sort().reverse();
  let sum = 0;
  for (let i = 0; i < m; i++) sum += y[i]!;
  let shift = (sum - 1) / m;
  let partial = 0;
  for (let i = 0; i < m - 1; i++) {
    partial += sorted[i]!;
    const candidate = (partial - 1) / (i + 1);
    if (candidate > sorted[i + 1]!) {
      shift = candidate;
      break;
    }
  }
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) out[i] = Math.max(y[i]! - shift, 0);
  return out;
}

/** The per-task gradient norms sqrt(G[t][t]) (a slightly negative diagonal from rounding reads as 0). */
export function gramNorms(gram: Gram, T: number): Float64Array {
  const G = readGram(gram, T, 'gramNorms');
  return diagonalNorms(G, T);
}

function diagonalNorms(G: Float64Array, T: number): Float64Array {
  const n = new Float64Array(T);
  for (let t = 0; t < T; t++) n[t] = Math.sqrt(Math.max(0, G[t * T + t]!));
  return n;
}

// ---------------------------------------------------------------------------------------------
// MGDA: the min-norm element of the convex hull

/** LibMTL's `mgda_gn`: how the gradients are normalised before the min-norm problem. */
export type MgdaNormalization = 'none' | 'l2' | 'loss' | 'loss+';

export interface MinNormOptions {
  /**
   * Gradient normalisation, LibMTL's `mgda_gn` (default 'none', as LibMTL): g_t is divided by
   * 1 ('none'), ||g_t|| ('l2'), L_t ('loss') or L_t*||g_t|| ('loss+') before the min-norm problem.
   */
  normalization?: MgdaNormalization;
  /** The task losses, needed by 'loss' and 'loss+' (they must be >= 0). */
  losses?: ArrayLike<number>;
  /** Stop when the L1 change of alpha in one iteration is below this (LibMTL STOP_CRIT 1e-5). */
  tolerance?: number;
  /** Iteration cap for T >= 3 (LibMTL MAX_ITER 250). */
  maxIterations?: number;
  /**
   * The reference code's two-point line search returns 0.999 / 0.001 instead of 1 / 0 when one
   * point dominates; true reproduces that, false (default) keeps the exact minimiser.
   */
  clampEndpoints?: boolean;
}

export interface MinNormResult {
  /** Simplex weights on the normalised gradients: what LibMTL's MGDA returns (`sol`). */
  alpha: Float64Array;
  /**
   * The coefficients on the raw (unnormalised) gradients: alpha_t / n_t with n_t the normaliser,
   * so that sum_t coefficients_t g_t = sum_t alpha_t (g_t / n_t), the gradient LibMTL sets for the
   * shared parameters (rep_grad = false). Equal to alpha for 'none'.
   */
  coefficients: Float64Array;
  /** The normalisers n_t (1 where a normaliser is 0: the zero gradient is left as it is). */
  normalizers: Float64Array;
  /** ||sum_t alpha_t g_t / n_t||, the minimal norm found. */
  norm: number;
  /** Iterations of the T >= 3 loop (0 for T <= 2). */
  iterations: number;
  /** False when T >= 3 stopped at maxIterations before the tolerance. */
  converged: boolean;
}

/**
 * The minimiser over gamma in [0, 1] of ||gamma v1 + (1 - gamma) v2||^2 from the three dot
 * products (`_min_norm_element_from2` of the MGDA reference code). Returns gamma and the cost.
 */
function minNormOfPair(v1v1: number, v1v2: number, v2v2: number, clamp: boolean): [number, number] {
  if (v1v2 >= v1v1) return [clamp ? 0.999 : 1, v1v1];
  if (v1v2 >= v2v2) return [clamp ? 0.001 : 0, v2v2];
  const gamma = (v2v2 - v1v2) / (v1v1 + v2v2 - 2 * v1v2);
  return [gamma, v2v2 + gamma * (v1v2 - v2v2)];
}

/**
 * The min-norm point of the convex hull as the MGDA reference code's `find_min_norm_element`
 * (used by LibMTL): start from the best pair, then projected-gradient steps to the simplex's
 * boundary with an exact line search, until the L1 change is below the tolerance.
 */
function minNormSimplex(
  G: Float64Array, T: number, tolerance: number, maxIterations: number, clamp: boolean,
): { alpha: Float64Array; iterations: number; converged: boolean } {
  let alpha: Float64Array = new Float64Array(T);
  if (T === 1) {
    alpha[0] = 1;
    return { alpha, iterations: 0, converged: true };
  }
  let best = Infinity;
  let bi = 0, bj = 1, bGamma = 0.5;
  for (let i = 0; i < T; i++) {
    for (let j = i + 1; j < T; j++) {
      const [gamma, cost] = minNormOfPair(G[i * T + i]!, G[i * T + j]!, G[j * T + j]!, clamp);
      if (cost < best) {
        best = cost;
        bi = i; bj = j; bGamma = gamma;
      }
    }
  }
  alpha[bi] = bGamma;
  alpha[bj] = 1 - bGamma;
  if (T < 3) return { alpha, iterations: 0, converged: true };

  for (let iter = 0; iter < maxIterations; iter++) {
    // _next_point: step along the descent direction -G alpha projected to sum-zero, as far as the
    // first coordinate that reaches 0 or 1 (steps below 1e-7 ignored), then back onto the simplex.
    const grad = matVec(G, T, alpha);
    let mean = 0;
    for (let t = 0; t < T; t++) mean -= grad[t]! / T;
    let toZero = Infinity; // the first coordinate to reach 0 (LibMTL's tm1)
    let toOne = Infinity; // the first to reach 1 (tm2)
    for (let t = 0; t < T; t++) {
      const d = -grad[t]! - mean;
      const tm = d < 0 ? -alpha[t]! / d : d > 0 ? (1 - alpha[t]!) / d : 0;
      if (tm > 1e-7) {
        if (d < 0) toZero = Math.min(toZero, tm);
        else toOne = Math.min(toOne, tm);
      }
    }
    // As the reference: the step is 1 unless a coordinate reaches 0 (then that step, even if > 1),
    // and at most the step at which a coordinate reaches 1.
    const step = Math.min(toZero === Infinity ? 1 : toZero, toOne);
    const moved = new Float64Array(T);
    for (let t = 0; t < T; t++) moved[t] = alpha[t]! + step * (-grad[t]! - mean);
    const next = projectToSimplex(moved);

    const [gamma] = minNormOfPair(
      bilinear(G, T, alpha, alpha), bilinear(G, T, alpha, next), bilinear(G, T, next, next), clamp,
    );
    const candidate = new Float64Array(T);
    let change = 0;
    for (let t = 0; t < T; t++) {
      candidate[t] = gamma * alpha[t]! + (1 - gamma) * next[t]!;
      change += Math.abs(candidate[t]! - alpha[t]!);
    }
    if (change < tolerance) return { alpha, iterations: iter + 1, converged: true };
    alpha = candidate;
  }
  return { alpha, iterations: maxIterations, converged: false };
}

/**
 * MGDA (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018), as
 * LibMTL's `MGDA` (modified from the official code, isl-org/MultiObjectiveOptimization): alpha on
 * the simplex minimising ||sum_t alpha_t g'_t||^2 = alpha^T G' alpha, with g'_t = g_t / n_t the
 * normalised gradients (G'[i][j] = G[i][j] / (n_i n_j)). T = 2 is the exact closed form; for
 * T >= 3 the reference algorithm (best pair, then projected-gradient steps with a line search).
 * Unlike LibMTL, which returns None if MAX_ITER is reached, the last iterate is returned with
 * `converged: false`. With representation gradients (rep_grad) LibMTL applies alpha to the raw
 * per-task representation gradients, so there the normalisation only changes alpha: use `alpha`
 * rather than `coefficients` to reproduce that mode.
 *
 * Zero gradients: 0 is then in the convex hull, so MGDA puts all weight on such a task and the
 * combined gradient is 0 (the point is Pareto-stationary). That is correct MGDA but rarely what
 * is wanted for an absent task: pass only the present tasks. A zero normaliser (zero norm for
 * 'l2' / 'loss+', zero loss for 'loss' / 'loss+') is replaced by 1, so no NaN arises.
 */
export function minNormCoefficients(gram: Gram, T: number, options: MinNormOptions = {}): MinNormResult {
  const fn = 'minNormCoefficients';
  const G = readGram(gram, T, fn);
  const normalization = options.normalization ?? 'none';
  const tolerance = options.tolerance ?? 1e-5;
  const maxIterations = options.maxIterations ?? 250;
  const normalizers = new Float64Array(T).fill(1);
  if (normalization !== 'none') {
    let losses: Float64Array | null = null;
    if (normalization === 'loss' || normalization === 'loss+') {
      if (!options.losses) throw new Error(`${fn}: normalization '${normalization}' needs the task losses`);
      losses = readVector(options.losses, T, fn, 'losses');
      for (let t = 0; t < T; t++) {
        if (losses[t]! < 0) throw new Error(`${fn}: normalization '${normalization}' needs losses >= 0, losses[${t}] is ${losses[t]}`);
      }
    } else if (normalization !== 'l2') {
      throw new Error(`${fn}: unknown normalization '${String(normalization)}' (none, l2, loss, loss+)`);
    }
    const norms = diagonalNorms(G, T);
    for (let t = 0; t < T; t++) {
      const n = normalization === 'l2' ? norms[t]! : normalization === 'loss' ? losses![t]! : losses![t]! * norms[t]!;
      normalizers[t] = n > 0 && Number.isFinite(n) ? n : 1;
    }
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) G[i * T + j]! /= normalizers[i]! * normalizers[j]!;
    }
  }
  const { alpha, iterations, converged } = minNormSimplex(G, T, tolerance, maxIterations, options.clampEndpoints ?? false);
  const coefficients = new Float64Array(T);
  for (let t = 0; t < T; t++) coefficients[t] = alpha[t]! / normalizers[t]!;
  const norm = Math.sqrt(Math.max(0, bilinear(G, T, alpha, alpha)));
  return { alpha, coefficients, normalizers, norm, iterations, converged };
}

// ---------------------------------------------------------------------------------------------
// PCGrad

/**
 * The order in which PCGrad visits the tasks for task i: either a function giving it (indices in
 * 0..T-1; LibMTL visits all T tasks, i itself included, and the original paper the others), or a
 * uniform generator in [0, 1) from which each order is a Fisher-Yates shuffle of 0..T-1 (as
 * LibMTL's `random.shuffle(list(range(T)))`), e.g. `uniformGenerator(seed)` of engine/random.ts.
 */
export type PcgradOrder = ((i: number) => ArrayLike<number>) | { random: () => number };

export interface PcgradOptions {
  /** Added to ||g_j||^2 in the projection's denominator (LibMTL 1e-8). */
  eps?: number;
}

/**
 * PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020), as LibMTL's
 * `PCGrad`: for each task i, g'_i starts at g_i and, for j in the order, if g'_i·g_j < 0 then
 * g'_i -= (g'_i·g_j / (||g_j||^2 + eps)) g_j; the combined gradient is sum_i g'_i. Each g'_i is
 * tracked as a coefficient vector over the g's (dot products through G); the returned
 * coefficients are the sum of these vectors (LibMTL's newer `batch_weight`).
 *
 * Zero gradients: g'_i·g_j = 0 for a zero g_j, so it is never projected on (and with eps = 0
 * there is no division by 0); a zero g_i keeps coefficient 1 on itself, contributing nothing.
 */
export function pcgradCoefficients(gram: Gram, T: number, order: PcgradOrder, options: PcgradOptions = {}): Float64Array {
  const fn = 'pcgradCoefficients';
  const G = readGram(gram, T, fn);
  const eps = options.eps ?? 1e-8;
  const orderOf = typeof order === 'function' ? order : shuffler(T, order.random);
  const total = new Float64Array(T);
  const c = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    c.fill(0);
    c[i] = 1;
    const visit = orderOf(i);
    for (let k = 0; k < visit.length; k++) {
      const j = visit[k]!;
      if (!Number.isInteger(j) || j < 0 || j >= T) throw new Error(`${fn}: the order for task ${i} holds ${j}, not a task index in 0..${T - 1}`);
      let dot = 0; // g'_i·g_j = sum_k c_k G[k][j]
      for (let m = 0; m < T; m++) dot += c[m]! * G[m * T + j]!;
      if (dot < 0) {
        const denominator = G[j * T + j]! + eps;
        if (denominator > 0) c[j]! -= dot / denominator;
      }
    }
    for (let m = 0; m < T; m++) total[m]! += c[m]!;
  }
  return total;
}

function shuffler(T: number, random: () => number): (i: number) => number[] {
  return () => {
    const p = Array.from({ length: T }, (_, k) => k);
    shuffleInPlace(p, random);
    return p;
  };
}

// ---------------------------------------------------------------------------------------------
// CAGrad

export interface CagradOptions {
  /** LibMTL's `calpha` (default 0.5): the radius of the ball around g0, relative to ||g0||. */
  c?: number;
  /** LibMTL's `rescale` (default 1): divide g by 1 + c^2 (1), by 1 + c (2), or not (0). */
  rescale?: 0 | 1 | 2;
  /** Stop when the L1 change of w in a step is below this (default 1e-13). */
  tolerance?: number;
  /** Iteration cap of the projected-gradient solver (default 20000). */
  maxIterations?: number;
  /**
   * LibMTL's small constants (default 1e-8): added to mean(G) under ||g0||'s root, to c*||g0||,
   * to w^T G w under F's root and to ||g_w|| in lambda's denominator. 0 gives the exact formulas
   * (lambda is then 0 when g_w = 0).
   */
  eps?: number;
}

export interface CagradResult {
  /** The coefficients of the CAGrad direction: g = sum_t coefficients_t g_t. */
  coefficients: Float64Array;
  /** The minimiser w on the simplex (what LibMTL's CAGrad returns, `w_cpu`). */
  w: Float64Array;
  /** lambda = c' / (||g_w|| + eps), with c' = c*||g0|| + eps. */
  lambda: number;
  /** F(w) at the returned w. */
  objective: number;
  iterations: number;
  converged: boolean;
}

/**
 * CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021),
 * as LibMTL's `CAGrad` (modified from the official code, Cranial-XIX/CAGrad): with g0 the mean
 * gradient, ||g0|| = sqrt(mean(G) + 1e-8) and c' = c*||g0|| + 1e-8, minimise over the simplex
 *   F(w) = w^T G b + c' sqrt(w^T G w + 1e-8),   b = 1/T,
 * then g_w = sum_t w_t g_t, lambda = c' / (||g_w|| + 1e-8), g = g0 + lambda g_w, divided by
 * 1 + c^2 (rescale 1), 1 + c (2) or 1 (0). LibMTL minimises F with scipy's SLSQP from the uniform
 * start; F is convex, and here it is minimised from the same start by projected gradient descent
 * with a backtracking (Armijo) step that grows again after each accepted step, to a much tighter
 * tolerance. The 1e-8 constants (option eps) are LibMTL's; they are absolute, so they matter
 * for gradients whose squared norms are near 1e-8.
 *
 * Zero gradients: allowed, no NaN (with eps = 0 too). With all gradients zero, LibMTL's eps
 * makes lambda = c' / 1e-8 large, so the coefficients are large but finite (the combined
 * gradient is 0 all the same); with eps = 0 they are the mean's, 1/T (over the rescale).
 */
export function cagradCoefficients(gram: Gram, T: number, options: CagradOptions = {}): CagradResult {
  const fn = 'cagradCoefficients';
  const G = readGram(gram, T, fn);
  const calpha = options.c ?? 0.5;
  const rescale = options.rescale ?? 1;
  if (!Number.isFinite(calpha) || calpha < 0) throw new Error(`${fn}: c = ${calpha} must be a finite number >= 0`);
  if (rescale !== 0 && rescale !== 1 && rescale !== 2) throw new Error(`${fn}: rescale ${String(rescale)} must be 0, 1 or 2`);
  const tolerance = options.tolerance ?? 1e-13;
  const maxIterations = options.maxIterations ?? 20000;
  const eps = options.eps ?? 1e-8;
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new Error(`${fn}: eps = ${eps} must be a finite number >= 0`);

  let meanG = 0;
  for (let k = 0; k < T * T; k++) meanG += G[k]!;
  meanG /= T * T;
  const cc = calpha * Math.sqrt(Math.max(0, meanG) + eps) + eps;
  const Gb = new Float64Array(T); // G b with b = 1/T
  for (let i = 0; i < T; i++) {
    let r = 0;
    for (let j = 0; j < T; j++) r += G[i * T + j]!;
    Gb[i] = r / T;
  }
  const F = (w: Float64Array): number => {
    let lin = 0;
    for (let t = 0; t < T; t++) lin += w[t]! * Gb[t]!;
    return lin + cc * Math.sqrt(Math.max(0, bilinear(G, T, w, w)) + eps);
  };

  let w: Float64Array = new Float64Array(T).fill(1 / T);
  let f = F(w);
  let maxDiagonal = 0;
  for (let t = 0; t < T; t++) maxDiagonal = Math.max(maxDiagonal, G[t * T + t]!);
  let step = maxDiagonal > 0 ? 1 / (maxDiagonal * (1 + cc / Math.sqrt(maxDiagonal + eps))) : 1;
  let iterations = 0;
  let converged = T === 1;
  while (!converged && iterations < maxIterations) {
    iterations++;
    const Gw = matVec(G, T, w);
    let wGw = 0;
    for (let t = 0; t < T; t++) wGw += w[t]! * Gw[t]!;
    const root = Math.sqrt(Math.max(0, wGw) + eps);
    const grad = new Float64Array(T);
    for (let t = 0; t < T; t++) grad[t] = Gb[t]! + (root > 0 ? (cc * Gw[t]!) / root : 0);

    let accepted: Float64Array | null = null;
    let fNext = f;
    let change = 0;
    for (let tries = 0; tries < 80; tries++) {
      const trial = new Float64Array(T);
      for (let t = 0; t < T; t++) trial[t] = w[t]! - step * grad[t]!;
      const next = projectToSimplex(trial);
      let decrease = 0, sq = 0;
      change = 0;
      for (let t = 0; t < T; t++) {
        const d = next[t]! - w[t]!;
        decrease += grad[t]! * d;
        sq += d * d;
        change += Math.abs(d);
      }
      fNext = F(next);
      if (fNext <= f + decrease + sq / (2 * step) || change < tolerance) {
        accepted = next;
        break;
      }
      step /= 2;
    }
    if (accepted === null) {
      converged = true; // no step decreases F at rounding level: w is optimal to machine precision
      break;
    }
    if (fNext > f || change < tolerance) {
      // A step that raises F passed the sufficient-decrease test only by rounding: w is optimal
      // to machine precision.
      converged = true;
      if (fNext > f) break;
    }
    w = accepted;
    f = fNext;
    step *= 2;
  }

  const gwNorm = Math.sqrt(Math.max(0, bilinear(G, T, w, w)));
  const lambda = gwNorm + eps > 0 ? cc / (gwNorm + eps) : 0;
  const scale = rescale === 0 ? 1 : rescale === 1 ? 1 + calpha * calpha : 1 + calpha;
  const coefficients = new Float64Array(T);
  for (let t = 0; t < T; t++) coefficients[t] = (1 / T + lambda * w[t]!) / scale;
  return { coefficients, w, lambda, objective: f, iterations, converged };
}

// ---------------------------------------------------------------------------------------------
// GradNorm

export interface GradNormStepResult {
  /** w = T*softmax(logits): the task weights of this step's combination (they sum to T). */
  weights: Float64Array;
  /** dL_grad/dlogits, through the softmax, with the targets held constant. */
  logitGradient: Float64Array;
  /** L_grad = sum_t |w_t n_t - const_t|. */
  loss: number;
  /** The targets const_t = Gbar * r_t^alpha (detached). */
  targets: Float64Array;
}

/**
 * One GradNorm step (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing
 * in Deep Multitask Networks", ICML 2018), as LibMTL's `GradNorm`: the trainable logits give
 * w = T*softmax(logits); with the per-task gradient norms n_t (sqrt of G's diagonal, see
 * gramNorms), G_t = w_t n_t, Gbar = mean_t G_t, the relative inverse training rates
 * r_t = (L_t / L_t(0)) / mean_s(L_s / L_s(0)), and the detached targets const_t = Gbar r_t^alpha,
 *   L_grad = sum_t |G_t - const_t|.
 * Returns the weights (before the logits move) and dL_grad/dlogits for the caller's optimizer
 * (current LibMTL makes the logits an nn.Parameter initialised to equal values, so w = 1 at the
 * start, and steps them with the model's optimizer and its settings). alpha defaults to 1.5
 * (LibMTL's default). LibMTL takes L_t(0) as the mean training loss of the first epoch and uses
 * weights 1 (plain sum) during that epoch; the caller does that. |x| has subgradient sign(x)
 * (0 at 0), as torch.
 *
 * Zero gradients: n_t = 0 gives G_t = 0 and a zero gradient through that task's weight; no NaN.
 */
export function gradNormStep(
  logits: ArrayLike<number>, norms: ArrayLike<number>, losses: ArrayLike<number>,
  initialLosses: ArrayLike<number>, alpha = 1.5,
): GradNormStepResult {
  const fn = 'gradNormStep';
  const T = logits.length;
  checkTaskCount(T, fn);
  const z = readVector(logits, T, fn, 'logits');
  const n = readVector(norms, T, fn, 'norms');
  const L = readVector(losses, T, fn, 'losses');
  const L0 = readVector(initialLosses, T, fn, 'initialLosses');
  if (!Number.isFinite(alpha)) throw new Error(`${fn}: alpha = ${alpha} is not finite`);
  for (let t = 0; t < T; t++) {
    if (n[t]! < 0) throw new Error(`${fn}: norms[${t}] = ${n[t]} is negative`);
    if (!(L0[t]! > 0)) throw new Error(`${fn}: initialLosses[${t}] = ${L0[t]} must be > 0`);
    if (L[t]! < 0) throw new Error(`${fn}: losses[${t}] = ${L[t]} is negative`);
  }
  const p = softmax(z);
  const weights = new Float64Array(T);
  const Gt = new Float64Array(T);
  const ratio = new Float64Array(T);
  let Gbar = 0, meanRatio = 0;
  for (let t = 0; t < T; t++) {
    weights[t] = T * p[t]!;
    Gt[t] = weights[t]! * n[t]!;
    Gbar += Gt[t]! / T;
    ratio[t] = L[t]! / L0[t]!;
    meanRatio += ratio[t]! / T;
  }
  const targets = new Float64Array(T);
  const dLdw = new Float64Array(T);
  let loss = 0;
  for (let t = 0; t < T; t++) {
    // All losses 0 makes every ratio 0/0; the natural limit is a common rate of 1.
    const r = meanRatio > 0 ? ratio[t]! / meanRatio : 1;
    targets[t] = Gbar * Math.pow(r, alpha);
    const diff = Gt[t]! - targets[t]!;
    loss += Math.abs(diff);
    dLdw[t] = Math.sign(diff) * n[t]!;
  }
  // w_t = T p_t, dp_t/dz_j = p_t (delta_tj - p_j): dL/dz_j = T p_j (a_j - sum_t a_t p_t).
  let pa = 0;
  for (let t = 0; t < T; t++) pa += p[t]! * dLdw[t]!;
  const logitGradient = new Float64Array(T);
  for (let j = 0; j < T; j++) logitGradient[j] = T * p[j]! * (dLdw[j]! - pa);
  return { weights, logitGradient, loss, targets };
}

// ---------------------------------------------------------------------------------------------
// Loss weightings without gradients: DWA and RLW

/**
 * DWA (Liu et al., "End-to-End Multi-Task Learning with Attention", CVPR 2019), as LibMTL's `DWA`
 * (from lorenmt/mtan): given the mean training losses of the finished epochs (one row of T per
 * epoch, oldest first), the weights for the coming epoch are 1 while fewer than two epochs have
 * finished, else T*softmax(r / temperature) with r_t = L_t(e-1) / L_t(e-2) (the last two rows).
 * temperature defaults to 2 (LibMTL's `T`). A loss of 0 in row e-2 throws (the ratio is undefined).
 */
export function dwaWeights(epochMeanLosses: readonly ArrayLike<number>[], T: number, temperature = 2): Float64Array {
  const fn = 'dwaWeights';
  checkTaskCount(T, fn);
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new Error(`${fn}: temperature ${temperature} must be a positive number`);
  const E = epochMeanLosses.length;
  if (E < 2) return new Float64Array(T).fill(1);
  const last = readVector(epochMeanLosses[E - 1]!, T, fn, `epochMeanLosses[${E - 1}]`);
  const before = readVector(epochMeanLosses[E - 2]!, T, fn, `epochMeanLosses[${E - 2}]`);
  const r = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    if (before[t] === 0) throw new Error(`${fn}: epochMeanLosses[${E - 2}][${t}] is 0, the loss ratio is undefined`);
    r[t] = last[t]! / before[t]! / temperature;
  }
  const w = softmax(r);
  for (let t = 0; t < T; t++) w[t]! *= T;
  return w;
}

/**
 * RLW (Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task
 * Learning", TMLR 2022), as LibMTL's `RLW`: each step the loss weights are softmax of T standard
 * normal draws (LibMTL's default and, in its current version, only distribution); they sum to 1.
 * `normal` gives the standard normal draws, e.g. normalGenerator(uniformGenerator(seed)) from
 * engine/random.ts for a seeded stream.
 */
export function rlwWeights(T: number, normal: () => number): Float64Array {
  checkTaskCount(T, 'rlwWeights');
  const z = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    z[t] = normal();
    if (!Number.isFinite(z[t]!)) throw new Error(`rlwWeights: draw ${t} is ${z[t]}, not finite`);
  }
  return softmax(z);
}

// ---------------------------------------------------------------------------------------------
// Gradient conflict

/**
 * The T×T matrix (row-major) of cosines G[i][j] / (n_i n_j) between the task gradients, clamped
 * to [-1, 1]; 0 in the rows and columns of a zero gradient (diagonal included), 1 on the rest of
 * the diagonal.
 */
export function cosines(gram: Gram, T: number): Float64Array {
  return cosineMatrix(gram, T, 'cosines');
}

function cosineMatrix(gram: Gram, T: number, fn: string): Float64Array {
  const G = readGram(gram, T, fn);
  const n = diagonalNorms(G, T);
  const C = new Float64Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      if (n[i]! > 0 && n[j]! > 0) {
        C[i * T + j] = i === j ? 1 : Math.min(1, Math.max(-1, G[i * T + j]! / (n[i]! * n[j]!)));
      }
    }
  }
  return C;
}

/** The mean of the cosines over the pairs i < j (0 for T = 1); zero gradients count as cosine 0. */
export function meanPairCosine(gram: Gram, T: number): number {
  const C = cosineMatrix(gram, T, 'meanPairCosine');
  if (T < 2) return 0;
  let s = 0;
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) s += C[i * T + j]!;
  return s / ((T * (T - 1)) / 2);
}
