// Pure TypeScript: learning-rate schedules and the seeded CPU random numbers.
import { describe, expect, test } from 'vitest';
import { cosineDecay, stepDecay } from '../../src/engine/schedule.js';
import { permutation, randomNormal, randomUniform } from '../../src/engine/random.js';

describe('stepDecay', () => {
  test('multiplies by gamma every stepSize steps', () => {
    const s = stepDecay(3, 0.5);
    expect([0, 1, 2, 3, 4, 5, 6, 8, 9].map(s)).toEqual([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]);
  });

  test('gamma defaults to 0.1', () => {
    const s = stepDecay(10);
    expect(s(0)).toBe(1);
    expect(s(9)).toBe(1);
    expect(s(10)).toBeCloseTo(0.1, 15);
    expect(s(25)).toBeCloseTo(0.01, 15);
  });

  test('stepSize must be positive', () => {
    expect(() => stepDecay(0)).toThrow(/stepDecay: stepSize 0 must be positive/);
    expect(() => stepDecay(-2)).toThrow(/stepSize -2/);
    expect(() => stepDecay(NaN)).toThrow(/stepSize NaN/);
  });
});

describe('cosineDecay', () => {
  test('without warm-up: 1 at step 0, half way at the middle, minFactor at the end and after', () => {
    const s = cosineDecay(100);
    expect(s(0)).toBe(1);
    expect(s(50)).toBeCloseTo(0.5, 12);
    expect(s(25)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(s(100)).toBeCloseTo(0, 12);
    expect(s(1000)).toBeCloseTo(0, 12);
  });

  test('linear warm-up, then cosine down to minFactor', () => {
    const s = cosineDecay(10, { warmup: 4, minFactor: 0.2 });
    expect([0, 1, 2, 3].map(s)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(s(4)).toBeCloseTo(1, 12);
    expect(s(7)).toBeCloseTo(0.2 + 0.8 * 0.5, 12); // half way through the 6 decay steps
    expect(s(10)).toBeCloseTo(0.2, 12);
    expect(s(50)).toBeCloseTo(0.2, 12);
  });

  test('is non-increasing after the warm-up and stays in [minFactor, 1]', () => {
    const s = cosineDecay(40, { warmup: 5, minFactor: 0.05 });
    let previous = Infinity;
    for (let step = 5; step < 60; step++) {
      const f = s(step);
      expect(f).toBeLessThanOrEqual(previous);
      expect(f).toBeGreaterThanOrEqual(0.05 - 1e-12);
      expect(f).toBeLessThanOrEqual(1);
      previous = f;
    }
  });

  test('totalSteps must exceed warmup', () => {
    expect(() => cosineDecay(5, { warmup: 5 })).toThrow(/cosineDecay: totalSteps 5 must exceed warmup 5/);
    expect(() => cosineDecay(0)).toThrow(/totalSteps 0/);
  });
});

describe('random numbers', () => {
  test('randomNormal: mean and standard deviation over 100k samples', () => {
    const n = 100_000;
    for (const [mean, std] of [
      [0, 1],
      [3, 0.5],
    ] as const) {
      const x = randomNormal(n, 42, mean, std);
      expect(x.length).toBe(n);
      let s = 0;
      for (const v of x) s += v;
      const m = s / n;
      let sq = 0;
      for (const v of x) sq += (v - m) ** 2;
      const sd = Math.sqrt(sq / (n - 1));
      // Standard error of the mean is std / sqrt(n) ~ 0.003 std: allow 5 of those.
      expect(Math.abs(m - mean)).toBeLessThan((5 * std) / Math.sqrt(n));
      expect(Math.abs(sd - std)).toBeLessThan(0.01 * std);
      expect(x.every(Number.isFinite)).toBe(true);
      // Roughly 68% within one standard deviation.
      const within = x.filter((v) => Math.abs(v - mean) < std).length / n;
      expect(within).toBeGreaterThan(0.67);
      expect(within).toBeLessThan(0.69);
    }
  });

  test('randomNormal of odd length fills every element', () => {
    const x = randomNormal(7, 3);
    expect(x.length).toBe(7);
    expect(x.every((v) => Number.isFinite(v) && v !== 0)).toBe(true);
  });

  test('the same seed gives the same numbers; another seed other numbers', () => {
    expect(Array.from(randomNormal(1000, 7))).toEqual(Array.from(randomNormal(1000, 7)));
    expect(Array.from(randomUniform(1000, 7))).toEqual(Array.from(randomUniform(1000, 7)));
    expect(Array.from(randomNormal(1000, 7))).not.toEqual(Array.from(randomNormal(1000, 8)));
    // A prefix of a longer sequence is the shorter sequence.
    expect(Array.from(randomNormal(10, 7))).toEqual(Array.from(randomNormal(1000, 7).subarray(0, 10)));
  });

  test('randomUniform stays in [low, high)', () => {
    const x = randomUniform(50_000, 11, -2, 3);
    let min = Infinity;
    let max = -Infinity;
    let s = 0;
    for (const v of x) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      s += v;
    }
    expect(min).toBeGreaterThanOrEqual(-2);
    expect(max).toBeLessThan(3);
    expect(s / x.length).toBeCloseTo(0.5, 1);
  });

  test('permutation is a permutation of 0..n-1 and deterministic by seed', () => {
    for (const n of [0, 1, 2, 10, 1000]) {
      const p = permutation(n, 5);
      expect(p.length).toBe(n);
      expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(Array.from(permutation(n, 5))).toEqual(Array.from(p));
    }
    const a = permutation(1000, 1);
    const b = permutation(1000, 2);
    expect(Array.from(a)).not.toEqual(Array.from(b));
    // It actually shuffles: few fixed points.
    expect(Array.from(a).filter((v, i) => v === i).length).toBeLessThan(20);
  });
});
