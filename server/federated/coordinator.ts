// The federated coordinator (Node): clients connect over WebSocket (`ws`), authenticate with the
// token enrolment gave them, and take part in rounds as production systems run them (Bonawitz et
// al. 2019, "Towards Federated Learning at Scale"): each round selects about 1.3x the reports it
// needs from the clients connected, sends them the global model, and closes at the target number
// of reports or at the deadline, whichever comes first; clients that vanish or come late are
// dropped without losing the round, and a client that reconnects is back in the pool for the next
// one. With secure aggregation (secagg.ts) the coordinator routes the key and share exchanges and
// learns only the sum of the masked updates. The FederatedServer of part 1 aggregates (its
// strategies, its rejections), and at the end of every round the whole state goes to SQLite in
// one transaction, so a killed coordinator resumes at the same round with the same weights.
import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeFrame,
  DPFedAvg,
  encodeFrame,
  flatFromNamed,
  modelVersion,
  namedFromFlat,
  packSecAgg,
  permutation,
  secAggFields,
  unpackSecAgg,
  type ClientUpdate,
  type Engine,
  type FederatedServer,
  type RoundReport,
  type RoundSecAgg,
  type ServerState,
  type StrategyState,
  type WireMessage,
} from '../../src/index.js';
import { SecAggServer, type SecAggClientMessage, type SecAggConfig, type SecAggResult } from '../../src/paradigms/federated/secagg.js';
import type { CoordinatorState, CoordinatorStore } from './store.js';

export interface SecureAggregationOptions {
  /** Each update coordinate is clipped to [-range, range] before it is quantised. */
  range: number;
  /** The largest FedAvg weight (example count) a client may claim; larger counts are capped (default 1: every client counts the same). */
  maxWeight?: number;
  /** Shares that rebuild a secret (default: the sum survives a third of the round's clients dropping). */
  threshold?: number;
}

export interface CoordinatorOptions {
  engine: Engine;
  /** The global model, the strategy and the local training settings (part 1's server). */
  server: FederatedServer;
  /** The model's name, as clients announce it. */
  modelName: string;
  store: CoordinatorStore;
  /** Reports a round aims for; it selects ceil(overselect x target) of the connected clients. */
  target: number;
  /** Default 1.3, as Bonawitz et al. 2019. */
  overselect?: number;
  /** A round's training stage closes this long after the model is sent (ms). */
  roundDeadlineMs: number;
  /** Each secure aggregation exchange closes this long after it opens (ms; default 10 s). */
  stageDeadlineMs?: number;
  secureAggregation?: SecureAggregationOptions | null;
  /** Frames above this are refused and their connection closed (default 64 MiB). */
  maxFrameBytes?: number;
  /** Where the coordinator says what it does and every rejection with its reason (default console.log). */
  log?: (line: string) => void;
}

/** One round as the coordinator saw it. */
export interface CoordinatorRound extends RoundReport {
  secure: boolean;
  /** Frames' bytes, both ways, this round (the round message counted once per client). */
  frameBytesDown: number;
  frameBytesUp: number;
  /** What the same round would have cost as plain FedAvg: the round frame to each selected client and an f32 update frame from each accepted one. */
  plainBytes: number;
  /** Wall time of the round, and of its secure aggregation exchanges (key and share routing, unmasking). */
  seconds: number;
  secAggSeconds: number;
}

/** JSON that keeps non-finite numbers (an RDP order with no noise yet is Infinity). */
const keepNonFinite = (_key: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? { $number: String(v) } : v);
const readNonFinite = (_key: string, v: unknown) => (typeof v === 'object' && v !== null && '$number' in v ? Number((v as { $number: string }).$number) : v);

/** The server's state as the store keeps it: the strategy's vectors as blobs, the rest as JSON. */
export function storedState(state: ServerState, modelVersion: number): CoordinatorState {
  const { name, tensors, ...rest } = state.strategy;
  return { round: state.round, modelVersion, strategy: name, layout: state.layout, weights: state.weights, optimizerState: new Map(Object.entries(tensors)), strategyState: JSON.stringify(rest, keepNonFinite) };
}

/** The server's state from the store. */
export function serverState(stored: CoordinatorState): ServerState {
  const rest = stored.strategyState === null ? { round: 0, scalars: {} } : (JSON.parse(stored.strategyState, readNonFinite) as Omit<StrategyState, 'name' | 'tensors'>);
  return { round: stored.round, layout: stored.layout, weights: stored.weights, strategy: { name: stored.strategy, tensors: Object.fromEntries(stored.optimizerState), ...rest } };
}

/** A connected, authenticated client. */
interface Peer {
  id: string;
  socket: WebSocket;
}

/** Collects one kind of message from a set of clients until all have sent, a target is met, or a deadline passes. */
class Collector<T> {
  readonly got = new Map<string, T>();
  private finish!: () => void;
  readonly done: Promise<void>;
  private readonly timer: ReturnType<typeof setTimeout>;

  constructor(
    readonly expected: Set<string>,
    private readonly enough: number,
    deadlineMs: number,
  ) {
    this.done = new Promise((r) => (this.finish = r));
    this.timer = setTimeout(() => this.finish(), deadlineMs);
    this.check();
  }

  add(id: string, value: T): void {
    this.got.set(id, value);
    this.check();
  }

  /** A client that can no longer send (disconnected). */
  lose(id: string): void {
    this.expected.delete(id);
    this.check();
  }

  private check(): void {
    if (this.got.size >= this.enough || [...this.expected].every((id) => this.got.has(id))) {
      clearTimeout(this.timer);
      this.finish();
    }
  }
}

/** What the round is waiting for from its clients, and from whom. */
interface OpenStage {
  round: number;
  kind: 'update' | 'AdvertiseKeys' | 'ShareKeys' | 'MaskedInputCollection' | 'Unmasking' | 'evaluation';
  collector: Collector<WireMessage>;
}

export class Coordinator {
  readonly port: number;
  readonly version: number;
  readonly rounds: CoordinatorRound[] = [];
  private readonly options: CoordinatorOptions;
  private readonly wss: WebSocketServer;
  private readonly http: Server;
  /** What the coordinator saw of the last secure round's updates: each masked input's first bytes. */
  private maskedPreview: Record<string, string> = {};
  /** The last federated evaluation, pooled. */
  private lastEvaluation: { round: number; clients: number; examples: number; metrics: Record<string, number> } | null = null;
  private readonly peers = new Map<string, Peer>();
  /** plainUpdateBytes by the number of digits of the round. */
  private readonly plainUpdateSizes = new Map<number, number>();
  private stage: OpenStage | null = null;
  private bytesUp = 0;
  private readonly log: (line: string) => void;

  private constructor(options: CoordinatorOptions, wss: WebSocketServer, http: Server, port: number) {
    this.options = options;
    this.wss = wss;
    this.http = http;
    this.port = port;
    this.version = modelVersion(options.server.layout);
    this.log = options.log ?? ((line) => console.log(`[coordinator] ${line}`));
    wss.on('connection', (socket) => this.accept(socket));
  }

  /**
   * Resumes from the store's last committed round (or starts at round 0) and listens on
   * host:port (port 0: any free port). Only loopback unless a host is given.
   */
  static async start(options: CoordinatorOptions & { port: number; host?: string }): Promise<Coordinator> {
    const op = 'Coordinator.start';
    const { server, store } = options;
    if (!Number.isInteger(options.target) || options.target < server.required) throw new Error(`${op}: target ${options.target} must be an integer >= the ${server.required} reports a round needs (minClients, or what ${server.strategy.name} needs)`);
    const overselect = options.overselect ?? 1.3;
    if (!(overselect >= 1)) throw new Error(`${op}: overselect ${overselect} must be >= 1`);
    if (!(options.roundDeadlineMs > 0)) throw new Error(`${op}: roundDeadlineMs ${options.roundDeadlineMs} must be > 0`);
    if (options.secureAggregation && server.strategy.needsIndividualUpdates) throw new Error(`${op}: ${server.strategy.name} needs each client's update; secure aggregation gives the server only their sum`);
    const saved = store.load();
    if (saved) {
      if (saved.strategy !== server.strategy.name) throw new Error(`${op}: the store was written by ${saved.strategy}; this coordinator runs ${server.strategy.name}`);
      server.loadState(serverState(saved));
    }
    const maxPayload = options.maxFrameBytes ?? 64 * 2 ** 20;
    // One port: WebSocket upgrades for clients, GET /status (JSON) for the coordinator's page.
    let coordinator: Coordinator | null = null;
    const http = createServer((req, res) => {
      const found = req.method === 'GET' && req.url === '/status' && coordinator;
      res.writeHead(found ? 200 : 404, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'cache-control': 'no-store' });
      res.end(found ? JSON.stringify(coordinator!.status()) : '{"error":"not found"}');
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
    });
    const wss = new WebSocketServer({ server: http, maxPayload });
    const address = http.address();
    const c = new Coordinator(options, wss, http, typeof address === 'object' && address ? address.port : options.port);
    coordinator = c;
    c.log(`listening on ws://${options.host ?? '127.0.0.1'}:${c.port}, model ${options.modelName} (version ${c.version}), ${saved ? `resuming after round ${saved.round}` : 'starting at round 1'}`);
    return c;
  }

  /** The clients connected now. */
  get connected(): string[] {
    return [...this.peers.keys()];
  }

  /** Resolves once at least `count` clients are connected; rejects after timeoutMs. */
  async waitForClients(count: number, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.peers.size < count) {
      if (Date.now() > until) throw new Error(`Coordinator: ${this.peers.size} clients connected after ${timeoutMs} ms; ${count} needed`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops listening and closes every connection; with `farewell`, clients are told the federation is over (bye), not to reconnect. */
  async close(farewell = false): Promise<void> {
    for (const p of this.peers.values()) {
      if (farewell) this.sendTo(p.socket, { type: 'bye' });
      p.socket.close(1001, 'coordinator stopping');
    }
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  /** What the coordinator's page shows: rounds, clients, bytes, and all the server sees of secure updates. */
  status(): Record<string, unknown> {
    return {
      model: this.options.modelName,
      modelVersion: this.version,
      round: this.options.server.round,
      strategy: this.options.server.strategy.name,
      secure: Boolean(this.options.secureAggregation),
      connected: this.connected,
      // Every committed round from the store (a restarted coordinator shows those before it too); what only this process measured where it has it.
      rounds: this.options.store.roundLog().map((e) => {
        const seen = this.rounds.find((r) => r.round === e.round);
        return { round: e.round, sampled: e.sampled.length, accepted: e.reported.length - e.rejected.length, dropped: e.dropped.length, rejected: e.rejected.length, frameBytesDown: e.bytesDown, frameBytesUp: e.bytesUp, seconds: e.seconds, aggregated: seen?.aggregated ?? null, trainLoss: seen?.trainLoss ?? null };
      }),
      maskedPreview: this.maskedPreview,
      evaluation: this.lastEvaluation,
    };
  }

  private reject(id: string, reason: string): void {
    this.log(`client ${id}: rejected: ${reason}`);
  }

  private accept(socket: WebSocket): void {
    let peer: Peer | null = null;
    socket.on('message', (data, isBinary) => {
      const bytes = data instanceof Buffer ? data : Buffer.concat(data as Buffer[]);
      let message: WireMessage;
      try {
        if (!isBinary) throw new Error('a text frame; frames are binary');
        message = decodeFrame(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { maxBytes: this.options.maxFrameBytes });
      } catch (e) {
        this.reject(peer?.id ?? 'unauthenticated', `unreadable frame: ${e instanceof Error ? e.message : String(e)}`);
        this.sendTo(socket, { type: 'error', reason: 'unreadable frame' });
        socket.close(1003, 'unreadable frame');
        return;
      }
      if (!peer) {
        peer = this.admit(socket, message);
        return;
      }
      this.bytesUp += bytes.byteLength;
      this.receive(peer, message);
    });
    socket.on('close', () => {
      if (peer && this.peers.get(peer.id) === peer) {
        this.peers.delete(peer.id);
        this.stage?.collector.lose(peer.id);
        this.log(`client ${peer.id} disconnected`);
      }
    });
    socket.on('error', (e) => this.log(`socket error (${peer?.id ?? 'unauthenticated'}): ${e.message}`));
  }

  /** The first frame must be a hello with an enrolled id and its token, for this model. */
  private admit(socket: WebSocket, m: WireMessage): Peer | null {
    const refuse = (who: string, reason: string) => {
      this.reject(who, reason);
      // The same answer whatever was wrong with the credentials, so that a guesser learns nothing.
      this.sendTo(socket, { type: 'error', reason: reason.startsWith('auth') ? 'not admitted' : reason });
      socket.close(1008, 'not admitted');
      return null;
    };
    if (m.type !== 'hello') return refuse('unauthenticated', `sent ${m.type} before hello`);
    const auth = this.options.store.authenticate(m.clientId, m.token);
    if (!auth.ok) return refuse(m.clientId, `auth: ${auth.reason}`);
    if (m.model !== this.options.modelName) return refuse(m.clientId, `it runs model ${m.model}; this coordinator trains ${this.options.modelName}`);
    const old = this.peers.get(m.clientId);
    if (old) {
      // A reconnect: the newer connection wins, and the older one's round work is dropped.
      this.peers.delete(m.clientId);
      this.stage?.collector.lose(m.clientId);
      old.socket.close(1000, 'replaced by a newer connection');
    }
    const peer = { id: m.clientId, socket };
    this.peers.set(peer.id, peer);
    this.sendTo(socket, { type: 'welcome', clientId: peer.id, capabilities: ['secagg', 'q8'] });
    this.log(`client ${peer.id} connected (${this.peers.size} now)`);
    return peer;
  }

  private sendTo(socket: WebSocket, message: WireMessage | Uint8Array): number {
    const frame = message instanceof Uint8Array ? message : encodeFrame(message);
    if (socket.readyState === socket.OPEN) socket.send(frame);
    return frame.byteLength;
  }

  /** Routes a frame to the stage that waits for it, or rejects it with the reason. */
  private receive(peer: Peer, m: WireMessage): void {
    if (m.type === 'error') {
      this.log(`client ${peer.id} reports an error: ${m.reason}`);
      this.stage?.collector.lose(peer.id);
      return;
    }
    const stage = this.stage;
    const kind = m.type === 'secagg' ? m.stage : m.type;
    const round = 'round' in m && typeof m.round === 'number' ? m.round : null;
    if (!stage || stage.kind !== kind) return this.reject(peer.id, `a ${kind} frame for round ${round}, which nothing is waiting for (late, or out of order)`);
    if (round !== stage.round) return this.reject(peer.id, `a ${kind} frame for round ${round}; the coordinator is in round ${stage.round}`);
    if ('modelVersion' in m && m.modelVersion !== this.version) return this.reject(peer.id, `a ${kind} frame for model version ${m.modelVersion}; the model is version ${this.version}`);
    if (!stage.collector.expected.has(peer.id)) return this.reject(peer.id, `a ${kind} frame, but it is not in this round's ${kind} stage`);
    if (stage.collector.got.has(peer.id)) return this.reject(peer.id, `a second ${kind} frame this round`);
    stage.collector.add(peer.id, m);
  }

  /** Sends to each client and waits for their answers of `kind` (at least `enough` of them end it early). */
  private async exchange(round: number, kind: OpenStage['kind'], to: readonly string[], frames: (id: string) => Uint8Array | null, enough: number, deadlineMs: number): Promise<{ got: Map<string, WireMessage>; bytesDown: number }> {
    const collector = new Collector<WireMessage>(new Set(to.filter((id) => this.peers.has(id))), enough, deadlineMs);
    this.stage = { round, kind, collector };
    let bytesDown = 0;
    for (const id of to) {
      const frame = frames(id);
      const peer = this.peers.get(id);
      if (frame && peer) bytesDown += this.sendTo(peer.socket, frame);
    }
    await collector.done;
    this.stage = null;
    return { got: collector.got, bytesDown };
  }

  /**
   * Runs the next round: selects clients among those connected (at least the reports the round
   * needs must be connected), sends the model, collects and aggregates, and commits the state.
   */
  async runRound(): Promise<CoordinatorRound> {
    const { server } = this.options;
    const op = 'Coordinator.runRound';
    const round = server.round + 1;
    const started = performance.now();
    const available = this.connected.sort();
    if (available.length < server.required) throw new Error(`${op}: round ${round}: ${available.length} clients connected; a round needs ${server.required}`);
    const size = Math.min(available.length, Math.ceil((this.options.overselect ?? 1.3) * this.options.target));
    const order = permutation(available.length, server.seed * 100003 + round);
    const sampled = Array.from(order.subarray(0, size), (i) => available[i]!);
    const message = server.globalModel(round);
    this.bytesUp = 0;
    try {
      const weights = namedFromFlat(server.layout, await message.weights.data());
      const secure = this.secureSettings(round, sampled.length);
      const roundFrame = encodeFrame({ type: 'round', modelVersion: this.version, config: message.config, weights, secagg: secure ? secAggFields(secure) : null });
      this.log(`round ${round}: ${sampled.length} of ${available.length} clients selected (target ${this.options.target} reports)${secure ? ', secure aggregation' : ''}`);
      let report: RoundReport;
      let bytesDown: number;
      let secAggSeconds = 0;
      if (!secure) {
        const r = await this.exchange(round, 'update', sampled, () => roundFrame, this.options.target, this.options.roundDeadlineMs);
        bytesDown = r.bytesDown;
        const updates = [...r.got].map(([id, m]) => this.clientUpdate(id, m as Extract<WireMessage, { type: 'update' }>));
        report = await server.aggregate(message, sampled, updates);
      } else {
        const s = await this.secureRound(round, sampled, roundFrame, secure.config);
        bytesDown = s.bytesDown;
        secAggSeconds = s.seconds;
        report = s.result
          ? await server.aggregateSum(message, sampled, { contributors: s.result.survivors.map(String), sum: s.result.sum, totalWeight: s.result.weightTotal, bytesUp: this.bytesUp, trainLoss: s.trainLoss })
          : await server.aggregateSum(message, sampled, { contributors: [], sum: new Float32Array(server.layout.length), totalWeight: 0, bytesUp: this.bytesUp, trainLoss: NaN });
      }
      const seconds = (performance.now() - started) / 1000;
      const plainBytes = roundFrame.byteLength * sampled.length + this.plainUpdateBytes(round) * report.accepted.length;
      const record: CoordinatorRound = { ...report, secure: secure !== null, frameBytesDown: bytesDown, frameBytesUp: this.bytesUp, plainBytes, seconds, secAggSeconds };
      await this.commit(record);
      this.rounds.push(record);
      this.log(`round ${round}: ${record.accepted.length} accepted, ${record.dropped.length} dropped, ${record.rejected.length} rejected, ${record.aggregated ? 'aggregated' : 'model unchanged'}, ${seconds.toFixed(1)} s`);
      return record;
    } finally {
      server.release(message);
    }
  }

  /** Federated evaluation: every connected client scores the global model on its own held-out data; their answers by the deadline. */
  async evaluate(deadlineMs: number): Promise<{ clientId: string; examples: number; metrics: Readonly<Record<string, number>> }[]> {
    const { server } = this.options;
    const round = server.round;
    const message = server.globalModel(round);
    try {
      const frame = encodeFrame({ type: 'evaluate', round, modelVersion: this.version, weights: namedFromFlat(server.layout, await message.weights.data()) });
      const clients = this.connected;
      const { got } = await this.exchange(round, 'evaluation', clients, () => frame, clients.length, deadlineMs);
      const results = [...got].map(([clientId, m]) => {
        const e = m as Extract<WireMessage, { type: 'evaluation' }>;
        return { clientId, examples: e.examples, metrics: e.metrics };
      });
      const examples = results.reduce((n, r) => n + r.examples, 0);
      const names = [...new Set(results.flatMap((r) => Object.keys(r.metrics)))];
      // Pooled over the clients' held-out examples (each client's rate weighted by its count).
      const metrics = Object.fromEntries(names.map((k) => [k, results.reduce((s, r) => s + (r.metrics[k] ?? NaN) * r.examples, 0) / examples]));
      this.lastEvaluation = { round, clients: results.length, examples, metrics };
      return results;
    } finally {
      server.release(message);
    }
  }

  /** The bytes of a plain f32 update frame for this model (the same for every client). */
  private plainUpdateBytes(round: number): number {
    // The frame's size changes only with the digits of the round in its header: encode once per length.
    const digits = String(round).length;
    let bytes = this.plainUpdateSizes.get(digits);
    if (bytes === undefined) {
      const zeros = new Float32Array(this.options.server.layout.length);
      bytes = encodeFrame({ type: 'update', round, modelVersion: this.version, examples: 1, loss: 0, delta: { kind: 'f32', tensors: namedFromFlat(this.options.server.layout, zeros) } }).byteLength;
      this.plainUpdateSizes.set(digits, bytes);
    }
    return bytes;
  }

  /** The round's secure aggregation settings (DP-FedAvg's clip and noise share included), or null without it. */
  private secureSettings(round: number, clients: number): RoundSecAgg | null {
    const s = this.options.secureAggregation;
    if (!s) return null;
    const strategy = this.options.server.strategy;
    const dp = strategy instanceof DPFedAvg ? strategy.distributedDp() : null;
    const config: SecAggConfig = { session: `round-${round}`, clients, length: this.options.server.layout.length, range: s.range, maxWeight: dp ? 1 : (s.maxWeight ?? 1), ...(s.threshold ? { threshold: s.threshold } : {}) };
    return { config, ...(dp ? { clipNorm: dp.clipNorm, noiseStddev: dp.noiseStd } : {}) };
  }

  /** Bonawitz et al. 2017's rounds, routed: the sum of the survivors' updates, or null when too few stayed. */
  private async secureRound(round: number, sampled: readonly string[], roundFrame: Uint8Array, config: SecAggConfig): Promise<{ result: SecAggResult | null; bytesDown: number; seconds: number; trainLoss: number }> {
    const sa = new SecAggServer(config);
    const stageMs = this.options.stageDeadlineMs ?? 10_000;
    let bytesDown = 0;
    let seconds = 0;
    const frame = (stage: string, message: object) => encodeFrame({ type: 'secagg', round, stage, fields: packSecAgg(message) });
    /** Feeds what came to the protocol; a message it refuses is that client's rejection. */
    const feed = (got: Map<string, WireMessage>) => {
      const fed: string[] = [];
      for (const [id, m] of got) {
        try {
          const message = unpackSecAgg<SecAggClientMessage>((m as Extract<WireMessage, { type: 'secagg' }>).fields);
          if (String(message.from) !== id) throw new Error(`it signs as ${String(message.from)}`);
          sa.receive(message);
          fed.push(id);
        } catch (e) {
          this.reject(id, `secure aggregation: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      return fed;
    };
    const timed = async <T>(f: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await f();
      } finally {
        seconds += (performance.now() - t) / 1000;
      }
    };
    try {
      // Round 0: the model and the protocol's settings go out; the keys come back.
      const keys = await timed(() => this.exchange(round, 'AdvertiseKeys', sampled, () => roundFrame, sampled.length, stageMs));
      bytesDown += keys.bytesDown;
      feed(keys.got);
      const keyList = sa.endAdvertiseKeys();
      const u1 = keyList.clients.map((c) => String(c.id));
      const keyListFrame = frame('AdvertiseKeys', keyList);
      // Round 1: the key list out, the encrypted shares back.
      const shares = await timed(() => this.exchange(round, 'ShareKeys', u1, () => keyListFrame, u1.length, stageMs));
      bytesDown += shares.bytesDown;
      feed(shares.got);
      const routed = new Map(sa.endShareKeys().map((m) => [String(m.to), m]));
      // Round 2: each client's shares out; local training ends with the masked update (the round's deadline).
      const masked = await this.exchange(round, 'MaskedInputCollection', [...routed.keys()], (id) => frame('ShareKeys', routed.get(id)!), this.options.target, this.options.roundDeadlineMs);
      bytesDown += masked.bytesDown;
      const losses = [...masked.got.values()].map((m) => Number((m as Extract<WireMessage, { type: 'secagg' }>).fields.loss));
      this.maskedPreview = Object.fromEntries(
        [...masked.got].map(([id, m]) => {
          const bytes = Object.values((m as Extract<WireMessage, { type: 'secagg' }>).fields).find((v): v is Uint8Array => v instanceof Uint8Array);
          return [id, bytes ? Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join(' ') : ''];
        }),
      );
      feed(masked.got);
      // Round 4: survivors and dropped out, the shares that unmask the sum back.
      const request = sa.endMaskedInputCollection();
      const requestFrame = frame('Unmasking', request);
      const survivors = request.survivors.map(String);
      const unmasking = await timed(() => this.exchange(round, 'Unmasking', survivors, () => requestFrame, survivors.length, stageMs));
      bytesDown += unmasking.bytesDown;
      feed(unmasking.got);
      const result = await timed(() => sa.endUnmasking());
      const finite = losses.filter(Number.isFinite);
      return { result, bytesDown, seconds, trainLoss: finite.length ? finite.reduce((s, l) => s + l, 0) / finite.length : NaN };
    } catch (e) {
      this.log(`round ${round}: secure aggregation failed: ${e instanceof Error ? e.message : String(e)}; the model is unchanged`);
      return { result: null, bytesDown, seconds, trainLoss: NaN };
    }
  }

  /** A plain update frame as part 1's ClientUpdate (tensors on the coordinator's engine; the server frees them). */
  private clientUpdate(clientId: string, m: Extract<WireMessage, { type: 'update' }>): ClientUpdate {
    const { engine, server } = this.options;
    const base = { clientId, round: m.round, examples: m.examples, metrics: { loss: m.loss } };
    if (m.delta.kind === 'f32') {
      let flat: Float32Array;
      try {
        flat = flatFromNamed(server.layout, m.delta.tensors);
      } catch (e) {
        // The server rejects an update of the wrong length, naming it; an empty delta says why.
        this.reject(clientId, `its update does not fit the model: ${e instanceof Error ? e.message : String(e)}`);
        flat = new Float32Array(0);
      }
      return { ...base, delta: flat.length ? engine.keep(engine.tensor(flat, [flat.length], `update.${clientId}`)) : null, encoded: null, bytes: 4 * flat.length };
    }
    const { codes, scales, blockSize } = m.delta;
    // Code words: four codes per u32, padded, in an f32 tensor's bytes (quantize.ts's layout).
    const words = new Uint8Array(4 * Math.ceil(codes.length / 4));
    words.set(codes);
    const encoded = {
      codes: engine.keep(engine.tensor(new Float32Array(words.buffer), [words.length / 4], `update.${clientId}.codes`)),
      scales: engine.keep(engine.tensor(scales, [scales.length / 2, 2], `update.${clientId}.scales`)),
      n: codes.length,
      blockSize,
      bytes: codes.length + 4 * scales.length,
    };
    return { ...base, delta: null, encoded, bytes: encoded.bytes };
  }

  /** Writes the end of the round: weights, strategy and accountant state, and the round's log, in one transaction. */
  private async commit(record: CoordinatorRound): Promise<void> {
    this.options.store.commitRound(
      storedState(await this.options.server.saveState(), this.version),
      {
        round: record.round,
        sampled: record.sampled,
        reported: [...record.accepted, ...record.rejected.map((r) => r.clientId)],
        dropped: record.dropped,
        rejected: record.rejected,
        bytesDown: record.frameBytesDown,
        bytesUp: record.frameBytesUp,
        seconds: record.seconds,
      },
    );
  }
}
