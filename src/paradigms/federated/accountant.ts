// Privacy accounting for DP-FedAvg (McMahan et al. 2018), in float64.
//
// Each round the server samples every client independently with probability q, clips each update
// to norm C, sums them and adds Gaussian noise of std z*C (z: the noise multiplier). One round is
// the sampled Gaussian mechanism (SGM) with sensitivity 1 in units of C; this file bounds its Rényi
// differential privacy (RDP) and converts the composed RDP to an (epsilon, delta) guarantee at the
// client level (add-or-remove-one-client adjacency).
//
// The RDP of the SGM follows Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the
// Sampled Gaussian Mechanism" (arXiv:1908.10530, Section 3.3), as TensorFlow Privacy's
// `privacy/analysis/rdp_accountant.py` (`compute_rdp`, `_compute_log_a_int`, `_compute_log_a_frac`)
// and Opacus's `opacus/accountants/analysis/rdp.py` implement it: at order alpha,
//   RDP(alpha) = log(A_alpha) / (alpha - 1),
//   A_alpha    = E_{x ~ N(0, z^2)} [((1 - q) + q * exp((2x - 1) / (2 z^2)))^alpha],
// computed in log space (log-add / log-sub), with the finite binomial sum for integer alpha and the
// two-sided erfc series for fractional alpha. Composition over rounds adds RDP order by order.

// ---------------------------------------------------------------------------------------------
// Orders

/** The orders Opacus's `RDPAccountant.DEFAULT_ALPHAS` uses (and TF Privacy's MNIST tutorials):
 * 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10),
  ...Array.from({ length: 52 }, (_, k) => 12 + k),
]);

/** How RDP converts to (epsilon, delta)-DP; see `epsilonFromRdp`. */
export type RdpConversion = 'improved' | 'classic';

/** An (epsilon, delta) guarantee and the RDP order that gave it. */
export interface PrivacySpent {
  epsilon: number;
  order: number;
}

function checkOrders(orders: readonly number[], fn: string): void {
  if (orders.length === 0) throw new Error(`${fn}: orders is empty`);
  orders.forEach((a, i) => {
    if (typeof a !== 'number' || Number.isNaN(a) || a <= 1) {
      throw new Error(`${fn}: orders[${i}] = ${a}; RDP orders must be numbers > 1`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Log-space arithmetic (-Infinity stands for 0)

/** log(exp(x) + exp(y)). */
function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === -Infinity) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/** log(exp(x) - exp(y)); the difference must be non-negative. */
function logSub(x: number, y: number): number {
  if (x < y) throw new Error(`accountant: log-space subtraction ${x} - ${y} would be negative`);
  if (y === -Infinity) return x;
  if (x === y) return -Infinity;
  const d = Math.expm1(x - y);
  // exp(x) - exp(y) = (exp(x - y) - 1) exp(y); when exp(x - y) overflows, exp(y) is negligible.
  return Number.isFinite(d) ? Math.log(d) + y : x;
}

// log(erfc(x)), accurate far into the tail (TF Privacy and Opacus use scipy's log_ndtr for this).
const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x) for 0 <= x < 3 by the all-positive series
 * erf(x) = 2/sqrt(pi) e^{-x^2} sum_n (2x^2)^n x / (1*3*...*(2n+1)) (no cancellation). */
function erfSeries(x: number): number {
  const x2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/** log(erfc(x) e^{x^2} sqrt(pi)) for x >= 2 from the continued fraction
 * erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) (Abramowitz-Stegun
 * 7.1.14), evaluated by the modified Lentz method. */
function logErfcScaledCf(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = f;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = 1 / (Math.abs(d) < tiny ? tiny : d);
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -Math.log(f);
}

/** log(erfc(x)) for any finite x. */
export function logErfc(x: number): number {
  if (x >= 2) return -x * x - LOG_SQRT_PI + logErfcScaledCf(x);
  if (x >= 0) return Math.log1p(-erfSeries(x));
  if (x > -3) return Math.log1p(erfSeries(-x));
  return Math.log(2 - Math.exp(-x * x - LOG_SQRT_PI + logErfcScaledCf(-x)));
}

// ---------------------------------------------------------------------------------------------
// log(A_alpha) of the sampled Gaussian mechanism, 0 < q < 1, 0 < sigma < Infinity

/** Integer alpha: A_alpha = sum_{i=0}^{alpha} C(alpha, i) q^i (1 - q)^(alpha - i)
 * exp((i^2 - i) / (2 sigma^2)) (TF Privacy `_compute_log_a_int`). */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logA = -Infinity;
  let logBinom = 0; // log C(alpha, i), built up term by term
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
    const s = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

/** Fractional alpha: A_alpha split at z0 = sigma^2 log(1/q - 1) + 1/2 into the integrals over
 * (-inf, z0] and [z0, inf), each expanded as a binomial series in i whose terms carry a Gaussian
 * tail factor erfc(...)/2; the generalized binomial C(alpha, i) changes sign, so terms are added or
 * subtracted in log space; the series stops once both new terms are below e^-30
 * (TF Privacy `_compute_log_a_frac`). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  let logAbsBinom = 0; // log |C(alpha, i)|
  let binomSign = 1;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const f = alpha - i + 1;
      logAbsBinom += Math.log(Math.abs(f)) - Math.log(i);
      if (f < 0) binomSign = -binomSign;
    }
    const j = alpha - i;
    const logT0 = logAbsBinom + i * logQ + j * log1mQ;
    const logT1 = logAbsBinom + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (binomSign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
  }
  return logAdd(logA0, logA1);
}

/** RDP of one application of the sampled Gaussian mechanism at order alpha. */
function rdpOneStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (sigma === Infinity) return 0;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Infinity) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * RDP of the sampled Gaussian mechanism (sampling probability `q`, noise std `noiseMultiplier`
 * times the clipping norm) composed `steps` times, at each of `orders` (TF Privacy `compute_rdp`).
 * q = 1 gives the Gaussian closed form alpha / (2 z^2); q = 0 (or steps = 0) gives 0; z = 0 gives
 * Infinity. Orders may include Infinity.
 */
export function rdpSampledGaussian(
  q: number, noiseMultiplier: number, steps: number, orders: readonly number[] = DEFAULT_ORDERS,
): Float64Array {
  const fn = 'rdpSampledGaussian';
  if (typeof q !== 'number' || !(q >= 0 && q <= 1)) {
    throw new Error(`${fn}: sampling probability q = ${q} must be in [0, 1]`);
  }
  if (typeof noiseMultiplier !== 'number' || !(noiseMultiplier >= 0)) {
    throw new Error(`${fn}: noise multiplier ${noiseMultiplier} must be >= 0`);
  }
  if (!Number.isSafeInteger(steps) || steps < 0) {
    throw new Error(`${fn}: steps = ${steps} must be a non-negative integer`);
  }
  checkOrders(orders, fn);
  const out = new Float64Array(orders.length);
  if (steps === 0) return out;
  for (let k = 0; k < orders.length; k++) out[k] = rdpOneStep(q, noiseMultiplier, orders[k]!) * steps;
  return out;
}

/**
 * Converts RDP guarantees at several orders into the smallest epsilon, over those orders, for
 * which the mechanism is (epsilon, delta)-DP.
 *
 * 'improved' (default): the conversion current TF Privacy / dp_accounting (`_compute_epsilon`) and
 * Opacus (`get_privacy_spent`) use, Balle et al. 2020 ("Hypothesis testing interpretations and
 * Rényi differential privacy", arXiv:1905.09982, Theorem 21) = Canonne, Kamath, Steinke 2020
 * (arXiv:2004.00010, Proposition 12):
 *   epsilon(alpha) = rdp + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1).
 * As in TF Privacy, an order whose RDP r already satisfies delta^2 > 1 - exp(-r) gives epsilon 0
 * (the KL-divergence bound delta <= sqrt(1 - exp(-KL))), orders <= 1.01 are skipped as numerically
 * unstable (epsilon Infinity), and the result is clamped at 0.
 *
 * 'classic': Mironov 2017 (arXiv:1702.07476, Proposition 3), the bound the older TF Privacy
 * `get_privacy_spent` used:  epsilon(alpha) = rdp - log(delta) / (alpha - 1).
 *
 * Ties go to the first order in the list.
 */
export function epsilonFromRdp(
  orders: readonly number[], rdp: ArrayLike<number>, delta: number,
  conversion: RdpConversion = 'improved',
): PrivacySpent {
  const fn = 'epsilonFromRdp';
  checkOrders(orders, fn);
  if (rdp.length !== orders.length) {
    throw new Error(`${fn}: ${rdp.length} RDP values for ${orders.length} orders`);
  }
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) {
    throw new Error(`${fn}: delta = ${delta} must be in (0, 1)`);
  }
  let best = Infinity;
  let bestOrder = orders[0]!;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    if (Number.isNaN(r) || r < 0) throw new Error(`${fn}: rdp[${k}] = ${r} must be >= 0`);
    let eps: number;
    if (conversion === 'classic') {
      eps = r - Math.log(delta) / (a - 1);
    } else if (delta * delta + Math.expm1(-r) > 0) {
      eps = 0;
    } else if (a > 1.01) {
      eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    } else {
      eps = Infinity;
    }
    if (Number.isNaN(eps)) eps = Infinity; // order Infinity: rdp - log(delta)/Infinity terms
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  return { epsilon: Math.max(0, best), order: bestOrder };
}

/**
 * Composes rounds of the sampled Gaussian mechanism, each with its own sampling probability and
 * noise multiplier (a server with adaptive clipping or a changing cohort size changes them between
 * rounds), by adding their RDP order by order.
 */
export class RdpAccountant {
  readonly orders: readonly number[];
  private readonly total: Float64Array;

  constructor(orders: readonly number[] = DEFAULT_ORDERS) {
    checkOrders(orders, 'RdpAccountant');
    this.orders = Object.freeze([...orders]);
    this.total = new Float64Array(orders.length);
  }

  /** Records `steps` rounds with client sampling probability q and noise multiplier z. */
  step(q: number, noiseMultiplier: number, steps = 1): void {
    const r = rdpSampledGaussian(q, noiseMultiplier, steps, this.orders);
    for (let k = 0; k < r.length; k++) this.total[k]! += r[k]!;
  }

  /** The (epsilon, delta) guarantee of everything recorded so far. */
  epsilon(delta: number, conversion: RdpConversion = 'improved'): PrivacySpent {
    return epsilonFromRdp(this.orders, this.total, delta, conversion);
  }

  /** The composed RDP at each of `orders` (a copy). */
  get rdp(): Float64Array {
    return this.total.slice();
  }

  /** What the accountant has recorded, as plain data (an RDP is Infinity after a round without noise). */
  state(): RdpAccountantState {
    return { orders: [...this.orders], rdp: Array.from(this.total) };
  }

  /** Replaces what was recorded with a saved state of the same orders. */
  restore(state: RdpAccountantState): void {
    const op = 'RdpAccountant.restore';
    const { orders, rdp } = state;
    if (orders.length !== this.orders.length) throw new Error(`${op}: the state has ${orders.length} orders; this accountant has ${this.orders.length}`);
    const k = orders.findIndex((a, i) => a !== this.orders[i]);
    if (k >= 0) throw new Error(`${op}: the state's orders[${k}] is ${orders[k]}; this accountant's is ${this.orders[k]}`);
    if (rdp.length !== orders.length) throw new Error(`${op}: ${rdp.length} RDP values for ${orders.length} orders`);
    const bad = rdp.findIndex((r) => !(r >= 0));
    if (bad >= 0) throw new Error(`${op}: rdp[${bad}] = ${rdp[bad]} must be >= 0`);
    this.total.set(rdp);
  }
}

/** An RdpAccountant's orders and the RDP composed at each. */
export interface RdpAccountantState {
  orders: number[];
  rdp: number[];
}
