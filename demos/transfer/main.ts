// Transfer learning and fine-tuning demo. The bases are the pretrained CNNs in models/ (scripts/
// pretrain.ts); nothing here retrains them. First the comparison on Fashion-MNIST: the base
// trained on classes 0-4 (fashion-mnist-0-4-cnn), the target classes learnt from `perClass`
// labelled images each, over `seeds` seeds (each seed draws its own labelled images and heads):
//   scratch    the same CNN from random weights, trained on the labelled target images only
//   transfer   the base cut after `cut`, frozen, with a new head (feature caching)
//   fine-tune  the transfer model with every group unfrozen: discriminative rates (2.6 per group),
//              gradual unfreezing (one group per epoch, top down), warm-up and cosine decay
//   LoRA       the transfer model with rank-r adapters on conv2 and fc1, base frozen, head trained
//   alone      a small MLP trained on the labels only
//   distilled  the same MLP taught by the fine-tuned CNN (soft targets at temperature T, plus
//              labels): on the labelled images only, and with unlabelled target images added
// Then the data-efficiency curves: scratch, transfer, fine-tune and LoRA against the number of
// labelled examples per class, for three (base -> target) pairs (see CURVE_PAIRS).
// Query parameters: target (class range such as 5-9 or list 5,6,7, none of the base's 0-4),
// perClass (20), seeds (3), test (target test images, 1000), steps (training steps of each
// target-task method, 150), unlabelled (extra unlabelled target images for distillation, 2000),
// distillEpochs (over those, 10), cut (the base's last layer, flatten), finetuneBatchNorm
// (inference or update); for the curves: curve (default, full: every point, seed and pair, or off),
// curvePoints (labels per class, e.g. 1,5,20,all), curveSeeds (count), curvePairs (e.g. a,c),
// curveSteps (each method's step budget), curveTest (test images per pair); comparison=off runs the
// curves alone; headless=1.
// The result goes to window.__result and a `[result] {...}` console line.
import {
  Adam,
  applyLoRA,
  classSplit,
  Dense,
  distill,
  Engine,
  evaluate,
  FASHION_MNIST_CLASSES,
  finetune,
  fit,
  fitHead,
  layerGroups,
  loadFashionMnist,
  loadWeights,
  LoRALayer,
  mergeLoRA,
  outputs,
  Module,
  readPretrainedInfo,
  ReLU,
  saveAdapter,
  saveWeights,
  Sequential,
  type ClassificationData,
  type FitOptions,
} from '../../src/index.js';
import { $, countValues, drawChart, fetchBytes, finish, intParam, log, mean, params, round, run, type Series, setText, status, std } from '../common/ui.js';
import { BATCH, FASHION_SOURCE, FASHION_TARGET, fetchModel, FINETUNE, LORA, LR, PIXELS, scratchModel, transferModel } from './bases.js';
import { CURVE_METHODS, runCurves } from './curves.js';

// Evaluation is most of the run on SwiftShader: the comparison's test images (of 5,000) and the
// images of its per-run charts.
const TEST_IMAGES = 1000;
const EVAL_IMAGES = 250;
const DISTILL = { temperature: 4, alpha: 0.7 };
const CURVE_POINTS = 6;

function classesParam(name: string, fallback: string): number[] {
  const raw = params.get(name) ?? fallback;
  const out = raw.includes('-') && !raw.includes(',')
    ? (() => {
        const [a, b] = raw.split('-').map(Number) as [number, number];
        return Array.from({ length: b - a + 1 }, (_, i) => a + i);
      })()
    : raw.split(',').map(Number);
  if (out.length < 2 || out.some((c) => !Number.isInteger(c) || c < 0 || c > 9)) throw new Error(`query parameter ${name}=${raw}: give at least two classes in 0..9, as 0-4 or 0,2,4`);
  return out;
}


function mlp(engine: Engine, classes: number, seed: number): Sequential {
  return new Sequential({ fc1: new Dense(engine, PIXELS, 32, { seed }), relu1: ReLU(), fc2: new Dense(engine, 32, classes, { seed: seed + 2 }) });
}

// ---- the frozen-layer diagram ---------------------------------------------------------------

/** Draws (or redraws) the row `key` of the diagram: the model's layers, coloured by what trains. */
function drawDiagram(key: string, model: Sequential, caption: string): void {
  const box = $('diagram');
  let row = box.querySelector<HTMLElement>(`[data-key="${key}"]`);
  if (!row) {
    row = document.createElement('div');
    row.className = 'diagram-row';
    row.dataset['key'] = key;
    box.append(row);
  }
  for (const r of box.querySelectorAll('.diagram-row')) r.classList.toggle('current', r === row);
  const title = document.createElement('div');
  title.className = 'caption';
  title.textContent = `${key}: ${caption}`;
  const layers = document.createElement('div');
  layers.className = 'diagram';
  for (const [name, layer] of model.children()) {
    const params = [...layer.parameters().values()];
    const kind = layer instanceof LoRALayer ? 'lora' : params.length === 0 ? 'none' : params.every((p) => p.frozen) ? 'frozen' : 'trainable';
    const cell = document.createElement('div');
    cell.className = `layer ${kind}`;
    const n = document.createElement('div');
    n.className = 'n';
    n.textContent = name;
    const t = document.createElement('div');
    t.className = 't';
    t.textContent = `${layer.constructor.name}${params.length ? ` · ${countValues(params).toLocaleString('en-US')}` : ''}`;
    cell.append(n, t);
    layers.append(cell);
  }
  row.replaceChildren(title, layers);
}

// ---- results table ----------------------------------------------------------------------------

interface MethodResult {
  label: string;
  accs: number[];
  seconds: number[];
  trainable: number;
}

function showResults(methods: MethodResult[]): void {
  const body = $('resultRows');
  body.replaceChildren();
  const best = Math.max(...methods.filter((m) => m.accs.length).map((m) => mean(m.accs)));
  for (const m of methods) {
    const tr = document.createElement('tr');
    const cells = m.accs.length
      ? [m.label, `${(mean(m.accs) * 100).toFixed(1)}%`, `${(std(m.accs) * 100).toFixed(1)}`, m.accs.map((a) => (a * 100).toFixed(1)).join(' / '), m.trainable.toLocaleString('en-US'), mean(m.seconds).toFixed(1)]
      : [m.label, '…', '', '', m.trainable ? m.trainable.toLocaleString('en-US') : '', ''];
    cells.forEach((v, i) => {
      const td = document.createElement('td');
      td.textContent = v;
      if (i === 1 && m.accs.length && mean(m.accs) === best) td.className = 'best';
      tr.append(td);
    });
    body.append(tr);
  }
}

// ---- main -------------------------------------------------------------------------------------

/** The comparison at `perClass` labels per class on Fashion-MNIST's target classes; its part of the JSON. */
async function runComparison(engine: Engine, cut: string) {
  const sourceClasses = FASHION_SOURCE.classes;
  const targetClasses = classesParam('target', FASHION_TARGET.join(','));
  if (sourceClasses.some((c) => targetClasses.includes(c))) throw new Error(`query parameter target=${targetClasses}: the base ${FASHION_SOURCE.base} was trained on classes [${sourceClasses}]; give target classes outside them`);
  const perClass = intParam('perClass', 20);
  const seeds = intParam('seeds', 3);
  const steps = intParam('steps', 150);
  const distillEpochs = intParam('distillEpochs', 10);
  const unlabelledCount = intParam('unlabelled', 2000, 0);
  const finetuneBatchNorm = params.get('finetuneBatchNorm') === 'update' ? 'update' : 'inference';
  for (const [k, v] of Object.entries({ target: targetClasses.join(','), perClass, seeds })) {
    ($('controls') as HTMLFormElement).querySelector<HTMLInputElement>(`[name=${k}]`)!.value = String(v);
  }
  const started = performance.now();

  status(`Loading Fashion-MNIST and the pretrained base ${FASHION_SOURCE.base}…`);
  const [trainSet, testSet, baseBytes] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test'), fetchModel(FASHION_SOURCE.base)]);
  const baseInfo = readPretrainedInfo(baseBytes);
  const all = (s: typeof trainSet): ClassificationData => ({ inputs: s.images, labels: s.labels, count: s.count, features: PIXELS, classes: 10 });
  const targetTestAll = classSplit(all(testSet), targetClasses).data;
  const testCount = Math.min(intParam('test', TEST_IMAGES), targetTestAll.count);
  // Rows are in the data set's order, not by class: a prefix keeps the classes about balanced.
  const head = (d: ClassificationData, n: number): ClassificationData => ({ ...d, inputs: d.inputs.subarray(0, n * PIXELS), labels: Array.from(d.labels).slice(0, n), count: n });
  const targetTest = head(targetTestAll, testCount);
  const evalSet = head(targetTest, Math.min(EVAL_IMAGES, testCount));
  const T = targetClasses.length;
  const names = (cs: number[]) => cs.map((c) => FASHION_MNIST_CLASSES[c]).join(', ');
  log(`base ${FASHION_SOURCE.base}: trained on classes [${names(sourceClasses)}] (${baseInfo.training['trainingImages']} images, ${baseInfo.training['epochs']} epochs), source test accuracy ${baseInfo.metrics['testAccuracy']}; target classes [${names(targetClasses)}]: ${perClass} labelled per class, ${targetTest.count} test images`);

  // ---- charts and progress
  const totalPhases = seeds * 7;
  let phasesDone = 0;
  const colors: Record<string, string> = { ...CURVE_METHODS, alone: '#a855f7', 'distilled (labelled only)': '#f9a8d4', distilled: '#db2777' };
  let curves: Series[] = [];
  const redraw = () => drawChart($<HTMLCanvasElement>('targetChart'), { series: curves, xMax: 1, yMin: 0, yMax: 1, xLabel: 'fraction of the training run', yFormat: (v) => `${Math.round(v * 100)}%` });
  redraw();
  const phase = (name: string, seed: number | null) => {
    setText('phase', name);
    setText('seed', seed === null ? '–' : `${seed} / ${seeds}`);
    $('progress').style.width = `${((100 * phasesDone) / totalPhases).toFixed(1)}%`;
    status(`${name}${seed === null ? '' : ` (seed ${seed} of ${seeds})`}…`);
  };
  const progress = (what: string): Pick<FitOptions, 'onProgress' | 'logEvery'> => ({
    logEvery: 10,
    onProgress: (p) => {
      setText('loss', p.loss.toFixed(4));
      status(`${what}: epoch ${p.epoch + 1}, step ${p.step} / ${p.totalSteps}`);
    },
  });

  const newTransferModel = (seed: number) => transferModel(engine, baseBytes, cut, T, 200 + seed);
  newTransferModel(0).model.dispose(); // checks the cut before anything trains

  const methods: Record<string, MethodResult> = {};
  for (const label of Object.keys(colors)) methods[label] = { label, accs: [], seconds: [], trainable: 0 };
  methods['alone']!.label = 'MLP student alone';
  methods['distilled (labelled only)']!.label = 'MLP student distilled, labelled images only';
  methods['distilled']!.label = `MLP student distilled, + ${unlabelledCount} unlabelled images`;
  showResults(Object.values(methods));
  const timings: Record<string, number | boolean> = {};

  for (let seed = 1; seed <= seeds; seed++) {
    const target = classSplit(all(trainSet), targetClasses, { perClass, seed });
    // The same number of steps whatever the number of labelled images.
    const epochs = Math.max(1, Math.round(steps / Math.floor(target.data.count / BATCH)));
    const unlabelled = target.rest.inputs.subarray(0, Math.min(unlabelledCount, target.rest.count) * PIXELS);
    curves = [];
    /** Trains with `train(options)`, drawing a curve of evaluation accuracy, then records the final test accuracy. */
    const runMethod = async (key: string, model: Module, trainable: number, train: (options: FitOptions) => Promise<{ seconds: number }>, runEpochs = epochs) => {
      phase(key, seed);
      const curve: Series = { points: [], color: colors[key]!, label: key, dots: false };
      curves.push(curve);
      // CURVE_POINTS evaluations spread over the run; x is the fraction of the run done.
      const onEpoch = async (epoch: number) => {
        if (Math.floor((CURVE_POINTS * (epoch + 1)) / runEpochs) === Math.floor((CURVE_POINTS * epoch) / runEpochs)) return;
        curve.points.push([(epoch + 1) / runEpochs, (await evaluate(engine, model, evalSet)).accuracy]);
        redraw();
      };
      curve.points.push([0, (await evaluate(engine, model, evalSet)).accuracy]);
      const t0 = performance.now();
      const { seconds } = await train({ epochs: runEpochs, batchSize: BATCH, seed, checkFinite: true, ...progress(`${key}, seed ${seed}`), onEpoch });
      const wall = (performance.now() - t0) / 1000;
      const { accuracy } = await evaluate(engine, model, targetTest);
      const m = methods[key]!;
      m.accs.push(accuracy);
      m.seconds.push(seconds);
      m.trainable = trainable;
      log(`seed=${seed} ${key} test_acc=${accuracy.toFixed(4)} train_s=${seconds.toFixed(2)} (with evaluations ${wall.toFixed(1)} s) trainable=${trainable}`);
      showResults(Object.values(methods));
      phasesDone++;
      return accuracy;
    };

    // Scratch: the same CNN on the labelled target images alone.
    const scratch = scratchModel(engine, baseBytes, T, 100 + seed);
    drawDiagram('scratch', scratch, 'the same CNN on the labelled target images, everything trains');
    const scratchOpt = new Adam(scratch.parameters(), { lr: LR.scratch });
    await runMethod('scratch', scratch, countValues(scratch.parameters().values()), (o) => fit(engine, scratch, scratchOpt, target.data, o));
    scratchOpt.dispose();
    scratch.dispose();

    // Transfer: frozen base, new head, trained on cached features. The first seed also trains the
    // same head through the frozen base, to time both and check that the base stays bit-identical.
    if (seed === 1) {
      phase('transfer without feature caching (timing)', seed);
      const tm = newTransferModel(seed);
      drawDiagram('transfer', tm.model, 'base frozen up to the cut, new head trains');
      const before = await Promise.all([...tm.base.parameters().values(), ...tm.base.buffers().values()].map((t) => t.data()));
      const opt = new Adam(tm.head.parameters(), { lr: LR.head });
      const uncached = await fitHead(engine, tm, opt, target.data, { epochs, batchSize: BATCH, seed, ...progress('transfer (uncached)') });
      const after = await Promise.all([...tm.base.parameters().values(), ...tm.base.buffers().values()].map((t) => t.data()));
      timings['frozen_bit_identical'] = before.every((b, i) => b.length === after[i]!.length && b.every((v, j) => Object.is(v, after[i]![j])));
      timings['uncached_head_s'] = uncached.seconds;
      timings['uncached_transfer_acc'] = (await evaluate(engine, tm.model, targetTest)).accuracy;
      // Step time of this model: base frozen (head only), then every layer trainable.
      const stepMs = async (model: Module, optimizer: Adam) => {
        const data = target.data;
        const epochsOf = (n: number) => Math.ceil(n / Math.floor(data.count / BATCH));
        await fit(engine, model, optimizer, data, { epochs: epochsOf(3), batchSize: BATCH }); // warm-up: pipelines
        const r = await fit(engine, model, optimizer, data, { epochs: epochsOf(20), batchSize: BATCH });
        return (r.seconds * 1000) / r.steps;
      };
      timings['frozen_step_ms'] = await stepMs(tm.model, opt);
      tm.model.unfreeze();
      const fullOpt = new Adam(tm.model.parameters(), { lr: 1e-9 });
      timings['full_step_ms'] = await stepMs(tm.model, fullOpt);
      log(`transfer uncached: head ${uncached.seconds.toFixed(2)} s, frozen base bit-identical ${timings['frozen_bit_identical']}; step ${Number(timings['frozen_step_ms']).toFixed(2)} ms frozen vs ${Number(timings['full_step_ms']).toFixed(2)} ms full`);
      fullOpt.dispose();
      opt.dispose();
      tm.model.dispose();
    }
    const tm = newTransferModel(seed);
    drawDiagram('transfer', tm.model, `base frozen up to ${cut}, new head trains on cached features`);
    const headOpt = new Adam(tm.head.parameters(), { lr: LR.head });
    let featureSeconds = 0;
    await runMethod('transfer', tm.model, countValues(tm.model.trainableParameters().values()), async (o) => {
      const r = await fitHead(engine, tm, headOpt, target.data, { ...o, cacheFeatures: true });
      featureSeconds = r.featureSeconds;
      return r;
    });
    if (seed === 1) timings['cached_features_speedup'] = Number(timings['uncached_head_s']) / methods['transfer']!.seconds[0]!;
    log(`transfer: features computed in ${featureSeconds.toFixed(2)} s`);
    headOpt.dispose();
    const transferWeights = await saveWeights(tm.model);

    // Fine-tune from the transfer model: all groups, discriminative rates, gradual unfreezing.
    const groups = layerGroups(tm.model);
    await runMethod('fine-tune', tm.model, countValues(tm.model.parameters().values()), (o) =>
      finetune(engine, tm.model, target.data, {
        ...o,
        ...FINETUNE,
        gradual: true,
        batchNorm: finetuneBatchNorm,
        onEpoch: async (epoch, trained) => {
          drawDiagram('fine-tune', tm.model, `gradual unfreezing, after epoch ${epoch + 1} of ${o.epochs}: ${trained.length} of ${groups.length} groups trained in that epoch, rates / 2.6 per group down`);
          await o.onEpoch!(epoch);
        },
      }),
    );
    const teacher = tm.model;
    if (seed === 1) {
      // How soft the teacher's targets are (mean largest probability at temperature T) on the
      // images it was trained on and on unlabelled ones: what distillation has to teach.
      const softness = async (inputs: Float32Array) => {
        const { values, count: rows } = await outputs(engine, teacher, inputs, PIXELS);
        let sum = 0;
        for (let r = 0; r < rows; r++) {
          const row = values.subarray(r * T, (r + 1) * T);
          const top = Math.max(...row);
          sum += 1 / row.reduce((a, v) => a + Math.exp((v - top) / DISTILL.temperature), 0);
        }
        return sum / rows;
      };
      timings['teacher_max_prob_labelled'] = await softness(target.data.inputs);
      if (unlabelled.length) timings['teacher_max_prob_unlabelled'] = await softness(unlabelled);
      log(`teacher at T=${DISTILL.temperature}: mean largest probability ${Number(timings['teacher_max_prob_labelled']).toFixed(3)} on its labelled images, ${Number(timings['teacher_max_prob_unlabelled'] ?? NaN).toFixed(3)} on unlabelled ones`);
    }

    // LoRA from the transfer model: adapters on conv2 and fc1, the head trains, the rest is frozen.
    const lora = newTransferModel(seed);
    loadWeights(lora.model, transferWeights);
    applyLoRA(lora.model, LORA.layers, { rank: LORA.rank, alpha: LORA.alpha, seed: 300 + seed, trainable: ['fc2'] });
    drawDiagram('LoRA', lora.model, `rank ${LORA.rank} adapters on ${LORA.layers.join(', ')}, fc2 trains, the rest frozen`);
    const loraTrainable = countValues(lora.model.trainableParameters().values());
    const loraOpt = new Adam(lora.model.trainableParameters(), { lr: LR.lora });
    await runMethod('LoRA', lora.model, loraTrainable, (o) => fit(engine, lora.model, loraOpt, target.data, o));
    timings['lora_trainable_params'] = loraTrainable;
    timings['full_trainable_params'] = countValues(teacher.parameters().values());
    if (seed === 1) {
      // What exporting costs: the adapter and head alone, or the adapter merged into the weights.
      timings['lora_adapter_bytes'] = (await saveAdapter(lora.model, { include: ['fc2'] })).length;
      timings['full_model_bytes'] = (await saveWeights(teacher)).length;
      mergeLoRA(lora.model);
      timings['lora_merged_acc'] = (await evaluate(engine, lora.model, targetTest)).accuracy;
      log(`LoRA: adapter + head ${timings['lora_adapter_bytes']} bytes vs ${timings['full_model_bytes']} for the whole model; merged into the base weights: test_acc=${Number(timings['lora_merged_acc']).toFixed(4)}`);
    }
    loraOpt.dispose();
    lora.model.dispose();

    // Distillation: the same small MLP alone and taught by the fine-tuned CNN.
    const alone = mlp(engine, T, 400 + seed);
    drawDiagram('student', alone, 'a small MLP, alone or taught by the fine-tuned CNN');
    const aloneOpt = new Adam(alone.parameters(), { lr: LR.student });
    await runMethod('alone', alone, countValues(alone.parameters().values()), (o) => fit(engine, alone, aloneOpt, target.data, o));
    aloneOpt.dispose();
    alone.dispose();
    // Taught on the labelled images only, then with unlabelled target images added to the
    // transfer set (the teacher has fit the labelled ones, so its soft targets there are nearly hard).
    for (const [key, extra, runEpochs] of [['distilled (labelled only)', undefined, epochs], ['distilled', unlabelled, distillEpochs]] as const) {
      const student = mlp(engine, T, 400 + seed);
      const studentOpt = new Adam(student.parameters(), { lr: LR.student });
      await runMethod(key, student, countValues(student.parameters().values()), (o) => distill(engine, teacher, student, studentOpt, target.data, { ...o, ...DISTILL, unlabelled: extra }), runEpochs);
      studentOpt.dispose();
      student.dispose();
    }
    teacher.dispose();
  }

  const acc = (k: string) => round(mean(methods[k]!.accs));
  const spread = (k: string) => round(std(methods[k]!.accs));
  const comparison = {
    scratch_acc: acc('scratch'),
    transfer_acc: acc('transfer'),
    finetune_acc: acc('fine-tune'),
    lora_acc: acc('LoRA'),
    distill_student_acc: acc('distilled'),
    distill_labelled_only_acc: acc('distilled (labelled only)'),
    student_alone_acc: acc('alone'),
    frozen_bit_identical: timings['frozen_bit_identical'],
    frozen_step_ms: round(Number(timings['frozen_step_ms']), 3),
    full_step_ms: round(Number(timings['full_step_ms']), 3),
    cached_features_speedup: round(Number(timings['cached_features_speedup']), 2),
    lora_trainable_params: timings['lora_trainable_params'],
    full_trainable_params: timings['full_trainable_params'],
    std: { scratch: spread('scratch'), transfer: spread('transfer'), finetune: spread('fine-tune'), lora: spread('LoRA'), distill_student: spread('distilled'), distill_labelled_only: spread('distilled (labelled only)'), student_alone: spread('alone') },
    per_seed: Object.fromEntries(Object.entries(methods).map(([k, m]) => [k, m.accs.map((a) => round(a))])),
    uncached_transfer_acc: round(Number(timings['uncached_transfer_acc'])),
    teacher_max_prob_labelled: round(Number(timings['teacher_max_prob_labelled'])),
    teacher_max_prob_unlabelled: round(Number(timings['teacher_max_prob_unlabelled'] ?? NaN)),
    lora_merged_acc: round(Number(timings['lora_merged_acc'])),
    lora_adapter_bytes: timings['lora_adapter_bytes'],
    full_model_bytes: timings['full_model_bytes'],
    base_source_acc: round(baseInfo.metrics['testAccuracy']!),
    seeds,
    per_class: perClass,
    source_images: baseInfo.training['trainingImages'],
    target_test_images: targetTest.count,
    steps,
    distill_epochs: distillEpochs,
    base_epochs: baseInfo.training['epochs'],
    base: FASHION_SOURCE.base,
    unlabelled: unlabelledCount,
    comparison_seconds: round((performance.now() - started) / 1000, 1),
  };
  const c = comparison;
  setText('timings', `One training step (batch ${BATCH}): ${c.frozen_step_ms} ms with the base frozen vs ${c.full_step_ms} ms with every layer trainable. Head training with cached features: ${c.cached_features_speedup}x faster than through the frozen base. LoRA trains ${c.lora_trainable_params.toLocaleString('en-US')} of ${c.full_trainable_params.toLocaleString('en-US')} parameters. Frozen base bit-identical after transfer training: ${c.frozen_bit_identical}.`);
  return comparison;
}

async function main(): Promise<void> {
  const started = performance.now();
  const cut = params.get('cut') ?? 'flatten';
  status('Requesting a WebGPU device…');
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  log(`adapter ${engine.adapterName}`);
  // comparison=off draws the curves alone (the JSON then has no comparison keys, the page no comparison cards).
  const comparisonOff = params.get('comparison') === 'off';
  if (comparisonOff) for (const card of document.querySelectorAll<HTMLElement>('.comparison-part')) card.style.display = 'none';
  const comparison = comparisonOff ? {} : await runComparison(engine, cut);
  const efficiencyCurves = await runCurves(engine, cut, (text) => {
    log(text);
    status(text);
  });
  const result = { ...comparison, adapter: engine.adapterName, efficiency_curve: efficiencyCurves, seconds: round((performance.now() - started) / 1000, 1) };
  $('progress').style.width = '100%';
  setText('phase', 'done');
  status(`Done in ${result.seconds} s.`);
  finish(result);
}

run(main);
