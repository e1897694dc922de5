// Seeded pseudo-random numbers on the CPU (for initialisation and data shuffling), so that
// the same seed gives the same weights on every adapter.

/** A generator of uniform floats in [0, 1) from a 32-bit seed (mulberry32). */
export function uniformGenerator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomUniform(n: number, seed: number, low = 0, high = 1): Float32Array {
  const next = uniformGenerator(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * next();
  return out;
}

/**
 * A generator of standard normal draws from a generator of uniform floats in [0, 1), by the
 * Box-Muller transform: each pair of uniforms gives two normals, the cosine one first.
 */
export function normalGenerator(uniform: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u1 = 1 - uniform(); // in (0, 1]: log(u1) is finite
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
}

/** Normal samples by the Box-Muller transform. */
export function randomNormal(n: number, seed: number, mean = 0, std = 1): Float32Array {
  const next = normalGenerator(uniformGenerator(seed));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * next();
  return out;
}

/**
 * Shuffles p in place by Fisher-Yates (from the last position down, as Python's random.shuffle)
 * with a generator of uniform floats in [0, 1).
 */
export function shuffleInPlace(p: { length: number; [k: number]: number }, uniform: () => number): void {
  for (let i = p.length - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
}

/** A seeded permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  shuffleInPlace(p, uniformGenerator(seed));
  return p;
}

/**
 * The natural log of one Gamma(shape, 1) draw, by Marsaglia and Tsang (2000, "A simple method for
 * generating gamma variables"): for shape >= 1, d = shape - 1/3 and c = 1/sqrt(9d), a normal x
 * proposes d(1 + cx)^3, accepted by the squeeze 1 - 0.0331x^4 or the log test; for shape < 1, the
 * boost Gamma(shape) = Gamma(shape + 1) * U^(1/shape), kept as a log so that tiny shapes (U^(1/shape)
 * far below the smallest double) still give finite, comparable values.
 */
function logGammaDraw(shape: number, uniform: () => number, normal: () => number): number {
  const boost = shape < 1 ? Math.log(1 - uniform()) / shape : 0; // 1 - u is in (0, 1]: its log is finite
  const d = (shape < 1 ? shape + 1 : shape) - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = normal();
    const t = 1 + c * x;
    if (t <= 0) continue;
    const v = t * t * t;
    const u = 1 - uniform();
    const x2 = x * x;
    if (u < 1 - 0.0331 * x2 * x2 || Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return Math.log(d * v) + boost;
  }
}

function checkShape(op: string, shape: number): void {
  if (!(shape > 0 && Number.isFinite(shape))) throw new Error(`${op}: shape must be a positive finite number, got ${shape}`);
}

/** A generator of Gamma(shape, 1) draws (mean and variance both `shape`) from a generator of uniform floats in [0, 1). */
export function gammaGenerator(shape: number, uniform: () => number): () => number {
  checkShape('gammaGenerator', shape);
  const normal = normalGenerator(uniform);
  return () => Math.exp(logGammaDraw(shape, uniform, normal));
}

/**
 * A generator of Dirichlet(alpha) draws (a probability vector the length of alpha) from a generator
 * of uniform floats in [0, 1): independent Gamma(alpha_i) draws divided by their sum, the sum taken
 * on logs shifted by their maximum, so every draw sums to 1 even for alpha far below 1.
 */
export function dirichletGenerator(alpha: readonly number[], uniform: () => number): () => Float64Array {
  if (alpha.length < 1) throw new Error('dirichletGenerator: alpha must hold at least one value');
  for (const a of alpha) checkShape('dirichletGenerator', a);
  const normal = normalGenerator(uniform);
  return () => {
    const out = Float64Array.from(alpha, (a) => logGammaDraw(a, uniform, normal));
    let max = -Infinity;
    for (const l of out) max = Math.max(max, l);
    let sum = 0;
    for (let i = 0; i < out.length; i++) sum += out[i] = Math.exp(out[i]! - max);
    for (let i = 0; i < out.length; i++) out[i]! /= sum;
    return out;
  };
}
