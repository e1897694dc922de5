// Pure TypeScript: the CPU side of multi-task weighting (src/paradigms/multitask/solvers.ts).
// Each solver sees only the Gram matrix of explicit float64 gradient vectors; the references here
// work on the vectors themselves (literal projections, grid searches, optimality conditions,
// finite differences).
import { describe, expect, test } from 'vitest';
import {
  cagradCoefficients, cosines, dwaWeights, gradNormStep, gramNorms, meanPairCosine,
  minNormCoefficients, pcgradCoefficients, projectToSimplex, rlwWeights,
  type MgdaNormalization,
} from '../../src/paradigms/multitask/solvers.js';
import { normalGenerator, uniformGenerator } from '../../src/engine/random.js';

type Vec = Float64Array;
const DIM = 50;

const dot = (a: Vec, b: Vec): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};
const norm = (a: Vec): number => Math.sqrt(dot(a, a));
const combine = (c: ArrayLike<number>, vs: Vec[]): Vec => {
  const out = new Float64Array(vs[0]!.length);
  vs.forEach((v, t) => { for (let i = 0; i < v.length; i++) out[i]! += c[t]! * v[i]!; });
  return out;
};
const gramOf = (vs: Vec[]): Float64Array => {
  const T = vs.length;
  const G = new Float64Array(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) G[i * T + j] = dot(vs[i]!, vs[j]!);
  return G;
};
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Gradient sets: 'random' (iid normal), 'conflicting' (pairs pulling against each other),
 * 'aligned' (a shared direction plus small noise: no conflicts), with unequal scales. */
type Kind = 'random' | 'conflicting' | 'aligned';
function gradients(T: number, kind: Kind, seed: number): Vec[] {
  const next = normalGenerator(uniformGenerator(seed));
  const draw = (): Vec => Float64Array.from({ length: DIM }, () => next());
  const shared = draw();
  const vs: Vec[] = [];
  for (let t = 0; t < T; t++) {
    const noise = draw();
    const v = new Float64Array(DIM);
    const scale = 0.5 + 1.5 * (t / Math.max(1, T - 1));
    for (let i = 0; i < DIM; i++) {
      if (kind === 'random') v[i] = scale * noise[i]!;
      else if (kind === 'aligned') v[i] = scale * (shared[i]! + 0.1 * noise[i]!);
      else v[i] = scale * ((t % 2 === 0 ? 1 : -0.8) * shared[i]! + 0.6 * noise[i]!);
    }
    vs.push(v);
  }
  return vs;
}

/** Every point of the simplex in R^T with coordinates in multiples of 1/steps. */
function simplexGrid(T: number, steps: number, visit: (w: Vec) => void): void {
  const w = new Float64Array(T);
  const rec = (t: number, left: number): void => {
    if (t === T - 1) {
      w[t] = left / steps;
      visit(w);
      return;
    }
    for (let k = 0; k <= left; k++) {
      w[t] = k / steps;
      rec(t + 1, left - k);
    }
  };
  rec(0, steps);
}

const sumOf = (a: ArrayLike<number>): number => Array.from(a).reduce((s, x) => s + x, 0);
const expectSimplex = (a: ArrayLike<number>): void => {
  for (const x of Array.from(a)) {
    expect(Number.isFinite(x)).toBe(true);
    expect(x).toBeGreaterThanOrEqual(0);
  }
  expect(Math.abs(sumOf(a) - 1)).toBeLessThan(1e-12);
};

/** The KKT conditions of min ||sum alpha g||^2 on the simplex, on the vectors: with u the
 * combination, u·g_t >= ||u||^2 for all t, with equality where alpha_t > 0. Returns the worst
 * violation relative to max ||g_t||^2. */
function mgdaKktViolation(alpha: ArrayLike<number>, vs: Vec[]): number {
  const u = combine(alpha, vs);
  const uu = dot(u, u);
  const scale = Math.max(...vs.map((v) => dot(v, v)));
  let worst = 0;
  vs.forEach((v, t) => {
    const slack = dot(u, v) - uu;
    worst = Math.max(worst, -slack / scale);
    if (alpha[t]! > 1e-6) worst = Math.max(worst, Math.abs(slack) / scale);
  });
  return worst;
}

describe('minNormCoefficients (MGDA)', () => {
  test('T = 2: the exact closed form, against the minimiser computed on the vectors and a fine grid', () => {
    let interior = 0;
    for (const kind of ['random', 'conflicting', 'aligned'] as Kind[]) {
      for (let seed = 1; seed <= 4; seed++) {
        const vs = gradients(2, kind, seed);
        const r = minNormCoefficients(gramOf(vs), 2);
        const d = new Float64Array(DIM);
        for (let i = 0; i < DIM; i++) d[i] = vs[0]![i]! - vs[1]![i]!;
        // ||a g1 + (1-a) g2||^2 is minimal at a = (g2-g1)·g2 ... = -(d·g2)/||d||^2, clipped to [0, 1].
        const a = Math.min(1, Math.max(0, -dot(d, vs[1]!) / dot(d, d)));
        expect(Math.abs(r.alpha[0]! - a)).toBeLessThan(1e-12);
        expectSimplex(r.alpha);
        let gridBest = Infinity;
        simplexGrid(2, 10000, (w) => { gridBest = Math.min(gridBest, norm(combine(w, vs))); });
        expect(r.norm).toBeLessThanOrEqual(gridBest + 1e-12);
        expect(Math.abs(norm(combine(r.coefficients, vs)) - r.norm)).toBeLessThan(1e-10);
        if (a > 0 && a < 1) interior++;
      }
    }
    expect(interior).toBeGreaterThanOrEqual(4);
  });

  test('T = 3: no point of a fine simplex grid has a smaller norm; KKT holds', () => {
    for (const kind of ['random', 'conflicting', 'aligned'] as Kind[]) {
      const vs = gradients(3, kind, 11);
      const r = minNormCoefficients(gramOf(vs), 3, { tolerance: 1e-14, maxIterations: 100000 });
      expect(r.converged).toBe(true);
      expectSimplex(r.alpha);
      let gridBest = Infinity;
      simplexGrid(3, 300, (w) => { gridBest = Math.min(gridBest, norm(combine(w, vs))); });
      expect(norm(combine(r.alpha, vs))).toBeLessThanOrEqual(gridBest + 1e-12);
      expect(gridBest - r.norm).toBeLessThan(0.01 * gridBest + 1e-9); // the grid is close: a sane reference
      expect(mgdaKktViolation(r.alpha, vs)).toBeLessThan(1e-8);
    }
  });

  test('T = 5: KKT to 1e-8 with a tight tolerance; with LibMTL defaults (1e-5, 250 iterations) close to optimal', () => {
    for (const kind of ['random', 'conflicting', 'aligned'] as Kind[]) {
      for (const seed of [21, 22, 23]) {
        const vs = gradients(5, kind, seed);
        const G = gramOf(vs);
        const tight = minNormCoefficients(G, 5, { tolerance: 1e-14, maxIterations: 100000 });
        expect(tight.converged).toBe(true);
        expectSimplex(tight.alpha);
        expect(mgdaKktViolation(tight.alpha, vs)).toBeLessThan(1e-8);
        const loose = minNormCoefficients(G, 5);
        expectSimplex(loose.alpha);
        expect(loose.norm).toBeLessThan(tight.norm * 1.001 + 1e-12);
        expect(loose.norm).toBeGreaterThanOrEqual(tight.norm - 1e-12);
      }
    }
  });

  test('a dominated gradient: when g_1·g_t >= ||g_1||^2 for all t, alpha = e_1 exactly', () => {
    const next = normalGenerator(uniformGenerator(5));
    const small = Float64Array.from({ length: DIM }, () => 0.1 * next());
    for (const T of [2, 3, 5]) {
      const vs = [small];
      for (let t = 1; t < T; t++) {
        const other = Float64Array.from({ length: DIM }, () => next());
        const along = dot(other, small) / dot(small, small);
        // make g_t = 2 g_1 + (component of other orthogonal to g_1)
        vs.push(Float64Array.from(other, (x, i) => x - along * small[i]! + 2 * small[i]!));
      }
      const r = minNormCoefficients(gramOf(vs), T);
      expect(Array.from(r.alpha)).toEqual([1, ...Array(T - 1).fill(0)]);
      expect(r.norm).toBeCloseTo(norm(small), 12);
      // LibMTL's reference line search stops at 0.999 instead of 1
      if (T === 2) expect(minNormCoefficients(gramOf(vs), T, { clampEndpoints: true }).alpha[0]).toBe(0.999);
    }
  });

  test('normalisations: alpha is the min-norm point of the explicitly normalised vectors; coefficients apply to the raw ones', () => {
    for (const normalization of ['none', 'l2', 'loss', 'loss+'] as MgdaNormalization[]) {
      for (const T of [2, 3, 5]) {
        const vs = gradients(T, 'conflicting', 30 + T);
        const losses = vs.map((_, t) => 0.3 + 0.7 * t);
        const n = vs.map((v, t) =>
          normalization === 'none' ? 1 : normalization === 'l2' ? norm(v) : normalization === 'loss' ? losses[t]! : losses[t]! * norm(v));
        const normalised = vs.map((v, t) => Float64Array.from(v, (x) => x / n[t]!));
        const options = { normalization, losses, tolerance: 1e-14, maxIterations: 100000 };
        const r = minNormCoefficients(gramOf(vs), T, options);
        expectSimplex(r.alpha);
        expect(maxAbsDiff(r.normalizers, n)).toBeLessThan(1e-12 * Math.max(...n));
        expect(mgdaKktViolation(r.alpha, normalised)).toBeLessThan(1e-8);
        const direct = minNormCoefficients(gramOf(normalised), T, { tolerance: 1e-14, maxIterations: 100000 });
        expect(maxAbsDiff(r.alpha, direct.alpha)).toBeLessThan(1e-7);
        const viaRaw = combine(r.coefficients, vs);
        const viaNormalised = combine(r.alpha, normalised);
        expect(maxAbsDiff(viaRaw, viaNormalised)).toBeLessThan(1e-12 * Math.max(1, norm(viaNormalised)));
      }
    }
  });

  test('a zero gradient: all weight on it (0 is in the hull), no NaN, for every normalisation', () => {
    const vs = gradients(3, 'random', 40);
    vs[1] = new Float64Array(DIM);
    for (const normalization of ['none', 'l2', 'loss', 'loss+'] as MgdaNormalization[]) {
      const r = minNormCoefficients(gramOf(vs), 3, { normalization, losses: [1, 0, 2] });
      expect(Array.from(r.coefficients).every(Number.isFinite)).toBe(true);
      expect(r.alpha[1]).toBe(1);
      expect(r.norm).toBe(0);
    }
  });

  test('T = 1 gives alpha [1]; bad inputs throw errors that name the function and the entry', () => {
    expect(Array.from(minNormCoefficients([4], 1).alpha)).toEqual([1]);
    const G = gramOf(gradients(3, 'random', 50));
    G[3] = NaN;
    expect(() => minNormCoefficients(G, 3)).toThrow(/minNormCoefficients: Gram entry \[1\]\[0\] is NaN, not finite/);
    expect(() => minNormCoefficients(new Float64Array(8), 3)).toThrow(/minNormCoefficients: the Gram matrix has 8 entries, expected T\*T = 9/);
    expect(() => minNormCoefficients(new Float64Array(4), 2, { normalization: 'loss' })).toThrow(/needs the task losses/);
    expect(() => minNormCoefficients(new Float64Array(4), 2, { normalization: 'loss', losses: [1, -1] })).toThrow(/losses\[1\] is -1/);
    expect(() => minNormCoefficients(new Float64Array(4), 0)).toThrow(/T = 0 must be a positive integer/);
  });
});

/** PCGrad literally on the vectors (LibMTL's loop). */
function pcgradReference(vs: Vec[], order: (i: number) => number[], eps: number): Vec {
  const out = new Float64Array(DIM);
  vs.forEach((gi, i) => {
    const p = Float64Array.from(gi);
    for (const j of order(i)) {
      const gj = vs[j]!;
      const d = dot(p, gj);
      if (d < 0) for (let k = 0; k < DIM; k++) p[k]! -= (d * gj[k]!) / (dot(gj, gj) + eps);
    }
    for (let k = 0; k < DIM; k++) out[k]! += p[k]!;
  });
  return out;
}

/** Fisher-Yates from a uniform generator, as Python's random.shuffle. */
function shuffledOrders(T: number, seed: number): (i: number) => number[] {
  const next = uniformGenerator(seed);
  return () => {
    const p = Array.from({ length: T }, (_, k) => k);
    for (let k = T - 1; k > 0; k--) {
      const j = Math.floor(next() * (k + 1));
      [p[k], p[j]] = [p[j]!, p[k]!];
    }
    return p;
  };
}

describe('pcgradCoefficients', () => {
  test('the combination equals literal projections of the vectors in the same order (T = 2, 3, 5)', () => {
    for (const T of [2, 3, 5]) {
      for (const kind of ['random', 'conflicting'] as Kind[]) {
        for (const eps of [1e-8, 0]) {
          const vs = gradients(T, kind, 60 + T);
          const orders = Array.from({ length: T }, (_, i) => shuffledOrders(T, 100 + i)(i));
          const c = pcgradCoefficients(gramOf(vs), T, (i) => orders[i]!, { eps });
          expect(Array.from(c).every(Number.isFinite)).toBe(true);
          const ref = pcgradReference(vs, (i) => orders[i]!, eps);
          expect(maxAbsDiff(combine(c, vs), ref)).toBeLessThan(1e-11 * norm(ref));
          // the paper's order, the other tasks only
          const others = (i: number): number[] => orders[i]!.filter((j) => j !== i);
          const c2 = pcgradCoefficients(gramOf(vs), T, others, { eps });
          const ref2 = pcgradReference(vs, others, eps);
          expect(maxAbsDiff(combine(c2, vs), ref2)).toBeLessThan(1e-11 * norm(ref2));
        }
      }
    }
  });

  test('a seeded uniform generator gives Fisher-Yates shuffles of all T tasks, as LibMTL', () => {
    const vs = gradients(5, 'conflicting', 70);
    const c = pcgradCoefficients(gramOf(vs), 5, { random: uniformGenerator(9) });
    const ref = pcgradReference(vs, shuffledOrders(5, 9), 1e-8);
    expect(maxAbsDiff(combine(c, vs), ref)).toBeLessThan(1e-11 * norm(ref));
    // the order matters with 3 or more conflicting tasks: another seed, another answer
    const c2 = pcgradCoefficients(gramOf(vs), 5, { random: uniformGenerator(10) });
    expect(maxAbsDiff(c, c2)).toBeGreaterThan(1e-6);
  });

  test('T = 2 conflicting: each gradient loses its component along the other', () => {
    const [a, b] = gradients(2, 'conflicting', 71) as [Vec, Vec];
    expect(dot(a, b)).toBeLessThan(0);
    const c = pcgradCoefficients(gramOf([a, b]), 2, (i) => [1 - i], { eps: 0 });
    const ab = dot(a, b);
    expect(c[0]).toBeCloseTo(1 - ab / dot(a, a), 13);
    expect(c[1]).toBeCloseTo(1 - ab / dot(b, b), 13);
  });

  test('no conflicts: the plain sum (all coefficients 1)', () => {
    const vs = gradients(5, 'aligned', 72);
    const G = gramOf(vs);
    expect(Array.from(G).every((x) => x > 0)).toBe(true);
    expect(Array.from(pcgradCoefficients(G, 5, { random: uniformGenerator(1) }))).toEqual([1, 1, 1, 1, 1]);
  });

  test('a zero gradient is never projected on and adds nothing, also with eps = 0; bad orders throw', () => {
    const vs = gradients(3, 'conflicting', 73);
    vs[2] = new Float64Array(DIM);
    const order = (i: number): number[] => [0, 1, 2].filter((j) => j !== i);
    for (const eps of [0, 1e-8]) {
      const c = pcgradCoefficients(gramOf(vs), 3, order, { eps });
      expect(Array.from(c).every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(combine(c, vs), pcgradReference(vs, order, eps))).toBeLessThan(1e-11);
    }
    expect(() => pcgradCoefficients(gramOf(vs), 3, () => [0, 3])).toThrow(/pcgradCoefficients: the order for task 0 holds 3/);
    const G = gramOf(vs);
    G[8] = Infinity;
    expect(() => pcgradCoefficients(G, 3, order)).toThrow(/pcgradCoefficients: Gram entry \[2\]\[2\] is Infinity/);
  });
});

/** LibMTL's CAGrad objective and direction, on the vectors. */
function cagradOnVectors(vs: Vec[], calpha: number) {
  const T = vs.length;
  const g0 = combine(new Float64Array(T).fill(1 / T), vs);
  const cc = calpha * Math.sqrt(dot(g0, g0) + 1e-8) + 1e-8;
  const F = (w: ArrayLike<number>): number => {
    const gw = combine(w, vs);
    return dot(gw, g0) + cc * Math.sqrt(dot(gw, gw) + 1e-8);
  };
  const direction = (w: ArrayLike<number>, rescale: 0 | 1 | 2): Vec => {
    const gw = combine(w, vs);
    const lambda = cc / (norm(gw) + 1e-8);
    const s = rescale === 0 ? 1 : rescale === 1 ? 1 + calpha * calpha : 1 + calpha;
    return Float64Array.from(g0, (x, i) => (x + lambda * gw[i]!) / s);
  };
  /** dF/dw_t on the vectors, for the optimality conditions. */
  const gradient = (w: ArrayLike<number>): Vec => {
    const gw = combine(w, vs);
    const root = Math.sqrt(dot(gw, gw) + 1e-8);
    return Float64Array.from(vs, (v) => dot(v, g0) + (cc * dot(v, gw)) / root);
  };
  return { F, direction, gradient, scale: Math.max(...vs.map((v) => dot(v, v))) };
}

describe('cagradCoefficients', () => {
  test('T = 2, 3: F at w is no larger than anywhere on a fine grid; the direction matches LibMTL on the vectors', () => {
    let interior = 0;
    for (const T of [2, 3]) {
      for (const kind of ['random', 'conflicting', 'aligned'] as Kind[]) {
        for (const [calpha, unit] of [[0.2, false], [0.5, false], [0.9, false], [0.5, true], [0.9, true]] as const) {
          // unit-norm gradients put the minimiser inside the simplex more often
          const vs = gradients(T, kind, 80 + T).map((v) => (unit ? Float64Array.from(v, (x) => x / norm(v)) : v));
          const ref = cagradOnVectors(vs, calpha);
          const r = cagradCoefficients(gramOf(vs), T, { c: calpha });
          expect(r.converged).toBe(true);
          expectSimplex(r.w);
          let gridBest = Infinity;
          simplexGrid(T, T === 2 ? 10000 : 200, (w) => { gridBest = Math.min(gridBest, ref.F(w)); });
          expect(ref.F(r.w)).toBeLessThanOrEqual(gridBest + 1e-12 * ref.scale);
          expect(Math.abs(ref.F(r.w) - r.objective)).toBeLessThan(1e-12 * ref.scale);
          const g = ref.direction(r.w, 1);
          expect(maxAbsDiff(combine(r.coefficients, vs), g)).toBeLessThan(1e-12 * norm(g));
          if (Array.from(r.w).every((x) => x > 1e-6)) interior++;
        }
      }
    }
    expect(interior).toBeGreaterThanOrEqual(4);
  });

  test('T = 5: the optimality conditions of F on the simplex hold on the vectors; a coarse grid finds nothing better', () => {
    for (const kind of ['random', 'conflicting', 'aligned'] as Kind[]) {
      const vs = gradients(5, kind, 90);
      const ref = cagradOnVectors(vs, 0.5);
      const r = cagradCoefficients(gramOf(vs), 5);
      expect(r.converged).toBe(true);
      expectSimplex(r.w);
      const grad = ref.gradient(r.w);
      const m = Math.min(...grad);
      grad.forEach((d, t) => {
        // dF/dw_t is minimal (= the multiplier) where w_t > 0, and no smaller elsewhere
        if (r.w[t]! > 1e-9) expect(Math.abs(d - m)).toBeLessThan(1e-7 * ref.scale);
      });
      let gridBest = Infinity;
      simplexGrid(5, 20, (w) => { gridBest = Math.min(gridBest, ref.F(w)); });
      expect(ref.F(r.w)).toBeLessThanOrEqual(gridBest + 1e-12 * ref.scale);
      const g = ref.direction(r.w, 1);
      expect(maxAbsDiff(combine(r.coefficients, vs), g)).toBeLessThan(1e-12 * norm(g));
    }
  });

  test('rescale 0, 1, 2 divide by 1, 1 + c^2, 1 + c; c = 0 is the mean gradient', () => {
    const vs = gradients(3, 'conflicting', 91);
    const G = gramOf(vs);
    const r0 = cagradCoefficients(G, 3, { c: 0.4, rescale: 0 });
    const r1 = cagradCoefficients(G, 3, { c: 0.4, rescale: 1 });
    const r2 = cagradCoefficients(G, 3, { c: 0.4, rescale: 2 });
    expect(maxAbsDiff(r1.coefficients, r0.coefficients.map((x) => x / 1.16))).toBeLessThan(1e-15);
    expect(maxAbsDiff(r2.coefficients, r0.coefficients.map((x) => x / 1.4))).toBeLessThan(1e-15);
    const mean = cagradCoefficients(G, 3, { c: 0 });
    // LibMTL adds 1e-8 to c*||g0||, so c = 0 leaves lambda ~ 1e-8 / ||g_w||
    expect(maxAbsDiff(mean.coefficients, [1 / 3, 1 / 3, 1 / 3])).toBeLessThan(1e-7);
  });

  test('zero gradients give finite coefficients; all zero gives the mean', () => {
    const vs = gradients(3, 'conflicting', 92);
    vs[0] = new Float64Array(DIM);
    const r = cagradCoefficients(gramOf(vs), 3);
    expect(Array.from(r.coefficients).every(Number.isFinite)).toBe(true);
    for (const eps of [1e-8, 0]) {
      const r0 = cagradCoefficients(gramOf(vs), 3, { eps });
      expect(r0.converged).toBe(true);
      expect(Array.from(r0.coefficients).every(Number.isFinite)).toBe(true);
    }
    // all zero: LibMTL's eps gives a large lambda = (0.5 * 1e-4 + 1e-8) / 1e-8 (on zero vectors);
    // eps = 0 gives the mean's coefficients
    const zero = cagradCoefficients(new Float64Array(9), 3);
    expect(zero.lambda).toBeCloseTo((0.5 * 1e-4 + 1e-8) / 1e-8, 6);
    expect(Array.from(zero.coefficients).every(Number.isFinite)).toBe(true);
    const exact = cagradCoefficients(new Float64Array(9), 3, { eps: 0 });
    expect(maxAbsDiff(exact.coefficients, [0.8 / 3, 0.8 / 3, 0.8 / 3])).toBeLessThan(1e-15);
    expect(() => cagradCoefficients(new Float64Array(9), 3, { rescale: 3 as 0 })).toThrow(/cagradCoefficients: rescale 3/);
    expect(() => cagradCoefficients([1, NaN, 0, 1], 2)).toThrow(/cagradCoefficients: Gram entry \[0\]\[1\] is NaN/);
  });
});

describe('gradNormStep', () => {
  /** L_grad with the targets computed at `base` and held constant, straight from the definition. */
  function lgrad(logits: number[], base: number[], norms: number[], losses: number[], l0: number[], alpha: number): number {
    const T = logits.length;
    const w = (z: number[]): number[] => {
      const e = z.map(Math.exp);
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((x) => (T * x) / s);
    };
    const wb = w(base);
    const Gbar = wb.reduce((s, x, t) => s + x * norms[t]!, 0) / T;
    const ratios = losses.map((l, t) => l / l0[t]!);
    const meanRatio = ratios.reduce((a, b) => a + b, 0) / T;
    const targets = ratios.map((r) => Gbar * (r / meanRatio) ** alpha);
    return w(logits).reduce((s, x, t) => s + Math.abs(x * norms[t]! - targets[t]!), 0);
  }

  test('logitGradient matches central finite differences of L_grad with the targets held (T = 2, 3, 5)', () => {
    const next = uniformGenerator(7);
    for (const T of [2, 3, 5]) {
      for (const alpha of [0, 1.5, 3]) {
        const logits = Array.from({ length: T }, () => 2 * next() - 1);
        const norms = Array.from({ length: T }, () => 0.1 + 3 * next());
        const losses = Array.from({ length: T }, () => 0.2 + next());
        const l0 = Array.from({ length: T }, () => 0.5 + next());
        const r = gradNormStep(logits, norms, losses, l0, alpha);
        expect(r.loss).toBeCloseTo(lgrad(logits, logits, norms, losses, l0, alpha), 12);
        const h = 1e-6;
        for (let j = 0; j < T; j++) {
          const up = logits.slice(); up[j]! += h;
          const down = logits.slice(); down[j]! -= h;
          const fd = (lgrad(up, logits, norms, losses, l0, alpha) - lgrad(down, logits, norms, losses, l0, alpha)) / (2 * h);
          expect(Math.abs(r.logitGradient[j]! - fd)).toBeLessThan(1e-7);
        }
        // the gradient of a softmax parameterisation sums to 0
        expect(Math.abs(sumOf(r.logitGradient))).toBeLessThan(1e-12);
      }
    }
  });

  test('weights are T*softmax(logits) (1 each at logits 0, as LibMTL starts); targets are Gbar * r^alpha', () => {
    const r0 = gradNormStep([0, 0, 0], [1, 2, 3], [1, 1, 1], [1, 1, 1]);
    expect(Array.from(r0.weights)).toEqual([1, 1, 1]);
    expect(Array.from(r0.targets)).toEqual([2, 2, 2]); // equal rates: every target is Gbar = 2
    const logits = [0.3, -0.2, 0.9];
    const r = gradNormStep(logits, [1, 2, 3], [0.5, 1, 2], [1, 1, 1], 1.5);
    const e = logits.map(Math.exp);
    const s = e.reduce((a, b) => a + b, 0);
    expect(maxAbsDiff(r.weights, e.map((x) => (3 * x) / s))).toBeLessThan(1e-15);
    expect(sumOf(r.weights)).toBeCloseTo(3, 14);
    const Gbar = (r.weights[0]! * 1 + r.weights[1]! * 2 + r.weights[2]! * 3) / 3;
    const meanRatio = 3.5 / 3;
    expect(maxAbsDiff(r.targets, [0.5, 1, 2].map((l) => Gbar * (l / meanRatio) ** 1.5))).toBeLessThan(1e-14);
  });

  test('a zero norm gives finite results; invalid inputs throw naming the entry', () => {
    const r = gradNormStep([0.1, 0.2], [0, 1], [1, 1], [2, 1]);
    expect([...r.weights, ...r.logitGradient, r.loss].every(Number.isFinite)).toBe(true);
    const allZeroLosses = gradNormStep([0, 0], [1, 2], [0, 0], [1, 1]);
    expect([...allZeroLosses.logitGradient, allZeroLosses.loss].every(Number.isFinite)).toBe(true);
    expect(() => gradNormStep([0, 0], [1, 1], [1, 1], [1, 0])).toThrow(/gradNormStep: initialLosses\[1\] = 0 must be > 0/);
    expect(() => gradNormStep([0, NaN], [1, 1], [1, 1], [1, 1])).toThrow(/gradNormStep: logits\[1\] is NaN/);
    expect(() => gradNormStep([0, 0], [1, 1, 1], [1, 1], [1, 1])).toThrow(/norms has 3 entries, expected T = 2/);
  });
});

describe('dwaWeights and rlwWeights', () => {
  test('DWA: ones for the first two epochs, then T*softmax of the last two epochs\' loss ratios over the temperature', () => {
    expect(Array.from(dwaWeights([], 3))).toEqual([1, 1, 1]);
    expect(Array.from(dwaWeights([[1, 2, 3]], 3))).toEqual([1, 1, 1]);
    const history = [[9, 9, 9], [1, 2, 4], [0.5, 1.8, 4.4]];
    for (const temperature of [2, 0.5]) {
      const w = dwaWeights(history, 3, temperature);
      const r = [0.5 / 1, 1.8 / 2, 4.4 / 4].map((x) => Math.exp(x / temperature));
      const s = r.reduce((a, b) => a + b, 0);
      expect(maxAbsDiff(w, r.map((x) => (3 * x) / s))).toBeLessThan(1e-15);
      expect(sumOf(w)).toBeCloseTo(3, 14);
    }
    // the task whose loss fell least gets the most weight
    const w = dwaWeights(history, 3);
    expect(w[2]).toBeGreaterThan(w[1]!);
    expect(w[1]).toBeGreaterThan(w[0]!);
    expect(() => dwaWeights([[1, 0], [1, 1]], 2)).toThrow(/dwaWeights: epochMeanLosses\[0\]\[1\] is 0/);
    expect(() => dwaWeights([[1, 1], [1]], 2)).toThrow(/epochMeanLosses\[1\] has 1 entries/);
  });

  test('RLW: softmax of T standard normal draws from the given stream; reproducible by seed', () => {
    const w = rlwWeights(4, normalGenerator(uniformGenerator(3)));
    const z = normalGenerator(uniformGenerator(3));
    const e = [z(), z(), z(), z()].map(Math.exp);
    const s = e.reduce((a, b) => a + b, 0);
    expect(maxAbsDiff(w, e.map((x) => x / s))).toBeLessThan(1e-15);
    expect(sumOf(w)).toBeCloseTo(1, 14);
    expect(Array.from(w).every((x) => x > 0)).toBe(true);
    const stream = normalGenerator(uniformGenerator(4));
    expect(maxAbsDiff(rlwWeights(4, stream), rlwWeights(4, stream))).toBeGreaterThan(1e-6);
    expect(() => rlwWeights(2, () => NaN)).toThrow(/rlwWeights: draw 0 is NaN/);
  });
});

describe('cosines and meanPairCosine', () => {
  test('match the cosines computed on the vectors; a zero gradient gives 0s', () => {
    const vs = gradients(5, 'conflicting', 120);
    vs[3] = new Float64Array(DIM);
    const C = cosines(gramOf(vs), 5);
    let sum = 0;
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++) {
        const ni = norm(vs[i]!), nj = norm(vs[j]!);
        const ref = ni > 0 && nj > 0 ? dot(vs[i]!, vs[j]!) / (ni * nj) : 0;
        expect(Math.abs(C[i * 5 + j]! - ref)).toBeLessThan(1e-14);
        if (j > i) sum += ref;
      }
    }
    expect(C[3 * 5 + 3]).toBe(0);
    expect(meanPairCosine(gramOf(vs), 5)).toBeCloseTo(sum / 10, 14);
    expect(meanPairCosine([2], 1)).toBe(0);
    expect(() => meanPairCosine([1, 0, NaN, 1], 2)).toThrow(/meanPairCosine: Gram entry \[1\]\[0\] is NaN/);
  });

  test('an asymmetric Gram matrix (GPU rounding) is read as its symmetric part', () => {
    const vs = gradients(3, 'random', 121);
    const G = gramOf(vs);
    const skewed = Float64Array.from(G);
    skewed[1] = G[1]! + 1e-9;
    skewed[3] = G[3]! - 1e-9;
    expect(maxAbsDiff(cosines(skewed, 3), cosines(G, 3))).toBeLessThan(1e-15);
    expect(maxAbsDiff(gramNorms(G, 3), vs.map(norm))).toBeLessThan(1e-14);
  });
});

describe('projectToSimplex', () => {
  test('is the Euclidean projection: against a fine grid search in 3 dimensions', () => {
    const next = uniformGenerator(130);
    for (let k = 0; k < 5; k++) {
      const y = Float64Array.from({ length: 3 }, () => 3 * next() - 1);
      const p = projectToSimplex(y);
      expectSimplex(p);
      const d = (w: ArrayLike<number>): number => Math.hypot(w[0]! - y[0]!, w[1]! - y[1]!, w[2]! - y[2]!);
      let best = Infinity;
      simplexGrid(3, 400, (w) => { best = Math.min(best, d(w)); });
      expect(d(p)).toBeLessThanOrEqual(best + 1e-12);
    }
  });
});
