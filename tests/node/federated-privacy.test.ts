// Pure TypeScript parts of DP-FedAvg (src/paradigms/federated/privacy.ts, checks.ts): the noise
// split of adaptive clipping, the noised unclipped fraction, local DP's epsilon, the median, and
// the constructor's errors.
import { describe, expect, test } from 'vitest';
import { RdpAccountant } from '../../src/paradigms/federated/accountant.js';
import { median } from '../../src/paradigms/federated/checks.js';
import { adaptiveClipFraction, adaptiveSumNoiseMultiplier, DPFedAvg, localDpEpsilon } from '../../src/paradigms/federated/privacy.js';

describe('adaptive clipping arithmetic', () => {
  test('the sum and count queries together spend exactly z: z_sum^-2 + (2 sigma_b)^-2 = z^-2', () => {
    for (const [z, sigmaB] of [[1, 5], [0.5, 0.3], [2.9, 1.5]] as const) {
      const zs = adaptiveSumNoiseMultiplier(z, sigmaB);
      expect(zs ** -2 + (2 * sigmaB) ** -2).toBeCloseTo(z ** -2, 12);
      expect(zs).toBeGreaterThan(z);
    }
    expect(adaptiveSumNoiseMultiplier(0, 0)).toBe(0);
    expect(() => adaptiveSumNoiseMultiplier(1, 0.5)).toThrow('needs countStddev > z / 2 = 0.5 (got 0.5)');
  });

  test('defaults as TFF and Flower: initial clip 0.1, quantile 0.5, rate 0.2, count std E / 20 (0 without noise)', () => {
    const dp = new DPFedAvg({ noiseMultiplier: 1, clientsPerRound: 100, adaptive: {}, seed: 0 });
    expect(dp.clipNorm).toBe(0.1);
    expect(dp.adaptive).toEqual({ initialClip: 0.1, targetQuantile: 0.5, learningRate: 0.2 });
    expect(dp.countStddev).toBe(5);
    expect(dp.sumNoiseMultiplier).toBeCloseTo((1 - 0.01) ** -0.5, 12);
    expect(new DPFedAvg({ noiseMultiplier: 0, clientsPerRound: 100, adaptive: {} }).countStddev).toBe(0);
    expect(new DPFedAvg({ noiseMultiplier: 0.8, clientsPerRound: 10, clipNorm: 2 }).sumNoiseMultiplier).toBe(0.8);
  });

  test('noised fraction: (count - K/2 + noise) / E + 1/2, clipped to [0, 1]', () => {
    expect(adaptiveClipFraction(3, 10, 0, 10)).toBeCloseTo(0.3, 15);
    expect(adaptiveClipFraction(3, 8, 0, 10)).toBeCloseTo(0.4, 15);
    expect(adaptiveClipFraction(3, 10, 1.5, 10)).toBeCloseTo(0.45, 15);
    expect(adaptiveClipFraction(10, 10, 20, 10)).toBe(1);
    expect(adaptiveClipFraction(0, 10, -20, 10)).toBe(0);
  });
});

test('local DP epsilon: the Gaussian mechanism of sensitivity 2C composed in RDP (alpha / (2 (z/2)^2) per round)', () => {
  const z = 4;
  const rounds = 10;
  const delta = 1e-5;
  const orders = [2, 4, 8, 16, 32, 64];
  // Balle et al.'s conversion of rdp(alpha) = rounds alpha / (2 (z/2)^2) = rounds alpha / 8, by hand.
  const want = Math.min(...orders.map((a) => (rounds * a) / 8 + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1)));
  expect(localDpEpsilon(z, rounds, delta, orders)).toBeCloseTo(want, 10);
  expect(localDpEpsilon(z, 2 * rounds, delta)).toBeGreaterThan(localDpEpsilon(z, rounds, delta));
  expect(() => localDpEpsilon(0, 1, delta)).toThrow('noiseMultiplier 0 must be positive');
});

test('median as numpy.median', () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(median([])).toBeNaN();
});

test('constructor errors name the option and its range', () => {
  const base = { noiseMultiplier: 1, clientsPerRound: 10, clipNorm: 1 };
  expect(() => new DPFedAvg({ ...base, noiseMultiplier: -0.1 })).toThrow('noiseMultiplier -0.1 must be a finite number >= 0');
  expect(() => new DPFedAvg({ ...base, clipNorm: 0 })).toThrow('clipNorm 0 must be a positive finite number');
  expect(() => new DPFedAvg({ ...base, clipNorm: -1 })).toThrow('clipNorm -1');
  expect(() => new DPFedAvg({ ...base, clientsPerRound: 0 })).toThrow('clientsPerRound 0');
  expect(() => new DPFedAvg({ ...base, samplingProbability: 0 })).toThrow('samplingProbability 0 must be in (0, 1]');
  expect(() => new DPFedAvg({ ...base, seed: 2 ** 52 })).toThrow('must be an integer in [0, 2^52)');
  expect(() => new DPFedAvg({ noiseMultiplier: 1, clientsPerRound: 10 })).toThrow('exactly one of clipNorm');
  expect(() => new DPFedAvg({ ...base, adaptive: {} })).toThrow('exactly one of clipNorm');
  const adaptive = { noiseMultiplier: 0, clientsPerRound: 10 };
  for (const q of [0, 1, -0.5, 1.5, NaN]) expect(() => new DPFedAvg({ ...adaptive, adaptive: { targetQuantile: q } })).toThrow(`targetQuantile ${q} must be in (0, 1)`);
  expect(() => new DPFedAvg({ ...adaptive, adaptive: { initialClip: 0 } })).toThrow('initialClip 0');
  expect(() => new DPFedAvg({ ...adaptive, adaptive: { learningRate: 0 } })).toThrow('learningRate 0');
  expect(() => new DPFedAvg({ ...adaptive, adaptive: { countStddev: -1 } })).toThrow('countStddev -1');
  expect(() => new DPFedAvg({ noiseMultiplier: 1, clientsPerRound: 10, adaptive: {} })).toThrow('needs countStddev > z / 2');
});

test('a shared accountant: epsilon after rounds recorded elsewhere too', () => {
  const accountant = new RdpAccountant();
  const dp = new DPFedAvg({ noiseMultiplier: 1, clientsPerRound: 10, clipNorm: 1, accountant, seed: 0 });
  expect(dp.epsilon(1e-5)).toBe(0);
  accountant.step(0.1, 1, 3);
  expect(dp.epsilon(1e-5)).toBe(accountant.epsilon(1e-5).epsilon);
  expect(dp.epsilon(1e-5)).toBeGreaterThan(0);
});
