// Many virtual clients on one device: each round the server samples clients, sampled clients drop
// out with a given probability (stragglers that never report), the rest train and report, and the
// server aggregates: only the protocol messages pass between them, as over a network. Clients of
// a round train one after another on their model, or all together over replicas of it (batched:
// one kernel per layer for all of them). Memory stays bounded whatever the number of clients:
// clients hold only their data, local optimizer state lives for one round, and replicas exist
// for the clients of one round.
import type { Engine } from '../../engine/engine.js';
import { uniformGenerator } from '../../engine/random.js';
import type { ClassificationData } from '../train.js';
import { trainBatched } from './batched.js';
import type { FederatedClient } from './client.js';
import { disposeUpdate, type ClientUpdate } from './protocol.js';
import { FederatedServer, type RoundReport } from './server.js';
import { DPFedAvg } from './privacy.js';

export type SimulationMode = 'sequential' | 'batched';

export interface SimulationOptions {
  rounds: number;
  /** The probability that a sampled client drops out of a round without reporting (default 0). */
  dropoutRate?: number;
  /** 'sequential' (default): one client after another; 'batched': all of a round's clients together over replicas of the model. */
  mode?: SimulationMode;
  /** Held-out data for central evaluation of the global model. */
  central?: ClassificationData;
  /** Evaluate every this many rounds, and after the last (default 1). */
  evaluateEvery?: number;
  /** Also evaluate the global model on every client's own test data (federated evaluation) when evaluating. */
  federatedEvaluation?: boolean;
  /** delta of the epsilon reported when the strategy is DPFedAvg (default 1e-5). */
  dpDelta?: number;
  /** Seeds the drop-outs (default 0). */
  seed?: number;
  onRound?: (record: RoundRecord) => void | Promise<void>;
}

export interface RoundRecord extends RoundReport {
  /** Central accuracy and loss, on evaluation rounds. */
  accuracy?: number;
  loss?: number;
  /** Per-client accuracy of the global model on its own test data, on evaluation rounds with federatedEvaluation. */
  clientAccuracy?: Record<string, number>;
  /** The federated (example-weighted) accuracy over the clients' test data. */
  federatedAccuracy?: number;
  /** Epsilon spent so far (DPFedAvg only). */
  epsilon?: number;
  /** Wall time of the round's training and aggregation. */
  seconds: number;
  /** Kernels dispatched by the round's training and aggregation. */
  dispatches: number;
}

export async function simulate(engine: Engine, server: FederatedServer, clients: readonly FederatedClient[], options: SimulationOptions): Promise<RoundRecord[]> {
  const op = 'simulate';
  const dropoutRate = options.dropoutRate ?? 0;
  const every = options.evaluateEvery ?? 1;
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error(`${op}: rounds ${options.rounds} must be a positive integer`);
  if (!(dropoutRate >= 0 && dropoutRate < 1)) throw new Error(`${op}: dropoutRate ${dropoutRate} must be in [0, 1)`);
  if (!Number.isInteger(every) || every < 1) throw new Error(`${op}: evaluateEvery ${every} must be a positive integer`);
  const byId = new Map(clients.map((c) => [c.id, c] as const));
  if (byId.size !== clients.length) throw new Error(`${op}: client ids must be unique`);
  if (options.federatedEvaluation && clients.some((c) => !c.test)) throw new Error(`${op}: federatedEvaluation needs test data on every client`);
  const ids = clients.map((c) => c.id);
  const drops = uniformGenerator(options.seed ?? 0);
  const records: RoundRecord[] = [];
  const start = server.round;
  for (let r = start + 1; r <= start + options.rounds; r++) {
    const began = performance.now();
    const dispatched = engine.dispatchCount;
    const sampled = server.sample(r, ids);
    const reporting = sampled.filter(() => drops() >= dropoutRate).map((id) => byId.get(id)!);
    const message = server.globalModel(r);
    let report: RoundReport;
    try {
      const updates: ClientUpdate[] = [];
      try {
        if (options.mode === 'batched' && reporting.length > 0) updates.push(...(await trainBatched(engine, reporting, message)));
        else for (const c of reporting) updates.push(await c.fit(engine, message));
      } catch (e) {
        for (const u of updates) disposeUpdate(u);
        throw e;
      }
      report = await server.aggregate(message, sampled, updates);
    } finally {
      server.release(message);
    }
    await engine.sync();
    const record: RoundRecord = { ...report, seconds: (performance.now() - began) / 1000, dispatches: engine.dispatchCount - dispatched };
    if (server.strategy instanceof DPFedAvg) record.epsilon = server.strategy.epsilon(options.dpDelta ?? 1e-5);
    if (r % every === 0 || r === start + options.rounds) {
      if (options.central) Object.assign(record, await server.evaluate(options.central));
      if (options.federatedEvaluation) {
        const evaluation = server.globalModel(r);
        try {
          const results = [];
          for (const c of clients) results.push(await c.evaluate(engine, evaluation));
          record.clientAccuracy = Object.fromEntries(results.map((e) => [e.clientId, e.accuracy]));
          record.federatedAccuracy = FederatedServer.combineEvaluations(results).accuracy;
        } finally {
          server.release(evaluation);
        }
      }
    }
    records.push(record);
    await options.onRound?.(record);
  }
  return records;
}
