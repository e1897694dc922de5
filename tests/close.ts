// Elementwise closeness with a tolerance, shared by the op tests.
import { expect } from 'vitest';

export interface Tol {
  atol: number;
  rtol: number;
}

/** Reference analytic gradient against float64 finite differences. */
export const FD: Tol = { atol: 1e-6, rtol: 1e-6 };

/** Sums of many products: rtol relative to the sum of |terms| (the `scale` of expectClose). */
export const ACCUMULATED: Tol = { atol: 1e-6, rtol: 1e-5 };

/**
 * Checks |actual - expected| <= atol + rtol * scale elementwise, where scale is |expected| or the
 * given magnitudes (the sum of |terms| for accumulations, where |expected| can cancel to ~0).
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, what: string, scale?: ArrayLike<number>): void {
  expect(actual.length, `${what}: number of elements`).toBe(expected.length);
  const bad: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    const s = scale ? scale[i]! : Math.abs(expected[i]!);
    if (!(Math.abs(actual[i]! - expected[i]!) <= tol.atol + tol.rtol * s)) bad.push(i);
  }
  if (bad.length > 0) {
    const detail = bad
      .slice(0, 6)
      .map((i) => `[${i}] got ${actual[i]} want ${expected[i]}`)
      .join('; ');
    throw new Error(`${what}: ${bad.length} of ${expected.length} elements outside atol ${tol.atol} rtol ${tol.rtol}: ${detail}`);
  }
}
