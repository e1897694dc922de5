// Update checks (src/paradigms/federated/checks.ts) and DP-FedAvg (privacy.ts) on the GPU,
// against float64 references: norms and rejections of NaN, infinite, huge and wrong-length
// updates; the accepted stack row for row; DP-FedAvg without noise as clipped FedAvg over the
// expected count; the noise's std and its reproducibility per seed; adaptive clipping against the
// float64 recurrence; the accountant after R rounds.
import { beforeAll, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { RdpAccountant } from '../../src/paradigms/federated/accountant.js';
import { acceptedStack, checkUpdates } from '../../src/paradigms/federated/checks.js';
import { DPFedAvg, privatizeLocally } from '../../src/paradigms/federated/privacy.js';
import { expectClose } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

/** float64 L2 norm of row k of a [K, P] array. */
const rowNorm = (x: Float64Array, P: number, k: number) => Math.sqrt(x.subarray(k * P, (k + 1) * P).reduce((s, v) => s + v * v, 0));

/** K updates of norms near 1 with row 2 holding a NaN, row 3 an infinity and row 4 scaled by 1000. */
function poisoned(K: number, P: number, seed: number): Float64Array {
  const x = ref.normal([K, P], seed, 1 / Math.sqrt(P));
  x[2 * P + 1] = NaN;
  x[3 * P] = -Infinity;
  for (let n = 4 * P; n < 5 * P; n++) x[n]! *= 1000;
  return x;
}

describe('checkUpdates', () => {
  // P = 37: rows are copied out (offsets not multiples of 64); P = 128: rows are views.
  for (const P of [37, 128]) {
    test(`NaN, infinite and huge rows rejected, norms against float64 (K = 7, P = ${P})`, async () => {
      const K = 7;
      const x = poisoned(K, P, 10 + P);
      const stack = engine.tensor(Float32Array.from(x), [K, P], 'updates');
      const logged: string[] = [];
      const before = engine.memory().inUseBuffers;
      const result = await checkUpdates(stack, P, { log: (m) => logged.push(m) });
      expect(engine.memory().inUseBuffers).toBe(before);
      expect(result.accepted).toEqual([0, 1, 5, 6]);
      expect(result.rejected.map((r) => r.index)).toEqual([2, 3, 4]);
      expect(result.rejected[0]!.reason).toContain(`1 of ${P} values are NaN or infinite`);
      expect(result.rejected[1]!.reason).toContain(`1 of ${P} values are NaN or infinite`);
      expect(result.rejected[2]!.reason).toMatch(/norm \S+ exceeds 10 x the median norm/);
      expect(logged).toHaveLength(3);
      expect(logged[0]).toContain('client 2 rejected');
      for (const k of [0, 1, 4, 5, 6]) expect(result.norms[k]).toBeCloseTo(rowNorm(x, P, k), 4 - Math.round(Math.log10(Math.max(1, rowNorm(x, P, k)))));
      expect(Number.isFinite(result.norms[2]!)).toBe(false);
      expect(Number.isFinite(result.norms[3]!)).toBe(false);

      const accepted = acceptedStack(stack, result.accepted);
      expect(accepted.shape).toEqual([4, P]);
      const want = Float32Array.from(result.accepted.flatMap((k) => Array.from(x.subarray(k * P, (k + 1) * P))));
      expect(await accepted.data()).toEqual(want);
      accepted.dispose();
      stack.dispose();
    });
  }

  test('a wrong-length update is rejected before the GPU runs; a list of tensors', async () => {
    const P = 50;
    const x = ref.normal([4, P], 20, 0.1);
    const rows = [0, 1, 2, 3].map((k) => engine.tensor(Float32Array.from(x.subarray(k * P, (k + 1) * P)), [P], `client${k}`));
    const short = engine.tensor(new Float32Array(P - 1), [P - 1], 'short');
    const list = [rows[0]!, short, rows[1]!, rows[2]!, rows[3]!];
    const result = await checkUpdates(list, P, { log: () => {} });
    expect(result.accepted).toEqual([0, 2, 3, 4]);
    expect(result.rejected).toEqual([{ index: 1, reason: `${P - 1} values (shape [${P - 1}]); expected ${P}` }]);
    expect(result.norms[1]).toBeNaN();
    const accepted = acceptedStack(list, result.accepted);
    expect(await accepted.data()).toEqual(Float32Array.from(x));
    for (const t of [...list, accepted]) t.dispose();
  });

  test('errors', async () => {
    const stack = engine.zeros([2, 3], 'u');
    await expect(checkUpdates(stack, 3, { normFactor: 1 })).rejects.toThrow('normFactor 1 must be a number > 1');
    await expect(checkUpdates(engine.zeros([3], 'flat'), 3)).rejects.toThrow('flat have shape [3]; expected [K, P]');
    await expect(checkUpdates([], 3)).rejects.toThrow('no client updates');
    expect(() => acceptedStack(stack, [])).toThrow('no accepted updates out of 2');
    expect(() => acceptedStack(stack, [2])).toThrow('accepted index 2 is not a client of the K = 2 updates');
    stack.dispose();
  });
});

/** One DP-FedAvg round on the GPU; the new global weights read back. */
async function dpRound(dp: DPFedAvg, global: Float64Array, updates: Float64Array, K: number): Promise<Float32Array> {
  const P = global.length;
  const g = engine.tensor(Float32Array.from(global), [P], 'global');
  const u = engine.tensor(Float32Array.from(updates), [K, P], 'updates');
  const out = await dp.aggregate(g, u, new Array(K).fill(1));
  const data = await out.data();
  for (const t of [g, u, out]) t.dispose();
  return data;
}

/** global + sum_k u_k min(1, C / ||u_k||) / E in float64. */
function clippedAverage(global: Float64Array, x: Float64Array, K: number, C: number, E: number): Float64Array {
  const P = global.length;
  const out = Float64Array.from(global);
  for (let k = 0; k < K; k++) {
    const f = Math.min(1, C / rowNorm(x, P, k));
    for (let n = 0; n < P; n++) out[n]! += (f * x[k * P + n]!) / E;
  }
  return out;
}

describe('DP-FedAvg', () => {
  for (const [K, P, E] of [
    [1, 7, 1],
    [5, 37, 8],
    [12, 1001, 10],
  ] as const) {
    test(`noiseMultiplier 0: clipped FedAvg over E in float64 (K = ${K}, P = ${P}, E = ${E})`, async () => {
      const global = ref.normal([P], 30 + P);
      // Norms spread around C = 1: rows scaled by 0.25, 0.5, ... so some are clipped, some not.
      const x = ref.normal([K, P], 31 + K, 1 / Math.sqrt(P)).map((v, i) => v * 0.25 * (1 + Math.floor(i / P)));
      const dp = new DPFedAvg({ noiseMultiplier: 0, clipNorm: 1, clientsPerRound: E, seed: 1 });
      expectClose(await dpRound(dp, global, x, K), clippedAverage(global, x, K, 1, E), { atol: 1e-6, rtol: 1e-5 }, 'DP-FedAvg, z = 0');
      expect(dp.lastRound!.unclipped).toBe([...Array(K).keys()].filter((k) => rowNorm(x, P, k) <= 1).length);
    });
  }

  test('noise: std z C / E over 200,000 coordinates, reproducible per seed', async () => {
    const K = 4;
    const P = 200_000;
    const z = 1.3;
    const C = 0.5;
    const E = 4;
    const zeros = new Float64Array(K * P);
    const global = new Float64Array(P);
    const run = (seed: number) => dpRound(new DPFedAvg({ noiseMultiplier: z, clipNorm: C, clientsPerRound: E, seed }), global, zeros, K);
    const a = await run(7);
    let sum = 0;
    let sq = 0;
    for (const v of a) {
      sum += v;
      sq += v * v;
    }
    const mean = sum / P;
    const std = Math.sqrt(sq / P - mean * mean);
    const want = (z * C) / E;
    // The sample std's relative standard error is 1 / sqrt(2P) = 0.0016: 5 of them.
    expect(Math.abs(std / want - 1)).toBeLessThan(5 / Math.sqrt(2 * P));
    expect(Math.abs(mean)).toBeLessThan((5 * want) / Math.sqrt(P));
    expect(await run(7)).toEqual(a);
    const b = await run(8);
    expect(b.filter((v, i) => v === a[i]).length).toBeLessThan(10);
  });

  test('adaptive clipping without noise follows the float64 recurrence toward the median norm', async () => {
    const K = 10;
    const P = 64;
    // Row k has norm 0.2 (k + 1): the median (gamma = 0.5) lies between 1.0 and 1.2.
    const unit = ref.normal([K, P], 40);
    const x = unit.map((v, i) => (v / rowNorm(unit, P, Math.floor(i / P))) * 0.2 * (1 + Math.floor(i / P)));
    const dp = new DPFedAvg({ noiseMultiplier: 0, clientsPerRound: K, adaptive: { countStddev: 0 }, seed: 2 });
    expect(dp.sumNoiseMultiplier).toBe(0);
    let C = 0.1;
    for (let r = 0; r < 40; r++) {
      expect(dp.clipNorm).toBe(C);
      await dpRound(dp, new Float64Array(P), x, K);
      const unclipped = [...Array(K).keys()].filter((k) => 0.2 * (k + 1) <= C).length;
      expect(dp.lastRound!.unclipped).toBe(unclipped);
      C *= Math.exp(-0.2 * (unclipped / K - 0.5));
    }
    expect(dp.clipNorm).toBeCloseTo(C, 12);
    expect(C).toBeGreaterThan(0.9);
    expect(C).toBeLessThan(1.3);
  });

  test('the accountant after R rounds equals RdpAccountant for (q, z) R steps', async () => {
    const q = 0.05;
    const z = 1.1;
    const R = 4;
    const dp = new DPFedAvg({ noiseMultiplier: z, clientsPerRound: 5, samplingProbability: q, adaptive: { countStddev: 1 }, seed: 3 });
    const P = 9;
    for (let r = 0; r < R; r++) await dpRound(dp, new Float64Array(P), ref.normal([5, P], 50 + r, 0.1), 5);
    const reference = new RdpAccountant();
    reference.step(q, z, R);
    expect(dp.round).toBe(R);
    expect(dp.epsilon(1e-5)).toBeCloseTo(reference.epsilon(1e-5).epsilon, 10);
    // The count's noise (sigma_b = 1, sensitivity 1/2) takes its share: the sum's multiplier is larger.
    expect(dp.sumNoiseMultiplier).toBeCloseTo((z ** -2 - 2 ** -2) ** -0.5, 12);
    expect(dp.sumNoiseMultiplier).toBeGreaterThan(z);
  });

  test('a non-finite update is an error naming the rows', async () => {
    const dp = new DPFedAvg({ noiseMultiplier: 0, clipNorm: 1, clientsPerRound: 3, seed: 4 });
    const x = ref.normal([3, 5], 60);
    x[7] = NaN;
    await expect(dpRound(dp, new Float64Array(5), x, 3)).rejects.toThrow('rows [1] have norms [NaN]');
  });

  test('local DP: the clipped delta plus noise of std z C', async () => {
    const P = 100_000;
    const x = ref.normal([P], 70);
    const delta = engine.tensor(Float32Array.from(x), [P], 'delta');
    const out = privatizeLocally(delta, { clipNorm: 2, noiseMultiplier: 0.5, seed: 9 });
    const got = await out.data();
    const f = 2 / rowNorm(x, P, 0);
    let sq = 0;
    for (let n = 0; n < P; n++) sq += (got[n]! - f * x[n]!) ** 2;
    expect(Math.abs(Math.sqrt(sq / P) / 1 - 1)).toBeLessThan(5 / Math.sqrt(2 * P));
    for (const t of [delta, out]) t.dispose();
  });
});
