// A federated client over the network, for browsers and Node: it connects to a coordinator with a
// WebSocket, says who it is (the token enrolment issued), and then answers what the coordinator
// asks, one frame (wire.ts) each way: a `round` is trained on with the FederatedClient (its data
// never leave it; only the change of the trainable weights goes back), an `evaluate` is scored on
// its own held-out data, and with secure aggregation (secagg.ts) the update goes back only masked,
// after the key and share exchanges the coordinator routes. Key exchanges are answered while the
// local training runs; everything that touches the model (training, evaluation) runs one at a time.
import type { Engine } from '../../engine/engine.js';
import { FederatedClient } from './client.js';
import { disposeUpdate, f32Bytes, fnv1a, trainableLayout, type GlobalModel, type PayloadLayout } from './protocol.js';
import { SecAggClient, type KeyListMessage, type SecAggConfig, type SharesForClientMessage, type UnmaskingRequest } from './secagg.js';
import { decodeFrame, encodeFrame, flatFromNamed, namedFromFlat, type NamedTensors, type SecAggFields, type UpdateDelta, type WireMessage } from './wire.js';

/** What a client needs of a WebSocket: the browser's and the `ws` package's both have it. */
export interface SocketLike {
  binaryType: string;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: { data?: unknown; code?: number; reason?: string; message?: string }) => void): void;
}

/** The capabilities a client announces: secure aggregation, 8-bit updates. */
export const CLIENT_CAPABILITIES: readonly string[] = ['secagg', 'q8'];

/**
 * A model's version on the wire: a hash of its trainable parameters' names and shapes, so that a
 * client never trains weights of another architecture and an update for another one is refused.
 */
export function modelVersion(layout: PayloadLayout): number {
  return fnv1a(layout.entries.map((e) => `${e.name}:${e.shape.join('x')}`).join(';'));
}

/** Secure aggregation's messages as wire fields: the structure as JSON, each byte string as a field of its own. */
export function packSecAgg(message: object): SecAggFields {
  const fields: Record<string, Uint8Array | string> = {};
  let n = 0;
  fields.json = JSON.stringify(message, (_key, value: unknown) => {
    if (!(value instanceof Uint8Array)) return value;
    const name = `b${n++}`;
    fields[name] = value;
    return { $bytes: name };
  });
  return fields;
}

/** The message packSecAgg packed (the receiving side checks its contents, as secagg.ts does). */
export function unpackSecAgg<T>(fields: SecAggFields): T {
  const json = fields.json;
  if (typeof json !== 'string') throw new Error('unpackSecAgg: the fields carry no json');
  return JSON.parse(json, (_key, value: unknown) => {
    if (typeof value !== 'object' || value === null || !('$bytes' in value)) return value;
    const bytes = fields[(value as { $bytes: string }).$bytes];
    if (!(bytes instanceof Uint8Array)) throw new Error(`unpackSecAgg: field ${(value as { $bytes: string }).$bytes} is not a byte string`);
    return bytes;
  }) as T;
}

/** The secure aggregation settings of a round message's fields: the protocol's config and the client's treatment of its update. */
export interface RoundSecAgg {
  config: SecAggConfig;
  /** DP under secure aggregation: each client clips to this norm and adds its share of the noise. */
  clipNorm?: number;
  noiseStddev?: number;
}

export function secAggFields(s: RoundSecAgg): SecAggFields {
  const fields: Record<string, number | string> = { ...s.config } as Record<string, number | string>;
  if (s.clipNorm !== undefined) fields.clipNorm = s.clipNorm;
  if (s.noiseStddev !== undefined) fields.noiseStddev = s.noiseStddev;
  return fields;
}

/** The secure aggregation settings a round message's fields carry (secAggFields's inverse). */
export function roundSecAgg(fields: SecAggFields): RoundSecAgg {
  const { clipNorm, noiseStddev, ...config } = fields as Record<string, number | string>;
  return { config: config as unknown as SecAggConfig, clipNorm: clipNorm as number | undefined, noiseStddev: noiseStddev as number | undefined };
}

export interface RemoteClientOptions {
  /** ws:// or wss:// address of the coordinator. */
  url: string;
  /** The token enrolment issued to this client (the client's id is its FederatedClient's). */
  token: string;
  /** The model's name as the coordinator knows it. */
  model: string;
  client: FederatedClient;
  engine: Engine;
  /** Makes the socket (default: the global WebSocket, as in browsers; in Node pass the `ws` package's). */
  socket?: (url: string) => SocketLike;
  /** Sees every frame the client sends, before it goes (tests inspect them). */
  onSend?: (frame: Uint8Array, message: WireMessage) => void;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** Refuse frames larger than this (default wire.ts's). */
  maxFrameBytes?: number;
  /** Counts into this (keepConnected keeps one across reconnections); default a fresh one. */
  stats?: RemoteClientStats;
}

const noStats = (): RemoteClientStats => ({ rounds: 0, evaluations: 0, bytesSent: 0, bytesReceived: 0, secAggMs: 0 });

/** What a remote client did so far. */
export interface RemoteClientStats {
  rounds: number;
  evaluations: number;
  bytesSent: number;
  bytesReceived: number;
  /** Time in secure aggregation's own work (key agreement, sharing, masking, unmasking). */
  secAggMs: number;
}

/** The round a client is in: its secure aggregation state and the shares, which may come before training ends. */
interface RoundInProgress {
  round: number;
  secagg: SecAggClient | null;
  options: RoundSecAgg | null;
  shares: Promise<SharesForClientMessage>;
  resolveShares: (m: SharesForClientMessage) => void;
}

export class RemoteClient {
  readonly stats: RemoteClientStats;
  /** Settles when the connection closes: the coordinator's reason, or the error that ended it. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly options: RemoteClientOptions;
  private readonly socket: SocketLike;
  private readonly layout: PayloadLayout;
  private readonly version: number;
  private current: RoundInProgress | null = null;
  /** Training and evaluation, one at a time (they load weights into the same model). */
  private modelWork: Promise<void> = Promise.resolve();
  /** Set when the connection closes: work that has not started by then is skipped (nothing could be answered). */
  private disconnected = false;
  private welcomed!: (ok: boolean, reason: string) => void;
  /** Whether the coordinator ended the federation (bye): nothing to reconnect for. */
  finished = false;
  /** The last global weights the coordinator sent (a round's or an evaluation's), laid out as the client's trainable layout. */
  lastGlobal: Float32Array | null = null;

  private constructor(options: RemoteClientOptions) {
    this.options = options;
    this.stats = options.stats ?? noStats();
    this.layout = trainableLayout(options.client.model);
    this.version = modelVersion(this.layout);
    const make = options.socket ?? ((url: string) => new WebSocket(url) as unknown as SocketLike);
    this.socket = make(options.url);
    this.socket.binaryType = 'arraybuffer';
    this.closed = new Promise((resolve) =>
      this.socket.addEventListener('close', (e) => {
        this.disconnected = true;
        resolve({ code: e.code ?? 1006, reason: e.reason ?? '' });
      }),
    );
  }

  /** Connects and says hello; resolves once the coordinator admits the client, rejects with its reason otherwise. */
  static async connect(options: RemoteClientOptions): Promise<RemoteClient> {
    const c = new RemoteClient(options);
    const admitted = new Promise<void>((resolve, reject) => {
      c.welcomed = (ok, reason) => (ok ? resolve() : reject(new Error(`RemoteClient ${options.client.id}: the coordinator at ${options.url} refused it: ${reason}`)));
      c.closed.then(({ code, reason }) => reject(new Error(`RemoteClient ${options.client.id}: the connection to ${options.url} closed before it was admitted (${code}${reason ? ` ${reason}` : ''})`)));
    });
    c.socket.addEventListener('error', (e) => c.log(`socket error: ${e.message ?? 'unknown'}`));
    c.socket.addEventListener('open', () => c.send({ type: 'hello', clientId: options.client.id, token: options.token, model: options.model, capabilities: CLIENT_CAPABILITIES }));
    c.socket.addEventListener('message', (e) => c.receive(e.data));
    await admitted;
    return c;
  }

  close(): void {
    this.socket.close(1000, 'client closed');
  }

  /**
   * Settles once no training or evaluation of this connection runs: a closed connection's round
   * may still be training the model, and a new connection must not train it alongside.
   */
  async idle(): Promise<void> {
    for (let work = this.modelWork; ; work = this.modelWork) {
      await work;
      if (work === this.modelWork) return;
    }
  }

  private log(line: string): void {
    this.options.log?.(`${this.options.client.id}: ${line}`);
  }

  private send(message: WireMessage): void {
    const frame = encodeFrame(message);
    this.options.onSend?.(frame, message);
    this.stats.bytesSent += frame.byteLength;
    this.socket.send(frame);
  }

  private receive(data: unknown): void {
    let message: WireMessage;
    try {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
      if (!bytes) throw new Error(`a ${typeof data} message; frames are binary`);
      this.stats.bytesReceived += bytes.byteLength;
      message = decodeFrame(bytes, { maxBytes: this.options.maxFrameBytes });
    } catch (e) {
      this.log(`unreadable frame from the coordinator: ${e instanceof Error ? e.message : String(e)}`);
      this.socket.close(1003, 'unreadable frame');
      return;
    }
    this.handle(message).catch((e: unknown) => {
      const reason = e instanceof Error ? e.message : String(e);
      this.log(`failed on ${message.type}: ${reason}`);
      this.send({ type: 'error', reason: `${message.type}: ${reason}` });
    });
  }

  private async handle(m: WireMessage): Promise<void> {
    switch (m.type) {
      case 'welcome':
        this.welcomed(true, '');
        return;
      case 'error':
        this.log(`the coordinator says: ${m.reason}`);
        this.welcomed(false, m.reason);
        return;
      case 'round':
        return this.train(m);
      case 'secagg':
        return this.secAggStep(m.round, m.stage, m.fields);
      case 'evaluate':
        return this.evaluate(m);
      case 'bye':
        this.finished = true;
        this.close();
        return;
      default:
        throw new Error(`a client does not expect ${m.type} frames`);
    }
  }

  /** The round's global model as a GlobalModel of this client's engine (the caller frees its weights); flatFromNamed refuses other names or shapes. */
  private globalModel(weights: NamedTensors, config: GlobalModel['config']): GlobalModel {
    const flat = flatFromNamed(this.layout, weights);
    this.lastGlobal = flat;
    const { engine } = this.options;
    return { config, layout: this.layout, weights: engine.keep(engine.tensor(flat, [this.layout.length], `remote.round${config.round}`)), bytes: f32Bytes(this.layout.values) };
  }

  private async train(m: Extract<WireMessage, { type: 'round' }>): Promise<void> {
    const { client, engine } = this.options;
    const round = m.config.round;
    if (m.modelVersion !== this.version) throw new Error(`round ${round} is for model version ${m.modelVersion}; this client's model is version ${this.version}`);
    let resolveShares!: (s: SharesForClientMessage) => void;
    const shares = new Promise<SharesForClientMessage>((r) => (resolveShares = r));
    const options = m.secagg ? roundSecAgg(m.secagg) : null;
    const state: RoundInProgress = { round, secagg: options ? new SecAggClient(client.id, options.config) : null, options, shares, resolveShares };
    this.current = state;
    if (state.secagg) {
      const started = performance.now();
      const advertise = await state.secagg.advertiseKeys();
      this.stats.secAggMs += performance.now() - started;
      this.send({ type: 'secagg', round, stage: 'AdvertiseKeys', fields: packSecAgg(advertise) });
    }
    const work = this.modelWork.then(async () => {
      if (this.current !== state || this.disconnected) return;
      const message = this.globalModel(m.weights, m.config);
      let delta: Float32Array | null = null;
      let encoded: UpdateDelta | null = null;
      let examples: number;
      let loss: number;
      try {
        const update = await client.fit(engine, message);
        try {
          examples = update.examples;
          loss = update.metrics.loss;
          if (update.delta) delta = await update.delta.data();
          else {
            const e = update.encoded!;
            const words = await e.codes.data();
            encoded = { kind: 'q8', blockSize: e.blockSize, codes: new Uint8Array(words.buffer, words.byteOffset, e.n).slice(), scales: await e.scales.data() };
          }
        } finally {
          disposeUpdate(update);
        }
      } finally {
        message.weights.dispose();
      }
      this.stats.rounds++;
      this.log(`round ${round}: trained on ${examples} examples, loss ${loss.toFixed(4)}`);
      if (this.current !== state) return;
      if (!state.secagg) {
        this.send({ type: 'update', round, modelVersion: this.version, examples, loss, delta: encoded ?? { kind: 'f32', tensors: namedFromFlat(this.layout, delta!) } });
        return;
      }
      if (!delta) throw new Error('secure aggregation masks f32 updates; the round asked for 8-bit ones too');
      const received = await state.shares;
      const started = performance.now();
      const weight = Math.min(examples, state.options!.config.maxWeight ?? 1);
      const masked = await state.secagg.maskInput(received, delta, { weight, clipNorm: state.options!.clipNorm, noiseStddev: state.options!.noiseStddev });
      this.stats.secAggMs += performance.now() - started;
      // The training loss rides in the clear beside the masked update (a number, not the update); the coordinator reports its mean.
      this.send({ type: 'secagg', round, stage: 'MaskedInputCollection', fields: { ...packSecAgg(masked), loss } });
    });
    this.modelWork = work.catch(() => {});
    await work;
  }

  private async secAggStep(round: number, stage: string, fields: SecAggFields): Promise<void> {
    const state = this.current;
    if (!state || state.round !== round || !state.secagg) throw new Error(`secure aggregation ${stage} for round ${round}, which this client is not in`);
    const started = performance.now();
    try {
      if (stage === 'AdvertiseKeys') {
        const reply = await state.secagg.shareKeys(unpackSecAgg<KeyListMessage>(fields));
        this.send({ type: 'secagg', round, stage: 'ShareKeys', fields: packSecAgg(reply) });
      } else if (stage === 'ShareKeys') {
        state.resolveShares(unpackSecAgg<SharesForClientMessage>(fields));
      } else if (stage === 'Unmasking') {
        const reply = await state.secagg.unmask(unpackSecAgg<UnmaskingRequest>(fields));
        this.send({ type: 'secagg', round, stage: 'Unmasking', fields: packSecAgg(reply) });
      } else throw new Error(`unknown secure aggregation stage ${stage}`);
    } finally {
      this.stats.secAggMs += performance.now() - started;
    }
  }

  private async evaluate(m: Extract<WireMessage, { type: 'evaluate' }>): Promise<void> {
    const { client, engine } = this.options;
    const work = this.modelWork.then(async () => {
      if (this.disconnected) return;
      const message = this.globalModel(m.weights, { round: m.round, epochs: 1, batchSize: 1, learningRate: 1, proximalMu: 0, seed: 0, compression: null });
      try {
        const r = await client.evaluate(engine, message);
        this.stats.evaluations++;
        const metrics: Record<string, number> = { accuracy: r.accuracy, loss: r.loss };
        if (r.top3 !== undefined) metrics.top3 = r.top3;
        this.send({ type: 'evaluation', round: m.round, modelVersion: this.version, examples: r.examples, metrics });
      } finally {
        message.weights.dispose();
      }
    });
    this.modelWork = work.catch(() => {});
    await work;
  }
}

/**
 * Keeps a client in the federation: connects, and whenever the connection is lost (the coordinator
 * restarted, the network dropped) connects again after `retryMs`, once the lost connection's
 * training is over (the model is the same), until the coordinator says bye
 * or stop() is called. `finished` settles then; a refusal (a wrong token) rejects it.
 */
export function keepConnected(options: RemoteClientOptions & { retryMs?: number; onConnect?: (client: RemoteClient) => void }): { stop(): void; finished: Promise<void>; lastGlobal(): Float32Array | null; stats: RemoteClientStats } {
  const stats = options.stats ?? noStats();
  let stopped = false;
  let current: RemoteClient | null = null;
  let lastGlobal: Float32Array | null = null;
  const retry = () => new Promise((r) => setTimeout(r, options.retryMs ?? 500));
  const loop = async () => {
    while (!stopped) {
      try {
        current = await RemoteClient.connect({ ...options, stats });
      } catch (e) {
        if (e instanceof Error && e.message.includes('refused it')) throw e;
        options.log?.(`${options.client.id}: ${e instanceof Error ? e.message : String(e)}; retrying`);
        await retry();
        continue;
      }
      options.onConnect?.(current);
      await current.closed;
      await current.idle();
      lastGlobal = current.lastGlobal ?? lastGlobal;
      if (current.finished) return;
      if (!stopped) await retry();
    }
  };
  return {
    stop() {
      stopped = true;
      current?.close();
    },
    finished: loop(),
    lastGlobal: () => current?.lastGlobal ?? lastGlobal,
    stats,
  };
}

/**
 * After the federation: the client's recall with the last global model it received, then with that
 * model's head fine-tuned on its own training data (FederatedClient.personalise); the model is
 * left personalised.
 */
export async function personaliseAfterFederation(engine: Engine, client: FederatedClient, global: Float32Array, options: { head: readonly string[]; epochs: number; batchSize: number; learningRate: number }): Promise<{ clientId: string; global: number; personalised: number }> {
  const layout = trainableLayout(client.model);
  if (global.length !== layout.length) throw new Error(`personaliseAfterFederation: ${global.length} global weights for a layout of ${layout.length}`);
  const weights = engine.keep(engine.tensor(global, [layout.length], `personalise.${client.id}.global`));
  try {
    const config = { round: 0, epochs: options.epochs, batchSize: options.batchSize, learningRate: options.learningRate, proximalMu: 0, seed: 0, compression: null };
    return await client.personalise(engine, { config, layout, weights, bytes: 0 }, options);
  } finally {
    weights.dispose();
  }
}
