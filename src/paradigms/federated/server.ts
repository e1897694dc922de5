// The federated server: owns the global model and a Strategy. Each round it samples clients
// (a fraction C of those available, at least a minimum), sends them the global trainable weights
// with the round's configuration, and turns what comes back into the next global model: updates
// from the wrong round or of the wrong length, non-finite ones and norms far above the round's
// others are rejected with a logged reason (checks.ts) and never reach the aggregate; the rest
// are stacked [K, P] on the GPU and aggregated by the strategy. A round in which fewer than the
// minimum are accepted (drop-outs, rejections; minClients, or what the strategy needs, as Krum's
// 2f + 3) leaves the model as it was.
//
// Under secure aggregation the server learns only the sum of the clients' weighted updates
// (aggregateSum): the strategy aggregates their weighted mean, and a bad sum can only reject the
// whole round. saveState and loadState carry what a restarted server needs to go on: the round,
// the global weights and the strategy's state.
import type { Engine } from '../../engine/engine.js';
import type { Module } from '../../engine/module.js';
import { permutation } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { evaluate, type ClassificationData } from '../train.js';
import { acceptedStack, checkUpdates, DEFAULT_NORM_FACTOR } from './checks.js';
import { dequantize8 } from '../../engine/ops/quantize.js';
import { checkLayout, checkRoundConfig, disposeUpdate, f32Bytes, gatherWeights, scatterWeights, trainableLayout, type ClientEvaluation, type ClientUpdate, type GlobalModel, type PayloadLayout, type RoundConfig } from './protocol.js';
import { checkSummable, type Strategy, type StrategyState } from './strategies.js';

export interface ServerOptions {
  strategy: Strategy;
  /** C: the fraction of available clients sampled each round (default 0.1). */
  fraction?: number;
  /** Clients sampled at least, and reports needed for a round to count (default 2). */
  minClients?: number;
  /** Local training settings sent each round (the round number and seed are the server's). */
  training: Omit<RoundConfig, 'round' | 'seed'>;
  /** Seeds client sampling and the rounds' local shuffles (default 0). */
  seed?: number;
  /** Reject an update whose norm exceeds this many times the round's median (default 10; Infinity: no norm rule, shape and finiteness are still checked). */
  normFactor?: number;
  /** Where rejections and failed rounds are logged (default console.warn). */
  log?: (message: string) => void;
}

/** What one round did. */
export interface RoundReport {
  round: number;
  sampled: string[];
  /** Sampled clients that did not report (dropped out). */
  dropped: string[];
  rejected: { clientId: string; reason: string }[];
  /** Clients whose updates were aggregated. */
  accepted: string[];
  /** False when fewer than minClients updates were accepted: the global model was left as it was. */
  aggregated: boolean;
  /** Server to clients (the global weights to each sampled client) and clients to server. */
  bytesDown: number;
  bytesUp: number;
  /** Mean training loss of the accepted clients, weighted by their examples. */
  trainLoss: number;
}

/** What a round under secure aggregation gives the server: the clients' sum, never their updates. */
export interface SecureSum {
  /** The clients whose updates the sum holds. */
  contributors: readonly string[];
  /** sum_k w_k delta_k: [layout.length], laid out as the clients' deltas (ClientUpdate.delta). */
  sum: Float32Array;
  /** sum_k w_k, where w_k is the weight client k gave its delta before masking: its examples, or 1. */
  totalWeight: number;
  /** Bytes the clients sent this round. */
  bytesUp: number;
  /** The contributors' mean training loss, if the protocol reports it (NaN otherwise). */
  trainLoss?: number;
}

/** What a restarted server needs to go on where it stopped. */
export interface ServerState {
  /** The last round recorded; the next is round + 1. */
  round: number;
  /** The parameters `weights` holds; a state loads only into a server whose model trains the same. */
  layout: PayloadLayout;
  /** The global trainable weights, [layout.length] as gatherWeights lays them out. */
  weights: Float32Array;
  strategy: StrategyState;
}

/** A round's report before anything is accepted: sampled clients that did not report dropped out. */
function newReport(message: GlobalModel, sampled: readonly string[], reported: ReadonlySet<string>, bytesUp: number): RoundReport {
  return {
    round: message.config.round,
    sampled: [...sampled],
    dropped: sampled.filter((id) => !reported.has(id)),
    rejected: [],
    accepted: [],
    aggregated: false,
    bytesDown: sampled.length * message.bytes,
    bytesUp,
    trainLoss: NaN,
  };
}

export class FederatedServer {
  readonly model: Module;
  readonly strategy: Strategy;
  readonly layout: PayloadLayout;
  readonly fraction: number;
  readonly minClients: number;
  readonly seed: number;
  readonly training: Omit<RoundConfig, 'round' | 'seed'>;
  readonly reports: RoundReport[] = [];
  private readonly engine: Engine;
  private readonly normFactor: number;
  private readonly log: (message: string) => void;
  private lastRound = 0;

  constructor(engine: Engine, model: Module, options: ServerOptions) {
    const op = 'FederatedServer';
    this.engine = engine;
    this.model = model;
    this.strategy = options.strategy;
    this.layout = trainableLayout(model);
    this.fraction = options.fraction ?? 0.1;
    this.minClients = options.minClients ?? 2;
    this.seed = options.seed ?? 0;
    this.training = options.training;
    this.normFactor = options.normFactor ?? DEFAULT_NORM_FACTOR;
    this.log = options.log ?? console.warn;
    if (!(this.fraction > 0 && this.fraction <= 1)) throw new Error(`${op}: fraction ${this.fraction} must be in (0, 1]`);
    if (!Number.isInteger(this.minClients) || this.minClients < 1) throw new Error(`${op}: minClients ${this.minClients} must be a positive integer`);
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new Error(`${op}: seed ${this.seed} must be an integer >= 0`);
    if (!(this.normFactor > 1)) throw new Error(`${op}: normFactor ${this.normFactor} must be > 1 (Infinity: no norm rule)`);
    checkRoundConfig(op, { ...this.training, round: 0, seed: 0 });
  }

  /** Accepted updates a round needs: minClients, or more where the strategy needs more (Krum: 2f + 3). */
  get required(): number {
    return Math.max(this.minClients, this.strategy.minimumUpdates);
  }

  /** The last round aggregate or aggregateSum recorded (0 before the first). */
  get round(): number {
    return this.lastRound;
  }

  /** Clients to sample in a round out of `available`: max(minClients, round(C n)), at most n. */
  sampleSize(available: number): number {
    return Math.min(available, Math.max(this.minClients, Math.round(this.fraction * available)));
  }

  /** The round's clients, sampled without replacement (seeded by the server's seed and the round). */
  sample(round: number, available: readonly string[]): string[] {
    const n = this.sampleSize(available.length);
    if (available.length < this.minClients) throw new Error(`FederatedServer.sample: ${available.length} clients available; at least minClients = ${this.minClients} are needed`);
    const order = permutation(available.length, this.seed * 100003 + round);
    return Array.from(order.subarray(0, n), (i) => available[i]!);
  }

  /** The message sent to each client of `round`: the global trainable weights (the server owns the tensor; free it with release()). */
  globalModel(round: number): GlobalModel {
    const config: RoundConfig = { ...this.training, round, seed: (this.seed * 7919 + round) % 2 ** 31 };
    const weights = this.engine.keep(gatherWeights(this.engine, this.model, this.layout, `global.round${round}`));
    return { config, layout: this.layout, weights, bytes: f32Bytes(this.layout.values) };
  }

  /** Frees a message's weights. */
  release(message: GlobalModel): void {
    message.weights.dispose();
  }

  /**
   * Aggregates one round's updates into the global model and frees them. `sampled` are the
   * clients the round was sent to; those without an update dropped out.
   */
  async aggregate(message: GlobalModel, sampled: readonly string[], updates: readonly ClientUpdate[]): Promise<RoundReport> {
    const round = message.config.round;
    const report = newReport(message, sampled, new Set(updates.map((u) => u.clientId)), updates.reduce((s, u) => s + u.bytes, 0));
    const reject = (clientId: string, reason: string) => {
      report.rejected.push({ clientId, reason });
      this.log(`round ${round}: client ${clientId} rejected: ${reason}`);
    };
    const decoded: { update: ClientUpdate; delta: Tensor }[] = [];
    try {
      const seen = new Set<string>();
      for (const u of updates) {
        const twice = seen.has(u.clientId);
        seen.add(u.clientId);
        if (twice) reject(u.clientId, 'it sent a second update this round');
        else if (u.round !== round) reject(u.clientId, `its update is for round ${u.round}`);
        else if (!sampled.includes(u.clientId)) reject(u.clientId, 'it was not sampled this round');
        else if (!(u.examples > 0) || !Number.isFinite(u.examples)) reject(u.clientId, `example count ${u.examples} is not a positive number`);
        else if (u.encoded && u.encoded.n !== this.layout.length) reject(u.clientId, `${u.encoded.n} encoded values; expected ${this.layout.length}`);
        else if (!u.delta && !u.encoded) reject(u.clientId, 'the update carries no delta');
        else if (u.delta) decoded.push({ update: u, delta: u.delta });
        else {
          // A malformed encoding (codes or scales that do not fit n and the block size) is that client's fault, not the round's.
          try {
            decoded.push({ update: u, delta: this.engine.keep(dequantize8(u.encoded!.codes, u.encoded!.scales, u.encoded!.n, u.encoded!.blockSize)) });
          } catch (e) {
            reject(u.clientId, `its encoded update cannot be decoded: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      }
      if (decoded.length > 0) {
        const check = await checkUpdates(decoded.map((d) => d.delta), this.layout.length, { normFactor: this.normFactor, log: () => {} });
        for (const r of check.rejected) reject(decoded[r.index]!.update.clientId, r.reason);
        const accepted = check.accepted.map((k) => decoded[k]!.update);
        report.accepted = accepted.map((u) => u.clientId);
        const examples = accepted.map((u) => u.examples);
        const total = examples.reduce((s, n) => s + n, 0);
        report.trainLoss = accepted.reduce((s, u) => s + u.metrics.loss * u.examples, 0) / total;
        if (accepted.length >= this.required) {
          const stack = acceptedStack(decoded.map((d) => d.delta), check.accepted);
          try {
            this.setGlobal(await this.strategy.aggregate(message.weights, stack, examples));
            report.aggregated = true;
          } finally {
            stack.dispose();
          }
        }
      }
    } finally {
      for (const d of decoded) if (d.delta !== d.update.delta) d.delta.dispose();
      for (const u of updates) disposeUpdate(u);
    }
    return this.record(report);
  }

  /**
   * Aggregates a round under secure aggregation, where the server learns only the clients' sum:
   * the strategy gets their weighted mean (DPFedAvg: the noised sum, see distributedDp). Strategies
   * that need each client's update are refused. A sum with a contributor that was not sampled or
   * listed twice, of the wrong length or with non-finite values cannot be taken apart, so the
   * whole round is rejected (every contributor, with the reason) and the model stays as it was.
   */
  async aggregateSum(message: GlobalModel, sampled: readonly string[], secure: SecureSum): Promise<RoundReport> {
    const op = 'FederatedServer.aggregateSum';
    const { contributors, sum, totalWeight } = secure;
    checkSummable(op, this.strategy);
    const round = message.config.round;
    const counted = new Set(contributors);
    const report = newReport(message, sampled, counted, secure.bytesUp);
    report.trainLoss = secure.trainLoss ?? NaN;
    const strangers = contributors.filter((id) => !sampled.includes(id));
    const nonFinite = sum.reduce((n, v) => n + (Number.isFinite(v) ? 0 : 1), 0);
    const reason =
      counted.size !== contributors.length ? `the sum lists ${contributors.length} contributors, ${contributors.length - counted.size} of them twice`
      : strangers.length > 0 ? `the sum holds updates from clients not sampled this round (${strangers.join(', ')})`
      : sum.length !== this.layout.length ? `the sum has ${sum.length} values; expected ${this.layout.length}`
      : nonFinite > 0 ? `${nonFinite} of the sum's ${sum.length} values are NaN or infinite`
      : !(totalWeight > 0 && Number.isFinite(totalWeight)) ? `totalWeight ${totalWeight} is not a positive number`
      : null;
    if (reason) {
      report.rejected = [...counted].map((clientId) => ({ clientId, reason }));
      this.log(`round ${round}: the secure sum of ${contributors.length} clients rejected: ${reason}`);
    } else {
      report.accepted = [...contributors];
      if (contributors.length >= this.required) {
        const total = this.engine.tensor(sum, [sum.length], `sum.round${round}`);
        try {
          this.setGlobal(await this.strategy.aggregateSum(message.weights, total, totalWeight, contributors.length));
          report.aggregated = true;
        } finally {
          total.dispose();
        }
      }
    }
    return this.record(report);
  }

  /** The round, the global weights and the strategy's state, read back. */
  async saveState(): Promise<ServerState> {
    const weights = gatherWeights(this.engine, this.model, this.layout, 'global.saved');
    try {
      return { round: this.lastRound, layout: this.layout, weights: await weights.data(), strategy: await this.strategy.saveState() };
    } finally {
      weights.dispose();
    }
  }

  /** Goes on from a saved state: refused, naming what differs, unless it was saved by a server of the same model and strategy. */
  loadState(state: ServerState): void {
    const op = 'FederatedServer.loadState';
    checkLayout(op, this.layout, state.layout);
    if (state.weights.length !== this.layout.length) throw new Error(`${op}: ${state.weights.length} weights; the layout has ${this.layout.length}`);
    for (const [name, t] of Object.entries(state.strategy.tensors)) {
      if (t.length !== this.layout.length) throw new Error(`${op}: the strategy's state tensor ${name} has ${t.length} values; the layout has ${this.layout.length}`);
    }
    if (!Number.isSafeInteger(state.round) || state.round < 0) throw new Error(`${op}: round ${state.round} must be an integer >= 0`);
    this.strategy.loadState(state.strategy, this.engine);
    this.setGlobal(this.engine.tensor(state.weights, [this.layout.length], 'global.loaded'));
    this.lastRound = state.round;
  }

  /** Writes new global weights into the model and frees them. */
  private setGlobal(next: Tensor): void {
    try {
      scatterWeights(this.engine, this.model, this.layout, next);
    } finally {
      next.dispose();
    }
  }

  /** Logs a round that left the model unchanged and keeps the report. */
  private record(report: RoundReport): RoundReport {
    if (!report.aggregated) {
      const rule = this.required > this.minClients ? `the ${this.required} that ${this.strategy.name} needs` : `minClients = ${this.minClients}`;
      this.log(`round ${report.round}: ${report.accepted.length} of ${report.sampled.length} sampled clients' updates accepted, fewer than ${rule}; the global model is unchanged`);
    }
    this.reports.push(report);
    this.lastRound = report.round;
    return report;
  }

  /** Accuracy and loss of the global model on held-out data (central evaluation). */
  evaluate(data: ClassificationData): Promise<{ accuracy: number; loss: number }> {
    return evaluate(this.engine, this.model, data);
  }

  /** The clients' evaluations combined, weighted by their test examples (federated evaluation). */
  static combineEvaluations(results: readonly ClientEvaluation[]): { accuracy: number; loss: number; examples: number } {
    const examples = results.reduce((s, r) => s + r.examples, 0);
    if (examples === 0) return { accuracy: NaN, loss: NaN, examples };
    return {
      accuracy: results.reduce((s, r) => s + r.accuracy * r.examples, 0) / examples,
      loss: results.reduce((s, r) => s + r.loss * r.examples, 0) / examples,
      examples,
    };
  }
}
