// Durable server state and secure aggregation (server.ts, strategies.ts, privacy.ts,
// accountant.ts): a server restored from saveState after k rounds takes round k + 1 to the same
// bits as the one that never stopped (FedAdam, FedYogi, FedAvgM, DP-FedAvg with adaptive clipping
// and its epsilon); states of another strategy, size or set of orders are refused, naming what
// differs; aggregateSum of the clients' weighted sum equals aggregate of their updates (FedAvg,
// FedAdam, example and unit weights, two rounds), refuses strategies that need each update and
// rejects whole rounds whose sum cannot be used; DP-FedAvg under secure aggregation averages the
// noised sum and accounts as the in-process strategy does.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Dense,
  DPFedAvg,
  Engine,
  FedAdam,
  FedAvg,
  FedAvgM,
  FederatedServer,
  FedMedian,
  FedTrimmedAvg,
  FedYogi,
  gatherWeights,
  Krum,
  RdpAccountant,
  ReLU,
  Sequential,
  type ClientUpdate,
  type SecureSum,
  type Strategy,
} from '../../src/index.js';
import { expectClose } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const F = 4;
const C = 3;
const IDS = ['a', 'b', 'c'];
const EXAMPLES = [10, 30, 5];
const training = { epochs: 1, batchSize: 4, learningRate: 0.1, proximalMu: 0, compression: null } as const;

/** 4-8-3 MLP: layout fc1.weight at 0, fc1.bias at 64, fc2.weight at 128, fc2.bias at 192; P = 256. */
function mlp(seed: number): Sequential {
  return new Sequential({ fc1: new Dense(engine, F, 8, { seed }), relu: ReLU(), fc2: new Dense(engine, 8, C, { seed: seed + 1 }) });
}

function server(strategy: Strategy, seed = 1, logs: string[] = []): FederatedServer {
  return new FederatedServer(engine, mlp(seed), { strategy, minClients: 2, training, log: (s) => logs.push(s) });
}

/** Client k's delta in round r: small normal values on the parameters, zeros in the layout's gaps. */
function delta(s: FederatedServer, r: number, k: number): Float64Array {
  const out = new Float64Array(s.layout.length);
  const values = ref.normal([s.layout.length], 100 * r + k, 0.01);
  for (const e of s.layout.entries) out.set(values.subarray(e.offset, e.offset + e.size), e.offset);
  return out;
}

function updates(s: FederatedServer, r: number, examples: readonly number[]): ClientUpdate[] {
  return IDS.map((clientId, k) => {
    const d = Float32Array.from(delta(s, r, k));
    return { clientId, round: r, examples: examples[k]!, delta: engine.keep(engine.tensor(d, [d.length], clientId)), encoded: null, metrics: { loss: 1 }, bytes: 4 * s.layout.values };
  });
}

/** sum_k w_k delta_k in float64, as the coordinator would dequantise it (f32). */
function secureSum(s: FederatedServer, r: number, weights: readonly number[], transform = (d: Float64Array) => d): SecureSum {
  const sum = new Float64Array(s.layout.length);
  IDS.forEach((_, k) => transform(delta(s, r, k)).forEach((v, j) => (sum[j]! += weights[k]! * v)));
  return { contributors: IDS, sum: Float32Array.from(sum), totalWeight: weights.reduce((a, w) => a + w, 0), bytesUp: 1234 };
}

async function round(s: FederatedServer, r: number, examples: readonly number[] = EXAMPLES) {
  const m = s.globalModel(r);
  try {
    return await s.aggregate(m, IDS, updates(s, r, examples));
  } finally {
    s.release(m);
  }
}

async function roundSum(s: FederatedServer, r: number, secure: SecureSum, sampled: readonly string[] = IDS) {
  const m = s.globalModel(r);
  try {
    return await s.aggregateSum(m, sampled, secure);
  } finally {
    s.release(m);
  }
}

async function weights(s: FederatedServer): Promise<Float32Array> {
  const t = gatherWeights(engine, s.model, s.layout);
  const data = await t.data();
  t.dispose();
  return data;
}

function dispose(...servers: FederatedServer[]): void {
  for (const s of servers) {
    s.strategy.dispose();
    s.model.dispose();
  }
}

describe('a restarted server goes on bit for bit', () => {
  const dp = () => new DPFedAvg({ noiseMultiplier: 1.1, clientsPerRound: 3, samplingProbability: 0.1, adaptive: { initialClip: 0.05, countStddev: 1 }, seed: 5 });
  const cases: [string, () => Strategy, string[]][] = [
    ['FedAdam', () => new FedAdam({ eta: 0.03 }), ['m', 'v']],
    ['FedYogi', () => new FedYogi(), ['m', 'v']],
    ['FedAvgM', () => new FedAvgM({ serverLearningRate: 0.7, serverMomentum: 0.9 }), ['momentum']],
    ['DPFedAvg (adaptive clipping)', dp, []],
  ];
  for (const [name, make, tensors] of cases) {
    test(`${name}: 3 rounds, save, restore into a fresh server, round 4 on both`, async () => {
      const original = server(make(), 1);
      for (let r = 1; r <= 3; r++) expect((await round(original, r)).aggregated).toBe(true);
      const state = await original.saveState();
      expect(state.round).toBe(3);
      expect(state.strategy.round).toBe(3);
      expect(Object.keys(state.strategy.tensors).sort()).toEqual(tensors);
      for (const t of Object.values(state.strategy.tensors)) expect(t).toHaveLength(original.layout.length);

      // Another initialisation, so that every weight must come from the state; structuredClone: plain data.
      const restored = server(make(), 7);
      expect(await weights(restored)).not.toEqual(await weights(original));
      restored.loadState(structuredClone(state));
      expect(restored.round).toBe(3);
      expect(restored.strategy.round).toBe(3);
      expect(await weights(restored)).toEqual(await weights(original));

      for (const s of [original, restored]) await round(s, 4);
      expect(await weights(restored)).toEqual(await weights(original));
      if (original.strategy instanceof DPFedAvg && restored.strategy instanceof DPFedAvg) {
        expect(state.strategy.scalars.clipNorm).not.toBe(0.05);
        expect(restored.strategy.clipNorm).toBe(original.strategy.clipNorm);
        expect(restored.strategy.accountant.rdp).toEqual(original.strategy.accountant.rdp);
        expect(restored.strategy.epsilon(1e-5)).toBe(original.strategy.epsilon(1e-5));
      }
      dispose(original, restored);
    });
  }

  test('stateless strategies save their rounds and no tensors; a state before the first round loads', async () => {
    for (const strategy of [new FedAvg(), new FedMedian(), new Krum(0)]) {
      const s = server(strategy);
      await round(s, 1);
      expect(await strategy.saveState()).toEqual({ name: strategy.name, round: 1, tensors: {}, scalars: {} });
      dispose(s);
    }
    const fresh = new FedAdam();
    expect(await fresh.saveState()).toEqual({ name: 'FedAdam', round: 0, tensors: {}, scalars: {} });
    const other = new FedAdam();
    other.loadState(await fresh.saveState(), engine);
    expect(other.round).toBe(0);
  });

  test('states of another strategy, size, set of tensors or orders are refused, naming what differs, and change nothing', async () => {
    const adam = server(new FedAdam(), 1);
    await round(adam, 1);
    const state = await adam.saveState();

    const yogi = server(new FedYogi(), 1);
    expect(() => yogi.loadState(state)).toThrow("FedYogi.loadState: the state is FedAdam's; this strategy is FedYogi");
    expect(yogi.strategy.round).toBe(0);
    expect(yogi.round).toBe(0);

    const wide = new FederatedServer(engine, new Sequential({ fc1: new Dense(engine, F, 9, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 9, C, { seed: 2 }) }), { strategy: new FedAdam(), training });
    expect(() => wide.loadState(state)).toThrow('FederatedServer.loadState: the message carries fc1.weight [8,4], fc1.bias [8], fc2.weight [3,8], fc2.bias [3]; this model trains fc1.weight [9,4], fc1.bias [9], fc2.weight [3,9], fc2.bias [3]');

    const fresh = server(new FedAdam(), 2);
    const before = await weights(fresh);
    const short = { ...state, strategy: { ...state.strategy, tensors: { ...state.strategy.tensors, m: new Float32Array(100) } } };
    expect(() => fresh.loadState(short)).toThrow('FederatedServer.loadState: the strategy\'s state tensor m has 100 values; the layout has 256');
    expect(() => fresh.strategy.loadState(short.strategy, engine)).toThrow('FedAdam.loadState: state tensors [m, v] have different lengths [100, 256]');
    expect(() => fresh.strategy.loadState({ ...state.strategy, tensors: {} }, engine)).toThrow('FedAdam.loadState: the state holds tensors [] after round 1; FedAdam keeps [m, v]');
    expect(() => fresh.strategy.loadState({ ...state.strategy, scalars: { clipNorm: 1 } }, engine)).toThrow('FedAdam.loadState: the state holds scalars [clipNorm] after round 1; FedAdam keeps []');
    expect(() => fresh.loadState({ ...state, weights: new Float32Array(7) })).toThrow('FederatedServer.loadState: 7 weights; the layout has 256');
    expect(fresh.strategy.round).toBe(0);
    expect(await weights(fresh)).toEqual(before);

    const dpOptions = { noiseMultiplier: 1, clipNorm: 0.1, clientsPerRound: 3, seed: 1 };
    const dp = server(new DPFedAvg(dpOptions), 1);
    await round(dp, 1);
    const dpState = await dp.strategy.saveState();
    expect(dpState.accountant!.orders).toHaveLength(151);
    const fewOrders = new DPFedAvg({ ...dpOptions, accountant: new RdpAccountant([2, 4, 8]) });
    expect(() => fewOrders.loadState(dpState, engine)).toThrow('RdpAccountant.restore: the state has 151 orders; this accountant has 3');
    const shifted = new DPFedAvg({ ...dpOptions, accountant: new RdpAccountant([1.1, 1.25, ...dpState.accountant!.orders.slice(2)]) });
    expect(() => shifted.loadState(dpState, engine)).toThrow("RdpAccountant.restore: the state's orders[1] is 1.2; this accountant's is 1.25");
    expect(shifted.round).toBe(0);
    expect(shifted.accountant.rdp.every((r) => r === 0)).toBe(true);
    expect(() => new DPFedAvg(dpOptions).loadState({ ...dpState, accountant: undefined }, engine)).toThrow('DPFedAvg.loadState: the state has no accountant');
    expect(() => new DPFedAvg(dpOptions).loadState({ ...dpState, scalars: { clipNorm: -1 } }, engine)).toThrow('DPFedAvg.loadState: clipNorm -1 must be a positive finite number');
    dispose(adam, yogi, wide, fresh, dp);
  });
});

describe('secure aggregation: the server sees only the weighted sum', () => {
  const weightings: [string, readonly number[]][] = [
    ['example weights', EXAMPLES],
    ['unit weights', [1, 1, 1]],
  ];
  for (const make of [() => new FedAvg(), () => new FedAdam({ eta: 0.03 })]) {
    for (const [weighting, w] of weightings) {
      test(`${make().name}, ${weighting}: aggregateSum of the sum equals aggregate of the updates over two rounds`, async () => {
        const individual = server(make());
        const summed = server(make());
        for (let r = 1; r <= 2; r++) {
          await round(individual, r, w);
          const report = await roundSum(summed, r, secureSum(summed, r, w), [...IDS, 'gone']);
          expect(report).toMatchObject({ round: r, accepted: IDS, dropped: ['gone'], rejected: [], aggregated: true, bytesUp: 1234 });
          expect(report.trainLoss).toBeNaN();
          expectClose(await weights(summed), await weights(individual), { atol: 1e-6, rtol: 1e-5 }, `round ${r}`);
        }
        expect(summed.round).toBe(2);
        expect(summed.strategy.round).toBe(2);
        dispose(individual, summed);
      });
    }
  }

  test('strategies that need each client update are refused, naming why', async () => {
    const flags = [new FedAvg(), new FedAvgM(), new FedAdam(), new FedYogi(), new FedMedian(), new FedTrimmedAvg(), new Krum(0)].map((s) => [s.name, s.needsIndividualUpdates]);
    expect(Object.fromEntries(flags)).toEqual({ FedAvg: false, FedAvgM: false, FedAdam: false, FedYogi: false, FedMedian: true, FedTrimmedAvg: true, Krum: true });
    for (const strategy of [new FedMedian(), new FedTrimmedAvg(), new Krum(0), new DPFedAvg({ noiseMultiplier: 0, clientsPerRound: 3, adaptive: {}, seed: 1 })]) {
      const s = server(strategy);
      await expect(roundSum(s, 1, secureSum(s, 1, EXAMPLES))).rejects.toThrow(`FederatedServer.aggregateSum: ${strategy.name} needs each client's update; secure aggregation gives the server only their sum`);
      expect(s.reports).toHaveLength(0);
      dispose(s);
    }
  });

  test('a sum that cannot be used rejects the whole round; too few contributors leave the model unchanged', async () => {
    const logs: string[] = [];
    const s = server(new FedAvg(), 1, logs);
    const before = await weights(s);
    const good = secureSum(s, 1, EXAMPLES);
    const nan = Float32Array.from(good.sum);
    nan[3] = NaN;
    nan[70] = Infinity;
    const rejections: [SecureSum, string][] = [
      [{ ...good, sum: nan }, "2 of the sum's 256 values are NaN or infinite"],
      [{ ...good, sum: good.sum.subarray(0, 200) }, 'the sum has 200 values; expected 256'],
      [{ ...good, contributors: ['a', 'b', 'stranger'] }, 'the sum holds updates from clients not sampled this round (stranger)'],
      [{ ...good, contributors: ['a', 'b', 'b'] }, 'the sum lists 3 contributors, 1 of them twice'],
      [{ ...good, totalWeight: 0 }, 'totalWeight 0 is not a positive number'],
    ];
    for (const [secure, reason] of rejections) {
      const report = await roundSum(s, 1, secure);
      expect(report.aggregated).toBe(false);
      expect(report.accepted).toEqual([]);
      expect(report.rejected).toEqual([...new Set(secure.contributors)].map((clientId) => ({ clientId, reason })));
      expect(logs.at(-2)).toContain(`round 1: the secure sum of 3 clients rejected: ${reason}`);
      expect(logs.at(-1)).toContain("round 1: 0 of 3 sampled clients' updates accepted, fewer than minClients = 2; the global model is unchanged");
    }
    const one = await roundSum(s, 1, { ...secureSum(s, 1, [4, 0, 0]), contributors: ['a'], totalWeight: 4 });
    expect(one).toMatchObject({ accepted: ['a'], dropped: ['b', 'c'], aggregated: false });
    expect(logs.at(-1)).toContain("1 of 3 sampled clients' updates accepted, fewer than minClients = 2");
    expect(await weights(s)).toEqual(before);
    expect(s.strategy.round).toBe(0);
    dispose(s);
  });
});

describe('DP-FedAvg under secure aggregation (distributed DP)', () => {
  const clip = (C: number) => (d: Float64Array) => {
    const n = Math.sqrt(d.reduce((a, v) => a + v * v, 0));
    return d.map((v) => v * Math.min(1, C / n));
  };

  test('without noise: the sum of clipped deltas over E equals the in-process DP-FedAvg', async () => {
    // The deltas' norms are about 0.01 sqrt(67) = 0.08: C = 0.06 clips some.
    const options = { noiseMultiplier: 0, clipNorm: 0.06, clientsPerRound: 4, seed: 3 };
    const individual = server(new DPFedAvg(options));
    const summed = server(new DPFedAvg(options));
    for (let r = 1; r <= 2; r++) {
      await round(individual, r);
      await roundSum(summed, r, secureSum(summed, r, [1, 1, 1], clip(0.06)));
      expectClose(await weights(summed), await weights(individual), { atol: 1e-7, rtol: 1e-5 }, `round ${r}`);
    }
    dispose(individual, summed);
  });

  test('the accountant records the same epsilon as in-process DP-FedAvg; fewer clients than E carry less noise and spend more', async () => {
    const options = { noiseMultiplier: 1.1, clipNorm: 0.06, clientsPerRound: 3, samplingProbability: 0.1, seed: 4 };
    const individual = server(new DPFedAvg(options));
    const summed = server(new DPFedAvg(options));
    const dp = summed.strategy as DPFedAvg;
    expect(dp.distributedDp()).toEqual({ clipNorm: 0.06, noiseStd: (1.1 * 0.06) / Math.sqrt(3) });
    for (let r = 1; r <= 3; r++) {
      await round(individual, r);
      await roundSum(summed, r, secureSum(summed, r, [1, 1, 1], clip(0.06)));
    }
    expect(dp.epsilon(1e-5)).toBe((individual.strategy as DPFedAvg).epsilon(1e-5));
    expect(dp.lastRound).toMatchObject({ clipNorm: 0.06, clients: 3, sumNoiseStd: 1.1 * 0.06 });

    const two = secureSum(summed, 4, [1, 1, 0], clip(0.06));
    await roundSum(summed, 4, { ...two, contributors: ['a', 'b'], totalWeight: 2 });
    const want = new RdpAccountant();
    want.step(0.1, 1.1, 3);
    want.step(0.1, 1.1 * Math.sqrt(2 / 3));
    expect(dp.epsilon(1e-5)).toBeCloseTo(want.epsilon(1e-5).epsilon, 12);
    expect(dp.lastRound!.sumNoiseStd).toBeCloseTo(1.1 * 0.06 * Math.sqrt(2 / 3), 15);

    const g = engine.zeros([8], 'g');
    const sum = engine.zeros([8], 'sum');
    await expect(dp.aggregateSum(g, sum, 45, 3)).rejects.toThrow('DPFedAvg.aggregateSum: totalWeight 45 for 3 clients; under DP each client weighs its clipped delta by 1');
    expect(() => new DPFedAvg({ noiseMultiplier: 1, clientsPerRound: 3, adaptive: { countStddev: 1 } }).distributedDp()).toThrow('DPFedAvg.distributedDp: adaptive clipping needs each client\'s norm, which secure aggregation hides; use a fixed clipNorm');
    for (const t of [g, sum]) t.dispose();
    dispose(individual, summed);
  });
});
