// Pure TypeScript: the RDP accountant of the sampled Gaussian mechanism
// (src/paradigms/federated/accountant.ts), against closed forms, independent float64 computations
// of A_alpha (the binomial sum for integer orders, numerical integration for fractional ones) and
// values that TF Privacy and Opacus publish in their tests, docs and tutorials.
import { describe, expect, test } from 'vitest';
import {
  DEFAULT_ORDERS, RdpAccountant, epsilonFromRdp, logErfc, rdpSampledGaussian,
} from '../../src/paradigms/federated/accountant.js';

/** The orders TF Privacy's `compute_dp_sgd_privacy_lib.compute_dp_sgd_privacy` uses. */
const TF_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5,
  ...Array.from({ length: 59 }, (_, k) => 5 + k), 128, 256, 512];
const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo }, (_, k) => lo + k);

/** A_alpha for integer alpha straight from its definition, without logs:
 * sum_i C(alpha, i) (1 - q)^(alpha - i) q^i exp((i^2 - i) / (2 sigma^2)). */
function aIntDirect(q: number, sigma: number, alpha: number): number {
  let sum = 0;
  let binom = 1;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) binom = (binom * (alpha - i + 1)) / i;
    sum += binom * (1 - q) ** (alpha - i) * q ** i * Math.exp((i * i - i) / (2 * sigma * sigma));
  }
  return sum;
}

/** log A_alpha for any alpha by the trapezoid rule in log space on
 * A_alpha = integral N(x; 0, sigma^2) ((1 - q) + q exp((2x - 1) / (2 sigma^2)))^alpha dx
 * (the integrand's mass lies between x = 0 and x = alpha, with Gaussian tails of width sigma). */
function logAIntegral(q: number, sigma: number, alpha: number): number {
  const lo = -40 * sigma - 1;
  const hi = alpha + 40 * sigma + 1;
  const h = sigma / 200;
  const n = Math.ceil((hi - lo) / h);
  const logF = (x: number): number => {
    const u = (2 * x - 1) / (2 * sigma * sigma) + Math.log(q); // log(q e^{...})
    const v = Math.log1p(-q);
    const mix = Math.max(u, v) + Math.log1p(Math.exp(-Math.abs(u - v)));
    return -(x * x) / (2 * sigma * sigma) - Math.log(sigma * Math.sqrt(2 * Math.PI)) + alpha * mix;
  };
  const vals = new Float64Array(n + 1);
  let max = -Infinity;
  for (let k = 0; k <= n; k++) {
    vals[k] = logF(lo + (k * (hi - lo)) / n);
    max = Math.max(max, vals[k]!);
  }
  let s = 0;
  for (let k = 0; k <= n; k++) s += (k === 0 || k === n ? 0.5 : 1) * Math.exp(vals[k]! - max);
  return max + Math.log(s * ((hi - lo) / n));
}

describe('rdpSampledGaussian', () => {
  test('q = 1 is the Gaussian closed form alpha / (2 z^2) at every order', () => {
    for (const z of [0.5, 1.1, 4]) {
      const r = rdpSampledGaussian(1, z, 7, DEFAULT_ORDERS);
      DEFAULT_ORDERS.forEach((a, k) => expect(r[k]).toBeCloseTo((7 * a) / (2 * z * z), 12));
    }
    // TF Privacy rdp_accountant_test.test_compute_rdp_no_sampling: compute_rdp(1, 10, 1, 20) == 0.1.
    expect(rdpSampledGaussian(1, 10, 1, [20])[0]).toBe(0.1);
  });

  test('q = 0, steps = 0 give 0; z = 0 gives Infinity', () => {
    expect(Array.from(rdpSampledGaussian(0, 10, 1, [20, 2.5]))).toEqual([0, 0]);
    expect(Array.from(rdpSampledGaussian(0.3, 1, 0, [20, 2.5]))).toEqual([0, 0]);
    expect(Array.from(rdpSampledGaussian(0.3, 0, 1, [20, 2.5]))).toEqual([Infinity, Infinity]);
    expect(rdpSampledGaussian(0.3, 1, 1, [Infinity])[0]).toBe(Infinity);
  });

  test('small q, integer orders: the binomial sum computed directly', () => {
    for (const [q, sigma] of [[1e-3, 1], [0.01, 1.1], [0.05, 2], [0.2, 1.5], [0.6, 3]] as const) {
      const orders = range(2, 33);
      const r = rdpSampledGaussian(q, sigma, 5, orders);
      orders.forEach((a, k) => {
        const expected = (5 * Math.log(aIntDirect(q, sigma, a))) / (a - 1);
        expect(Math.abs(r[k]! - expected)).toBeLessThanOrEqual(1e-12 * Math.max(1, expected));
      });
    }
  });

  test('fractional (and integer) orders: log A_alpha by numerical integration', () => {
    // (q, sigma, alpha) mostly from TF Privacy's test_compute_log_a_equals_mp parameters.
    const cases = [[1e-4, 1, 1.5], [0.1, 100, 20.5], [0.999, 100, 256.1], [1e-5, 0.1, 256.1],
      [0.01, 2.5, 2.5], [0.01, 2.5, 100.5], [0.3, 0.8, 3.7], [1e-3, 1, 2], [0.01, 10, 20]] as const;
    for (const [q, sigma, alpha] of cases) {
      const logA = rdpSampledGaussian(q, sigma, 1, [alpha])[0]! * (alpha - 1);
      const ref = logAIntegral(q, sigma, alpha);
      expect(Math.abs(logA - ref)).toBeLessThanOrEqual(1e-9 * Math.abs(ref) + 1e-13);
    }
  });

  test("TF Privacy rdp_accountant_test's expected values", () => {
    // test_compute_rdp_sequence: compute_rdp(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100, inf]), delta=1e-5.
    const r = rdpSampledGaussian(0.01, 2.5, 50, [1.5, 2.5, 5, 50, 100, Infinity]);
    [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307].forEach((v, k) => {
      expect(Math.abs(r[k]! - v)).toBeLessThanOrEqual(1e-5);
    });
    expect(r[5]).toBe(Infinity);
    // rdp_privacy_accountant_test.test_compute_rdp_poisson_sampled_gaussian: same case, rtol 1e-4.
    [6.5007e-04, 1.0854e-03, 2.1808e-03, 2.3846e-02, 1.6742e+02].forEach((v, k) => {
      expect(Math.abs(r[k]! - v)).toBeLessThanOrEqual(1e-4 * v);
    });
    // test_compute_rdp_scalar: compute_rdp(0.1, 2, 10, 5) = 0.07737 (5 places).
    expect(rdpSampledGaussian(0.1, 2, 10, [5])[0]).toBeCloseTo(0.07737, 5);
  });

  test('clear errors for bad arguments', () => {
    expect(() => rdpSampledGaussian(-0.1, 1, 1)).toThrow(/q = -0.1 must be in \[0, 1\]/);
    expect(() => rdpSampledGaussian(1.5, 1, 1)).toThrow(/q = 1.5/);
    expect(() => rdpSampledGaussian(NaN, 1, 1)).toThrow(/q = NaN/);
    expect(() => rdpSampledGaussian(0.1, -1, 1)).toThrow(/noise multiplier -1 must be >= 0/);
    expect(() => rdpSampledGaussian(0.1, 1, 1.5)).toThrow(/steps = 1.5 must be a non-negative integer/);
    expect(() => rdpSampledGaussian(0.1, 1, -2)).toThrow(/steps = -2/);
    expect(() => rdpSampledGaussian(0.1, 1, 1, [2, 1])).toThrow(/orders\[1\] = 1; RDP orders must be numbers > 1/);
    expect(() => rdpSampledGaussian(0.1, 1, 1, [0.5])).toThrow(/orders\[0\] = 0.5/);
    expect(() => rdpSampledGaussian(0.1, 1, 1, [])).toThrow(/orders is empty/);
  });
});

describe('logErfc', () => {
  test('matches erfc values and its tail asymptotics', () => {
    // erfc(0.5), erfc(1), erfc(2), erfc(3) (Abramowitz-Stegun Table 7.1, 16 digits from mpmath).
    expect(logErfc(0)).toBeCloseTo(0, 15);
    expect(Math.exp(logErfc(0.5))).toBeCloseTo(0.4795001221869535, 15);
    expect(Math.exp(logErfc(1))).toBeCloseTo(0.1572992070502851, 15);
    expect(Math.exp(logErfc(2)) / 0.004677734981047266).toBeCloseTo(1, 13);
    expect(Math.exp(logErfc(3)) / 2.209049699858544e-5).toBeCloseTo(1, 13);
    expect(Math.exp(logErfc(-1))).toBeCloseTo(2 - 0.1572992070502851, 15);
    // Far tail: log erfc(x) = -x^2 - log(x sqrt(pi)) - 1/(2x^2) + 5/(8x^4) - ... (TF Privacy's series).
    for (const x of [30, 100, 1e4]) {
      const series = -x * x - Math.log(x) - 0.5 * Math.log(Math.PI) - 0.5 / x ** 2 + 0.625 / x ** 4
        - (37 / 24) / x ** 6;
      expect(Math.abs(logErfc(x) - series)).toBeLessThanOrEqual(1e-12 * x * x);
    }
  });
});

describe('epsilonFromRdp', () => {
  test("TF Privacy's pure-DP check: constant RDP 1.1 over orders 2..32, delta 1e-5", () => {
    // rdp_privacy_accountant_test.test_compute_epsilon_delta_pure_dp: eps 1.32783806176, order 32.
    const orders = range(2, 33);
    const { epsilon, order } = epsilonFromRdp(orders, orders.map(() => 1.1), 1e-5);
    expect(order).toBe(32);
    expect(epsilon).toBeCloseTo(1.32783806176, 10);
  });

  test("TF Privacy's Gaussian check: z = 4.530877117 is exactly (1, 1e-6)-DP", () => {
    // test_compute_epsilon_delta_gaussian: orders 0.001 i (TF starts at i = 1000; order 1 is
    // rejected here and cannot be the optimum), q = 1, eps == 1 to 7 places.
    const orders = Array.from({ length: 98999 }, (_, k) => 0.001 * (1001 + k));
    const rdp = rdpSampledGaussian(1, 4.530877117, 1, orders);
    expect(epsilonFromRdp(orders, rdp, 1e-6).epsilon).toBeCloseTo(1, 7);
  });

  test('the improved conversion is the documented formula, never above the classic one', () => {
    const orders = [1.5, 2, 8, 32, 256];
    const rdp = [0.01, 0.05, 0.4, 2, 30];
    const delta = 1e-5;
    const improved = orders.map((a, k) => rdp[k]! - (Math.log(delta) + Math.log(a)) / (a - 1)
      + Math.log((a - 1) / a)); // Opacus get_privacy_spent, term by term
    const classic = orders.map((a, k) => rdp[k]! - Math.log(delta) / (a - 1));
    const i = improved.indexOf(Math.min(...improved));
    const c = classic.indexOf(Math.min(...classic));
    expect(epsilonFromRdp(orders, rdp, delta)).toEqual({ epsilon: expect.closeTo(improved[i]!, 13), order: orders[i] });
    expect(epsilonFromRdp(orders, rdp, delta, 'classic')).toEqual({ epsilon: expect.closeTo(classic[c]!, 13), order: orders[c] });
    expect(improved[i]!).toBeLessThan(classic[c]!);
  });

  test('zero RDP gives epsilon 0; errors for bad delta, lengths and RDP values', () => {
    expect(epsilonFromRdp([2, 3], [0, 0], 1e-5).epsilon).toBe(0);
    expect(epsilonFromRdp([2, 3], [Infinity, Infinity], 1e-5).epsilon).toBe(Infinity);
    expect(() => epsilonFromRdp([2], [0.1], 0)).toThrow(/delta = 0 must be in \(0, 1\)/);
    expect(() => epsilonFromRdp([2], [0.1], 1)).toThrow(/delta = 1/);
    expect(() => epsilonFromRdp([2, 3], [0.1], 1e-5)).toThrow(/1 RDP values for 2 orders/);
    expect(() => epsilonFromRdp([2], [-0.1], 1e-5)).toThrow(/rdp\[0\] = -0.1 must be >= 0/);
    expect(() => epsilonFromRdp([1], [0.1], 1e-5)).toThrow(/orders\[0\] = 1/);
  });
});

describe('published (epsilon, delta) values', () => {
  // TF Privacy tutorials/README.md (mnist_dpsgd_tutorial.py): q = 256/60000, steps = epochs *
  // 60000 // 256, orders [1 + x/10 for x in 1..99] + [12..63] (= DEFAULT_ORDERS), delta = 1e-5,
  // classic conversion of that time. z = 1.1 (later README): "1.03" after 1 epoch, "1.11" after 2,
  // "3.01" after 60; z = 1.12 (earlier README table): "1.00", "1.04", "2.92".
  test.each([
    [1.1, 1, '1.03'], [1.1, 2, '1.11'], [1.1, 60, '3.01'],
    [1.12, 1, '1.00'], [1.12, 2, '1.04'], [1.12, 60, '2.92'],
  ] as const)('MNIST DP-SGD tutorial: z = %s, %s epochs -> eps %s', (z, epochs, printed) => {
    const steps = Math.floor((epochs * 60000) / 256);
    const rdp = rdpSampledGaussian(256 / 60000, z, steps, DEFAULT_ORDERS);
    expect(epsilonFromRdp(DEFAULT_ORDERS, rdp, 1e-5, 'classic').epsilon.toFixed(2)).toBe(printed);
  });

  // TF Privacy compute_dp_sgd_privacy_test.test_compute_dp_sgd_privacy: q = batch/n,
  // steps = ceil(epochs n / batch), TF_ORDERS. The current file (dp_accounting RdpAccountant,
  // improved conversion) expects the first epsilon; the 2019 file (classic conversion) the second.
  test.each([
    [60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 0.941870567, 19],
    [100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 1.70928734, 13],
    [100000000, 1024, 0.1, 10, 1e-7, 5907982.31138195, 5907984.81339406, 1.25],
  ] as const)('compute_dp_sgd_privacy(n=%s, batch=%s, z=%s, epochs=%s, delta=%s)',
    (n, batch, z, epochs, delta, improved, classic, order) => {
      const rdp = rdpSampledGaussian(batch / n, z, Math.ceil((epochs * n) / batch), TF_ORDERS);
      const a = epsilonFromRdp(TF_ORDERS, rdp, delta);
      const b = epsilonFromRdp(TF_ORDERS, rdp, delta, 'classic');
      // assertAlmostEqual's 7 decimal places, relative for the 5.9e6 case.
      expect(Math.abs(a.epsilon - improved)).toBeLessThanOrEqual(5e-8 * Math.max(1, improved));
      expect(Math.abs(b.epsilon - classic)).toBeLessThanOrEqual(5e-9 * Math.max(1, classic));
      expect(a.order).toBe(order);
      expect(b.order).toBe(order);
    });

  test("Opacus analysis/rdp.py docstring: [(1e-5, 1.0, 10), (1e-4, 3.0, 4)] -> (0.336, 23)", () => {
    const orders = range(2, 33);
    const acc = new RdpAccountant(orders);
    acc.step(1e-5, 1.0, 10);
    acc.step(1e-4, 3.0, 4);
    const { epsilon, order } = acc.epsilon(1e-5);
    expect(epsilon.toFixed(3)).toBe('0.336');
    expect(order).toBe(23);
  });

  test("TF Privacy rdp_accountant_test.test_check_composition: classic eps 8.509656 at order 2.5", () => {
    const orders = [1.25, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 64, 256];
    const acc = new RdpAccountant(orders);
    acc.step(1e-4, 0.4, 40000);
    acc.step(0.1, 2, 100);
    const classic = acc.epsilon(1e-5, 'classic');
    expect(classic.epsilon).toBeCloseTo(8.509656, 5);
    expect(classic.order).toBe(2.5);
    // "But these still provide an upper bound": the improved conversion is below.
    expect(acc.epsilon(1e-5).epsilon).toBeLessThanOrEqual(8.509656);
  });
});

describe('monotonicity and composition', () => {
  const q0 = 0.01;
  const z0 = 1.2;
  const eps = (q: number, z: number, steps: number): number =>
    epsilonFromRdp(DEFAULT_ORDERS, rdpSampledGaussian(q, z, steps), 1e-5).epsilon;

  test('epsilon grows with steps and q and falls with z', () => {
    const bySteps = [10, 100, 1000, 5000].map((t) => eps(q0, z0, t));
    const byQ = [0.001, 0.01, 0.05, 0.2, 1].map((q) => eps(q, z0, 100));
    const byZ = [0.6, 0.9, 1.2, 2, 5].map((z) => eps(q0, z, 100));
    for (let i = 1; i < 4; i++) expect(bySteps[i]!).toBeGreaterThan(bySteps[i - 1]!);
    for (let i = 1; i < 5; i++) expect(byQ[i]!).toBeGreaterThan(byQ[i - 1]!);
    for (let i = 1; i < 5; i++) expect(byZ[i]!).toBeLessThan(byZ[i - 1]!);
    // The RDP itself is monotone at every order, too.
    const lo = rdpSampledGaussian(0.01, 1.2, 1);
    const hi = rdpSampledGaussian(0.02, 1.2, 1);
    lo.forEach((v, k) => expect(hi[k]!).toBeGreaterThan(v));
  });

  test('two (q, z) phases compose to the sum of their RDPs', () => {
    const acc = new RdpAccountant();
    acc.step(0.01, 1.1, 300);
    for (let t = 0; t < 50; t++) acc.step(0.05, 2.5);
    const a = rdpSampledGaussian(0.01, 1.1, 300);
    const b = rdpSampledGaussian(0.05, 2.5, 50);
    const sum = a.map((v, k) => v + b[k]!);
    acc.rdp.forEach((v, k) => expect(Math.abs(v - sum[k]!)).toBeLessThanOrEqual(1e-13 * sum[k]!));
    const fromSum = epsilonFromRdp(DEFAULT_ORDERS, sum, 1e-5);
    expect(acc.epsilon(1e-5).epsilon).toBeCloseTo(fromSum.epsilon, 12);
    expect(acc.epsilon(1e-5).order).toBe(fromSum.order);
    expect(acc.epsilon(1e-5).epsilon).toBeGreaterThan(eps(0.01, 1.1, 300));
    // The getter returns a copy; a fresh accountant has spent nothing.
    acc.rdp.fill(0);
    expect(acc.rdp[0]).toBeGreaterThan(0);
    expect(new RdpAccountant().epsilon(1e-5).epsilon).toBe(0);
    expect(() => new RdpAccountant([2, 0.5])).toThrow(/orders\[1\] = 0.5/);
  });
});
