// The coordinator's load test, run by scripts/fl-load.mjs (npm run fl:load): one bundle, two roles,
// each its own process, on loopback only.
//   load.ts coordinator --dir D --clients N --target T --rounds R --seconds S --connectSeconds C --secure 0|1 --deadline 60
//                       [--vocab 1000 --embedding 32 --hidden 64]
//     enrols sim-0 .. sim-(N-1) in D/coordinator.sqlite (their tokens in D/tokens.json), runs a
//     Coordinator with FedAvg over the keyboard model on Dawn, waits for N connections, runs up to R
//     rounds within S seconds, and prints JSON lines: {"event":"listening"}, then {"event":"step"}
//     with what it measured (time and CPU per round, memory, frame bytes).
//   load.ts clients --url ws://127.0.0.1:P --dir D --clients N --model SPEC
//     opens N connections (in waves, as the listen backlog allows), says hello with each token and
//     answers every round at once with a random delta of the round's layout, without training: one
//     update frame per round shared by every connection (an update names no client), or under
//     secure aggregation a real SecAggClient per connection (keys, shares, masking, unmasking).
//     Prints {"event":"connected"} and, once the coordinator has said bye, {"event":"done"}.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from 'webgpu';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, Engine, FedAvg, FederatedServer, KeyboardModel, randomNormal, SecAggClient, type KeyListMessage, type NamedArray, type SharesForClientMessage, type UnmaskingRequest, type WireMessage } from '../../src/index.js';
import { packSecAgg, roundSecAgg, unpackSecAgg } from '../../src/paradigms/federated/remote.js';
import { Coordinator } from './coordinator.js';
import { CoordinatorStore } from './store.js';

/** Connections opened at once: below the listen backlog (511), so that no SYN is dropped and retried. */
const WAVE = 200;
const simulatedId = (i: number) => `sim-${i}`;

function settings(argv: readonly string[]): { text(name: string): string; number(name: string, fallback?: number): number } {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i]!.startsWith('--') || argv[i + 1] === undefined) throw new Error(`load: expected --name value pairs, got "${argv.slice(i).join(' ')}"`);
    values.set(argv[i]!.slice(2), argv[i + 1]!);
  }
  const text = (name: string) => {
    const v = values.get(name);
    if (v === undefined) throw new Error(`load: --${name} is required`);
    return v;
  };
  const number = (name: string, fallback?: number) => {
    const v = Number(values.get(name) ?? fallback);
    if (!Number.isFinite(v)) throw new Error(`load: --${name} ${values.get(name)} is not a number`);
    return v;
  };
  return { text, number };
}

const print = (event: string, fields: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

async function coordinatorRole(args: ReturnType<typeof settings>): Promise<void> {
  const dir = args.text('dir');
  const clients = args.number('clients');
  const target = args.number('target');
  const secure = args.number('secure', 0) !== 0;
  const store = CoordinatorStore.open(join(dir, 'coordinator.sqlite'));
  // Enrolment (a SQLite commit each) is kept from one step to the next: only new clients are enrolled.
  const tokensFile = join(dir, 'tokens.json');
  const tokens = existsSync(tokensFile) ? (JSON.parse(readFileSync(tokensFile, 'utf8')) as Record<string, string>) : {};
  let started = performance.now();
  for (let i = Object.keys(tokens).length; i < clients; i++) tokens[simulatedId(i)] = store.enrol(simulatedId(i));
  writeFileSync(tokensFile, JSON.stringify(tokens));
  const enrolSeconds = (performance.now() - started) / 1000;

  const engine = await Engine.create({ gpu: create(['backend=vulkan']) });
  const model = new KeyboardModel(engine, { vocab: args.number('vocab', 1000), embedding: args.number('embedding', 32), hidden: args.number('hidden', 64), seed: 1 });
  const notes = new Set<string>();
  const server = new FederatedServer(engine, model, {
    strategy: new FedAvg(),
    fraction: 1,
    minClients: 2,
    seed: 1,
    training: { epochs: 1, batchSize: 8, learningRate: 1, proximalMu: 0, compression: null },
    log: (line) => notes.add(`server: ${line.replace(/^round \d+: /, '')}`),
  });
  let rejections = 0;
  const coordinator = await Coordinator.start({
    engine,
    server,
    modelName: model.spec,
    store,
    port: 0,
    target,
    roundDeadlineMs: 1000 * args.number('deadline', 60),
    stageDeadlineMs: 1000 * args.number('deadline', 60),
    secureAggregation: secure ? { range: 0.5 } : null,
    log: (line) => {
      // Late updates from over-selected clients are expected (a round closes at its target); other rejections and failures are noted once.
      if (line.includes(': rejected: ')) rejections++;
      if ((line.includes(': rejected: ') && !line.includes('nothing is waiting for')) || line.includes('failed')) notes.add(line.replace(/^client \S+: |^round \d+: /, ''));
    },
  });
  let peakRss = 0;
  let peakHeap = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
    return m;
  };
  const idle = sample();
  print('listening', { port: coordinator.port, model: model.spec, parameters: server.layout.values });

  started = performance.now();
  let connectError: string | null = null;
  try {
    await coordinator.waitForClients(clients, 1000 * args.number('connectSeconds'));
  } catch (e) {
    connectError = e instanceof Error ? e.message : String(e);
  }
  const connectSeconds = (performance.now() - started) / 1000;
  const connected = sample();
  const sampler = setInterval(sample, 100);
  const rounds: { seconds: number; secAggSeconds: number; accepted: number; sampled: number; aggregated: boolean; frameBytes: number }[] = [];
  const cpu = process.cpuUsage();
  started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  // Rounds back to back while the next one (as long as the last) fits the step's time.
  while (!connectError && rounds.length < args.number('rounds') && (rounds.length === 0 || elapsed() + rounds.at(-1)!.seconds <= args.number('seconds'))) {
    const r = await coordinator.runRound();
    rounds.push({ seconds: r.seconds, secAggSeconds: r.secAggSeconds, accepted: r.accepted.length, sampled: r.sampled.length, aggregated: r.aggregated, frameBytes: r.frameBytesDown + r.frameBytesUp });
  }
  const wall = elapsed();
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  clearInterval(sampler);
  const end = sample();
  const n = Math.max(rounds.length, 1);
  const mean = (f: (r: (typeof rounds)[number]) => number) => rounds.reduce((s, r) => s + f(r), 0) / n;
  print('step', {
    clients,
    connected: coordinator.connected.length,
    target,
    selected: rounds[0]?.sampled ?? 0,
    secure,
    parameters: server.layout.values,
    connectError,
    enrolSeconds,
    connectSeconds,
    rounds: rounds.length,
    roundsPerMinute: rounds.length ? (60 * rounds.length) / wall : 0,
    secondsPerRound: mean((r) => r.seconds),
    secAggSecondsPerRound: mean((r) => r.secAggSeconds),
    cpuSecondsPerRound: cpuSeconds / n,
    frameBytesPerRound: mean((r) => r.frameBytes),
    acceptedPerRound: mean((r) => r.accepted),
    roundSeconds: rounds.map((r) => Number(r.seconds.toFixed(3))),
    deadlineMisses: rounds.filter((r) => r.accepted < target).length,
    notAggregated: rounds.filter((r) => !r.aggregated).length,
    rejections,
    rssIdleMb: mb(idle.rss),
    rssConnectedMb: mb(connected.rss),
    rssPeakMb: mb(peakRss),
    heapConnectedMb: mb(connected.heapUsed),
    heapPeakMb: mb(peakHeap),
    externalEndMb: mb(end.external),
    notes: [...notes].slice(0, 5),
  });
  await coordinator.close(true);
  store.close();
  model.dispose();
  process.exit(0);
}

/** A random delta of each named shape, small enough for secure aggregation's range. */
function randomLike(weights: ReadonlyMap<string, NamedArray>, seed: number): Map<string, NamedArray> {
  return new Map([...weights].map(([name, w], i) => [name, { shape: [...w.shape], data: randomNormal(w.data.length, seed + i, 0, 1e-3) }]));
}

async function clientsRole(args: ReturnType<typeof settings>): Promise<void> {
  const url = args.text('url');
  if (!/^ws:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`load clients: ${url} is not a loopback address (ws://127.0.0.1:port)`);
  const model = args.text('model');
  const count = args.number('clients');
  const tokens = JSON.parse(readFileSync(join(args.text('dir'), 'tokens.json'), 'utf8')) as Record<string, string>;
  const failures = new Map<string, number>();
  const fail = (reason: string) => failures.set(reason, (failures.get(reason) ?? 0) + 1);
  let answered = 0;
  // One update frame per round, sent by every selected connection; one delta for every secure one.
  const plainFrames = new Map<number, Uint8Array>();
  const secureDeltas = new Map<number, Float32Array>();
  const closed: Promise<void>[] = [];

  const connect = (id: string) =>
    new Promise<void>((admitted) => {
      const socket = new WebSocket(url, { perMessageDeflate: false });
      let welcomed = false;
      let secagg: SecAggClient | null = null;
      const send = (m: WireMessage | Uint8Array) => socket.send(m instanceof Uint8Array ? m : encodeFrame(m));
      const answer = async (m: WireMessage) => {
        if (m.type === 'welcome') {
          welcomed = true;
          admitted();
        } else if (m.type === 'round' && !m.secagg) {
          const round = m.config.round;
          if (!plainFrames.has(round)) plainFrames.set(round, encodeFrame({ type: 'update', round, modelVersion: m.modelVersion, examples: 100, loss: 1, delta: { kind: 'f32', tensors: randomLike(m.weights, round) } }));
          send(plainFrames.get(round)!);
          answered++;
        } else if (m.type === 'round') {
          secagg = new SecAggClient(id, roundSecAgg(m.secagg!).config);
          send({ type: 'secagg', round: m.config.round, stage: 'AdvertiseKeys', fields: packSecAgg(await secagg.advertiseKeys()) });
        } else if (m.type === 'secagg' && secagg) {
          const { round, stage, fields } = m;
          if (stage === 'AdvertiseKeys') send({ type: 'secagg', round, stage: 'ShareKeys', fields: packSecAgg(await secagg.shareKeys(unpackSecAgg<KeyListMessage>(fields))) });
          else if (stage === 'ShareKeys') {
            const length = secagg.settings.length;
            if (!secureDeltas.has(length)) secureDeltas.set(length, randomNormal(length, length, 0, 1e-3));
            const masked = await secagg.maskInput(unpackSecAgg<SharesForClientMessage>(fields), secureDeltas.get(length)!);
            send({ type: 'secagg', round, stage: 'MaskedInputCollection', fields: { ...packSecAgg(masked), loss: 1 } });
            answered++;
          } else if (stage === 'Unmasking') send({ type: 'secagg', round, stage: 'Unmasking', fields: packSecAgg(await secagg.unmask(unpackSecAgg<UnmaskingRequest>(fields))) });
        } else if (m.type === 'bye') socket.close();
        else if (m.type === 'error') fail(`the coordinator says: ${m.reason}`);
      };
      socket.on('open', () => send({ type: 'hello', clientId: id, token: tokens[id]!, model, capabilities: ['secagg'] }));
      socket.on('message', (data: Buffer) => {
        answer(decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))).catch((e: unknown) => fail(`answering: ${e instanceof Error ? e.message : String(e)}`));
      });
      socket.on('error', (e) => fail(e.message));
      closed.push(
        new Promise((done) =>
          socket.on('close', () => {
            if (!welcomed) {
              fail('closed before it was admitted');
              admitted();
            }
            done();
          }),
        ),
      );
    });

  const started = performance.now();
  const ids = Array.from({ length: count }, (_, i) => simulatedId(i));
  for (let i = 0; i < ids.length; i += WAVE) await Promise.all(ids.slice(i, i + WAVE).map(connect));
  const failed = [...failures.values()].reduce((s, n) => s + n, 0);
  const cpuSeconds = () => {
    const used = process.cpuUsage();
    return (used.user + used.system) / 1e6;
  };
  print('connected', { clients: count - failed, failures: Object.fromEntries(failures), seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSeconds() });
  await Promise.all(closed);
  print('done', { answered, failures: Object.fromEntries(failures), cpuSeconds: cpuSeconds(), rssMb: mb(process.memoryUsage().rss) });
  process.exit(0);
}

const [role, ...rest] = process.argv.slice(2);
const roles: Record<string, (args: ReturnType<typeof settings>) => Promise<void>> = { coordinator: coordinatorRole, clients: clientsRole };
const run = roles[role ?? ''];
if (!run) throw new Error(`load: the role must be coordinator or clients, got ${role}`);
run(settings(rest)).catch((e: unknown) => {
  console.error(`[load ${role}] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
