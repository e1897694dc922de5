// The coordinator's protocol tests (tests/node/coordinator.test.ts), one child Node process per
// scenario: a Coordinator on Dawn with a tiny model (one Dense 4 -> 3) and its clients in the same
// process, over real loopback WebSockets (the `ws` package): RemoteClients that train, each with a
// model and an engine context of its own, and raw sockets that send hand-made frames.
//   node coordinator-run.mjs <rounds | dropout | admission | restart-serve | restart-resume> <directory>
// Prints one line of JSON and exits; restart-serve prints its line in the middle of a round and
// waits there to be killed.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from 'webgpu';
import WebSocket from 'ws';
import { Coordinator, type CoordinatorOptions } from '../../server/federated/coordinator.js';
import { CoordinatorStore } from '../../server/federated/store.js';
import {
  decodeFrame,
  Dense,
  DPFedAvg,
  disposeUpdate,
  encodeFrame,
  Engine,
  FedAdam,
  FedAvg,
  FederatedClient,
  FedMedian,
  FederatedServer,
  namedFromFlat,
  randomNormal,
  RdpAccountant,
  secAggSettings,
  Sequential,
  type ClassificationData,
  type GlobalModel,
  type RoundConfig,
  type SecAggConfig,
  type Strategy,
  type WireMessage,
} from '../../src/index.js';
import { keepConnected, RemoteClient, type SocketLike } from '../../src/paradigms/federated/remote.js';

const MODEL = 'dense-4x3';
const SECURE = { range: 1, maxWeight: 100 };
const engine = await Engine.create({ gpu: create(['backend=vulkan']) });
const dir = process.argv[3]!;

const denseModel = (seed: number) => new Sequential({ fc: new Dense(engine, 4, 3, { seed }) });

/** Client k's rows: 8 + 4k of them, so that FedAvg's example weights matter. */
function dataOf(k: number): ClassificationData {
  const count = 8 + 4 * k;
  return { inputs: randomNormal(count * 4, 100 + k), labels: Array.from({ length: count }, (_, i) => (i * 7 + k) % 3), count, features: 4, classes: 3 };
}

function bytesOf(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]);
  const view = data as ArrayBufferView;
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}
const frameName = (m: WireMessage) => (m.type === 'secagg' ? `secagg:${m.stage}` : m.type);
const base64 = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const hex16 = (a: Float32Array) => Array.from(new Uint8Array(a.buffer, a.byteOffset, 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
const maxDifference = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Federation {
  coordinator: Coordinator;
  server: FederatedServer;
  store: CoordinatorStore;
  url: string;
  /** The coordinator's and the server's log lines. */
  log: string[];
  tokens: Map<string, string>;
}

type FederationOptions = Partial<Pick<CoordinatorOptions, 'target' | 'secureAggregation' | 'maxFrameBytes' | 'roundDeadlineMs'>> & {
  strategy?: Strategy;
  /** 8-bit updates (compression.ts) instead of f32. */
  compression?: RoundConfig['compression'];
  /** The store's file (default a fresh one) and, for one that has them enrolled already, the clients' tokens. */
  store?: string;
  tokens?: Map<string, string>;
};

/** A coordinator (FedAvg unless said, no over-selection, target: every client) with `ids` enrolled. */
async function federation(ids: readonly string[], options: FederationOptions = {}): Promise<Federation> {
  const log: string[] = [];
  const store = CoordinatorStore.open(options.store ?? join(mkdtempSync(join(dir, 'store-')), 'coordinator.sqlite'));
  const tokens = options.tokens ?? new Map(ids.map((id) => [id, store.enrol(id)]));
  const server = new FederatedServer(engine, denseModel(1), {
    strategy: options.strategy ?? new FedAvg(),
    fraction: 1,
    minClients: 2,
    seed: 3,
    normFactor: Infinity,
    training: { epochs: 1, batchSize: 4, learningRate: 0.1, proximalMu: 0, compression: options.compression ?? null },
    log: (line) => log.push(`server: ${line}`),
  });
  const coordinator = await Coordinator.start({
    engine,
    server,
    modelName: MODEL,
    store,
    port: 0,
    target: options.target ?? ids.length,
    overselect: 1,
    roundDeadlineMs: options.roundDeadlineMs ?? 20_000,
    stageDeadlineMs: 10_000,
    secureAggregation: options.secureAggregation ?? null,
    maxFrameBytes: options.maxFrameBytes,
    log: (line) => log.push(line),
  });
  return { coordinator, server, store, url: `ws://127.0.0.1:${coordinator.port}`, log, tokens };
}

async function closeFederation(f: Federation): Promise<void> {
  await f.coordinator.close();
  f.store.close();
}

/** A `ws` socket for a RemoteClient that records the frames it receives; `onFrame` sees each first (and may close the socket). */
function recordingSocket(received: string[], onFrame?: (m: WireMessage, socket: WebSocket) => void): (url: string) => SocketLike {
  return (url) => {
    const socket = new WebSocket(url);
    socket.on('message', (data) => {
      const m = decodeFrame(bytesOf(data));
      received.push(frameName(m));
      onFrame?.(m, socket);
    });
    return socket as unknown as SocketLike;
  };
}

/** Connects client k (a model and an engine context of its own); `received` lists the frames it got. */
async function trainingClient(f: Federation, id: string, k: number, client = new FederatedClient({ id, model: denseModel(10 + k), data: dataOf(k) })): Promise<{ remote: RemoteClient; received: string[] }> {
  const received: string[] = [];
  const remote = await RemoteClient.connect({ url: f.url, token: f.tokens.get(id)!, model: MODEL, client, engine: engine.context(), socket: recordingSocket(received) });
  return { remote, received };
}

/** The global weights the next round should give: the float64 weighted mean of the clients' own deltas (client.fit on copies), added to the current weights. */
async function expectedRound(server: FederatedServer, clients: readonly { id: string; k: number }[], maxWeight: number): Promise<{ expected: Float64Array; deltas: Float32Array[] }> {
  const message: GlobalModel = server.globalModel(server.round + 1);
  const context = engine.context();
  try {
    const global = await message.weights.data();
    const sum = new Float64Array(global.length);
    let total = 0;
    const deltas: Float32Array[] = [];
    for (const { id, k } of clients) {
      const update = await new FederatedClient({ id, model: denseModel(50 + k), data: dataOf(k) }).fit(context, message);
      const delta = await update.delta!.data();
      disposeUpdate(update);
      const weight = Math.min(update.examples, maxWeight);
      for (let i = 0; i < sum.length; i++) sum[i]! += weight * delta[i]!;
      total += weight;
      deltas.push(delta);
    }
    return { expected: Float64Array.from(global, (g, i) => g + sum[i]! / total), deltas };
  } finally {
    server.release(message);
  }
}

/** How far a secure round's mean may be from the float64 one: n quantisation steps of the weighted sum, over the weights' total, and f32 rounding. */
function secureTolerance(config: Omit<SecAggConfig, 'session'>, weightTotal: number): number {
  return (config.clients * secAggSettings({ session: 'tolerance', ...config }).step * (config.maxWeight ?? 1)) / weightTotal + 1e-6;
}

/** A client that speaks raw frames over a `ws` socket. */
class RawClient {
  readonly received: WireMessage[] = [];
  readonly closed: Promise<number>;
  private readonly taken = new Map<string, number>();

  private constructor(readonly socket: WebSocket) {
    this.closed = new Promise((r) => socket.on('close', (code) => r(code)));
    socket.on('message', (data) => this.received.push(decodeFrame(bytesOf(data))));
    socket.on('error', () => {});
  }

  /** Opens a socket and, given a first frame, sends it and waits for the coordinator's answer (welcome or error). */
  static async open(url: string, first: WireMessage | null = null): Promise<RawClient> {
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const raw = new RawClient(socket);
    if (first) {
      raw.send(first);
      await until('an answer to the first frame', () => raw.received.length > 0);
    }
    return raw;
  }

  send(m: WireMessage | Uint8Array): void {
    this.socket.send(m instanceof Uint8Array ? m : encodeFrame(m));
  }

  /** The next frame of this kind not yet taken. */
  async next(name: string): Promise<WireMessage> {
    const taken = this.taken.get(name) ?? 0;
    const of = () => this.received.filter((m) => frameName(m) === name);
    await until(`a ${name} frame`, () => of().length > taken);
    this.taken.set(name, taken + 1);
    return of()[taken]!;
  }

  has(name: string): boolean {
    return this.received.some((m) => frameName(m) === name);
  }
}

const hello = (f: Federation, clientId: string, token = f.tokens.get(clientId)!, model = MODEL): WireMessage => ({ type: 'hello', clientId, token, model, capabilities: [] });

/** Secure and plain rounds against the float64 mean of the clients' own deltas; what /status shows of them. */
async function rounds(): Promise<Record<string, unknown>> {
  const ids = ['c0', 'c1', 'c2'];
  const out: Record<string, unknown> = {};
  for (const secure of [true, false]) {
    const f = await federation(ids, { secureAggregation: secure ? SECURE : null });
    const clients = await Promise.all(ids.map((id, k) => trainingClient(f, id, k)));
    const maxWeight = secure ? SECURE.maxWeight : Infinity;
    const { expected, deltas } = await expectedRound(f.server, ids.map((id, k) => ({ id, k })), maxWeight);
    const report = await f.coordinator.runRound();
    const after = (await f.server.saveState()).weights;
    const weightTotal = ids.reduce((s, _, k) => s + Math.min(dataOf(k).count, maxWeight), 0);
    const statusText = await (await fetch(`http://127.0.0.1:${f.coordinator.port}/status`)).text();
    out[secure ? 'secure' : 'plain'] = {
      accepted: report.accepted,
      aggregated: report.aggregated,
      maxError: maxDifference(after, expected),
      tolerance: secure ? secureTolerance({ clients: ids.length, length: f.server.layout.length, ...SECURE }, weightTotal) : 1e-6,
      largestDelta: Math.max(...deltas.map((d) => maxDifference(d, new Float32Array(d.length)))),
      received: Object.fromEntries(clients.map((c, k) => [ids[k], c.received])),
      status: JSON.parse(statusText),
      statusText,
      // What a leak of the plain updates into /status would look like: their first bytes as maskedPreview writes them, and their first values.
      plainPreviews: deltas.map(hex16),
      plainValues: deltas.flatMap((d) => Array.from(d.subarray(0, 4), String)),
    };
    for (const c of clients) c.remote.close();
    await closeFederation(f);
  }
  return out;
}

/** A client that counts its fits in progress and, in chosen rounds, waits inside fit (slow training, or a round that never ends). */
class WaitingClient extends FederatedClient {
  active = 0;
  mostActive = 0;
  readonly started: number[] = [];
  waitInRound: (round: number) => Promise<void> = () => Promise.resolve();

  override async fit(e: Engine, message: GlobalModel) {
    this.active++;
    this.mostActive = Math.max(this.mostActive, this.active);
    this.started.push(message.config.round);
    try {
      await this.waitInRound(message.config.round);
      return await super.fit(e, message);
    } finally {
      this.active--;
    }
  }
}

/**
 * A client that drops in round 1 (plain: on the round frame; secure: on the routed shares, after
 * it shared its keys) while still training, and reconnects through keepConnected: the round
 * completes with the others' mean, and the client is back for round 2.
 */
async function dropout(): Promise<Record<string, unknown>> {
  const ids = ['c0', 'c1', 'c2', 'c3'];
  const leaver = 'c2';
  const out: Record<string, unknown> = {};
  for (const secure of [true, false]) {
    const f = await federation(ids, { secureAggregation: secure ? SECURE : null });
    const dropOn = secure ? 'secagg:ShareKeys' : 'round';
    let dropped = false;
    const connects = new Map(ids.map((id) => [id, 0]));
    const received = new Map(ids.map((id) => [id, [] as string[]]));
    const clients = ids.map((id, k) => new WaitingClient({ id, model: denseModel(10 + k), data: dataOf(k) }));
    // The leaver is still training when its connection goes: a reconnected client must not train the same model alongside it.
    clients[2]!.waitInRound = (round) => new Promise((r) => setTimeout(r, round === 1 ? 1500 : 0));
    const connections = ids.map((id, k) =>
      keepConnected({
        url: f.url,
        token: f.tokens.get(id)!,
        model: MODEL,
        client: clients[k]!,
        engine: engine.context(),
        retryMs: 100,
        socket: recordingSocket(received.get(id)!, (m, socket) => {
          if (id === leaver && !dropped && frameName(m) === dropOn) {
            dropped = true;
            socket.terminate();
          }
        }),
        onConnect: () => connects.set(id, connects.get(id)! + 1),
      }),
    );
    await f.coordinator.waitForClients(ids.length, 20_000);
    const maxWeight = secure ? SECURE.maxWeight : Infinity;
    const stayers = ids.map((id, k) => ({ id, k })).filter((c) => c.id !== leaver);
    const { expected } = await expectedRound(f.server, stayers, maxWeight);
    const first = await f.coordinator.runRound();
    const afterFirst = (await f.server.saveState()).weights;
    await f.coordinator.waitForClients(ids.length, 20_000);
    const second = await f.coordinator.runRound();
    const weightTotal = stayers.reduce((s, c) => s + Math.min(dataOf(c.k).count, maxWeight), 0);
    out[secure ? 'secure' : 'plain'] = {
      first: { sampled: first.sampled, accepted: first.accepted, dropped: first.dropped, aggregated: first.aggregated },
      second: { sampled: second.sampled, accepted: second.accepted, dropped: second.dropped, aggregated: second.aggregated },
      maxError: maxDifference(afterFirst, expected),
      tolerance: secure ? secureTolerance({ clients: ids.length, length: f.server.layout.length, ...SECURE }, weightTotal) : 1e-6,
      connects: Object.fromEntries(connects),
      leaverReceived: received.get(leaver),
      leaverFits: clients[2]!.started,
      mostConcurrentFits: Math.max(...clients.map((c) => c.mostActive)),
      log: f.log,
    };
    for (const c of connections) c.stop();
    await Promise.all(connections.map((c) => c.finished));
    await closeFederation(f);
  }
  return out;
}

/** Who is refused at the door and why; an oversized frame; updates that do not belong to the round. */
async function admission(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  {
    const f = await federation(['c0', 'c1', 'c2', 'wrong', 'revoked', 'big'], { target: 3, maxFrameBytes: 16 * 1024 });
    f.store.revoke('revoked');
    const good = await Promise.all(['c0', 'c1', 'c2'].map((id, k) => trainingClient(f, id, k)));
    const refused: Record<string, { error: string | null; received: string[] }> = {};
    const attempts: [string, string, string][] = [
      ['wrong token', 'wrong', f.tokens.get('c0')!],
      ['unknown id', 'stranger', f.tokens.get('c0')!],
      ['revoked id', 'revoked', f.tokens.get('revoked')!],
    ];
    for (const [what, id, token] of attempts) {
      const received: string[] = [];
      refused[what] = { error: null, received };
      try {
        const c = await RemoteClient.connect({ url: f.url, token, model: MODEL, client: new FederatedClient({ id, model: denseModel(20), data: dataOf(0) }), engine: engine.context(), socket: recordingSocket(received) });
        c.close();
      } catch (e) {
        refused[what]!.error = e instanceof Error ? e.message : String(e);
      }
    }
    const otherModel = await RawClient.open(f.url, hello(f, 'c0', f.tokens.get('c0'), 'another-model'));
    const noHello = await RawClient.open(f.url, { type: 'bye' });
    // An admitted client sends a frame above maxFrameBytes: ws closes that connection (1009), and only that one.
    const big = await RawClient.open(f.url, hello(f, 'big'));
    const bigWelcomed = big.has('welcome');
    big.send(new Uint8Array(20 * 1024));
    const bigClosedWith = await big.closed;
    await until('the coordinator to drop the big client', () => !f.coordinator.connected.includes('big'));
    const report = await f.coordinator.runRound();
    out.door = {
      refused,
      otherModel: { received: otherModel.received.map(frameName), reason: otherModel.received[0]?.type === 'error' ? otherModel.received[0].reason : null, closedWith: await otherModel.closed },
      noHello: { received: noHello.received.map(frameName), closedWith: await noHello.closed },
      big: { welcomed: bigWelcomed, closedWith: bigClosedWith, received: big.received.map(frameName) },
      round: { sampled: report.sampled, accepted: report.accepted, aggregated: report.aggregated },
      goodReceived: good.map((c) => c.received),
      connected: f.coordinator.connected,
      log: f.log,
    };
    for (const c of good) c.remote.close();
    await closeFederation(f);
  }
  {
    // Three raw clients, two selected (target 2, no over-selection): one of them sends an update
    // for the next round, one for another model version, a valid one and then a second one; the
    // client left out sends one too; then the other selected client answers and the round closes.
    const ids = ['r0', 'r1', 'r2'];
    const f = await federation(ids, { target: 2 });
    const raws = await Promise.all(ids.map((id) => RawClient.open(f.url, hello(f, id))));
    const { layout } = f.server;
    const version = f.coordinator.version;
    const before = (await f.server.saveState()).weights;
    const running = f.coordinator.runRound();
    await until('two round frames', () => raws.filter((r) => r.has('round')).length === 2);
    const selected = raws.filter((r) => r.has('round'));
    const [eager, late] = selected as [RawClient, RawClient];
    const outsider = raws.find((r) => !r.has('round'))!;
    const idOf = (r: RawClient) => ids[raws.indexOf(r)]!;
    const delta = (seed: number) => Float32Array.from(randomNormal(layout.length, seed), (v, i) => (layout.entries.some((e) => i >= e.offset && i < e.offset + e.size) ? 0.01 * v : 0));
    const update = (round: number, modelVersion: number, values: Float32Array, examples: number): WireMessage => ({ type: 'update', round, modelVersion, examples, loss: 0.5, delta: { kind: 'f32', tensors: namedFromFlat(layout, values) } });
    const [eagerDelta, lateDelta] = [delta(1), delta(2)];
    eager.send(update(2, version, delta(3), 10));
    eager.send(update(1, version + 1, delta(4), 10));
    eager.send(update(1, version, eagerDelta, 10));
    eager.send(update(1, version, delta(5), 10));
    outsider.send(update(1, version, delta(6), 10));
    const rejections = () => f.log.filter((l) => l.includes(': rejected: '));
    await until('four rejections', () => rejections().length === 4);
    late.send(update(1, version, lateDelta, 30));
    const report = await running;
    eager.send(update(1, version, delta(7), 10));
    await until('the late frame to be rejected', () => rejections().length === 5);
    const after = (await f.server.saveState()).weights;
    const expected = Float64Array.from(before, (g, i) => g + (10 * eagerDelta[i]! + 30 * lateDelta[i]!) / 40);
    out.frames = {
      eager: idOf(eager),
      late: idOf(late),
      outsider: idOf(outsider),
      rejections: rejections(),
      round: { sampled: report.sampled, accepted: report.accepted, aggregated: report.aggregated },
      maxError: maxDifference(after, expected),
      outsiderReceived: outsider.received.map(frameName),
    };
    for (const r of raws) r.socket.close();
    await closeFederation(f);
  }
  return out;
}

/** Coordinator.start refuses settings it cannot run, naming them, before it opens a port. */
async function settings(): Promise<Record<string, unknown>> {
  const store = CoordinatorStore.open(join(mkdtempSync(join(dir, 'store-')), 'coordinator.sqlite'));
  const server = (strategy: Strategy) => new FederatedServer(engine, denseModel(1), { strategy, fraction: 1, minClients: 2, training: { epochs: 1, batchSize: 4, learningRate: 0.1, proximalMu: 0, compression: null } });
  const base = { engine, server: server(new FedAvg()), modelName: MODEL, store, port: 0, target: 3, roundDeadlineMs: 1000 };
  const refusal = async (options: Partial<CoordinatorOptions>) => {
    try {
      await Coordinator.start({ ...base, ...options });
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };
  const out = {
    target: await refusal({ target: 1 }),
    overselect: await refusal({ overselect: 0.5 }),
    deadline: await refusal({ roundDeadlineMs: 0 }),
    median: await refusal({ server: server(new FedMedian()), secureAggregation: SECURE }),
  };
  store.close();
  return out;
}

/** 8-bit updates over the wire: each client's codes and scales travel as q8 tensors, and the round is the mean of what they decode to. */
async function quantised(): Promise<Record<string, unknown>> {
  const ids = ['c0', 'c1', 'c2'];
  const f = await federation(ids, { compression: { bits: 8, errorFeedback: false } });
  const clients = await Promise.all(ids.map((id, k) => trainingClient(f, id, k)));
  // f32 deltas of the same local training: the 8-bit round must land within the codes' step of their mean.
  const plain = await federation(ids);
  const { expected, deltas } = await expectedRound(plain.server, ids.map((id, k) => ({ id, k })), Infinity);
  await closeFederation(plain);
  const report = await f.coordinator.runRound();
  const after = (await f.server.saveState()).weights;
  const range = Math.max(...deltas.map((d) => Math.max(...d) - Math.min(...d)));
  const result = { accepted: report.accepted, maxError: maxDifference(after, expected), step: range / 255, received: clients.map((c) => c.received) };
  for (const c of clients) c.remote.close();
  await closeFederation(f);
  return result;
}

/**
 * DP-FedAvg under secure aggregation (distributed DP): the coordinator sends each round's clip norm
 * and noise share, the clients clip and noise before masking, and the server only averages the
 * sum over E and accounts. Without noise the round must give global + (1/E) sum of the clipped
 * deltas; with noise z the accountant must have recorded one round of (q = 1, z).
 */
async function dp(): Promise<Record<string, unknown>> {
  const ids = ['c0', 'c1', 'c2'];
  const out: Record<string, unknown> = {};
  for (const z of [0, 0.8]) {
    const clipNorm = 0.02;
    const strategy = new DPFedAvg({ noiseMultiplier: z, clientsPerRound: ids.length, clipNorm, seed: 5 });
    const f = await federation(ids, { strategy, secureAggregation: SECURE });
    const clients = await Promise.all(ids.map((id, k) => trainingClient(f, id, k)));
    const message = f.server.globalModel(1);
    const global = await message.weights.data();
    f.server.release(message);
    const { deltas } = await expectedRound(f.server, ids.map((id, k) => ({ id, k })), 1);
    const report = await f.coordinator.runRound();
    const after = (await f.server.saveState()).weights;
    // Float64: each delta scaled to norm clipNorm, their sum over E added to the global weights.
    const expected = Float64Array.from(global);
    const norms = deltas.map((d) => Math.sqrt(d.reduce((s, v) => s + v * v, 0)));
    deltas.forEach((d, k) => d.forEach((v, i) => (expected[i]! += (v * Math.min(1, clipNorm / norms[k]!)) / ids.length)));
    const reference = new RdpAccountant();
    reference.step(1, z);
    out[z === 0 ? 'exact' : 'noised'] = {
      accepted: report.accepted,
      norms,
      maxError: maxDifference(after, expected),
      tolerance: secureTolerance({ clients: ids.length, length: f.server.layout.length, range: SECURE.range, maxWeight: 1 }, ids.length),
      epsilon: strategy.epsilon(1e-5),
      referenceEpsilon: reference.epsilon(1e-5).epsilon,
    };
    for (const c of clients) c.remote.close();
    await closeFederation(f);
  }
  return out;
}

const RESTART_IDS = ['c0', 'c1', 'c2'];
/** The restart scenarios' coordinator: FedAdam (moments to keep) under secure aggregation, on the store in `dir`. */
const restartFederation = (tokens?: Map<string, string>) => federation(RESTART_IDS, { strategy: new FedAdam({ eta: 0.05 }), secureAggregation: SECURE, store: join(dir, 'coordinator.sqlite'), tokens, roundDeadlineMs: 600_000 });

async function savedState(server: FederatedServer): Promise<Record<string, unknown>> {
  const s = await server.saveState();
  return { round: s.round, weights: base64(s.weights), strategyRound: s.strategy.round, strategyTensors: Object.fromEntries(Object.entries(s.strategy.tensors).map(([n, t]) => [n, base64(t)])) };
}

/** Two rounds, then a third whose clients never finish training: prints the state of round 2 in the middle of round 3, and waits to be killed. */
async function restartServe(): Promise<void> {
  const f = await restartFederation();
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify(Object.fromEntries(f.tokens)));
  const clients = RESTART_IDS.map((id, k) => new WaitingClient({ id, model: denseModel(10 + k), data: dataOf(k) }));
  for (const c of clients) c.waitInRound = (round) => (round <= 2 ? Promise.resolve() : new Promise(() => {}));
  await Promise.all(RESTART_IDS.map((id, k) => trainingClient(f, id, k, clients[k])));
  for (let r = 0; r < 2; r++) await f.coordinator.runRound();
  const state = await savedState(f.server);
  void f.coordinator.runRound();
  await until('every client to be training round 3', () => clients.every((c) => c.started.includes(3)));
  process.stdout.write(`${JSON.stringify({ ok: true, state, log: f.log })}\n`);
  await new Promise(() => {});
}

/** A new coordinator on the killed one's store: the state it resumes with, and the round it runs next. */
async function restartResume(): Promise<Record<string, unknown>> {
  const tokens = new Map(Object.entries(JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as Record<string, string>));
  const f = await restartFederation(tokens);
  const state = await savedState(f.server);
  const clients = await Promise.all(RESTART_IDS.map((id, k) => trainingClient(f, id, k)));
  const report = await f.coordinator.runRound();
  const result = { state, next: { round: report.round, accepted: report.accepted, aggregated: report.aggregated }, roundLog: f.store.roundLog().map((r) => r.round), log: f.log };
  for (const c of clients) c.remote.close();
  await closeFederation(f);
  return result;
}

const scenarios: Record<string, () => Promise<Record<string, unknown> | void>> = { rounds, dropout, admission, dp, quantised, settings, 'restart-serve': restartServe, 'restart-resume': restartResume };
const scenario = scenarios[process.argv[2] ?? ''];
if (!scenario) throw new Error(`coordinator-run: unknown scenario ${process.argv[2]}; known: ${Object.keys(scenarios).join(', ')}`);
scenario().then(
  (result) => {
    process.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
    process.exit(0);
  },
  (error: unknown) => {
    process.stdout.write(`${JSON.stringify({ ok: false, error: error instanceof Error ? `${error.message}\n${error.stack}` : String(error) })}\n`);
    process.exit(1);
  },
);
