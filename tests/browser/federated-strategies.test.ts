// Federated strategies (src/paradigms/federated/strategies.ts) and the ops under them
// (coordinateMedian, trimmedMean, pairwiseSquaredDistances, gram above 16 vectors), against float64
// references of Flower's formulas (tests/reference.ts; the server optimizers below), over
// several rounds for the stateful ones; Krum against poisoned updates; errors; memory.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { FedAdagrad, FedAdam, FedAvg, FedAvgM, FedMedian, FedTrimmedAvg, FedYogi, Krum, type Strategy } from '../../src/paradigms/federated/strategies.js';
import { expectClose, type Tol } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

const TOL: Tol = { atol: 1e-6, rtol: 2e-5 };
const KS = [1, 2, 5, 10, 33];
const PS = [1, 7, 1001];

/** Example counts 1..K in a fixed scrambled order. */
const examplesFor = (K: number) => Array.from({ length: K }, (_, k) => 1 + ((k * 7) % K) * 3);

/** One round on the GPU: the strategy's new global weights, read back; every temporary freed. */
async function round(strategy: Strategy, global: Float64Array, updates: Float64Array, examples: number[]): Promise<Float32Array> {
  const K = examples.length;
  const P = global.length;
  const g = engine.tensor(Float32Array.from(global), [P], 'global');
  const u = engine.tensor(Float32Array.from(updates), [K, P], 'updates');
  const out = await strategy.aggregate(g, u, examples);
  const data = await out.data();
  for (const t of [g, u, out]) t.dispose();
  return data;
}

/** global + f(updates), elementwise in float64. */
const plus = (global: Float64Array, v: Float64Array) => global.map((x, i) => x + v[i]!);

describe('stateless strategies against Flower in float64', () => {
  for (const K of KS) {
    for (const P of PS) {
      test(`FedAvg, FedMedian, FedTrimmedAvg(0.1, 0.2): K = ${K}, P = ${P}`, async () => {
        const global = ref.normal([P], 10 * K + P);
        const updates = ref.normal([K, P], 20 * K + P, 0.1);
        const examples = examplesFor(K);
        expectClose(await round(new FedAvg(), global, updates, examples), plus(global, ref.weightedAverage(updates, K, examples)), TOL, 'FedAvg');
        expectClose(await round(new FedMedian(), global, updates, examples), plus(global, ref.median(updates, K)), TOL, 'FedMedian');
        for (const beta of [0.1, 0.2]) {
          expectClose(await round(new FedTrimmedAvg(beta), global, updates, examples), plus(global, ref.trimMean(updates, K, beta)), TOL, `FedTrimmedAvg(${beta})`);
        }
      });
    }
  }

  test('median with ties, odd and even K; the trimmed mean drops a NaN client', async () => {
    for (const K of [4, 5, 6, 9]) {
      const P = 7;
      // Values from {-1, 0, 1, 2}: many ties per coordinate.
      const updates = ref.uniform([K, P], 300 + K).map((v) => Math.floor(v * 4) - 1);
      const global = new Float64Array(P);
      expectClose(await round(new FedMedian(), global, updates, examplesFor(K)), ref.median(updates, K), { atol: 0, rtol: 0 }, `median with ties, K = ${K}`);
    }
    const K = 10;
    const updates = ref.normal([K, 7], 301);
    updates[3 * 7 + 2] = NaN;
    const got = await round(new FedTrimmedAvg(0.1), new Float64Array(7), updates, examplesFor(K));
    expectClose(got, ref.trimMean(updates, K, 0.1), TOL, 'trimmed mean with a NaN');
    expect(got.every(Number.isFinite)).toBe(true);
  });
});

// ---------------------------------------------------------------- server optimizers

/** Flower's FedAvgM and FedOpt family in float64, over the FedAvg of the deltas. */
class ServerReference {
  m: Float64Array;
  v: Float64Array;
  t = 0;
  constructor(
    readonly kind: 'avgm' | 'adam' | 'yogi' | 'adagrad',
    readonly h: { eta: number; beta1: number; beta2: number; tau: number },
    P: number,
  ) {
    this.m = new Float64Array(P);
    this.v = new Float64Array(P);
  }

  step(global: Float64Array, delta: Float64Array): Float64Array {
    this.t++;
    const { eta, beta1, beta2, tau } = this.h;
    if (this.kind === 'avgm') {
      // pseudo-gradient g = global - fedavg = -delta; momentum = mu m + g (g on round 1); x - lr m
      this.m = this.t === 1 ? delta.map((d) => -d) : this.m.map((m, i) => beta1 * m - delta[i]!);
      return global.map((x, i) => x - eta * this.m[i]!);
    }
    this.m = this.m.map((m, i) => beta1 * m + (1 - beta1) * delta[i]!);
    this.v = this.v.map((v, i) => {
      const d2 = delta[i]! ** 2;
      if (this.kind === 'adam') return beta2 * v + (1 - beta2) * d2;
      if (this.kind === 'yogi') return v - (1 - beta2) * d2 * Math.sign(v - d2);
      return v + d2;
    });
    const rate = this.kind === 'adam' ? (eta * Math.sqrt(1 - beta2 ** (this.t + 1))) / (1 - beta1 ** (this.t + 1)) : eta;
    return global.map((x, i) => x + (rate * this.m[i]!) / (Math.sqrt(this.v[i]!) + tau));
  }
}

describe('server optimizers over 3 rounds against Flower in float64', () => {
  const cases: { name: string; make: () => Strategy; kind: ServerReference['kind']; h: ServerReference['h'] }[] = [
    { name: 'FedAvgM(lr 0.7, momentum 0.9)', make: () => new FedAvgM({ serverLearningRate: 0.7, serverMomentum: 0.9 }), kind: 'avgm', h: { eta: 0.7, beta1: 0.9, beta2: 0, tau: 0 } },
    { name: 'FedAvgM defaults (FedAvg)', make: () => new FedAvgM(), kind: 'avgm', h: { eta: 1, beta1: 0, beta2: 0, tau: 0 } },
    { name: 'FedAdam defaults', make: () => new FedAdam(), kind: 'adam', h: { eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9 } },
    { name: 'FedAdam(eta 0.03, beta1 0.5, beta2 0.9, tau 1e-3)', make: () => new FedAdam({ eta: 0.03, beta1: 0.5, beta2: 0.9, tau: 1e-3 }), kind: 'adam', h: { eta: 0.03, beta1: 0.5, beta2: 0.9, tau: 1e-3 } },
    { name: 'FedYogi defaults', make: () => new FedYogi(), kind: 'yogi', h: { eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 } },
    { name: 'FedAdagrad defaults', make: () => new FedAdagrad(), kind: 'adagrad', h: { eta: 0.1, beta1: 0, beta2: 0, tau: 1e-9 } },
    { name: 'FedAdagrad(eta 0.5, tau 0.01)', make: () => new FedAdagrad({ eta: 0.5, tau: 0.01 }), kind: 'adagrad', h: { eta: 0.5, beta1: 0, beta2: 0, tau: 0.01 } },
  ];
  for (const c of cases) {
    for (const [K, P] of [
      [1, 1],
      [5, 7],
      [33, 1001],
    ] as const) {
      test(`${c.name}: K = ${K}, P = ${P}`, async () => {
        const strategy = c.make();
        const reference = new ServerReference(c.kind, c.h, P);
        let global = ref.normal([P], 400 + P);
        let want = global;
        for (let r = 0; r < 3; r++) {
          const updates = ref.normal([K, P], 500 + 10 * r + K, 0.1, 0.02 * r);
          const examples = examplesFor(K);
          const got = await round(strategy, global, updates, examples);
          want = reference.step(want, ref.weightedAverage(updates, K, examples));
          expectClose(got, want, { atol: 1e-5, rtol: 1e-4 }, `${c.name}, round ${r + 1}`);
          global = Float64Array.from(got);
        }
        strategy.dispose();
      });
    }
  }
});

// ---------------------------------------------------------------- Krum

/** K updates of which the listed are poisoned: honest ones near a common direction. */
function poisoned(K: number, P: number, seed: number, bad: Record<number, 'flip' | 'scale' | 'noise'>): Float64Array {
  const common = ref.normal([P], seed, 0.1);
  const x = ref.normal([K, P], seed + 1, 0.01);
  const noise = ref.normal([P], seed + 2, 1);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < P; n++) {
      const honest = common[n]! + x[k * P + n]!;
      const kind = bad[k];
      x[k * P + n] = kind === 'flip' ? -honest : kind === 'scale' ? 100 * honest : kind === 'noise' ? noise[n]! : honest;
    }
  }
  return x;
}

describe('Krum and Multi-Krum', () => {
  for (const P of [7, 1001]) {
    test(`pick honest clients among sign-flipped, scaled and noise updates (K = 10, f = 3, P = ${P})`, async () => {
      const K = 10;
      const bad = { 1: 'flip', 4: 'scale', 8: 'noise' } as const;
      const updates = poisoned(K, P, 600 + P, bad);
      const global = ref.normal([P], 601);
      const examples = examplesFor(K);

      const chosen = ref.krumChoice(updates, K, 3, 0);
      expect(Object.keys(bad).map(Number)).not.toContain(chosen[0]);
      const krum = await round(new Krum(3), global, updates, examples);
      expectClose(krum, plus(global, updates.subarray(chosen[0]! * P, (chosen[0]! + 1) * P)), TOL, 'Krum');

      const kept = ref.krumChoice(updates, K, 3, 5);
      for (const k of kept) expect(Object.keys(bad).map(Number)).not.toContain(k);
      const rows = Float64Array.from(kept.flatMap((k) => Array.from(updates.subarray(k * P, (k + 1) * P))));
      const multi = await round(new Krum(3, 5), global, updates, examples);
      expectClose(multi, plus(global, ref.weightedAverage(rows, 5, kept.map((k) => examples[k]!))), TOL, 'Multi-Krum');
    });
  }

  test('an update of infinities is never chosen and does not reach the result', async () => {
    const K = 6;
    const updates = poisoned(K, 7, 610, {});
    updates.fill(Infinity, 2 * 7, 3 * 7);
    const got = await round(new Krum(1, 3), new Float64Array(7), updates, examplesFor(K));
    expect(got.every(Number.isFinite)).toBe(true);
  });
});

// ---------------------------------------------------------------- the ops underneath

describe('pairwise squared distances and gram above 16 vectors', () => {
  for (const T of [1, 3, 16, 17, 33, 64, 128]) {
    test(`T = ${T}, n = 1001`, async () => {
      const n = 1001;
      const x = ref.normal([T, n], 700 + T);
      const [d, g] = await engine.scope(async () => {
        const stack = engine.tensor(Float32Array.from(x), [T, n]);
        return [await ops.pairwiseSquaredDistances(stack).data(), await ops.gram(stack).data()];
      });
      const want = ref.squaredDistances(x, T);
      expectClose(d!, want, { atol: 1e-4, rtol: 1e-5 }, `distances T = ${T}`);
      for (let i = 0; i < T; i++) expect(d![i * T + i]).toBe(0);
      expectClose(g!, ref.gram(x, T), { atol: 1e-6, rtol: 1e-5 }, `gram T = ${T}`, ref.gram(x.map(Math.abs), T));
    });
  }
});

describe('errors name the strategy, the shapes and the limit, before allocating', () => {
  /** The promise rejects with every fragment, and nothing was allocated. */
  async function expectRejects(call: () => Promise<unknown>, ...fragments: string[]): Promise<void> {
    const before = engine.memory().inUseBuffers;
    let message = '';
    try {
      await call();
    } catch (e) {
      message = (e as Error).message;
    }
    for (const f of fragments) expect(message, `"${message}" should contain ${f}`).toContain(f);
    expect(engine.memory().inUseBuffers, `buffers allocated before "${message}"`).toBe(before);
  }

  test('round inputs', async () => {
    await engine.scope(async () => {
      const g = engine.zeros([7], 'g');
      const u = engine.zeros([3, 7], 'u');
      const none = engine.zeros([0, 7], 'none');
      const wide = engine.zeros([3, 8], 'wide');
      const s = new FedAvg();
      await expectRejects(() => s.aggregate(g, none, []), 'FedAvg', 'K = 0');
      await expectRejects(() => s.aggregate(g, u, [1, 2]), 'FedAvg', '2 example counts', 'K = 3');
      await expectRejects(() => s.aggregate(g, u, [0, 0, 0]), 'FedAvg', 'sum to 0', 'positive');
      await expectRejects(() => s.aggregate(g, u, [1, -1, 1]), 'FedAvg', '>= 0');
      await expectRejects(() => s.aggregate(g, wide, [1, 1, 1]), 'FedAvg', 'g [7]', 'wide [3,8]', '[K, P]');
      await expectRejects(() => new Krum(1).aggregate(g, u, [1, 1, 1]), 'Krum', 'K = 3', 'f = 1', 'K > 2f + 2 = 4');
      await expectRejects(() => new Krum(0, 4).aggregate(g, u, [1, 1, 1]), 'MultiKrum', 'toKeep 4');
      const many = engine.zeros([129, 7], 'many');
      await expectRejects(() => new FedMedian().aggregate(g, many, new Array(129).fill(1)), 'coordinateMedian', 'many [129,7]', 'K = 129', 'at most 128');
      const adam = new FedAdam();
      (await adam.aggregate(g, u, [1, 1, 1])).dispose();
      const g8 = engine.zeros([8], 'g8');
      await expectRejects(() => adam.aggregate(g8, wide, [1, 1, 1]), 'FedAdam', 'g8 [8]', 'made for 7');
      adam.dispose();
      await expectRejects(() => adam.aggregate(g, u, [1, 1, 1]), 'FedAdam', 'disposed');
    });
    for (const beta of [-0.1, 0.5, NaN]) expect(() => new FedTrimmedAvg(beta)).toThrow(`beta ${beta} must be in [0, 0.5)`);
    expect(() => new Krum(1.5)).toThrow('numMalicious 1.5');
    expect(() => new FedAdam({ beta1: 1 })).toThrow('FedAdam: beta1 1 must be in [0, 1)');
    expect(() => new FedYogi({ eta: 0 })).toThrow('FedYogi: eta 0');
    expect(() => new FedAvgM({ serverMomentum: -1 })).toThrow('serverMomentum -1');
  });
});

describe('memory', () => {
  test('strategies free their state on dispose', async () => {
    engine.placeholder(); // the engine's shared stand-in for unused bindings, kept for its life
    const before = engine.memory().inUseBytes;
    const K = 5;
    const P = 1001;
    for (const make of [() => new FedAvgM({ serverMomentum: 0.9 }), () => new FedAdam(), () => new FedYogi(), () => new FedAdagrad(), () => new Krum(1, 2)]) {
      const s = make();
      for (let r = 0; r < 2; r++) await round(s, ref.normal([P], r), ref.normal([K, P], r + 1), examplesFor(K));
      if (s instanceof FedAdam) expect(engine.memory().inUseBytes).toBeGreaterThanOrEqual(before + 2 * 4 * P);
      s.dispose();
      expect(engine.memory().inUseBytes, s.name).toBe(before);
    }
  });
});

describe('speed', () => {
  test('median and trimmed mean of K = 10, P = 200,000 (profiled; checked against float64)', async () => {
    const K = 10;
    const P = 200_000;
    const x = ref.normal([K, P], 800);
    const stack = engine.tensor(Float32Array.from(x), [K, P], 'stack');
    let median: Tensor | undefined;
    let trimmed: Tensor | undefined;
    const { profile } = await engine.profile(() => {
      median = ops.coordinateMedian(stack);
      trimmed = ops.trimmedMean(stack, 0.2);
    });
    console.log(`K = 10, P = 200,000 on ${engine.adapterName}: trimmed_mean kernel ${profile.rows.find((r) => r.kernel === 'trimmed_mean')?.totalMs.toFixed(2)} ms for 2 calls (${profile.method})`);
    expectClose(await median!.data(), ref.median(x, K), TOL, 'median');
    expectClose(await trimmed!.data(), ref.trimMean(x, K, 0.2), TOL, 'trimmed mean');
    for (const t of [stack, median!, trimmed!]) t.dispose();
  });
});
