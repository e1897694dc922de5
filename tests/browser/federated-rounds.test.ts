// Federated rounds end to end through the protocol objects (protocol.ts, client.ts, server.ts,
// simulation.ts): a client's local training (plain and FedProx) against a float64 CPU reference of
// the same SGD steps on the same shuffles; the server's sampling, rejections, failed rounds and
// byte counts; only trainable parameters travel and frozen ones stay bit-identical; compression;
// personalisation; a short IID FedAvg run that learns the committed Fashion-MNIST subset.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  applyLoRA,
  BatchNorm,
  scatterWeights,
  clientData,
  Dense,
  Engine,
  FedAvg,
  FederatedClient,
  FederatedServer,
  FedMedian,
  gatherWeights,
  Krum,
  iidPartition,
  loadFashionMnist,
  permutation,
  ReLU,
  Sequential,
  simulate,
  SGD,
  LayerNorm,
  trainBatched,
  trainableLayout,
  type ClassificationData,
  type ClientUpdate,
  type GlobalModel,
  type Module,
  type RoundConfig,
} from '../../src/index.js';
import { localSeed } from '../../src/paradigms/federated/client.js';
import { withoutGaps } from '../../src/paradigms/federated/protocol.js';
import { expectClose } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const F = 4;
const C = 3;

function smallData(n: number, seed: number): ClassificationData {
  const inputs = Float32Array.from(ref.normal([n, F], seed));
  const labels = Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) % C);
  return { inputs, labels, count: n, features: F, classes: C };
}

function softmaxModel(seed = 1): Sequential {
  return new Sequential({ fc: new Dense(engine, F, C, { seed }) });
}

async function values(t: { data(): Promise<Float32Array> }): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

/** Float64 SGD on softmax regression y = x W^T + b over the shuffles FederatedClient.fit uses, with FedProx's mu. */
function referenceLocalTraining(w0: Float64Array, b0: Float64Array, data: ClassificationData, config: RoundConfig, clientSeed: number): { w: Float64Array; b: Float64Array; loss: number } {
  const w = w0.slice();
  const b = b0.slice();
  const B = config.batchSize;
  const perEpoch = Math.floor(data.count / B);
  let lossSum = 0;
  for (let e = 0; e < config.epochs; e++) {
    const order = permutation(data.count, localSeed(config, clientSeed) + e);
    for (let s = 0; s < perEpoch; s++) {
      const dw = new Float64Array(w.length);
      const db = new Float64Array(b.length);
      for (let i = 0; i < B; i++) {
        const r = order[s * B + i]!;
        const x = data.inputs.subarray(r * F, (r + 1) * F);
        const z = Array.from({ length: C }, (_, c) => b[c]! + x.reduce((acc, v, f) => acc + v * w[c * F + f]!, 0));
        const m = Math.max(...z);
        const ez = z.map((v) => Math.exp(v - m));
        const total = ez.reduce((a, v) => a + v, 0);
        const label = data.labels[r]!;
        lossSum += (Math.log(total) + m - z[label]!) / B;
        for (let c = 0; c < C; c++) {
          const g = (ez[c]! / total - (c === label ? 1 : 0)) / B;
          db[c]! += g;
          for (let f = 0; f < F; f++) dw[c * F + f]! += g * x[f]!;
        }
      }
      const mu = config.proximalMu;
      for (let j = 0; j < w.length; j++) w[j]! -= config.learningRate * (dw[j]! + mu * (w[j]! - w0[j]!));
      for (let j = 0; j < b.length; j++) b[j]! -= config.learningRate * (db[j]! + mu * (b[j]! - b0[j]!));
    }
  }
  return { w, b, loss: lossSum / (config.epochs * perEpoch) };
}

function message(model: Sequential, config: Partial<RoundConfig> = {}): GlobalModel {
  const layout = trainableLayout(model);
  const weights = engine.keep(gatherWeights(engine, model, layout));
  const full: RoundConfig = { round: 1, epochs: 2, batchSize: 4, learningRate: 0.5, proximalMu: 0, seed: 9, compression: null, ...config };
  return { config: full, layout, weights, bytes: 4 * layout.values };
}

describe('client', () => {
  for (const mu of [0, 0.3]) {
    test(`local training (E = 2, B = 4${mu ? `, FedProx mu = ${mu}` : ''}) matches float64 SGD on the same shuffles`, async () => {
      const model = softmaxModel(3);
      const data = smallData(10, 5);
      const client = new FederatedClient({ id: 'c7', model, data });
      const m = message(model, { proximalMu: mu });
      const w0 = await values((model.get('fc') as Dense).weight);
      const b0 = await values((model.get('fc') as Dense).bias!);
      const want = referenceLocalTraining(w0, b0, data, m.config, client.seed);
      const update = await client.fit(engine, m);
      expect(update.examples).toBe(10);
      expect(update.round).toBe(1);
      expect(update.bytes).toBe(4 * (F * C + C));
      const delta = await update.delta!.data();
      // Layout: weight at 0, bias at the next multiple of 64.
      expectClose(delta.subarray(0, F * C), Float64Array.from(want.w, (v, j) => v - w0[j]!), { atol: 2e-6, rtol: 1e-4 }, 'weight delta');
      expectClose(delta.subarray(64, 64 + C), Float64Array.from(want.b, (v, j) => v - b0[j]!), { atol: 2e-6, rtol: 1e-4 }, 'bias delta');
      expect(update.metrics.loss).toBeCloseTo(want.loss, 4);
      update.delta!.dispose();
      m.weights.dispose();
      model.dispose();
    });
  }

  test('personalisation trains only the head and restores the frozen flags', async () => {
    const model = new Sequential({ fc1: new Dense(engine, F, 8, { seed: 1 }), relu: ReLU(), head: new Dense(engine, 8, C, { seed: 2 }) });
    const client = new FederatedClient({ id: 'p', model, data: smallData(24, 1), test: smallData(24, 1) });
    const m = message(model);
    const body = await values((model.get('fc1') as Dense).weight);
    const result = await client.personalise(engine, m, { head: ['head'], epochs: 20, batchSize: 8, learningRate: 0.5 });
    expect(Array.from(await values((model.get('fc1') as Dense).weight))).toEqual(Array.from(body));
    expect(result.personalised).toBeGreaterThan(result.global);
    expect([...model.parameters().values()].every((p) => !p.frozen)).toBe(true);
    await expect(client.personalise(engine, m, { head: ['nothing'], epochs: 1, batchSize: 8, learningRate: 0.1 })).rejects.toThrow('no parameter is in the head nothing');
    m.weights.dispose();
    model.dispose();
  });

  test('a client whose update cannot be made throws naming why and leaves nothing behind', async () => {
    const model = softmaxModel();
    const m = message(model);
    const client = new FederatedClient({ id: 'bad', model, data: smallData(8, 1), attack: { kind: 'scale', factor: -1 } });
    await expect(client.fit(engine, m)).rejects.toThrow('poisonDelta: scale factor -1 must be a positive finite number');
    await engine.sync();
    const before = engine.memory().inUseBuffers;
    await expect(client.fit(engine, m)).rejects.toThrow('scale factor -1');
    await engine.sync();
    expect(engine.memory().inUseBuffers).toBe(before);
    m.weights.dispose();
    model.dispose();
  });

  test('bad round settings and a message for another model are refused, naming them', async () => {
    const model = softmaxModel();
    const client = new FederatedClient({ id: 'x', model, data: smallData(8, 1) });
    const m = message(model, { batchSize: 0 });
    await expect(client.fit(engine, m)).rejects.toThrow('batchSize 0 must be a positive integer');
    const big = message(model, { batchSize: 9 });
    await expect(client.fit(engine, big)).rejects.toThrow('batch size 9 is larger than its 8 examples');
    const other = new Sequential({ fc: new Dense(engine, F, 5, { seed: 1 }) });
    const foreign = message(other);
    await expect(client.fit(engine, foreign)).rejects.toThrow('the message carries fc.weight [5,4], fc.bias [5]; this model trains fc.weight [3,4], fc.bias [3]');
    for (const t of [m, big, foreign]) t.weights.dispose();
    model.dispose();
    other.dispose();
  });
});

describe('payload layout', () => {
  test('models with buffers, models with nothing to train, and vectors of the wrong length are refused, naming them', async () => {
    const normed = new Sequential({ fc: new Dense(engine, F, C, { seed: 1 }), bn: new BatchNorm(engine, C) });
    expect(() => trainableLayout(normed)).toThrow('the model has buffers (bn.running_mean, bn.running_var); federating BatchNorm statistics is not supported');
    const frozen = softmaxModel().freeze();
    expect(() => trainableLayout(frozen)).toThrow('the model has no trainable parameters, so there is nothing to federate');
    const model = softmaxModel();
    const layout = trainableLayout(model);
    const short = engine.zeros([7], 'short');
    expect(() => scatterWeights(engine, model, layout, short)).toThrow(`scatterWeights: short has 7 elements; the layout has ${layout.length}`);
    expect(() => withoutGaps(engine, layout, short)).toThrow(`withoutGaps: short has 7 elements; the layout has ${layout.length}`);
    short.dispose();
    for (const m of [normed, frozen, model]) m.dispose();
  });
});

describe('server', () => {
  const training = { epochs: 1, batchSize: 4, learningRate: 0.1, proximalMu: 0, compression: null } as const;

  test('samples max(minClients, round(C n)) distinct clients, reproducibly per round', () => {
    const model = softmaxModel();
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 0.1, minClients: 3, training, seed: 4 });
    const ids = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const a = server.sample(1, ids);
    expect(a).toHaveLength(10);
    expect(new Set(a).size).toBe(10);
    expect(server.sample(1, ids)).toEqual(a);
    expect(server.sample(2, ids)).not.toEqual(a);
    expect(server.sample(1, ids.slice(0, 12))).toHaveLength(3);
    expect(() => server.sample(1, ids.slice(0, 2))).toThrow('2 clients available; at least minClients = 3');
    expect(() => new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 0, training })).toThrow('fraction 0 must be in (0, 1]');
    model.dispose();
  });

  test('FedAvg of two clients is their example-weighted average; bad updates are rejected with reasons and never reach it', async () => {
    const model = softmaxModel(2);
    const logs: string[] = [];
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), minClients: 2, training, log: (s) => logs.push(s) });
    const m = server.globalModel(1);
    const P = server.layout.length;
    const g = await values(m.weights);
    const row = (seed: number, scale = 0.01) => Float32Array.from(ref.normal([P], seed), (v, j) => (j % 64 < (j < 64 ? F * C : C) ? v * scale : 0));
    const update = (clientId: string, delta: Float32Array, examples: number, round = 1): ClientUpdate => ({ clientId, round, examples, delta: engine.keep(engine.tensor(delta, [delta.length], clientId)), encoded: null, metrics: { loss: 1 }, bytes: 4 * server.layout.values });
    const good = [row(1), row(2), row(3)];
    const nan = row(4);
    nan[5] = NaN;
    const updates = [
      update('a', good[0]!, 10),
      update('b', good[1]!, 30),
      update('late', good[2]!, 5, 0),
      update('c', nan, 5),
      update('d', Float32Array.from(row(5), (v) => v * 1000), 5),
      update('e', new Float32Array(7), 5),
      update('stranger', good[2]!, 5),
      update('a', good[2]!, 5),
      update('f', row(6), 5),
    ];
    const sampled = ['a', 'b', 'late', 'c', 'd', 'e', 'f', 'gone'];
    const report = await server.aggregate(m, sampled, updates);
    expect(report.dropped).toEqual(['gone']);
    expect(Object.fromEntries(report.rejected.map((r) => [r.clientId, r.reason]))).toMatchObject({
      late: 'its update is for round 0',
      stranger: 'it was not sampled this round',
      a: 'it sent a second update this round',
      c: expect.stringContaining('NaN or infinite'),
      d: expect.stringContaining('exceeds 10 x the median norm'),
      e: expect.stringContaining('7 values'),
    });
    expect(report.accepted).toEqual(['a', 'b', 'f']);
    expect(logs).toHaveLength(report.rejected.length);
    const accepted = [good[0]!, good[1]!, row(6)];
    const weights = [10, 30, 5];
    const want = Float64Array.from(g, (v, j) => v + accepted.reduce((s, u, k) => s + (weights[k]! * u[j]!) / 45, 0));
    expectClose(await values(gatherWeights(engine, model, server.layout)), want, { atol: 1e-6, rtol: 1e-5 }, 'FedAvg weights');
    expect(report.bytesDown).toBe(8 * 4 * server.layout.values);
    expect(report.bytesUp).toBe(9 * 4 * server.layout.values);
    for (const u of updates) expect(u.delta!.disposed).toBe(true);
    server.release(m);
    model.dispose();
  });

  test('a round with fewer updates than Krum needs (2f + 3) leaves the model as it was instead of failing', async () => {
    const model = softmaxModel(2);
    const logs: string[] = [];
    const server = new FederatedServer(engine, model, { strategy: new Krum(2), minClients: 2, training, log: (s) => logs.push(s) });
    expect(server.required).toBe(7);
    const m = server.globalModel(1);
    const before = await values(m.weights);
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const updates = ids.map((clientId, k): ClientUpdate => ({ clientId, round: 1, examples: 3, delta: engine.keep(engine.full([server.layout.length], 0.01 * (k + 1))), encoded: null, metrics: { loss: 1 }, bytes: 0 }));
    const report = await server.aggregate(m, ids, updates);
    expect(report.aggregated).toBe(false);
    expect(logs.at(-1)).toContain('6 of 6 sampled clients\' updates accepted, fewer than the 7 that Krum needs');
    expect(Array.from(await values(gatherWeights(engine, model, server.layout)))).toEqual(Array.from(before));
    server.release(m);
    model.dispose();
  });

  test('an encoded update that cannot be decoded is rejected with the reason; the round goes on', async () => {
    const model = softmaxModel(2);
    const logs: string[] = [];
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), minClients: 1, training, log: (s) => logs.push(s) });
    const m = server.globalModel(1);
    const P = server.layout.length;
    const good: ClientUpdate = { clientId: 'a', round: 1, examples: 4, delta: engine.keep(engine.full([P], 0.01)), encoded: null, metrics: { loss: 1 }, bytes: 0 };
    // Codes for half the values only.
    const codes = engine.keep(engine.zeros([Math.ceil(P / 8)]));
    const scales = engine.keep(engine.zeros([2]));
    const broken: ClientUpdate = { clientId: 'b', round: 1, examples: 4, delta: null, encoded: { codes, scales, n: P, blockSize: 1024, bytes: 10 }, metrics: { loss: 1 }, bytes: 10 };
    const report = await server.aggregate(m, ['a', 'b'], [good, broken]);
    expect(report.accepted).toEqual(['a']);
    expect(report.rejected[0]!.clientId).toBe('b');
    expect(report.rejected[0]!.reason).toContain(`its encoded update cannot be decoded: dequantize8: expected ${Math.ceil(P / 4)} code words`);
    expect(report.aggregated).toBe(true);
    expect(codes.disposed && scales.disposed).toBe(true);
    server.release(m);
    model.dispose();
  });

  test('a round with fewer accepted updates than minClients leaves the model as it was', async () => {
    const model = softmaxModel(2);
    const logs: string[] = [];
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), minClients: 2, training, log: (s) => logs.push(s) });
    const m = server.globalModel(1);
    const before = await values(m.weights);
    const delta = engine.keep(engine.full([server.layout.length], 0.5));
    const report = await server.aggregate(m, ['a', 'b', 'c'], [{ clientId: 'a', round: 1, examples: 3, delta, encoded: null, metrics: { loss: 1 }, bytes: 0 }]);
    expect(report.aggregated).toBe(false);
    expect(report.dropped).toEqual(['b', 'c']);
    expect(logs.at(-1)).toContain('1 of 3 sampled clients\' updates accepted, fewer than minClients = 2; the global model is unchanged');
    expect(Array.from(await values(gatherWeights(engine, model, server.layout)))).toEqual(Array.from(before));
    server.release(m);
    model.dispose();
  });
});

describe('simulation', () => {
  for (const mu of [0, 0.2]) {
    test(`clients trained together over replicas send the updates they send alone (unequal data, ${mu ? `FedProx mu = ${mu}` : 'FedAvg'}, a poisoned client)`, async () => {
      const model = new Sequential({ fc1: new Dense(engine, F, 16, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 16, C, { seed: 2 }) });
      const sizes = [12, 20, 9];
      const clients = sizes.map((n, k) => new FederatedClient({ id: `c${k}`, model, data: smallData(n, k + 1), ...(k === 2 ? { attack: { kind: 'sign-flip' as const } } : {}) }));
      const m = message(model, { epochs: 2, batchSize: 4, learningRate: 0.3, proximalMu: mu });
      const alone: Float32Array[] = [];
      const lossesAlone: number[] = [];
      for (const c of clients) {
        const u = await c.fit(engine, m);
        alone.push(await u.delta!.data());
        lossesAlone.push(u.metrics.loss);
        u.delta!.dispose();
      }
      const together = await trainBatched(engine, clients, m);
      expect(together.map((u) => u.clientId)).toEqual(['c0', 'c1', 'c2']);
      for (const [k, u] of together.entries()) {
        expectClose(await u.delta!.data(), alone[k]!, { atol: 2e-6, rtol: 1e-4 }, `client ${k} delta`);
        expect(u.metrics.loss).toBeCloseTo(lossesAlone[k]!, 4);
        expect(u.examples).toBe(sizes[k]);
        u.delta!.dispose();
      }
      m.weights.dispose();
      model.dispose();
    });
  }

  test('batched training refuses models it cannot batch and clients with their own optimizer, naming them', async () => {
    const model = new Sequential({ fc: new Dense(engine, F, C, { seed: 1 }), norm: new LayerNorm(engine, C) });
    const m = message(model);
    await expect(trainBatched(engine, [new FederatedClient({ id: 'a', model, data: smallData(8, 1) })], m)).rejects.toThrow('layer norm is a LayerNorm; batched forward supports only');
    const plain = softmaxModel();
    const m2 = message(plain);
    const own = new FederatedClient({ id: 'own', model: plain, data: smallData(8, 1), optimizer: (mm, config) => new SGD(mm, { lr: config.learningRate }) });
    await expect(trainBatched(engine, [own], m2)).rejects.toThrow('client own has an optimizer of its own');
    for (const t of [m, m2]) t.weights.dispose();
    model.dispose();
    plain.dispose();
  });

  test('only the head travels when the base is frozen; the base stays bit-identical over rounds', async () => {
    const model = new Sequential({ base: new Dense(engine, F, 8, { seed: 1 }), relu: ReLU(), head: new Dense(engine, 8, C, { seed: 2 }) });
    model.freeze('base');
    const base = await values((model.get('base') as Dense).weight);
    const baseBias = await values((model.get('base') as Dense).bias!);
    const head = await values((model.get('head') as Dense).weight);
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 0.5, minClients: 2, training: { epochs: 1, batchSize: 4, learningRate: 0.2, proximalMu: 0, compression: null } });
    expect(server.layout.entries.map((e) => e.name)).toEqual(['head.weight', 'head.bias']);
    const clients = [0, 1, 2, 3].map((k) => new FederatedClient({ id: `c${k}`, model, data: smallData(12, k) }));
    const records = await simulate(engine, server, clients, { rounds: 3 });
    for (const r of records) {
      expect(r.sampled).toHaveLength(2);
      expect(r.bytesUp).toBe(2 * 4 * (8 * C + C));
      expect(r.bytesDown).toBe(2 * 4 * (8 * C + C));
    }
    expect(Array.from(await values((model.get('base') as Dense).weight))).toEqual(Array.from(base));
    expect(Array.from(await values((model.get('base') as Dense).bias!))).toEqual(Array.from(baseBias));
    expect(Array.from(await values((model.get('head') as Dense).weight))).not.toEqual(Array.from(head));
    model.dispose();
  });

  test('with LoRA only the adapters travel, and a round moves only them', async () => {
    const model = new Sequential({ fc1: new Dense(engine, F, 16, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 16, C, { seed: 2 }) });
    applyLoRA(model, ['fc1', 'fc2'], { rank: 2, seed: 3 });
    const layout = trainableLayout(model);
    expect(layout.entries.every((e) => /lora/i.test(e.name))).toBe(true);
    expect(layout.values).toBe(2 * (F + 16) + 2 * (16 + C));
    const frozen = [...model.parameters()].filter(([, p]) => p.frozen);
    const before = await Promise.all(frozen.map(([, p]) => values(p)));
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 1, minClients: 2, training: { epochs: 1, batchSize: 4, learningRate: 0.2, proximalMu: 0, compression: null } });
    const clients = [0, 1].map((k) => new FederatedClient({ id: `c${k}`, model, data: smallData(12, k) }));
    const [record] = await simulate(engine, server, clients, { rounds: 1 });
    expect(record!.bytesUp).toBe(2 * 4 * layout.values);
    for (const [i, [name, p]] of frozen.entries()) expect(Array.from(await values(p)), name).toEqual(Array.from(before[i]!));
    model.dispose();
  });

  test('8-bit updates cost about a quarter of the bytes and aggregate to nearly the f32 result', async () => {
    const run = async (compression: RoundConfig['compression']) => {
      const model = new Sequential({ fc1: new Dense(engine, F, 64, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 64, C, { seed: 2 }) });
      const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 1, minClients: 2, training: { epochs: 1, batchSize: 4, learningRate: 0.2, proximalMu: 0, compression } });
      const clients = [0, 1, 2].map((k) => new FederatedClient({ id: `c${k}`, model, data: smallData(16, k) }));
      const records = await simulate(engine, server, clients, { rounds: 2 });
      const w = await values(gatherWeights(engine, model, server.layout));
      for (const c of clients) c.dispose();
      model.dispose();
      return { w, bytes: records[0]!.bytesUp };
    };
    const plain = await run(null);
    const packed = await run({ bits: 8, errorFeedback: true });
    expect(packed.bytes / plain.bytes).toBeLessThan(0.3);
    expectClose(packed.w, plain.w, { atol: 2e-3, rtol: 0 }, '8-bit against f32 weights');
  });

  for (const mode of ['sequential', 'batched'] as const) {
    test(`${mode}: 60 clients (${mode === 'sequential' ? 'Adam' : 'SGD over replicas'}) hold no optimizer state between rounds, and a simulation leaves nothing behind`, async () => {
      const model = new Sequential({ fc1: new Dense(engine, 64, 256, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 256, C, { seed: 2 }) });
      const P = trainableLayout(model).length;
      const data = (k: number): ClassificationData => ({ inputs: Float32Array.from(ref.normal([12, 64], k)), labels: Uint8Array.from({ length: 12 }, (_, i) => (i + k) % C), count: 12, features: 64, classes: C });
      const adam = mode === 'sequential' ? { optimizer: (m: Module, config: RoundConfig) => new Adam(m, { lr: config.learningRate }) } : {};
      const clients = Array.from({ length: 60 }, (_, k) => new FederatedClient({ id: `c${k}`, model, data: data(k), ...adam }));
      const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 0.1, minClients: 2, training: { epochs: 1, batchSize: 4, learningRate: 0.01, proximalMu: 0, compression: null } });
      // A first round makes what the engine keeps for good (pipelines' scratch buffers); the next three must add nothing.
      await simulate(engine, server, clients, { rounds: 1, mode });
      await engine.sync();
      const before = engine.memory();
      engine.resetPeakMemory();
      await simulate(engine, server, clients, { rounds: 3, mode });
      await engine.sync();
      const after = engine.memory();
      // Nothing kept: the same tensors are in use as before the simulation.
      expect(after.inUseBuffers).toBe(before.inUseBuffers);
      expect(after.inUseBytes).toBe(before.inUseBytes);
      // At its peak the simulation held a few models' worth per sampled client (weights, gradients,
      // Adam's two moments, the update), far below one optimizer state per client (60 x 2 x P floats).
      const peakExtra = after.peakBytes - before.bytes;
      expect(peakExtra).toBeLessThan(6 * 8 * P * 4);
      expect(peakExtra).toBeLessThan((60 * 2 * P * 4) / 2);
      model.dispose();
    });
  }

  test('federated evaluation: each client scores the global model on its own rows, combined by their examples; bad settings are refused', async () => {
    const model = softmaxModel(4);
    const tests = [6, 10, 14].map((n, k) => smallData(n, 20 + k));
    const clients = tests.map((test, k) => new FederatedClient({ id: `c${k}`, model, data: smallData(12, k), test }));
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 1, minClients: 1, training: { epochs: 1, batchSize: 4, learningRate: 0.1, proximalMu: 0, compression: null } });
    const [record] = await simulate(engine, server, clients, { rounds: 1, federatedEvaluation: true, central: smallData(30, 9) });
    // Independently: the final model's logits on each client's rows, scored on the CPU.
    const w = await values((model.get('fc') as Dense).weight);
    const b = await values((model.get('fc') as Dense).bias!);
    let correct = 0;
    let rows = 0;
    for (const [k, test] of tests.entries()) {
      let mine = 0;
      for (let r = 0; r < test.count; r++) {
        const x = test.inputs.subarray(r * F, (r + 1) * F);
        const z = Array.from({ length: C }, (_, j) => b[j]! + x.reduce((acc, v, f) => acc + v * w[j * F + f]!, 0));
        if (z.indexOf(Math.max(...z)) === test.labels[r]) mine++;
      }
      expect(record!.clientAccuracy![`c${k}`]).toBeCloseTo(mine / test.count, 6);
      correct += mine;
      rows += test.count;
    }
    expect(record!.federatedAccuracy).toBeCloseTo(correct / rows, 6);
    expect(record!.accuracy).toBeGreaterThanOrEqual(0);
    await expect(simulate(engine, server, clients, { rounds: 0 })).rejects.toThrow('rounds 0 must be a positive integer');
    await expect(simulate(engine, server, clients, { rounds: 1, dropoutRate: 1 })).rejects.toThrow('dropoutRate 1 must be in [0, 1)');
    await expect(simulate(engine, server, [...clients, clients[0]!], { rounds: 1 })).rejects.toThrow('client ids must be unique');
    const untested = new FederatedClient({ id: 'u', model, data: smallData(8, 1) });
    await expect(simulate(engine, server, [untested], { rounds: 1, federatedEvaluation: true })).rejects.toThrow('federatedEvaluation needs test data on every client');
    model.dispose();
  });

  test('dropped-out clients are left out and reported; the rest are aggregated', async () => {
    const model = softmaxModel(1);
    const server = new FederatedServer(engine, model, { strategy: new FedMedian(), fraction: 1, minClients: 1, training: { epochs: 1, batchSize: 4, learningRate: 0.1, proximalMu: 0, compression: null } });
    const clients = Array.from({ length: 8 }, (_, k) => new FederatedClient({ id: `c${k}`, model, data: smallData(8, k) }));
    const records = await simulate(engine, server, clients, { rounds: 4, dropoutRate: 0.5, seed: 3 });
    const dropped = records.reduce((s, r) => s + r.dropped.length, 0);
    expect(dropped).toBeGreaterThan(4);
    expect(dropped).toBeLessThan(28);
    for (const r of records) expect(r.accepted.length + r.dropped.length).toBe(8);
    model.dispose();
  });
});

async function fetchBytes(file: string): Promise<Uint8Array> {
  const response = await fetch(`/tests/data/fashion-mnist/${file}`);
  if (!response.ok) throw new Error(`fetch ${file}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

test('FedAvg over 20 IID clients learns the Fashion-MNIST subset: at least 70% central accuracy after 10 rounds', async () => {
  const [train, testSet] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  const data: ClassificationData = { inputs: train.images, labels: train.labels, count: train.count, features: 784, classes: 10 };
  const central: ClassificationData = { inputs: testSet.images, labels: testSet.labels, count: testSet.count, features: 784, classes: 10 };
  const model = new Sequential({ fc1: new Dense(engine, 784, 64, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 64, 10, { seed: 2 }) });
  const parts = clientData(data, iidPartition(data.count, 20, { seed: 1 }));
  const clients = parts.map((d, k) => new FederatedClient({ id: `c${k}`, model, data: d }));
  const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 0.25, minClients: 2, training: { epochs: 2, batchSize: 10, learningRate: 0.05, proximalMu: 0, compression: null } });
  const before = await server.evaluate(central);
  const records = await simulate(engine, server, clients, { rounds: 10, central, evaluateEvery: 5 });
  const after = records.at(-1)!;
  console.log(`federated IID: accuracy ${before.accuracy} -> ${after.accuracy} in 10 rounds of 5 clients`);
  expect(before.accuracy).toBeLessThan(0.3);
  expect(after.accuracy).toBeGreaterThanOrEqual(0.7);
  model.dispose();
});
