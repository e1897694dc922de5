// Benchmark page: this engine against TensorFlow.js 4.22 (WebGPU backend) in the same page, on
// the same adapter. Driven by scripts/bench.mjs (`npm run bench`); the result goes to
// window.__result and a `[result] {...}` console line.
//
// Measured, with warm-up for both and the two libraries interleaved round by round (the best
// round of each is reported; every round is in the `rounds` extra):
//   - 1024x1024x1024 matmul GFLOP/s (several products, then one readback of the last)
//   - MLP 784-256-10 (ReLU), Adam lr 1e-3, batch 128: training samples/s on random data
//   - FedAvg CNN (conv5x5 32 same, maxpool 2, conv5x5 64 same, maxpool 2, dense 512, dense 10,
//     ReLU), Adam lr 1e-3, batch 64, 28x28x1 inputs: training samples/s
//   - frozen_step_ratio: CNN step time with everything but the last layer frozen / full step time
//     (this engine; transfer learning's case: a frozen convolutional base). The MLP's ratio (fc1
//     frozen) is the extra mlp_frozen_step_ratio: there the frozen forward of fc1 alone is about
//     half the FLOPs of a full step, so it cannot go far below 0.5 in FLOPs.
//   - gpu_bytes_start / gpu_bytes_end: engine.memory().bytes around 300 MLP steps
//   - replica_step_ratio (this engine; a federated round's local step): the 2NN (784-200-200-10,
//     ReLU), SGD, 10 replicas on a batch of 10 each: one step of each on its own model (forward,
//     backward and step, 10 times) / one step of all through Replicas.forward (one kernel per
//     layer for all 10)
// Query parameters (all optional): rounds, mlpSteps, cnnSteps, matmulReps, memSteps, replicaSteps.
//
// Both sides upload each batch from CPU arrays every step and synchronise only at the end of a
// timed run (the engine with sync(), TF.js by reading back a small variable), so neither pays
// a per-step readback.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import {
  Adam,
  autotune,
  backward,
  Conv2d,
  Dense,
  Engine,
  Flatten,
  matmul,
  MaxPool2d,
  ReLU,
  replicate,
  Reshape,
  reshape,
  scale,
  Sequential,
  SGD,
  softmaxCrossEntropy,
  type Module,
  type Optimizer,
} from '../../src/index.js';

interface BenchResult {
  adapter: string;
  matmul_gflops: number;
  tfjs_matmul_gflops: number;
  mlp_samples_per_s: number;
  tfjs_mlp_samples_per_s: number;
  cnn_samples_per_s: number;
  tfjs_cnn_samples_per_s: number;
  frozen_step_ratio: number;
  gpu_bytes_start: number;
  gpu_bytes_end: number;
  [extra: string]: unknown;
}

// window.__result / window.__error, as scripts/page-runner.mjs reads them (not declared globally:
// the demos are type-checked together and each declares its own result type).
const page = window as unknown as { __result?: BenchResult; __error?: string };

const params = new URLSearchParams(location.search);
function intParam(name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`query parameter ${name}=${raw} must be a positive integer`);
  return v;
}

const ROUNDS = intParam('rounds', 2);
const MATMUL_N = 1024;
const MATMUL_REPS = intParam('matmulReps', 2);
const MLP_BATCH = 128;
const MLP_STEPS = intParam('mlpSteps', 20);
const CNN_BATCH = 64;
const CNN_STEPS = intParam('cnnSteps', 2);
const MEM_STEPS = intParam('memSteps', 300);
const REPLICAS = 10;
const REPLICA_BATCH = 10;
const REPLICA_STEPS = intParam('replicaSteps', 5);
const WARMUP = 3;
const PIXELS = 784;
const CLASSES = 10;

function log(text: string): void {
  console.log(`[progress] ${text}`);
}

const rows = new Map<string, HTMLTableCellElement[]>();
function show(metric: string, ours: string, theirs: string): void {
  let cells = rows.get(metric);
  if (!cells) {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = metric;
    cells = [document.createElement('td'), document.createElement('td')];
    tr.append(name, ...cells);
    document.getElementById('results')!.append(tr);
    rows.set(metric, cells);
  }
  cells[0]!.textContent = ours;
  cells[1]!.textContent = theirs;
}
function status(text: string): void {
  document.getElementById('status')!.textContent = text;
  log(text);
}

// ---- random data --------------------------------------------------------------------------

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

interface Batch {
  x: Float32Array;
  y: Float32Array;
}

/** A few batches of uniform [0, 1) pixels with random one-hot labels, used in turn. */
function batches(count: number, batch: number, seed: number): Batch[] {
  const rand = lcg(seed);
  return Array.from({ length: count }, () => {
    const x = new Float32Array(batch * PIXELS).map(() => rand());
    const y = new Float32Array(batch * CLASSES);
    for (let r = 0; r < batch; r++) y[r * CLASSES + Math.floor(rand() * CLASSES)] = 1;
    return { x, y };
  });
}

// ---- timing -------------------------------------------------------------------------------

const best = (xs: number[]) => Math.max(...xs);
const round1 = (v: number) => Math.round(v * 10) / 10;
const round3 = (v: number) => Math.round(v * 1000) / 1000;

async function main(): Promise<void> {
  const pageStart = performance.now();
  status('Requesting a WebGPU device (engine, autotune)…');
  const engine = await Engine.create();
  await autotune(engine);
  engine.onLost((e) => fail(e));
  document.getElementById('adapter')!.textContent = engine.adapterName;
  log(`adapter ${engine.adapterName}`);

  status('Initialising TensorFlow.js (webgpu backend)…');
  if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js: the webgpu backend did not initialise');
  await tf.ready();
  const tfInfo = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
  const tfAdapter = [tfInfo?.vendor, tfInfo?.architecture].filter(Boolean).join(' ') || 'unknown';
  log(`tfjs ${tf.version.tfjs} backend=${tf.getBackend()} adapter=${tfAdapter}`);

  const rounds: Record<string, number[]> = {};
  const record = (key: string, v: number) => (rounds[key] ??= []).push(round3(v));

  // ---- matmul ----
  const flops = 2 * MATMUL_N ** 3;
  const ea = engine.keep(engine.randn([MATMUL_N, MATMUL_N], { seed: 1, name: 'bench.a' }));
  const eb = engine.keep(engine.randn([MATMUL_N, MATMUL_N], { seed: 2, name: 'bench.b' }));
  const ta = tf.randomNormal([MATMUL_N, MATMUL_N], 0, 1, 'float32', 1);
  const tb = tf.randomNormal([MATMUL_N, MATMUL_N], 0, 1, 'float32', 2);
  const engineMatmul = async (reps: number) =>
    engine.scope(async () => {
      await engine.sync();
      const t0 = performance.now();
      let c = matmul(ea, eb);
      for (let i = 1; i < reps; i++) c = matmul(ea, eb);
      await c.data();
      return (performance.now() - t0) / reps;
    });
  const tfMatmul = async (reps: number) => {
    const t0 = performance.now();
    const cs: tf.Tensor[] = [];
    for (let i = 0; i < reps; i++) cs.push(tf.matMul(ta, tb));
    await cs[cs.length - 1]!.data();
    const ms = (performance.now() - t0) / reps;
    tf.dispose(cs);
    return ms;
  };
  status('matmul 1024: warming up…');
  await engineMatmul(1);
  await tfMatmul(1);
  for (let r = 0; r < ROUNDS; r++) {
    const e = flops / ((await engineMatmul(MATMUL_REPS)) * 1e6);
    const t = flops / ((await tfMatmul(MATMUL_REPS)) * 1e6);
    record('matmul_gflops', e);
    record('tfjs_matmul_gflops', t);
    log(`matmul round ${r + 1}/${ROUNDS}: engine ${e.toFixed(2)} GFLOP/s, tfjs ${t.toFixed(2)} GFLOP/s`);
    show('matmul 1024³ (GFLOP/s)', best(rounds.matmul_gflops!).toFixed(2), best(rounds.tfjs_matmul_gflops!).toFixed(2));
  }
  ea.dispose();
  eb.dispose();
  tf.dispose([ta, tb]);

  // ---- training-step helpers ----
  const engineSteps = async (model: Module, opt: Optimizer, data: Batch[], batch: number, steps: number) => {
    await engine.sync();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const b = data[i % data.length]!;
      await engine.scope(async () => {
        const l = softmaxCrossEntropy(model.forward(engine.tensor(b.x, [batch, PIXELS], 'x')), engine.tensor(b.y, [batch, CLASSES], 'y'));
        backward(l);
        opt.step();
        opt.zeroGrad();
        await engine.flush();
      });
    }
    await engine.sync();
    return (performance.now() - t0) / steps;
  };
  const engineLoss = async (model: Module, b: Batch, batch: number) =>
    engine.scope(async () => softmaxCrossEntropy(model.forward(engine.tensor(b.x, [batch, PIXELS])), engine.tensor(b.y, [batch, CLASSES])).item());

  const tfSteps = async (model: tf.LayersModel, opt: tf.Optimizer, data: Batch[], batch: number, xShape: number[], steps: number) => {
    const vars = model.trainableWeights.map((w) => w.read() as unknown as tf.Variable);
    const sync = () => vars[vars.length - 1]!.data();
    await sync();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const b = data[i % data.length]!;
      tf.tidy(() => {
        const x = tf.tensor(b.x, [batch, ...xShape]);
        const y = tf.tensor2d(b.y, [batch, CLASSES]);
        opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, false, vars);
      });
    }
    await sync();
    return (performance.now() - t0) / steps;
  };
  const tfLoss = async (model: tf.LayersModel, b: Batch, batch: number, xShape: number[]) => {
    const l = tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.tensor2d(b.y, [batch, CLASSES]), model.predict(tf.tensor(b.x, [batch, ...xShape])) as tf.Tensor));
    const v = (await l.data())[0]!;
    l.dispose();
    return v;
  };

  // ---- MLP ----
  const mlpData = batches(4, MLP_BATCH, 7);
  const mlp = new Sequential({
    fc1: new Dense(engine, PIXELS, 256, { seed: 1 }),
    relu1: ReLU(),
    fc2: new Dense(engine, 256, CLASSES, { seed: 2 }),
  });
  const mlpOpt = new Adam(mlp.parameters(), { lr: 1e-3 });
  const tfMlp = tf.sequential({ layers: [tf.layers.dense({ inputShape: [PIXELS], units: 256, activation: 'relu' }), tf.layers.dense({ units: CLASSES })] });
  const tfMlpOpt = tf.train.adam(1e-3);
  status(`MLP 784-256-10, batch ${MLP_BATCH}: warming up…`);
  await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, WARMUP);
  await tfSteps(tfMlp, tfMlpOpt, mlpData, MLP_BATCH, [PIXELS], WARMUP);
  for (let r = 0; r < ROUNDS; r++) {
    const e = (MLP_BATCH * 1000) / (await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, MLP_STEPS));
    const t = (MLP_BATCH * 1000) / (await tfSteps(tfMlp, tfMlpOpt, mlpData, MLP_BATCH, [PIXELS], MLP_STEPS));
    record('mlp_samples_per_s', e);
    record('tfjs_mlp_samples_per_s', t);
    log(`MLP round ${r + 1}/${ROUNDS}: engine ${e.toFixed(1)} samples/s, tfjs ${t.toFixed(1)} samples/s`);
    show('MLP training (samples/s)', best(rounds.mlp_samples_per_s!).toFixed(1), best(rounds.tfjs_mlp_samples_per_s!).toFixed(1));
  }
  const mlpLoss = await engineLoss(mlp, mlpData[0]!, MLP_BATCH);
  const tfMlpLoss = await tfLoss(tfMlp, mlpData[0]!, MLP_BATCH, [PIXELS]);
  log(`MLP loss on a training batch after ${WARMUP + ROUNDS * MLP_STEPS} steps: engine ${mlpLoss.toFixed(4)}, tfjs ${tfMlpLoss.toFixed(4)}`);
  tfMlp.dispose();
  tfMlpOpt.dispose();

  // ---- frozen step ratio (MLP, everything but fc2 frozen) ----
  status('MLP with fc1 frozen: warming up…');
  const fullMs: number[] = [];
  const frozenMs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, 1);
    fullMs.push(await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, MLP_STEPS));
    mlp.freeze('fc1');
    await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, 1);
    frozenMs.push(await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, MLP_STEPS));
    mlp.unfreeze('fc1');
    log(`frozen round ${r + 1}/${ROUNDS}: full ${fullMs[r]!.toFixed(2)} ms/step, fc1 frozen ${frozenMs[r]!.toFixed(2)} ms/step`);
  }
  const frozenRatio = Math.min(...frozenMs) / Math.min(...fullMs);
  show('MLP step time, fc1 frozen / full', frozenRatio.toFixed(3), '–');

  // ---- federated local step: 10 replicas of the 2NN, each on its own batch ----
  status(`2NN, ${REPLICAS} replicas x batch ${REPLICA_BATCH}: warming up…`);
  const twoNN = new Sequential({
    fc1: new Dense(engine, PIXELS, 200, { seed: 7 }),
    relu1: ReLU(),
    fc2: new Dense(engine, 200, 200, { seed: 8 }),
    relu2: ReLU(),
    fc3: new Dense(engine, 200, CLASSES, { seed: 9 }),
  });
  const clients = replicate(twoNN, REPLICAS);
  const jointOpt = new SGD(clients, { lr: 0.01 });
  const ownOpts = clients.models.map((m) => new SGD(m, { lr: 0.01 }));
  const clientData = batches(2, REPLICAS * REPLICA_BATCH, 13); // replica k's batch: rows 10k .. 10k + 9
  const replicaSteps = async (step: (b: Batch) => void) => {
    await engine.sync();
    const d0 = engine.dispatchCount;
    const t0 = performance.now();
    for (let i = 0; i < REPLICA_STEPS; i++) {
      await engine.scope(async () => {
        step(clientData[i % clientData.length]!);
        await engine.flush();
      });
    }
    await engine.sync();
    return { ms: (performance.now() - t0) / REPLICA_STEPS, dispatches: (engine.dispatchCount - d0) / REPLICA_STEPS };
  };
  const all = REPLICAS * REPLICA_BATCH;
  const batchedStep = (b: Batch) => {
    const logits = clients.forward(engine.tensor(b.x, [REPLICAS, REPLICA_BATCH, PIXELS], 'x'));
    // K x the mean over all K * B rows: each replica gets the gradient of its own mean loss.
    backward(scale(softmaxCrossEntropy(reshape(logits, [all, CLASSES]), engine.tensor(b.y, [all, CLASSES], 'y')), REPLICAS));
    jointOpt.step();
    jointOpt.zeroGrad();
  };
  const sequentialStep = (b: Batch) =>
    clients.models.forEach((m, k) => {
      const x = b.x.subarray(k * REPLICA_BATCH * PIXELS, (k + 1) * REPLICA_BATCH * PIXELS);
      const y = b.y.subarray(k * REPLICA_BATCH * CLASSES, (k + 1) * REPLICA_BATCH * CLASSES);
      backward(softmaxCrossEntropy(m.forward(engine.tensor(x, [REPLICA_BATCH, PIXELS], 'x')), engine.tensor(y, [REPLICA_BATCH, CLASSES], 'y')));
      ownOpts[k]!.step();
      ownOpts[k]!.zeroGrad();
    });
  await replicaSteps(batchedStep);
  await replicaSteps(sequentialStep);
  const replicaDispatches = { batched: 0, sequential: 0 };
  for (let r = 0; r < ROUNDS; r++) {
    const batched = await replicaSteps(batchedStep);
    const sequential = await replicaSteps(sequentialStep);
    record('replica_batched_ms', batched.ms);
    record('replica_sequential_ms', sequential.ms);
    replicaDispatches.batched = batched.dispatches;
    replicaDispatches.sequential = sequential.dispatches;
    log(`replicas round ${r + 1}/${ROUNDS}: batched ${batched.ms.toFixed(2)} ms/step (${batched.dispatches} dispatches), sequential ${sequential.ms.toFixed(2)} ms/step (${sequential.dispatches} dispatches)`);
  }
  const replicaRatio = Math.min(...rounds.replica_sequential_ms!) / Math.min(...rounds.replica_batched_ms!);
  show(`2NN step, ${REPLICAS} replicas: sequential / batched`, replicaRatio.toFixed(2), '–');
  for (const o of [jointOpt, ...ownOpts]) o.dispose();
  clients.dispose();
  twoNN.dispose();

  // ---- memory over many steps ----
  status(`GPU memory over ${MEM_STEPS} MLP steps…`);
  await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, WARMUP);
  const memStart = engine.memory();
  const memMs = await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, MEM_STEPS);
  const memEnd = engine.memory();
  log(`memory: ${memStart.bytes} bytes (${memStart.buffers} buffers) -> ${memEnd.bytes} bytes (${memEnd.buffers} buffers) over ${MEM_STEPS} steps (${((MLP_BATCH * 1000) / memMs).toFixed(1)} samples/s)`);
  show(`GPU bytes before / after ${MEM_STEPS} steps`, `${memStart.bytes} / ${memEnd.bytes}`, '–');

  // ---- CNN ----
  const cnnData = batches(2, CNN_BATCH, 11);
  const cnn = new Sequential({
    image: new Reshape([1, 28, 28]),
    conv1: new Conv2d(engine, 1, 32, 5, { padding: 2, seed: 3 }),
    relu1: ReLU(),
    pool1: new MaxPool2d(2),
    conv2: new Conv2d(engine, 32, 64, 5, { padding: 2, seed: 4 }),
    relu2: ReLU(),
    pool2: new MaxPool2d(2),
    flatten: new Flatten(),
    fc1: new Dense(engine, 7 * 7 * 64, 512, { seed: 5 }),
    relu3: ReLU(),
    fc2: new Dense(engine, 512, CLASSES, { seed: 6 }),
  });
  const cnnOpt = new Adam(cnn.parameters(), { lr: 1e-3 });
  const tfCnn = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 5, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 512, activation: 'relu' }),
      tf.layers.dense({ units: CLASSES }),
    ],
  });
  const tfCnnOpt = tf.train.adam(1e-3);
  const NHWC = [28, 28, 1];
  status(`CNN (FedAvg), batch ${CNN_BATCH}: warming up…`);
  await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, 1);
  await tfSteps(tfCnn, tfCnnOpt, cnnData, CNN_BATCH, NHWC, 1);
  for (let r = 0; r < ROUNDS; r++) {
    const e = (CNN_BATCH * 1000) / (await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, CNN_STEPS));
    const t = (CNN_BATCH * 1000) / (await tfSteps(tfCnn, tfCnnOpt, cnnData, CNN_BATCH, NHWC, CNN_STEPS));
    record('cnn_samples_per_s', e);
    record('tfjs_cnn_samples_per_s', t);
    log(`CNN round ${r + 1}/${ROUNDS}: engine ${e.toFixed(1)} samples/s, tfjs ${t.toFixed(1)} samples/s`);
    show('CNN training (samples/s)', best(rounds.cnn_samples_per_s!).toFixed(1), best(rounds.tfjs_cnn_samples_per_s!).toFixed(1));
  }
  const cnnLoss = await engineLoss(cnn, cnnData[0]!, CNN_BATCH);
  const tfCnnLoss = await tfLoss(tfCnn, cnnData[0]!, CNN_BATCH, NHWC);
  log(`CNN loss on a training batch: engine ${cnnLoss.toFixed(4)}, tfjs ${tfCnnLoss.toFixed(4)}`);

  // CNN with everything but fc2 frozen (an extra: transfer learning's case).
  cnn.freeze('conv1', 'conv2', 'fc1');
  await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, 1);
  const cnnFrozenMs = await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, CNN_STEPS);
  cnn.unfreeze();
  const cnnFullMs = (CNN_BATCH * 1000) / best(rounds.cnn_samples_per_s!);
  const cnnFrozenRatio = cnnFrozenMs / cnnFullMs;
  log(`CNN frozen: ${cnnFrozenMs.toFixed(1)} ms/step vs ${cnnFullMs.toFixed(1)} ms/step full (ratio ${cnnFrozenRatio.toFixed(3)})`);
  show('CNN step time, all but fc2 frozen / full', cnnFrozenRatio.toFixed(3), '–');
  tfCnn.dispose();
  tfCnnOpt.dispose();

  const result: BenchResult = {
    adapter: engine.adapterName,
    matmul_gflops: round3(best(rounds.matmul_gflops!)),
    tfjs_matmul_gflops: round3(best(rounds.tfjs_matmul_gflops!)),
    mlp_samples_per_s: round1(best(rounds.mlp_samples_per_s!)),
    tfjs_mlp_samples_per_s: round1(best(rounds.tfjs_mlp_samples_per_s!)),
    cnn_samples_per_s: round1(best(rounds.cnn_samples_per_s!)),
    tfjs_cnn_samples_per_s: round1(best(rounds.tfjs_cnn_samples_per_s!)),
    frozen_step_ratio: round3(cnnFrozenRatio),
    gpu_bytes_start: memStart.bytes,
    gpu_bytes_end: memEnd.bytes,
    tfjs_version: tf.version.tfjs,
    tfjs_adapter: tfAdapter,
    mlp_frozen_step_ratio: round3(frozenRatio),
    replica_step_ratio: round3(replicaRatio),
    replica_dispatches_per_step: replicaDispatches,
    mlp_step_ms: { full: fullMs.map(round3), fc1_frozen: frozenMs.map(round3) },
    losses: { mlp: round3(mlpLoss), tfjs_mlp: round3(tfMlpLoss), cnn: round3(cnnLoss), tfjs_cnn: round3(tfCnnLoss) },
    rounds,
    settings: { rounds: ROUNDS, matmul_reps: MATMUL_REPS, mlp_steps: MLP_STEPS, cnn_steps: CNN_STEPS, mem_steps: MEM_STEPS, replica_steps: REPLICA_STEPS, warmup: WARMUP, statistic: 'best round' },
    seconds: round1((performance.now() - pageStart) / 1000),
  };
  status(`Done in ${result.seconds} s.`);
  page.__result = result;
  console.log('[result] ' + JSON.stringify(result));
}

function fail(e: unknown): void {
  if (page.__error !== undefined) return;
  page.__error = e instanceof Error ? e.message : String(e);
  const box = document.getElementById('error')!;
  box.textContent = `Error: ${e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e)}`;
  box.style.display = 'block';
  console.error('[error] ' + page.__error);
}

window.addEventListener('unhandledrejection', (ev) => fail(ev.reason));
main().catch(fail);
