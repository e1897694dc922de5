// Fashion-MNIST MLP demo: trains 784-256-10 (ReLU, Adam) in the browser on WebGPU, with live
// loss and test-accuracy charts. Query parameters: epochs (default 3), train (training images,
// default all), test (test images, default and at most 2000), headless=1 (driven by
// scripts/headless.mjs), profile=1 (driven by scripts/profile.mjs; profileSteps, default 10, sets
// how many steps are profiled). The result goes to window.__result and a `[result] {...}` console
// line. After training a few extra steps always run under engine.profile() for the "GPU profile"
// panel (the weights are restored afterwards, so they do not change the reported model); the
// table goes to window.__profile and the rows to window.__profileData.
import {
  Adam,
  backward,
  formatProfile,
  loadWeights,
  oneHot,
  saveWeights,
  softmaxCrossEntropy,
  type Profile,
  Dense,
  Engine,
  evaluate,
  FASHION_MNIST_CLASSES,
  fit,
  loadFashionMnist,
  ReLU,
  Sequential,
  type ClassificationData,
  type ImageSet,
} from '../../src/index.js';
import { $, drawChart, fail, fetchBytes, finish, intParam, log, params, run, setText, status } from '../common/ui.js';

interface DemoResult {
  test_acc: number;
  samples_per_s: number;
  adapter: string;
  epochs: number;
  train_images: number;
  test_images: number;
  final_loss: number;
  seconds: number;
  gpu_bytes: number;
}

declare global {
  interface Window {
    __profile?: string;
    __profileData?: Profile;
  }
}

const BATCH = 128;
const MAX_TEST = 2000;
const PIXELS = 784;

const profiling = params.get('profile') === '1';

// ---- sample predictions -------------------------------------------------------------------

function showSamples(test: ClassificationData, predictions: number[], count: number): void {
  const box = $('samples');
  box.replaceChildren();
  for (let i = 0; i < count; i++) {
    const cell = document.createElement('div');
    cell.className = 'sample';
    const canvas = document.createElement('canvas');
    canvas.width = 28;
    canvas.height = 28;
    const g = canvas.getContext('2d');
    if (g) {
      const img = g.createImageData(28, 28);
      for (let p = 0; p < PIXELS; p++) {
        const v = Math.round(test.inputs[i * PIXELS + p]! * 255);
        img.data.set([v, v, v, 255], p * 4);
      }
      g.putImageData(img, 0, 0);
    }
    const pred = predictions[i]!;
    const truth = test.labels[i]!;
    const label = document.createElement('div');
    label.className = pred === truth ? 'ok' : 'wrong';
    label.textContent = FASHION_MNIST_CLASSES[pred] ?? String(pred);
    const truthLine = document.createElement('div');
    truthLine.className = 'truth';
    truthLine.textContent = pred === truth ? '✓' : `is ${FASHION_MNIST_CLASSES[truth] ?? truth}`;
    cell.append(canvas, label, truthLine);
    box.append(cell);
  }
  $('samplesCard').style.display = '';
}

// ---- GPU profile --------------------------------------------------------------------------

/** Runs `steps` training steps under engine.profile() and puts the weights back afterwards. */
async function profileSteps(engine: Engine, model: Sequential, optimizer: Adam, train: ClassificationData, steps: number): Promise<Profile> {
  const saved = await saveWeights(model);
  const batch = Math.min(BATCH, train.count);
  const batches = Math.max(1, Math.floor(train.count / batch));
  const { profile } = await engine.profile(async () => {
    for (let s = 0; s < steps; s++) {
      const i = s % batches;
      const x = train.inputs.subarray(i * batch * PIXELS, (i + 1) * batch * PIXELS);
      const t = oneHot(Array.from({ length: batch }, (_, r) => train.labels[i * batch + r]!), 10);
      await engine.scope(async () => {
        const l = softmaxCrossEntropy(model.forward(engine.tensor(x, [batch, PIXELS], 'x')), engine.tensor(t, [batch, 10], 'y'));
        backward(l);
        optimizer.step();
        optimizer.zeroGrad();
        await engine.flush();
      });
    }
  });
  loadWeights(model, saved);
  log(`profiled ${steps} training steps (${profile.method}): ${profile.totalMs.toFixed(2)} ms GPU time`);
  return profile;
}

function showProfile(profile: Profile): void {
  const body = $('profileRows');
  body.replaceChildren();
  for (const r of profile.rows) {
    const tr = document.createElement('tr');
    for (const v of [r.kernel, String(r.calls), r.totalMs.toFixed(3), r.meanMs.toFixed(4), r.gflops === null ? '–' : r.gflops.toFixed(2)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  }
  setText('profileMethod', `${profile.method}, total ${profile.totalMs.toFixed(2)} ms of GPU time`);
  $('profileCard').style.display = '';
}

// ---- main ---------------------------------------------------------------------------------

function subset(set: ImageSet, n: number): ClassificationData {
  const count = Math.min(n, set.count);
  return { inputs: set.images.subarray(0, count * PIXELS), labels: set.labels.subarray(0, count), count, features: PIXELS, classes: 10 };
}

async function main(): Promise<void> {
  const epochs = intParam('epochs', 3);
  const trainWanted = intParam('train', Number.MAX_SAFE_INTEGER);
  const testWanted = Math.min(intParam('test', MAX_TEST), MAX_TEST);

  status('Requesting a WebGPU device…');
  const engine = await Engine.create();
  engine.onLost((e) => fail(e));
  setText('adapter', engine.adapterName);
  log(`adapter ${engine.adapterName}`);

  status('Loading Fashion-MNIST…');
  const [trainSet, testSet] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  const train = subset(trainSet, trainWanted);
  const test = subset(testSet, testWanted);
  log(`data train=${train.count} test=${test.count} (available ${trainSet.count}/${testSet.count})`);

  const model = new Sequential({
    fc1: new Dense(engine, PIXELS, 256, { seed: 1 }),
    relu1: ReLU(),
    fc2: new Dense(engine, 256, 10, { seed: 2 }),
  });
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });

  const stepsPerEpoch = Math.floor(train.count / BATCH);
  const lossPoints: [number, number][] = [];
  const accPoints: [number, number][] = [];
  let maxLoss = 2.5;
  const lossCanvas = $<HTMLCanvasElement>('lossChart');
  const accCanvas = $<HTMLCanvasElement>('accChart');
  const redraw = () => {
    drawChart(lossCanvas, { series: [{ points: lossPoints, color: '#2563eb' }], xMax: epochs, yMin: 0, yMax: maxLoss, xLabel: 'epoch', yFormat: (v) => v.toFixed(1) });
    drawChart(accCanvas, { series: [{ points: accPoints, color: '#15803d', dots: true }], xMax: epochs, yMin: 0, yMax: 1, xLabel: 'epoch', yFormat: (v) => `${Math.round(v * 100)}%` });
  };
  redraw();

  // Time spent outside training (evaluation, drawing) is left out of the throughput. It is kept
  // as absolute intervals: fit reports losses asynchronously, so a progress callback can run
  // after later steps, and only the time set aside before its step counts against it.
  const aside: [number, number][] = [];
  const asideUntil = (t: number) => aside.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, t) - a), 0);
  const evalTest = async (epoch: number, inOnEpoch = false) => {
    const t0 = performance.now();
    status(`Evaluating on ${test.count} test images…`);
    const { accuracy, loss } = await evaluate(engine, model, test);
    accPoints.push([epoch, accuracy]);
    setText('acc', `${(accuracy * 100).toFixed(1)}%`);
    redraw();
    log(`eval epoch=${Number(epoch.toFixed(2))} test_acc=${accuracy.toFixed(4)} test_loss=${loss.toFixed(4)}`);
    if (!inOnEpoch) aside.push([t0, performance.now()]); // fit leaves onEpoch's time out itself
    return accuracy;
  };
  await evalTest(0);
  aside.length = 0; // fit's clock starts below

  status(`Training on ${train.count} images for ${epochs} epoch${epochs === 1 ? '' : 's'}…`);
  let lastLoss = NaN;
  const evalsPerEpoch = epochs === 1 ? 4 : epochs === 2 ? 2 : 1;
  let lastEval = 0;
  const trainStart = performance.now();
  const result = await fit(engine, model, optimizer, train, {
    epochs,
    batchSize: BATCH,
    // About 100 loss points over the run (each one is a readback), at most every 20 steps.
    logEvery: Math.max(1, Math.min(20, Math.round((epochs * stepsPerEpoch) / 100))),
    checkFinite: true,
    onProgress: async (p) => {
      const t0 = performance.now();
      lastLoss = p.loss;
      const at = p.step / stepsPerEpoch;
      lossPoints.push([at, p.loss]);
      if (lossPoints.length === 1) maxLoss = Math.max(0.5, Math.ceil(p.loss * 2) / 2);
      const sps = p.samples / Math.max(1e-3, (p.elapsedMs - asideUntil(trainStart + p.elapsedMs)) / 1000);
      setText('epoch', `${Math.min(epochs, p.epoch + 1)} / ${epochs}`);
      setText('loss', p.loss.toFixed(4));
      setText('speed', Math.round(sps).toLocaleString('en-US'));
      $('progress').style.width = `${((100 * p.step) / p.totalSteps).toFixed(1)}%`;
      status(`Epoch ${p.epoch + 1} of ${epochs}: step ${p.step} / ${p.totalSteps}, ${p.samples.toLocaleString('en-US')} samples`);
      redraw();
      log(`epoch=${p.epoch + 1}/${epochs} step=${p.step}/${p.totalSteps} loss=${p.loss.toFixed(4)} samples_per_s=${Math.round(sps)}`);
      aside.push([t0, performance.now()]);
      // Short runs also get test points within an epoch (the epoch's end is onEpoch's).
      const k = Math.floor(at * evalsPerEpoch + 1e-9);
      if (k > lastEval) {
        lastEval = k;
        if (k % evalsPerEpoch !== 0) await evalTest(at);
      }
    },
    onEpoch: async (epoch) => {
      await evalTest(epoch + 1, true);
    },
  });
  const seconds = (performance.now() - trainStart) / 1000;
  const trainSeconds = Math.max(1e-3, result.seconds - asideUntil(performance.now()) / 1000);
  const samplesPerSecond = result.samples / trainSeconds;
  const testAcc = accPoints[accPoints.length - 1]![1];

  // A few test images with the model's predictions.
  const shown = Math.min(16, test.count);
  const logits = await engine.scope(async () => model.predict(engine.tensor(test.inputs.subarray(0, shown * PIXELS), [shown, PIXELS], 'samples')).data());
  const predictions = Array.from({ length: shown }, (_, r) => {
    let best = 0;
    for (let c = 1; c < 10; c++) if (logits[r * 10 + c]! > logits[r * 10 + best]!) best = c;
    return best;
  });
  showSamples(test, predictions, shown);

  // A few more steps under the profiler, for the GPU profile panel.
  status('Profiling a few training steps…');
  const profile = await profileSteps(engine, model, optimizer, train, intParam('profileSteps', 10));
  showProfile(profile);

  const summary: DemoResult = {
    test_acc: testAcc,
    samples_per_s: Math.round(samplesPerSecond * 10) / 10,
    adapter: engine.adapterName,
    epochs,
    train_images: train.count,
    test_images: test.count,
    final_loss: lastLoss,
    seconds: Math.round(seconds * 100) / 100,
    gpu_bytes: engine.memory().bytes,
  };
  $('progress').style.width = '100%';
  setText('speed', Math.round(samplesPerSecond).toLocaleString('en-US'));
  status(`Done: ${(testAcc * 100).toFixed(1)}% test accuracy after ${epochs} epoch${epochs === 1 ? '' : 's'} in ${seconds.toFixed(1)} s (${Math.round(samplesPerSecond)} samples/s).`);
  window.__profile = formatProfile(profile);
  window.__profileData = profile;
  if (profiling) console.log('[profile]\n' + window.__profile);
  finish(summary);
}

run(main);
