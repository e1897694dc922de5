// Federated learning demo: McMahan et al.'s FedAvg experiment on Fashion-MNIST, simulated on one
// device. 100 clients each hold a slice of the training set (IID, or two label shards each);
// every round the server samples a fraction C of them, each trains locally (E epochs, batch B)
// and sends back its weight change, and the server aggregates. The runs:
//   centralised    the same model trained on the union of the clients' training rows
//   iid / noniid   FedAvg on the IID and the shard partition, for each E
//   fedprox        FedProx (mu) on the shard partition
//   robust         FedAvg, FedMedian, FedTrimmedAvg and Krum with 0, 10 and 30% poisoned clients
//                  (IID; the server's norm rule off so that the aggregators alone are tested)
//   dp             DP-FedAvg (adaptive clipping) at each noise multiplier: accuracy and epsilon
//   bytes          8-bit updates with error feedback; a frozen base (the centralised model's
//                  hidden layers) with only the head federated
//   personalised   after the non-IID run, each client fine-tunes the head on its own data
//   speed          rounds trained one client after another against all clients batched
// Each client keeps 20% of its rows as its own test data (federated evaluation, personalisation).
// Query parameters: model (2nn | cnn), clients (100), perClient (120 rows, 80% train; the paper:
// 600), fraction (0.1), epochs (1; list, the paper: 1,5), batch (10), lr (0.1), rounds (40),
// evalEvery (2 rounds: central evaluation, and federated on the non-IID runs),
// robustRounds (15), centralEpochs (5), mu (0.1), poisons (0,0.1,0.3), attack (sign-flip),
// noises (0.01,0.1,1), headRounds (10), personalEpochs (5), speedRounds (2), target (0.8),
// test (2000), dropout (0), mode (batched | sequential; cnn is always sequential), only (main:
// the centralised, IID, non-IID and FedProx runs alone, for long runs; custom:
// one run with partition, alpha, strategy, perRound, poison, attack, noise, dropout, rounds),
// headless=1. The result goes to window.__result and a `[result] {...}` console line.
import {
  clientData,
  Conv2d,
  Dense,
  DPFedAvg,
  Engine,
  evaluate,
  FedAdagrad,
  FedAdam,
  FedAvg,
  FedAvgM,
  FederatedClient,
  FederatedServer,
  FedMedian,
  FedTrimmedAvg,
  FedYogi,
  fit,
  iidPartition,
  Krum,
  loadFashionMnist,
  MaxPool2d,
  permutation,
  ReLU,
  Reshape,
  SGD,
  Sequential,
  shardPartition,
  dirichletPartition,
  simulate,
  type Attack,
  type ClassificationData,
  type Partition,
  type RoundRecord,
  type SimulationMode,
  type Strategy,
} from '../../src/index.js';
import { $, drawChart, fetchBytes, finish, intParam, log, mean, numberParam, params, resultTable, round, run, type Series, setText, status } from '../common/ui.js';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d', '#7c3aed', '#0f766e'];
const STRATEGIES = ['FedAvg', 'FedProx', 'FedAvgM', 'FedAdam', 'FedYogi', 'FedAdagrad', 'FedMedian', 'FedTrimmedAvg', 'Krum', 'DPFedAvg'] as const;
type StrategyName = (typeof STRATEGIES)[number];


function listParam(name: string, fallback: number[], check: (v: number) => boolean, what: string): number[] {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const out = raw.split(',').map((s) => Number(s.trim()));
  if (out.some((v) => !check(v))) throw new Error(`query parameter ${name}=${raw} must be a comma-separated list of ${what}`);
  return out;
}

function choice<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
  const raw = params.get(name) || fallback;
  if (!allowed.includes(raw as T)) throw new Error(`query parameter ${name}=${raw} must be one of ${allowed.join(', ')}`);
  return raw as T;
}

const fraction01 = (v: number) => v >= 0 && v < 1;
const positive = (v: number) => v > 0 && Number.isFinite(v);

const settings = {
  model: choice('model', '2nn', ['2nn', 'cnn'] as const),
  clients: intParam('clients', 100, 3),
  perClient: intParam('perClient', 120, 10),
  fraction: numberParam('fraction', 0.1, (v) => v > 0 && v <= 1, 'in (0, 1]'),
  epochs: listParam('epochs', [1], (v) => Number.isInteger(v) && v >= 1, 'positive integers'),
  batch: intParam('batch', 10),
  lr: numberParam('lr', 0.1, positive, 'a positive number'),
  evalEvery: intParam('evalEvery', 2),
  rounds: intParam('rounds', 40),
  robustRounds: intParam('robustRounds', 15),
  centralEpochs: intParam('centralEpochs', 5),
  mu: numberParam('mu', 0.1, (v) => v >= 0, 'a number >= 0'),
  poisons: listParam('poisons', [0, 0.1, 0.3], fraction01, 'fractions in [0, 1)'),
  attack: choice('attack', 'sign-flip', ['sign-flip', 'scale', 'noise'] as const),
  noises: listParam('noises', [0.01, 0.1, 1], positive, 'positive numbers'),
  headRounds: intParam('headRounds', 10),
  personalEpochs: intParam('personalEpochs', 5),
  speedRounds: intParam('speedRounds', 2),
  target: numberParam('target', 0.8, (v) => v > 0 && v <= 1, 'in (0, 1]'),
  test: intParam('test', 2000),
  dropout: numberParam('dropout', 0, fraction01, 'in [0, 1)'),
  mode: choice<SimulationMode>('mode', 'batched', ['batched', 'sequential']),
  only: choice('only', '', ['', 'custom', 'main'] as const),
  // One custom run (only=custom).
  partition: choice('partition', 'shards', ['shards', 'iid', 'dirichlet'] as const),
  alpha: numberParam('alpha', 0.5, positive, 'a positive number'),
  strategy: choice<StrategyName>('strategy', 'FedAvg', STRATEGIES),
  perRound: intParam('perRound', 10),
  poison: numberParam('poison', 0, fraction01, 'in [0, 1)'),
  noise: numberParam('noise', 0, (v) => v >= 0, 'a number >= 0'),
};
const mode: SimulationMode = settings.model === 'cnn' ? 'sequential' : settings.mode;

// ---- models and data ------------------------------------------------------------------------

const INIT_SEED = 7;

function buildModel(engine: Engine): Sequential {
  if (settings.model === 'cnn') {
    // McMahan et al.'s CNN: two 5x5 convolutions (32, 64 channels) each followed by 2x2 max pooling, a 512-unit layer, softmax.
    return new Sequential({
      image: new Reshape([1, 28, 28]),
      conv1: new Conv2d(engine, 1, 32, 5, { padding: 2, seed: INIT_SEED }),
      relu1: ReLU(),
      pool1: new MaxPool2d(2),
      conv2: new Conv2d(engine, 32, 64, 5, { padding: 2, seed: INIT_SEED + 2 }),
      relu2: ReLU(),
      pool2: new MaxPool2d(2),
      flat: new Reshape([64 * 7 * 7]),
      fc1: new Dense(engine, 64 * 7 * 7, 512, { seed: INIT_SEED + 4 }),
      relu3: ReLU(),
      head: new Dense(engine, 512, 10, { seed: INIT_SEED + 6 }),
    });
  }
  return new Sequential({
    fc1: new Dense(engine, 784, 200, { seed: INIT_SEED }),
    relu1: ReLU(),
    fc2: new Dense(engine, 200, 200, { seed: INIT_SEED + 2 }),
    relu2: ReLU(),
    head: new Dense(engine, 200, 10, { seed: INIT_SEED + 4 }),
  });
}

const BASE = () => (settings.model === 'cnn' ? ['conv1', 'conv2', 'fc1'] : ['fc1', 'fc2']);

interface ClientRows {
  train: ClassificationData;
  test: ClassificationData;
}

/** Each client's rows, shuffled within the client, split 80% train / 20% its own test data. */
function splitClients(data: ClassificationData, partition: Partition): ClientRows[] {
  return clientData(data, partition).map((d, k) => {
    const order = permutation(d.count, 1000 + k);
    const cut = Math.round(d.count * 0.8);
    const [train, test] = clientData(d, [order.subarray(0, cut), order.subarray(cut)]);
    return { train: train!, test: test! };
  });
}

// ---- runs -----------------------------------------------------------------------------------

interface RunSpec {
  key: string;
  clients: ClientRows[];
  strategy: Strategy;
  epochs: number;
  mu: number;
  rounds: number;
  perRound?: number;
  poison?: number;
  attack?: Attack;
  /** The server's norm rule (default 10; Infinity: off). */
  normFactor?: number;
  compression?: { bits: 8; errorFeedback: boolean } | null;
  /** Federate only the head on top of this model's frozen base. */
  frozenBaseFrom?: Sequential;
  dropout?: number;
  federatedEvaluation?: boolean;
  evaluateEvery?: number;
  mode?: SimulationMode;
}

interface RunResult {
  key: string;
  records: RoundRecord[];
  accuracy: number;
  roundsToTarget: number | null;
  /** How unsteady the second half of the run is: the mean absolute change of accuracy between evaluations. */
  fluctuation: number;
  bytesPerRound: number;
  epsilon: number | null;
  seconds: number;
  model: Sequential;
  server: FederatedServer;
  clients: FederatedClient[];
}

const accuracyCurves = new Map<string, [number, number][]>();
const bytesCurves = new Map<string, [number, number][]>();
const epsilonCurves = new Map<string, [number, number][]>();
/** Per evaluated round of the current run: the clients' accuracies on their own test rows (mean and deciles). */
let clientSpread: [number, { mean: number; low: number; high: number }][] = [];

function seriesOf(m: Map<string, [number, number][]>): Series[] {
  return [...m].map(([label, points], i) => ({ label, points, color: COLORS[i % COLORS.length]! }));
}

function drawAll(maxRounds: number): void {
  const accMax = Math.max(maxRounds, ...[...accuracyCurves.values()].flat().map(([x]) => x));
  drawChart($<HTMLCanvasElement>('accChart'), { series: seriesOf(accuracyCurves), xMax: accMax, yMin: 0, yMax: 1, xLabel: 'round', yFormat: (v) => `${Math.round(v * 100)}%` });
  const clientSeries: Series[] = [
    { label: 'best 10% of clients', points: clientSpread.map(([r, s]) => [r, s.high]), color: '#16a34a' },
    { label: 'mean', points: clientSpread.map(([r, s]) => [r, s.mean]), color: '#2563eb', dots: true },
    { label: 'worst 10% of clients', points: clientSpread.map(([r, s]) => [r, s.low]), color: '#dc2626' },
  ];
  drawChart($<HTMLCanvasElement>('clientChart'), { series: clientSeries, xMax: maxRounds, yMin: 0, yMax: 1, xLabel: 'round', yFormat: (v) => `${Math.round(v * 100)}%` });
  const kb = [...bytesCurves.values()].flat().map(([, v]) => v);
  drawChart($<HTMLCanvasElement>('bytesChart'), { series: seriesOf(bytesCurves), xMax: maxRounds, yMin: 0, yMax: Math.max(1, ...kb) * 1.1, xLabel: 'round', yFormat: (v) => v.toFixed(0) });
  const eps = [...epsilonCurves.values()].flat().map(([, v]) => v);
  drawChart($<HTMLCanvasElement>('epsChart'), { series: seriesOf(epsilonCurves), xMax: maxRounds, yMin: 0, yMax: Math.max(1, ...eps.filter(Number.isFinite).map((v) => Math.min(v, 100))) * 1.1, xLabel: 'round', yFormat: (v) => v.toFixed(1) });
}

function drawGrid(ids: string[], record: RoundRecord, poisoned: Set<string>): void {
  const cells = ids.map((id) => {
    const d = document.createElement('div');
    if (record.accepted.includes(id)) d.className = 'picked';
    if (record.dropped.includes(id)) d.className = 'dropped';
    if (record.rejected.some((r) => r.clientId === id)) d.className = 'rejected';
    if (poisoned.has(id)) d.classList.add('poisoned');
    const acc = record.clientAccuracy?.[id];
    d.title = `${id}${acc !== undefined ? `: ${Math.round(acc * 100)}% on its own test data` : ''}`;
    return d;
  });
  $('grid').replaceChildren(...cells);
}

async function simulateRun(engine: Engine, spec: RunSpec, central: ClassificationData, progress: (done: number) => void): Promise<RunResult> {
  const model = buildModel(engine);
  if (spec.frozenBaseFrom) {
    for (const name of BASE()) {
      for (const [p, q] of [...model.get(name).parameters()].map(([n, p]) => [p, spec.frozenBaseFrom!.get(name).parameters().get(n)!] as const)) engine.copy(q, p);
    }
    model.freeze(...BASE());
  }
  const poisonedCount = Math.round((spec.poison ?? 0) * spec.clients.length);
  const poisonOrder = permutation(spec.clients.length, 77);
  const poisoned = new Set(Array.from(poisonOrder.subarray(0, poisonedCount), (k) => `c${k}`));
  const clients = spec.clients.map((rows, k) => new FederatedClient({ id: `c${k}`, model, data: rows.train, test: rows.test, ...(poisoned.has(`c${k}`) ? { attack: spec.attack ?? { kind: 'sign-flip' } } : {}) }));
  const perRound = spec.perRound ?? Math.max(1, Math.round(settings.fraction * clients.length));
  const server = new FederatedServer(engine, model, {
    strategy: spec.strategy,
    fraction: perRound / clients.length,
    minClients: Math.min(2, perRound),
    training: { epochs: spec.epochs, batchSize: settings.batch, learningRate: settings.lr, proximalMu: spec.mu, compression: spec.compression ?? null },
    seed: 1,
    normFactor: spec.normFactor ?? 10,
    log: (s) => console.warn(s),
  });
  setText('run', spec.key);
  accuracyCurves.set(spec.key, []);
  bytesCurves.set(spec.key, []);
  if (spec.federatedEvaluation) clientSpread = [];
  const ids = clients.map((c) => c.id);
  const records = await simulate(engine, server, clients, {
    rounds: spec.rounds,
    mode: spec.mode ?? mode,
    central,
    evaluateEvery: spec.evaluateEvery ?? 1,
    federatedEvaluation: spec.federatedEvaluation ?? false,
    dropoutRate: spec.dropout ?? settings.dropout,
    seed: 5,
    onRound: (r) => {
      if (r.accuracy !== undefined) accuracyCurves.get(spec.key)!.push([r.round, r.accuracy]);
      bytesCurves.get(spec.key)!.push([r.round, (r.bytesUp + r.bytesDown) / 1024]);
      if (r.epsilon !== undefined) {
        if (!epsilonCurves.has(spec.key)) epsilonCurves.set(spec.key, []);
        epsilonCurves.get(spec.key)!.push([r.round, r.epsilon]);
        setText('epsilon', r.epsilon.toPrecision(3));
      }
      if (r.clientAccuracy) {
        const sorted = Object.values(r.clientAccuracy).sort((a, b) => a - b);
        const decile = Math.floor(sorted.length / 10);
        clientSpread.push([r.round, { mean: mean(sorted), low: mean(sorted.slice(0, decile + 1)), high: mean(sorted.slice(sorted.length - decile - 1)) }]);
      }
      setText('round', `${r.round} / ${spec.rounds}`);
      if (r.accuracy !== undefined) setText('accuracy', `${(r.accuracy * 100).toFixed(1)}%`);
      drawGrid(ids, r, poisoned);
      drawAll(Math.max(settings.rounds, spec.rounds));
      progress(r.round / spec.rounds);
      if (r.accuracy !== undefined) log(`${spec.key}: round ${r.round}: accuracy ${r.accuracy.toFixed(4)}, ${r.accepted.length} accepted${r.aggregated ? '' : ' (too few: model unchanged)'}, ${r.dropped.length} dropped, ${r.rejected.length} rejected, ${(r.seconds * 1000).toFixed(0)} ms`);
    },
  });
  const evaluated = records.filter((r) => r.accuracy !== undefined);
  const last = evaluated.at(-1)!;
  const reached = evaluated.find((r) => r.accuracy! >= settings.target);
  const secondHalf = evaluated.slice(Math.floor(evaluated.length / 2)).map((r) => r.accuracy!);
  spec.strategy.dispose();
  return {
    key: spec.key,
    records,
    accuracy: last.accuracy!,
    roundsToTarget: reached ? reached.round : null,
    fluctuation: secondHalf.length > 1 ? mean(secondHalf.slice(1).map((a, i) => Math.abs(a - secondHalf[i]!))) : 0,
    bytesPerRound: mean(records.map((r) => r.bytesUp + r.bytesDown)),
    epsilon: records.at(-1)!.epsilon ?? null,
    seconds: records.reduce((s, r) => s + r.seconds, 0),
    model,
    server,
    clients,
  };
}

function finishRun(r: RunResult): void {
  for (const c of r.clients) c.dispose();
  r.model.dispose();
}

function strategyFor(name: StrategyName, perRound: number, clients: number, noise: number): Strategy {
  switch (name) {
    case 'FedAvg':
    case 'FedProx':
      return new FedAvg();
    case 'FedAvgM':
      return new FedAvgM({ serverMomentum: 0.9 });
    case 'FedAdam':
      return new FedAdam({ eta: 0.01 });
    case 'FedYogi':
      return new FedYogi({ eta: 0.01 });
    case 'FedAdagrad':
      return new FedAdagrad({ eta: 0.01 });
    case 'FedMedian':
      return new FedMedian();
    case 'FedTrimmedAvg':
      return new FedTrimmedAvg(0.3);
    case 'Krum':
      return new Krum(Math.max(0, Math.min(Math.floor((perRound - 3) / 2), Math.round(0.3 * perRound))), 0);
    case 'DPFedAvg':
      // The count of unclipped updates needs noise sigma_b > z / 2 (privacy.ts); TFF's default E / 20 is too little for large z at E = 10.
      return new DPFedAvg({ noiseMultiplier: noise, clientsPerRound: perRound, samplingProbability: perRound / clients, adaptive: { countStddev: Math.max(perRound / 20, noise) }, seed: 11 });
  }
}

// ---- results --------------------------------------------------------------------------------


// ---- main -----------------------------------------------------------------------------------

run(async () => {
  const form = $('controls') as HTMLFormElement;
  for (const [k, v] of params) {
    const field = form.querySelector<HTMLInputElement | HTMLSelectElement>(`[name=${k}]`);
    if (field) field.value = v;
  }
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  const started = performance.now();
  status('Loading Fashion-MNIST…');
  const [train, testSet] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  const perClient = Math.min(settings.perClient, Math.floor(train.count / settings.clients));
  const rows = settings.clients * perClient;
  const data: ClassificationData = { inputs: train.images.subarray(0, rows * 784), labels: train.labels.subarray(0, rows), count: rows, features: 784, classes: 10 };
  const testRows = Math.min(settings.test, testSet.count);
  const central: ClassificationData = { inputs: testSet.images.subarray(0, testRows * 784), labels: testSet.labels.subarray(0, testRows), count: testRows, features: 784, classes: 10 };
  // Shards as McMahan et al.: the label-sorted rows cut into 2 shards per client.
  const iid = splitClients(data, iidPartition(rows, settings.clients, { seed: 1 }));
  const shards = splitClients(data, shardPartition(data.labels, settings.clients, { shardsPerClient: 2, seed: 1 }));
  log(`${settings.clients} clients x ${perClient} rows (80% train, 20% own test), central test ${testRows}, model ${settings.model}, mode ${mode}, adapter ${engine.adapterName}`);
  const perRound = Math.max(1, Math.round(settings.fraction * settings.clients));
  let phase = 0;
  const phases = settings.only === 'custom' ? 1 : settings.only === 'main' ? 1 + settings.epochs.length * 3 : 5 + settings.epochs.length * 3 + 4 * settings.poisons.length + settings.noises.length;
  const progress = (done: number) => ($('progress').style.width = `${(100 * (phase + done)) / phases}%`);
  const results: HTMLElement[] = [];
  const show = (caption: string, rows: (string | number | null)[][], head: string[]) => {
    results.push(resultTable(caption, head, rows));
    $('results').replaceChildren(...results);
  };

  if (settings.only === 'custom') {
    const partition = settings.partition === 'iid' ? iid : settings.partition === 'shards' ? shards : splitClients(data, dirichletPartition(data.labels, settings.clients, { alpha: settings.alpha, seed: 1 }));
    const r = await simulateRun(engine, {
      key: `${settings.strategy} ${settings.partition}`,
      clients: partition,
      strategy: strategyFor(settings.strategy, settings.perRound, settings.clients, settings.noise),
      epochs: settings.epochs[0]!,
      mu: settings.strategy === 'FedProx' ? settings.mu : 0,
      rounds: settings.rounds,
      perRound: settings.perRound,
      poison: settings.poison,
      attack: { kind: settings.attack },
      federatedEvaluation: true,
      evaluateEvery: 5,
    }, central, progress);
    show('One run', [[r.key, r.accuracy, r.roundsToTarget, Math.round(r.bytesPerRound / 1024), r.epsilon, round(r.seconds, 1)]], ['run', 'accuracy', `rounds to ${settings.target}`, 'KiB / round', 'epsilon', 'seconds']);
    finishRun(r);
    finish({ custom: { accuracy: r.accuracy, rounds_to_target: r.roundsToTarget, bytes_per_round: r.bytesPerRound, epsilon: r.epsilon }, seconds: (performance.now() - started) / 1000 });
    status('Done.');
    return;
  }

  // Centralised: the same model, the union of the clients' training rows, plain SGD at batch B.
  status('Centralised baseline…');
  const pooled: ClassificationData = {
    inputs: new Float32Array(iid.reduce((s, c) => s + c.train.inputs.length, 0)),
    labels: new Uint8Array(iid.reduce((s, c) => s + c.train.count, 0)),
    count: iid.reduce((s, c) => s + c.train.count, 0),
    features: 784,
    classes: 10,
  };
  let at = 0;
  for (const c of iid) {
    pooled.inputs.set(c.train.inputs, at * 784);
    (pooled.labels as Uint8Array).set(c.train.labels as Uint8Array, at);
    at += c.train.count;
  }
  const centralModel = buildModel(engine);
  const optimizer = new SGD(centralModel, { lr: settings.lr });
  const curve: [number, number][] = [];
  accuracyCurves.set('centralised', curve);
  const centralStart = performance.now();
  await fit(engine, centralModel, optimizer, pooled, {
    epochs: settings.centralEpochs,
    batchSize: settings.batch,
    seed: 3,
    logEvery: 1_000_000,
    onEpoch: async (e) => {
      const a = await evaluate(engine, centralModel, central);
      // Plotted at the rounds that see as many local epochs in total: R C E = e + 1.
      curve.push([(e + 1) / settings.fraction / settings.epochs[0]!, a.accuracy]);
      drawAll(settings.rounds);
      progress((e + 1) / settings.centralEpochs);
      log(`centralised: epoch ${e + 1}: accuracy ${a.accuracy.toFixed(4)}`);
    },
  });
  optimizer.dispose();
  const centralisedAcc = curve.at(-1)![1];
  const centralSeconds = (performance.now() - centralStart) / 1000;
  phase++;

  const main: Record<string, RunResult> = {};
  const keep = (r: RunResult) => {
    main[r.key] = r;
    phase++;
  };
  for (const E of settings.epochs) {
    for (const [key, clients, mu] of [[`iid E=${E}`, iid, 0], [`noniid E=${E}`, shards, 0], [`fedprox noniid E=${E}`, shards, settings.mu]] as const) {
      status(`${key}…`);
      const r = await simulateRun(engine, { key, clients, strategy: new FedAvg(), epochs: E, mu, rounds: settings.rounds, federatedEvaluation: key.startsWith('noniid'), evaluateEvery: settings.evalEvery }, central, progress);
      keep(r);
    }
  }
  const E0 = settings.epochs[0]!;
  show(
    `FedAvg: ${settings.clients} clients, C = ${settings.fraction}, B = ${settings.batch}, ${settings.rounds} rounds; centralised ${settings.centralEpochs} epochs`,
    [['centralised', centralisedAcc, null, null, round(centralSeconds, 1)], ...Object.values(main).map((r) => [r.key, r.accuracy, r.roundsToTarget, r.fluctuation, round(r.seconds, 1)])],
    ['run', 'accuracy', `rounds to ${settings.target}`, 'fluctuation (2nd half)', 'seconds'],
  );
  const mainResult = {
    centralised_acc: centralisedAcc,
    fedavg_iid_acc: main[`iid E=${E0}`]!.accuracy,
    fedavg_noniid_acc: main[`noniid E=${E0}`]!.accuracy,
    fedprox_noniid_acc: main[`fedprox noniid E=${E0}`]!.accuracy,
    accuracy: Object.fromEntries(Object.values(main).map((r) => [r.key, r.accuracy])),
    rounds_to_target: Object.fromEntries(Object.values(main).map((r) => [r.key, r.roundsToTarget])),
    fluctuation: Object.fromEntries(Object.values(main).map((r) => [r.key, r.fluctuation])),
    target: settings.target,
  };
  if (settings.only === 'main') {
    for (const r of Object.values(main)) finishRun(r);
    centralModel.dispose();
    status('Done.');
    finish({ ...mainResult, settings: { ...settings, perClient, mode }, adapter: engine.adapterName, seconds: (performance.now() - started) / 1000 });
    return;
  }

  // Personalisation: each client fine-tunes the head of the non-IID global model on its own rows.
  status('Personalisation…');
  const noniid = main[`noniid E=${E0}`]!;
  const message = noniid.server.globalModel(noniid.records.length + 1);
  const personal: { global: number; personalised: number }[] = [];
  for (const c of noniid.clients) {
    personal.push(await c.personalise(engine, message, { head: ['head'], epochs: settings.personalEpochs, batchSize: settings.batch, learningRate: settings.lr }));
    progress(personal.length / noniid.clients.length);
  }
  noniid.server.release(message);
  const globalAcc = mean(personal.map((p) => p.global));
  const personalisedAcc = mean(personal.map((p) => p.personalised));
  log(`personalisation: clients' own test accuracy ${globalAcc.toFixed(4)} (global) -> ${personalisedAcc.toFixed(4)} (personalised head)`);
  phase++;
  show('Personalisation (non-IID clients, their own test rows)', [['global model', globalAcc], ['personalised head', personalisedAcc]], ['model', 'mean client accuracy']);

  // Robust aggregation under poisoning (IID, the norm rule off: the aggregators alone).
  const aggregators = ['FedAvg', 'FedMedian', 'FedTrimmedAvg', 'Krum'] as const;
  const robust: Record<string, Record<string, number>> = {};
  for (const name of aggregators) {
    robust[name] = {};
    for (const p of settings.poisons) {
      const key = `${name} ${Math.round(p * 100)}% ${settings.attack}`;
      status(`${key}…`);
      const r = await simulateRun(engine, { key, clients: iid, strategy: strategyFor(name, perRound, settings.clients, 0), epochs: E0, mu: 0, rounds: settings.robustRounds, poison: p, attack: { kind: settings.attack }, normFactor: Infinity, evaluateEvery: settings.robustRounds, dropout: 0 }, central, progress);
      robust[name]![String(p)] = r.accuracy;
      accuracyCurves.delete(key);
      bytesCurves.delete(key);
      finishRun(r);
      phase++;
    }
  }
  show(`Robust aggregation: accuracy after ${settings.robustRounds} rounds with poisoned clients (${settings.attack}; IID; norm rule off)`, aggregators.map((a) => [a, ...settings.poisons.map((p) => robust[a]![String(p)]!)]), ['aggregator', ...settings.poisons.map((p) => `${Math.round(p * 100)}% poisoned`)]);

  // DP-FedAvg: accuracy against epsilon.
  const dpAcc: number[] = [];
  const dpEpsilon: number[] = [];
  for (const z of settings.noises) {
    const key = `DP-FedAvg z=${z}`;
    status(`${key}…`);
    const r = await simulateRun(engine, { key, clients: iid, strategy: strategyFor('DPFedAvg', perRound, settings.clients, z), epochs: E0, mu: 0, rounds: settings.rounds, evaluateEvery: 10 }, central, progress);
    dpAcc.push(r.accuracy);
    dpEpsilon.push(r.epsilon!);
    finishRun(r);
    phase++;
  }
  show(`DP-FedAvg (adaptive clipping, ${perRound} clients per round of ${settings.clients}, δ = 1e-5, ${settings.rounds} rounds)`, settings.noises.map((z, i) => [z, dpEpsilon[i]!, dpAcc[i]!]), ['noise multiplier z', 'epsilon', 'accuracy']);

  // Bytes: 8-bit updates with error feedback; a frozen base with only the head federated.
  status('8-bit updates…');
  const int8 = await simulateRun(engine, { key: `iid E=${E0} 8-bit`, clients: iid, strategy: new FedAvg(), epochs: E0, mu: 0, rounds: settings.rounds, compression: { bits: 8, errorFeedback: true }, evaluateEvery: 10 }, central, progress);
  phase++;
  status('Frozen base, federated head…');
  const head = await simulateRun(engine, { key: `noniid head only`, clients: shards, strategy: new FedAvg(), epochs: E0, mu: 0, rounds: settings.headRounds, frozenBaseFrom: centralModel, evaluateEvery: 5 }, central, progress);
  phase++;
  const f32 = main[`iid E=${E0}`]!;
  const bytes = { f32: f32.bytesPerRound, int8: int8.bytesPerRound, frozen_base_f32: head.bytesPerRound };
  show(
    'Bytes per round (sent to and from the sampled clients)',
    [
      ['f32, whole model', Math.round(bytes.f32 / 1024), f32.accuracy],
      ['8-bit updates, error feedback', Math.round(bytes.int8 / 1024), int8.accuracy],
      [`frozen base (centralised model's), head only, non-IID, ${settings.headRounds} rounds`, Math.round(bytes.frozen_base_f32 / 1024), head.accuracy],
    ],
    ['setting', 'KiB / round', 'accuracy'],
  );
  finishRun(int8);
  finishRun(head);
  centralModel.dispose();

  // Speed: one client after another against all of a round's clients batched over replicas.
  let speedup: number | null = null;
  let dispatches: { sequential: number; batched: number } | null = null;
  if (settings.model === '2nn') {
    status('Timing rounds: sequential against batched…');
    const time = async (m: SimulationMode) => {
      const r = await simulateRun(engine, { key: `speed ${m}`, clients: iid, strategy: new FedAvg(), epochs: E0, mu: 0, rounds: settings.speedRounds + 1, evaluateEvery: 1000, mode: m, dropout: 0 }, central, progress);
      accuracyCurves.delete(r.key);
      bytesCurves.delete(r.key);
      finishRun(r);
      // The first round builds the pipelines: not timed.
      const timed = r.records.slice(1);
      return { seconds: mean(timed.map((x) => x.seconds)), dispatches: mean(timed.map((x) => x.dispatches)) };
    };
    const sequential = await time('sequential');
    const batched = await time('batched');
    speedup = sequential.seconds / batched.seconds;
    dispatches = { sequential: sequential.dispatches, batched: batched.dispatches };
    log(`round time at K = ${perRound}: sequential ${(sequential.seconds * 1000).toFixed(0)} ms, batched ${(batched.seconds * 1000).toFixed(0)} ms: ${speedup.toFixed(2)}x; dispatches ${sequential.dispatches} against ${batched.dispatches}`);
    show(
      `Round time with ${perRound} clients (mean of ${settings.speedRounds} rounds)`,
      [['one after another', round(sequential.seconds * 1000, 0), sequential.dispatches], ['batched over replicas', round(batched.seconds * 1000, 0), batched.dispatches], ['ratio', speedup, sequential.dispatches / batched.dispatches]], ['clients trained', 'ms per round', 'kernels per round'],
    );
  }
  phase++;
  for (const r of Object.values(main)) finishRun(r);
  $('notes').textContent = `Adapter ${engine.adapterName}; ${((performance.now() - started) / 60000).toFixed(1)} minutes.`;
  status('Done.');
  finish({
    ...mainResult,
    robust_acc: robust,
    dp_noise: settings.noises,
    dp_epsilon: dpEpsilon,
    dp_acc: dpAcc,
    bytes_per_round: bytes,
    personalised_acc: personalisedAcc,
    global_acc: globalAcc,
    batched_round_speedup: speedup,
    dispatches_per_round: dispatches,
    settings: { ...settings, perClient, mode },
    adapter: engine.adapterName,
    seconds: (performance.now() - started) / 1000,
  });
});
