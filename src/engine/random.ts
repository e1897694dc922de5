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
