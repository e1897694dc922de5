// Federated next-word models: a client holding a text (token ids) trains the keyboard model
// (tied embeddings over an LSTM) with truncated BPTT from the global weights, answers with the
// change of its weights, scores a global model on its own held-out text, and personalises the
// head; FedAvg over users with different texts learns what they share.
import { beforeAll, describe, expect, test } from 'vitest';
import { Dense, Engine, FedAvg, FederatedClient, FederatedServer, KeyboardModel, personaliseAfterFederation, Sequential, SGD, simulate, trainBatched, trainLanguageModel, type TokenData } from '../../src/index.js';
import { evaluateLanguageModel } from '../../src/paradigms/keyboard/train.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const MARKERS = [0, 1, 2, 3];
const options = { vocab: 14, embedding: 8, hidden: 12, seed: 7 };

/** A text repeating `cycle` to `length` tokens, as a client's data. */
function text(cycle: readonly number[], length: number, steps = 5): TokenData {
  return { tokens: Uint32Array.from({ length }, (_, i) => cycle[i % cycle.length]!), steps, streams: 2, exclude: MARKERS };
}

const training = { epochs: 2, batchSize: 3, learningRate: 0.5, proximalMu: 0, compression: null };

describe('federated next-word clients', () => {
  test("fit is the client's own truncated-BPTT training from the global weights: its delta, example count and loss", async () => {
    const global = new KeyboardModel(engine, options);
    const local = new KeyboardModel(engine, { ...options, seed: 99 });
    const data = text([4, 5, 6, 7, 8, 9], 61);
    const client = new FederatedClient({ id: 'u0', model: local, data });
    const server = new FederatedServer(engine, global, { strategy: new FedAvg(), fraction: 1, minClients: 1, training });
    const message = server.globalModel(1);
    const update = await client.fit(engine, message);
    expect(update.examples).toBe(60);
    expect(client.steps(message.config)).toBe(2 * Math.ceil((20 - 1) / 5));
    const delta = await update.delta!.data();

    // Independently: a third model loaded with the global weights, trained directly with SGD.
    const direct = new KeyboardModel(engine, { ...options, seed: 5 });
    const weights = global.flatWeights();
    direct.setFlatWeights(weights);
    weights.dispose();
    const optimizer = new SGD(direct, { lr: training.learningRate });
    const result = await trainLanguageModel(engine, direct, optimizer, data.tokens, { batchSize: 3, steps: 5, epochs: 2 });
    expect(update.metrics.loss).toBeCloseTo(result.lastEpochLoss, 5);
    for (const e of message.layout.entries) {
      const before = await global.parameters().get(e.name)!.data();
      const after = await direct.parameters().get(e.name)!.data();
      for (let i = 0; i < e.size; i++) expect(delta[e.offset + i]!, `${e.name}[${i}]`).toBeCloseTo(after[i]! - before[i]!, 5);
    }
    expect(Math.max(...delta.map(Math.abs))).toBeGreaterThan(1e-3);
    update.delta!.dispose();
    server.release(message);
    optimizer.dispose();
    for (const m of [global, local, direct]) m.dispose();
  });

  test('FedAvg over users with different texts learns the words they share; each user scores the global model on his own held-out text; personalising the head fits his own', async () => {
    const global = new KeyboardModel(engine, options);
    const shared = new KeyboardModel(engine, { ...options, seed: 3 });
    // Every user says "4 5 6 7" then words of his own.
    const cycles = [[4, 5, 6, 7, 8, 9], [4, 5, 6, 7, 10, 11], [4, 5, 6, 7, 12, 13]];
    const clients = cycles.map((c, k) => new FederatedClient({ id: `u${k}`, model: shared, data: text(c, 90), test: text(c, 31) }));
    const server = new FederatedServer(engine, global, { strategy: new FedAvg(), fraction: 1, minClients: 3, training: { ...training, learningRate: 1 } });
    const records = await simulate(engine, server, clients, { rounds: 6, federatedEvaluation: true, evaluateEvery: 6 });
    const last = records.at(-1)!;
    expect(last.accepted).toHaveLength(3);
    expect(last.trainLoss).toBeLessThan(records[0]!.trainLoss);
    // The per-user figures are each user's own evaluation of the final global model.
    const message = server.globalModel(7);
    for (const [k, c] of clients.entries()) {
      const mine = await c.evaluate(engine, message);
      expect(mine.accuracy).toBeCloseTo(last.clientAccuracy![`u${k}`]!, 9);
      // Against the evaluation loop run directly on the global model.
      const direct = await evaluateLanguageModel(engine, global, text(cycles[k]!, 31).tokens, { streams: 2, steps: 5, exclude: MARKERS });
      expect(mine.accuracy).toBeCloseTo(direct.top1, 9);
      expect(mine.top3).toBeCloseTo(direct.top3, 9);
      expect(mine.loss).toBeCloseTo(Math.log(direct.perplexity), 5);
      expect(mine.examples).toBe(direct.targets);
    }
    // Five of each cycle's six next words follow from the current word; which word follows 7 depends on the user.
    expect(last.federatedAccuracy!).toBeGreaterThan(0.6);
    const personal = await clients[1]!.personalise(engine, message, { head: ['embedding.projection', 'embedding.bias'], epochs: 8, batchSize: 3, learningRate: 1 });
    console.log(`federated keyboard: global top-1 ${last.federatedAccuracy!.toFixed(3)}; user u1 ${personal.global.toFixed(3)} -> personalised ${personal.personalised.toFixed(3)}`);
    expect(personal.personalised).toBeGreaterThan(personal.global);
    server.release(message);
    global.dispose();
    shared.dispose();
  });

  test('token data are refused where they cannot be used, naming why', async () => {
    const model = new KeyboardModel(engine, options);
    const mlp = new Sequential({ fc: new Dense(engine, 4, 3, { seed: 1 }) });
    expect(() => new FederatedClient({ id: 'x', model: mlp, data: text([4, 5], 20) })).toThrow('FederatedClient x: token data needs a KeyboardModel, got Sequential');
    expect(() => new FederatedClient({ id: 'y', model, data: text([4], 1) })).toThrow('FederatedClient y: it has 1 tokens; at least 2 are needed');
    const client = new FederatedClient({ id: 'z', model, data: text([4, 5, 6], 12) });
    const server = new FederatedServer(engine, model, { strategy: new FedAvg(), fraction: 1, minClients: 1, training: { ...training, batchSize: 7 } });
    const message = server.globalModel(1);
    await expect(client.fit(engine, message)).rejects.toThrow('FederatedClient z: fit: batch size 7 is larger than its 11 examples');
    await expect(trainBatched(engine, [client], message)).rejects.toThrow('trainBatched: client z holds a text');
    await expect(personaliseAfterFederation(engine, client, new Float32Array(3), { head: ['embedding.bias'], epochs: 1, batchSize: 1, learningRate: 0.1 })).rejects.toThrow(`personaliseAfterFederation: 3 global weights for a layout of ${message.layout.length}`);
    server.release(message);
    model.dispose();
    mlp.dispose();
  });
});
