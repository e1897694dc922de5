// Benchmark page: this engine against TensorFlow.js 4.22 (WebGPU backend) and jax-js 0.1.25
// (WebGPU; its steps under jit, jax-classifier.ts and jax-lstm.ts), in the same page, on the same
// adapter. Driven by
// scripts/bench.mjs (`npm run bench`); the result goes to window.__result and a `[result] {...}`
// console line.
//
// Measured, with warm-up for each and the libraries interleaved round by round (the best round of
// each is reported; every round is in the `rounds` extra):
//   - 1024x1024x1024 matmul GFLOP/s (several products, then one readback of the last)
//   - MLP 784-256-10 (ReLU), Adam lr 1e-3, batch 128: training samples/s on random data
//   - FedAvg CNN (conv5x5 32 same, maxpool 2, conv5x5 64 same, maxpool 2, dense 512, dense 10,
//     ReLU), Adam lr 1e-3, batch 64, 28x28x1 inputs: training samples/s
//   - conv_gflops (this engine, with the CNN): GFLOP/s of conv2d's forward, input-gradient and
//     weight-gradient passes on the CNN's conv1 and conv2 shapes, and of the matmul kernel on each
//     pass's product with its columns written out, from GPU timestamps (conv-figures.ts);
//     conv_over_matmul their ratios
//   - frozen_step_ratio: CNN step time with everything but the last layer frozen / full step time
//     (this engine; transfer learning's case: a frozen convolutional base). The MLP's ratio (fc1
//     frozen) is the extra mlp_frozen_step_ratio: there the frozen forward of fc1 alone is about
//     half the FLOPs of a full step, so it cannot go far below 0.5 in FLOPs.
//   - frozen_step_over_forward: that frozen step's time / a forward pass of the same model on the
//     same batch (no graph recorded): the frozen step's floor, since the only extra work is fc2's
//     backward and update; its ratio to a full step rises as backward kernels get faster.
//   - gpu_bytes_start / gpu_bytes_end: engine.memory().bytes around 300 MLP steps
//   - replica_step_ratio (this engine; a federated round's local step): the 2NN (784-200-200-10,
//     ReLU), SGD, 10 replicas on a batch of 10 each: one step of each on its own model (forward,
//     backward and step, 10 times) / one step of all through Replicas.forward (one kernel per
//     layer for all 10)
//   - the keyboard model (src/paradigms/keyboard) with a standard LSTM: vocabulary 2000, embedding
//     64, hidden 128, B = 32 streams x T = 20 steps, Adam lr 3e-3 without clipping, random ids,
//     state carried: training tokens/s. Ours trains with trainLanguageModel; TF.js with its
//     embedding, stateful LSTM (sigmoid gates) and dense layers; jax-js with the step written in
//     its array ops under one jit (jax-lstm.ts). TF.js has neither a tied output layer nor CIFG:
//     its output is a dense layer of the table's size (embedding x vocabulary) after the same
//     projection, and our model uses its standard LSTM cell here, not the keyboard's CIFG.
// Query parameters (all optional): rounds, mlpSteps, cnnSteps, frozenSteps, convRounds, matmulReps,
// memSteps, replicaSteps, lstmSteps, and parts (a comma-separated subset of matmul,mlp,replicas,cnn,lstm; default all:
// parts=lstm runs only the keyboard model's comparison). mlp includes the memory measurement.
//
// Every library uploads each batch from CPU arrays every step and synchronises only at the end of
// a timed run (the engine with sync(), TF.js by reading back a small variable, jax-js, which is
// lazy and dispatches its kernels only when an array is awaited, with blockUntilReady on its
// parameters), so none pays a per-step readback.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import {
  Adam,
  autotune,
  backward,
  describeMatmul,
  batchify,
  Dense,
  Engine,
  KeyboardModel,
  ReLU,
  replicate,
  reshape,
  scale,
  Sequential,
  SGD,
  softmaxCrossEntropy,
  trainLanguageModel,
  type Module,
  type Optimizer,
} from '../../src/index.js';
import { oneHotRows, streamWindow } from '../../src/paradigms/keyboard/train.js';
import { blockUntilReady, numpy as jnp } from '@jax-js/jax';
import { countValues } from '../common/ui.js';
import { convFigures } from './conv-figures.js';
import { cnnModel, JaxClassifier, mlpModel } from './jax-classifier.js';
import { JaxLstm } from './jax-lstm.js';
import { jaxAdapter, startJaxWebGpu, uniformArray } from './jax-train.js';
import { batches, benchMlp, CLASSES, CNN_BATCH, forwardPasses, matmulProducts, trainSteps, fedAvgCnn, lcg, MATMUL_N, MLP_BATCH, PIXELS, type Batch } from './workloads.js';

/** The figures of the parts that ran (all by default). */
interface BenchResult {
  adapter: string;
  matmul_gflops?: number;
  tfjs_matmul_gflops?: number;
  jax_matmul_gflops?: number;
  /** The matmul variant and constants the autotuner picked (describeMatmul). */
  matmul_kernel?: string;
  mlp_samples_per_s?: number;
  tfjs_mlp_samples_per_s?: number;
  jax_mlp_samples_per_s?: number;
  cnn_samples_per_s?: number;
  tfjs_cnn_samples_per_s?: number;
  jax_cnn_samples_per_s?: number;
  frozen_step_ratio?: number;
  frozen_step_over_forward?: number;
  gpu_bytes_start?: number;
  gpu_bytes_end?: number;
  lstm_tokens_per_s?: number;
  tfjs_lstm_tokens_per_s?: number;
  jax_lstm_tokens_per_s?: number;
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

const PART_NAMES = ['matmul', 'mlp', 'replicas', 'cnn', 'lstm'] as const;
const PARTS = new Set((params.get('parts') || PART_NAMES.join(',')).split(','));
for (const part of PARTS) {
  if (!(PART_NAMES as readonly string[]).includes(part)) throw new Error(`query parameter parts: unknown part "${part}"; parts: ${PART_NAMES.join(', ')}`);
}
const runs = (part: (typeof PART_NAMES)[number]) => PARTS.has(part);

const ROUNDS = intParam('rounds', 2);
const MATMUL_REPS = intParam('matmulReps', 2);
const MLP_STEPS = intParam('mlpSteps', 20);
const CNN_STEPS = intParam('cnnSteps', 2);
// The frozen step against a forward pass: a ratio near 1 of two noisy timings, so more steps.
const FROZEN_STEPS = intParam('frozenSteps', 6);
// Each convolution pass is short and timed alone, so its best of more rounds.
const CONV_ROUNDS = intParam('convRounds', 5);
const MEM_STEPS = intParam('memSteps', 300);
const REPLICAS = 10;
const REPLICA_BATCH = 10;
const REPLICA_STEPS = intParam('replicaSteps', 5);
const WARMUP = 3;
// The keyboard model at the sizes of `npm run headless -- keyboard` (demos/keyboard).
const KEYBOARD = { vocab: 2000, embedding: 64, hidden: 128, streams: 32, unroll: 20, lr: 3e-3 };
const LSTM_STEPS = intParam('lstmSteps', 2);

function log(text: string): void {
  console.log(`[progress] ${text}`);
}

const rows = new Map<string, HTMLTableCellElement[]>();
/** A row of the results table: this engine, TF.js and jax-js (a dash where a library is not measured). */
function show(metric: string, ...figures: [ours: string, tfjs: string, jax?: string]): void {
  let cells = rows.get(metric);
  if (!cells) {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = metric;
    cells = [document.createElement('td'), document.createElement('td'), document.createElement('td')];
    tr.append(name, ...cells);
    document.getElementById('results')!.append(tr);
    rows.set(metric, cells);
  }
  cells.forEach((cell, i) => (cell.textContent = figures[i] ?? '–'));
}
function status(text: string): void {
  document.getElementById('status')!.textContent = text;
  log(text);
}

// ---- timing -------------------------------------------------------------------------------

const best = (xs: number[]) => Math.max(...xs);
const round1 = (v: number) => Math.round(v * 10) / 10;
const round3 = (v: number) => Math.round(v * 1000) / 1000;

async function main(): Promise<void> {
  const pageStart = performance.now();
  status('Requesting a WebGPU device (engine, autotune)…');
  const engine = await Engine.create();
  const [matmulTuned] = await autotune(engine);
  engine.onLost((e) => fail(e));
  document.getElementById('adapter')!.textContent = engine.adapterName;
  log(`adapter ${engine.adapterName}`);
  const matmulTimings = matmulTuned!.timings.map((t) => `${describeMatmul(t.constants)}: ${t.ms.toFixed(1)} ms`);
  log(`autotune matmul: ${describeMatmul(matmulTuned!.best)} (256³: ${matmulTimings.join(', ')}; rejected ${matmulTuned!.rejected.length})`);

  status('Initialising TensorFlow.js (webgpu backend)…');
  if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js: the webgpu backend did not initialise');
  await tf.ready();
  const tfInfo = (tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
  const tfAdapter = [tfInfo?.vendor, tfInfo?.architecture].filter(Boolean).join(' ') || 'unknown';
  log(`tfjs ${tf.version.tfjs} backend=${tf.getBackend()} adapter=${tfAdapter}`);

  status('Initialising jax-js (webgpu device)…');
  await startJaxWebGpu();
  log(`jax-js adapter=${jaxAdapter()}`);

  const rounds: Record<string, number[]> = {};
  const record = (key: string, v: number) => (rounds[key] ??= []).push(round3(v));
  const result: BenchResult = { adapter: engine.adapterName, tfjs_version: tf.version.tfjs, tfjs_adapter: tfAdapter, jax_adapter: jaxAdapter() };
  const losses: Record<string, number> = {};

  // ---- matmul ----
  if (runs('matmul')) {
    const flops = 2 * MATMUL_N ** 3;
    const ea = engine.keep(engine.randn([MATMUL_N, MATMUL_N], { seed: 1, name: 'bench.a' }));
    const eb = engine.keep(engine.randn([MATMUL_N, MATMUL_N], { seed: 2, name: 'bench.b' }));
    const ta = tf.randomNormal([MATMUL_N, MATMUL_N], 0, 1, 'float32', 1);
    const tb = tf.randomNormal([MATMUL_N, MATMUL_N], 0, 1, 'float32', 2);
    const ja = uniformArray([MATMUL_N, MATMUL_N], 1, lcg(1));
    const jb = uniformArray([MATMUL_N, MATMUL_N], 1, lcg(2));
    const engineMatmul = (reps: number) => matmulProducts(engine, ea, eb, reps);
    const tfMatmul = async (reps: number) => {
      const t0 = performance.now();
      const cs: tf.Tensor[] = [];
      for (let i = 0; i < reps; i++) cs.push(tf.matMul(ta, tb));
      await cs[cs.length - 1]!.data();
      const ms = (performance.now() - t0) / reps;
      tf.dispose(cs);
      return ms;
    };
    const jaxMatmul = async (reps: number) => {
      const t0 = performance.now();
      const cs: jnp.Array[] = [];
      for (let i = 0; i < reps; i++) cs.push(jnp.dot(ja.ref, jb.ref));
      // jax-js is lazy: a product disposed before it is needed never runs, so every one is dispatched and awaited.
      await blockUntilReady(cs);
      await cs.pop()!.data();
      const ms = (performance.now() - t0) / reps;
      for (const c of cs) c.dispose();
      return ms;
    };
    status('matmul 1024: warming up…');
    await engineMatmul(1);
    await tfMatmul(1);
    await jaxMatmul(1);
    for (let r = 0; r < ROUNDS; r++) {
      const e = flops / ((await engineMatmul(MATMUL_REPS)) * 1e6);
      const t = flops / ((await tfMatmul(MATMUL_REPS)) * 1e6);
      const j = flops / ((await jaxMatmul(MATMUL_REPS)) * 1e6);
      record('matmul_gflops', e);
      record('tfjs_matmul_gflops', t);
      record('jax_matmul_gflops', j);
      log(`matmul round ${r + 1}/${ROUNDS}: engine ${e.toFixed(2)} GFLOP/s, tfjs ${t.toFixed(2)} GFLOP/s, jax-js ${j.toFixed(2)} GFLOP/s`);
      show('matmul 1024³ (GFLOP/s)', best(rounds.matmul_gflops!).toFixed(2), best(rounds.tfjs_matmul_gflops!).toFixed(2), best(rounds.jax_matmul_gflops!).toFixed(2));
    }
    ea.dispose();
    eb.dispose();
    tf.dispose([ta, tb]);
    ja.dispose();
    jb.dispose();
    result.matmul_gflops = round3(best(rounds.matmul_gflops!));
    result.tfjs_matmul_gflops = round3(best(rounds.tfjs_matmul_gflops!));
    result.jax_matmul_gflops = round3(best(rounds.jax_matmul_gflops!));
    result.matmul_speedup_over_jax = round3(result.matmul_gflops / result.jax_matmul_gflops);
    result.matmul_kernel = describeMatmul(matmulTuned!.best);
  }

  // ---- training-step helpers (xShape, yShape: a batch's input and label shapes, batch first) ----
  const engineSteps = (model: Module, opt: Optimizer, data: Batch[], batch: number, steps: number) => trainSteps(engine, model, opt, data, batch, steps);
  const engineLoss = async (model: Module, b: Batch, xShape: number[], yShape: number[]) =>
    engine.scope(async () => softmaxCrossEntropy(model.forward(engine.tensor(b.x, xShape)), engine.tensor(b.y, yShape)).item());

  const tfSteps = async (model: tf.LayersModel, opt: tf.Optimizer, data: Batch[], xShape: number[], yShape: number[], steps: number) => {
    const vars = model.trainableWeights.map((w) => w.read() as unknown as tf.Variable);
    const sync = () => vars[vars.length - 1]!.data();
    // Zeroes a stateful LSTM's state and frees the states it keeps for backpropagation (no-op without one).
    model.resetStates();
    await sync();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const b = data[i % data.length]!;
      tf.tidy(() => {
        const x = tf.tensor(b.x, xShape);
        const y = tf.tensor(b.y, yShape);
        opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, false, vars);
      });
    }
    await sync();
    return (performance.now() - t0) / steps;
  };
  const tfLoss = async (model: tf.LayersModel, b: Batch, xShape: number[], yShape: number[]) => {
    const l = tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.tensor(b.y, yShape), model.predict(tf.tensor(b.x, xShape)) as tf.Tensor));
    const v = (await l.data())[0]!;
    l.dispose();
    return v;
  };

  // ---- MLP ----
  if (runs('mlp')) {
    const mlpData = batches(4, MLP_BATCH, 7);
    const mlpX = [MLP_BATCH, PIXELS];
    const mlpY = [MLP_BATCH, CLASSES];
    const mlp = benchMlp(engine);
    const mlpOpt = new Adam(mlp.parameters(), { lr: 1e-3 });
    const tfMlp = tf.sequential({ layers: [tf.layers.dense({ inputShape: [PIXELS], units: 256, activation: 'relu' }), tf.layers.dense({ units: CLASSES })] });
    const tfMlpOpt = tf.train.adam(1e-3);
    const jaxMlp = new JaxClassifier(mlpModel(MLP_BATCH, lcg(19)), 1e-3);
    status(`MLP 784-256-10, batch ${MLP_BATCH}: warming up (jax-js compiles its step)…`);
    await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, WARMUP);
    await tfSteps(tfMlp, tfMlpOpt, mlpData, mlpX, mlpY, WARMUP);
    await jaxMlp.steps(mlpData, WARMUP);
    for (let r = 0; r < ROUNDS; r++) {
      const e = (MLP_BATCH * 1000) / (await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, MLP_STEPS));
      const t = (MLP_BATCH * 1000) / (await tfSteps(tfMlp, tfMlpOpt, mlpData, mlpX, mlpY, MLP_STEPS));
      const j = (MLP_BATCH * 1000) / (await jaxMlp.steps(mlpData, MLP_STEPS));
      record('mlp_samples_per_s', e);
      record('tfjs_mlp_samples_per_s', t);
      record('jax_mlp_samples_per_s', j);
      log(`MLP round ${r + 1}/${ROUNDS}: engine ${e.toFixed(1)} samples/s, tfjs ${t.toFixed(1)} samples/s, jax-js ${j.toFixed(1)} samples/s`);
      show('MLP training (samples/s)', best(rounds.mlp_samples_per_s!).toFixed(1), best(rounds.tfjs_mlp_samples_per_s!).toFixed(1), best(rounds.jax_mlp_samples_per_s!).toFixed(1));
    }
    losses.mlp = round3(await engineLoss(mlp, mlpData[0]!, mlpX, mlpY));
    losses.tfjs_mlp = round3(await tfLoss(tfMlp, mlpData[0]!, mlpX, mlpY));
    losses.jax_mlp = round3(await jaxMlp.loss(mlpData[0]!));
    log(`MLP loss on a training batch after ${WARMUP + ROUNDS * MLP_STEPS} steps: engine ${losses.mlp}, tfjs ${losses.tfjs_mlp}, jax-js ${losses.jax_mlp}`);
    tfMlp.dispose();
    tfMlpOpt.dispose();
    jaxMlp.dispose();
    result.mlp_samples_per_s = round1(best(rounds.mlp_samples_per_s!));
    result.tfjs_mlp_samples_per_s = round1(best(rounds.tfjs_mlp_samples_per_s!));
    result.jax_mlp_samples_per_s = round1(best(rounds.jax_mlp_samples_per_s!));
    result.mlp_speedup_over_jax = round3(result.mlp_samples_per_s / result.jax_mlp_samples_per_s);

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
    result.mlp_frozen_step_ratio = round3(frozenRatio);
    result.mlp_step_ms = { full: fullMs.map(round3), fc1_frozen: frozenMs.map(round3) };

    // ---- memory over many steps ----
    status(`GPU memory over ${MEM_STEPS} MLP steps…`);
    await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, WARMUP);
    const memStart = engine.memory();
    const memMs = await engineSteps(mlp, mlpOpt, mlpData, MLP_BATCH, MEM_STEPS);
    const memEnd = engine.memory();
    log(`memory: ${memStart.bytes} bytes (${memStart.buffers} buffers) -> ${memEnd.bytes} bytes (${memEnd.buffers} buffers) over ${MEM_STEPS} steps (${((MLP_BATCH * 1000) / memMs).toFixed(1)} samples/s)`);
    show(`GPU bytes before / after ${MEM_STEPS} steps`, `${memStart.bytes} / ${memEnd.bytes}`, '–');
    result.gpu_bytes_start = memStart.bytes;
    result.gpu_bytes_end = memEnd.bytes;
  }

  // ---- federated local step: 10 replicas of the 2NN, each on its own batch ----
  if (runs('replicas')) {
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
    result.replica_step_ratio = round3(replicaRatio);
    result.replica_dispatches_per_step = replicaDispatches;
  }

  // ---- CNN ----
  if (runs('cnn')) {
    const cnnData = batches(2, CNN_BATCH, 11);
    const cnn = fedAvgCnn(engine);
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
    const cnnX = [CNN_BATCH, 28, 28, 1]; // TF.js's NHWC images (ours reshapes the rows itself)
    const cnnY = [CNN_BATCH, CLASSES];
    const jaxCnn = new JaxClassifier(cnnModel(CNN_BATCH, lcg(29)), 1e-3);
    status(`CNN (FedAvg), batch ${CNN_BATCH}: warming up (jax-js compiles its step)…`);
    await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, 1);
    await tfSteps(tfCnn, tfCnnOpt, cnnData, cnnX, cnnY, 1);
    const jaxCnnFirstMs = await jaxCnn.steps(cnnData, 1);
    log(`jax-js CNN: first step (tracing and compiling the jit) ${(jaxCnnFirstMs / 1000).toFixed(1)} s`);
    for (let r = 0; r < ROUNDS; r++) {
      const e = (CNN_BATCH * 1000) / (await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, CNN_STEPS));
      const t = (CNN_BATCH * 1000) / (await tfSteps(tfCnn, tfCnnOpt, cnnData, cnnX, cnnY, CNN_STEPS));
      const j = (CNN_BATCH * 1000) / (await jaxCnn.steps(cnnData, CNN_STEPS));
      record('cnn_samples_per_s', e);
      record('tfjs_cnn_samples_per_s', t);
      record('jax_cnn_samples_per_s', j);
      log(`CNN round ${r + 1}/${ROUNDS}: engine ${e.toFixed(1)} samples/s, tfjs ${t.toFixed(1)} samples/s, jax-js ${j.toFixed(1)} samples/s`);
      show('CNN training (samples/s)', best(rounds.cnn_samples_per_s!).toFixed(1), best(rounds.tfjs_cnn_samples_per_s!).toFixed(1), best(rounds.jax_cnn_samples_per_s!).toFixed(1));
    }
    losses.cnn = round3(await engineLoss(cnn, cnnData[0]!, [CNN_BATCH, PIXELS], cnnY));
    losses.tfjs_cnn = round3(await tfLoss(tfCnn, cnnData[0]!, cnnX, cnnY));
    losses.jax_cnn = round3(await jaxCnn.loss(cnnData[0]!));
    log(`CNN loss on a training batch: engine ${losses.cnn}, tfjs ${losses.tfjs_cnn}, jax-js ${losses.jax_cnn}`);
    jaxCnn.dispose();

    // CNN with everything but fc2 frozen (an extra: transfer learning's case).
    cnn.freeze('conv1', 'conv2', 'fc1');
    await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, 1);
    await forwardPasses(engine, cnn, cnnData, CNN_BATCH, 1);
    // Frozen steps and forward passes interleaved, best of each: the ratio of two noisy timings.
    const frozenMs: number[] = [];
    const forwardMs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      frozenMs.push(await engineSteps(cnn, cnnOpt, cnnData, CNN_BATCH, FROZEN_STEPS));
      forwardMs.push(await forwardPasses(engine, cnn, cnnData, CNN_BATCH, FROZEN_STEPS));
    }
    cnn.unfreeze();
    const cnnFrozenMs = Math.min(...frozenMs);
    const cnnForwardMs = Math.min(...forwardMs);
    const cnnFullMs = (CNN_BATCH * 1000) / best(rounds.cnn_samples_per_s!);
    const cnnFrozenRatio = cnnFrozenMs / cnnFullMs;
    log(`CNN frozen: ${cnnFrozenMs.toFixed(1)} ms/step vs ${cnnFullMs.toFixed(1)} ms/step full (ratio ${cnnFrozenRatio.toFixed(3)}) and ${cnnForwardMs.toFixed(1)} ms a forward pass (ratio ${(cnnFrozenMs / cnnForwardMs).toFixed(3)})`);
    show('CNN step time, all but fc2 frozen / full', cnnFrozenRatio.toFixed(3), '–');
    show('CNN step time, all but fc2 frozen / forward pass', (cnnFrozenMs / cnnForwardMs).toFixed(3), '–');
    rounds.cnn_frozen_step_ms = frozenMs.map(round1);
    rounds.cnn_forward_ms = forwardMs.map(round1);
    tfCnn.dispose();
    tfCnnOpt.dispose();
    result.cnn_samples_per_s = round1(best(rounds.cnn_samples_per_s!));
    result.tfjs_cnn_samples_per_s = round1(best(rounds.tfjs_cnn_samples_per_s!));
    result.jax_cnn_samples_per_s = round1(best(rounds.jax_cnn_samples_per_s!));
    result.cnn_speedup_over_jax = round3(result.cnn_samples_per_s / result.jax_cnn_samples_per_s);
    result.jax_cnn_first_step_s = round1(jaxCnnFirstMs / 1000);
    result.frozen_step_ratio = round3(cnnFrozenRatio);
    result.frozen_step_over_forward = round3(cnnFrozenMs / cnnForwardMs);

    status('Convolution passes against the matmul kernel (GPU time)…');
    const conv = await convFigures(engine, CONV_ROUNDS);
    for (const [layer, f] of Object.entries(conv.gflops)) {
      log(`${layer}: GFLOP/s forward ${f.forward}, input gradient ${f.backward_input}, weight gradient ${f.backward_weight}; matmul kernel on their products ${f.matmul}, ${f.matmul_input}, ${f.matmul_weight} (${conv.method})`);
      show(`${layer} forward / d(input) / d(weight) (GFLOP/s; matmul on their products)`, `${f.forward} / ${f.backward_input} / ${f.backward_weight} (${f.matmul} / ${f.matmul_input} / ${f.matmul_weight})`, '–');
    }
    result.conv_gflops = conv.gflops;
    result.conv_over_matmul = conv.overMatmul;
    result.conv_timing = conv.method;
  }

  // ---- keyboard model: training a standard-LSTM language model ----
  if (runs('lstm')) {
    const { vocab, embedding, hidden, streams, unroll, lr } = KEYBOARD;
    const tokensPerStep = streams * unroll;
    // One stream of random ids: ours trains on it with trainLanguageModel (B streams of T-token
    // windows, the state carried); TF.js (stateful LSTM) and jax-js on the same windows in the same
    // order, uploaded from CPU arrays every step like ours (ids and one-hot targets).
    const randomId = lcg(17);
    const stream = Uint32Array.from({ length: streams * (unroll * LSTM_STEPS + 1) }, () => Math.floor(randomId() * vocab));
    const streamRows = batchify(stream, streams);
    const lstmData = Array.from({ length: LSTM_STEPS }, (_, s) => {
      const { inputs, targets } = streamWindow(streamRows, s * unroll, unroll);
      return { x: inputs, y: oneHotRows(targets, vocab) };
    });
    const keyboard = new KeyboardModel(engine, { vocab, embedding, hidden, cell: 'lstm', seed: 1 });
    const keyboardOpt = new Adam(keyboard, { lr });
    // Each stream's first `steps` windows, joined: the token stream trainLanguageModel cuts into those windows.
    const firstWindows = (steps: number) => {
      const length = unroll * steps + 1;
      const out = new Uint32Array(streams * length);
      for (let b = 0; b < streams; b++) out.set(streamRows.rows.subarray(b * streamRows.length, b * streamRows.length + length), b * length);
      return out;
    };
    const keyboardSteps = async (steps: number) => {
      const run = await trainLanguageModel(engine, keyboard, keyboardOpt, firstWindows(steps), { batchSize: streams, steps: unroll, epochs: 1, logEvery: steps });
      return (run.seconds * 1000) / run.steps;
    };
    const lstmX = [streams, unroll];
    const tfLstmY = [streams, unroll, vocab];
    const tfLstm = tf.sequential({
      layers: [
        tf.layers.embedding({ batchInputShape: [streams, unroll], inputDim: vocab, outputDim: embedding }),
        tf.layers.lstm({ units: hidden, returnSequences: true, stateful: true, recurrentActivation: 'sigmoid' }),
        tf.layers.dense({ units: embedding, useBias: false }), // TiedEmbedding's projection hidden -> embedding
        tf.layers.dense({ units: vocab }), // in place of the tied table: TF.js has no tied output layer
      ],
    });
    const tfLstmOpt = tf.train.adam(lr);
    const jaxLstm = new JaxLstm(KEYBOARD, lcg(23));
    log(`keyboard LSTM parameters: engine ${countValues(keyboard.parameters().values())} (tied), tfjs ${tfLstm.countParams()} (untied output), jax-js ${jaxLstm.parameterCount} (tied)`);
    status(`Keyboard LSTM ${vocab}-${embedding}-${hidden}, ${streams} x ${unroll} tokens a step: warming up (jax-js compiles its step)…`);
    await keyboardSteps(1);
    await tfSteps(tfLstm, tfLstmOpt, lstmData, lstmX, tfLstmY, 1);
    const compileMs = await jaxLstm.steps(lstmData, 1);
    log(`jax-js: first step (tracing and compiling the jit) ${(compileMs / 1000).toFixed(1)} s`);
    const tokensPerS = (ms: number) => (tokensPerStep * 1000) / ms;
    for (let r = 0; r < ROUNDS; r++) {
      const e = tokensPerS(await keyboardSteps(LSTM_STEPS));
      const t = tokensPerS(await tfSteps(tfLstm, tfLstmOpt, lstmData, lstmX, tfLstmY, LSTM_STEPS));
      const j = tokensPerS(await jaxLstm.steps(lstmData, LSTM_STEPS));
      record('lstm_tokens_per_s', e);
      record('tfjs_lstm_tokens_per_s', t);
      record('jax_lstm_tokens_per_s', j);
      log(`keyboard LSTM round ${r + 1}/${ROUNDS}: engine ${e.toFixed(1)} tokens/s, tfjs ${t.toFixed(1)} tokens/s, jax-js ${j.toFixed(1)} tokens/s`);
      show('Keyboard LSTM training (tokens/s)', best(rounds.lstm_tokens_per_s!).toFixed(1), best(rounds.tfjs_lstm_tokens_per_s!).toFixed(1), best(rounds.jax_lstm_tokens_per_s!).toFixed(1));
    }
    losses.lstm = round3(await engineLoss(keyboard, lstmData[0]!, lstmX, [tokensPerStep, vocab]));
    tfLstm.resetStates(); // from a zero state, as the other two
    losses.tfjs_lstm = round3(await tfLoss(tfLstm, lstmData[0]!, lstmX, tfLstmY));
    losses.jax_lstm = round3(await jaxLstm.loss(lstmData[0]!));
    log(`keyboard LSTM loss on a training batch (random ids: ln ${vocab} = ${Math.log(vocab).toFixed(3)}): engine ${losses.lstm}, tfjs ${losses.tfjs_lstm}, jax-js ${losses.jax_lstm}`);
    keyboardOpt.dispose();
    keyboard.dispose();
    tfLstm.dispose();
    tfLstmOpt.dispose();
    jaxLstm.dispose();
    result.lstm_tokens_per_s = round1(best(rounds.lstm_tokens_per_s!));
    result.tfjs_lstm_tokens_per_s = round1(best(rounds.tfjs_lstm_tokens_per_s!));
    result.jax_lstm_tokens_per_s = round1(best(rounds.jax_lstm_tokens_per_s!));
    result.lstm_speedup_over_tfjs = round3(result.lstm_tokens_per_s / result.tfjs_lstm_tokens_per_s);
    result.lstm_speedup_over_jax = round3(result.lstm_tokens_per_s / result.jax_lstm_tokens_per_s);
    result.jax_lstm_first_step_s = round1(compileMs / 1000);
  }

  result.losses = losses;
  result.rounds = rounds;
  result.settings = { parts: [...PARTS], rounds: ROUNDS, matmul_reps: MATMUL_REPS, mlp_steps: MLP_STEPS, cnn_steps: CNN_STEPS, frozen_steps: FROZEN_STEPS, conv_rounds: CONV_ROUNDS, mem_steps: MEM_STEPS, replica_steps: REPLICA_STEPS, lstm_steps: LSTM_STEPS, warmup: WARMUP, statistic: 'best round' };
  result.seconds = round1((performance.now() - pageStart) / 1000);
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
