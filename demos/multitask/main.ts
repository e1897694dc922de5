// Multi-task learning demo: MultiMNIST-style data (two items on one canvas), single-task models
// against one shared model per task-weighting method and per architecture, over seeds.
//   data sets   multi-fashion (tasks left, right: the two Fashion-MNIST items' classes; ink: the
//               top-left item's mean intensity, a regression), multi-fashion-mnist (clothing,
//               digit: a Fashion-MNIST item and an MNIST digit; ink)
//   models      single-task: the trunk and one head per task, trained alone (EW on that task);
//               hard sharing: one trunk, a head per task, trained with each method;
//               cross-stitch and MMoE: soft sharing, trained with EW
//   cost        a timed phase runs every model a few steps, interleaved over rounds (best round
//               kept): per-step cost against EW, time per epoch and peak GPU bytes against the
//               single-task models
// Query parameters: datasets (multi-fashion,multi-fashion-mnist), tasks (per data set, ';'
// between sets; default left,right,ink and clothing,digit), archs (hard,cross-stitch,mmoe),
// methods (all nine), seeds (3), train (composites per data set, 3000), test (2000), epochs (3),
// batch (64), lr (0.001), hidden (256,128: the trunk's widths), experts (3, MMoE), conflictEvery
// (10 steps), costSteps (15), costRounds (2), inkLabels (fraction of rows keeping the ink label,
// 1), inkScale (raw: the mean intensity in [0, 1]; standard: standardised by the training set's
// mean and deviation, which puts its squared error on the scale of the cross-entropies), headless=1. The result goes to window.__result and a `[result] {...}` console line.
import {
  Adam,
  CrossStitch,
  deltaM,
  Dense,
  dropLabels,
  Engine,
  evaluateMultiTask,
  FAMO,
  FASHION_MNIST_CLASSES,
  loadFashionMnist,
  loadMnistDigits,
  makeWeighting,
  MMoE,
  multiFashion,
  multiFashionMnist,
  MultiHead,
  ReLU,
  Sequential,
  takeMultiTaskRows,
  trainMultiTask,
  WEIGHTINGS,
  type ImageSet,
  type Module,
  type MultiTaskData,
  type MultiTaskResult,
  type TaskScore,
  type Tensor,
  type Weighting,
} from '../../src/index.js';
import { $, countValues, dataFetcher, drawChart, fetchBytes, finish, intParam, log, mean, numberParam, params, round, run, type Series, setText, status, std } from '../common/ui.js';

const PIXELS = 784;
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d', '#7c3aed'];

type Arch = 'hard' | 'cross-stitch' | 'mmoe';
const ARCHS: Arch[] = ['hard', 'cross-stitch', 'mmoe'];
const DATASETS = {
  'multi-fashion': { tasks: ['left', 'right', 'ink'], label: 'Multi-Fashion' },
  'multi-fashion-mnist': { tasks: ['clothing', 'digit'], label: 'Multi-(Fashion+MNIST)' },
} as const;
type DatasetName = keyof typeof DATASETS;

/** A list parameter: comma-separated (`--methods EW,PCGrad`) and/or repeated (the form's checkboxes). */
function listParam<T extends string>(name: string, fallback: readonly T[], allowed: readonly string[]): T[] {
  const raw = params.getAll(name).join(',');
  const out = raw === '' ? [...fallback] : raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const v of out) if (!allowed.includes(v)) throw new Error(`query parameter ${name}: "${v}" is not one of ${allowed.join(', ')}`);
  if (out.length === 0) throw new Error(`query parameter ${name}: give at least one of ${allowed.join(', ')}`);
  return out as T[];
}



// ---- models -------------------------------------------------------------------------------

interface Settings {
  hidden: number[];
  experts: number;
}

/** Dense + ReLU stages of the trunk: 784 -> hidden[0] -> hidden[1] ... */
function stages(engine: Engine, hidden: number[], seed: number): Module[] {
  return hidden.map((h, i) => new Sequential({ fc: new Dense(engine, i === 0 ? PIXELS : hidden[i - 1]!, h, { seed: seed + 2 * i }), relu: ReLU() }));
}

function trunk(engine: Engine, hidden: number[], seed: number): Sequential {
  return new Sequential(stages(engine, hidden, seed).map((s, i): [string, Module] => [`stage${i}`, s]));
}

function heads(engine: Engine, data: MultiTaskData, tasks: readonly string[], width: number, seed: number): [string, Module][] {
  return tasks.map((t, i) => [t, new Dense(engine, width, data.tasks[t]!.width, { seed: seed + 100 + 2 * i })]);
}

function buildModel(engine: Engine, arch: Arch, data: MultiTaskData, tasks: readonly string[], s: Settings, seed: number): MultiHead<Tensor> {
  const width = s.hidden.at(-1)!;
  if (arch === 'hard') return new MultiHead(trunk(engine, s.hidden, seed), heads(engine, data, tasks, width, seed));
  if (arch === 'cross-stitch') {
    let column = 0;
    return new MultiHead(new CrossStitch(engine, { tasks: [...tasks], column: () => stages(engine, s.hidden, seed + 10 * column++) }), heads(engine, data, tasks, width, seed));
  }
  // MMoE: experts as wide as the trunk's last stage, one hidden layer each.
  return new MultiHead(
    new MMoE(engine, { tasks: [...tasks], experts: s.experts, inputFeatures: PIXELS, expert: (e) => trunk(engine, [s.hidden[0]!, width], seed + 10 * e), seed: seed + 50 }),
    heads(engine, data, tasks, width, seed),
  );
}

/** A model name of the experiment: a method (hard sharing) or "arch/method". */
function archAndMethod(name: string): [Arch, string] {
  return name.includes('/') ? (name.split('/') as [Arch, string]) : ['hard', name];
}

// ---- controls -----------------------------------------------------------------------------

/** Checkboxes named `name` (one query parameter value each) in the element `id`. */
function checkboxes(id: string, name: string, options: readonly string[], checked: readonly string[]): void {
  $(id).replaceChildren(
    ...options.map((o) => {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.name = name;
      box.value = o;
      box.checked = checked.includes(o);
      label.append(box, o);
      return label;
    }),
  );
}

// ---- charts and tables --------------------------------------------------------------------

interface Curves {
  loss: Map<string, [number, number][]>;
  acc: Map<string, [number, number][]>;
  weights: Map<string, [number, number][]>;
}

function seriesOf(m: Map<string, [number, number][]>, totalSteps: number): Series[] {
  return [...m].map(([label, points], i) => ({ label, points: points.map(([s, v]) => [s / totalSteps, v]), color: COLORS[i % COLORS.length]! }));
}

function drawWeights(weights: Map<string, [number, number][]>, totalSteps: number): void {
  const wMax = Math.max(1, ...[...weights.values()].flat().map(([, v]) => v));
  drawChart($<HTMLCanvasElement>('weightChart'), { series: seriesOf(weights, totalSteps), xMax: 1, yMin: 0, yMax: Math.ceil(wMax * 1.1 * 10) / 10, xLabel: 'fraction of the run', yFormat: (v) => v.toFixed(2) });
}

/** Each finished multi-task run's task weights (the last seed's), by "data set: model", for the weights chart's menu. */
const weightRuns = new Map<string, { weights: Map<string, [number, number][]>; totalSteps: number }>();

/** Shows run `key`'s task weights (the menu's choice), or the current model's when none is chosen. */
function showWeights(current: Curves | null, totalSteps: number): void {
  const chosen = weightRuns.get(($('weightMethod') as HTMLSelectElement).value);
  if (chosen) drawWeights(chosen.weights, chosen.totalSteps);
  else if (current) drawWeights(current.weights, totalSteps);
}

function drawCurves(c: Curves, totalSteps: number): void {
  const series = (m: Map<string, [number, number][]>) => seriesOf(m, totalSteps);
  const lossMax = Math.max(0.5, ...[...c.loss.values()].flat().map(([, v]) => v));
  drawChart($<HTMLCanvasElement>('lossChart'), { series: series(c.loss), xMax: 1, yMin: 0, yMax: Math.min(lossMax, 3), xLabel: 'fraction of the run', yFormat: (v) => v.toFixed(2) });
  drawChart($<HTMLCanvasElement>('accChart'), { series: series(c.acc), xMax: 1, yMin: 0, yMax: 1, xLabel: 'fraction of the run', yFormat: (v) => `${Math.round(v * 100)}%` });
  showWeights(c, totalSteps);
}

function drawConflicts(perMethod: Map<string, [number, number][]>): void {
  const series = [...perMethod].map(([label, points], i): Series => ({ label, points, color: COLORS[i % COLORS.length]! }));
  drawChart($<HTMLCanvasElement>('conflictChart'), { series, xMax: 1, yMin: -0.5, yMax: 1, xLabel: 'fraction of the run (mean cosine over task pairs)', yFormat: (v) => v.toFixed(2) });
}

interface RunScores {
  scores: Record<string, number>[];
  seconds: number[];
  params: number;
}

function table(caption: string, tasks: readonly string[], kinds: Record<string, string>, rows: [string, RunScores][], single: RunScores | undefined): HTMLTableElement {
  const t = document.createElement('table');
  t.className = 'results';
  const cap = document.createElement('caption');
  cap.textContent = caption;
  t.append(cap);
  const head = document.createElement('tr');
  for (const h of ['model', ...tasks.map((k) => `${k} (${kinds[k] === 'regression' ? 'R²' : 'acc'})`), 'Δm %', 'parameters', 'train s']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  t.append(head);
  const base = single && single.scores.length ? Object.fromEntries(tasks.map((k) => [k, mean(single.scores.map((s) => s[k]!))])) : null;
  const best = Object.fromEntries(tasks.map((k) => [k, Math.max(...rows.filter(([, r]) => r.scores.length).map(([, r]) => mean(r.scores.map((s) => s[k]!))))]));
  for (const [name, r] of rows) {
    const tr = document.createElement('tr');
    const cells: [string, string][] = [[name, '']];
    for (const k of tasks) {
      if (!r.scores.length) {
        cells.push(['…', '']);
        continue;
      }
      const v = r.scores.map((s) => s[k]!);
      cells.push([`${(mean(v) * 100).toFixed(1)} ± ${(std(v) * 100).toFixed(1)}`, mean(v) === best[k] ? 'best' : base && mean(v) < base[k]! - 0.01 ? 'worse' : '']);
    }
    const dm = base && r.scores.length && name !== 'single-task' ? deltaM(Object.fromEntries(tasks.map((k) => [k, mean(r.scores.map((s) => s[k]!))])), base) : null;
    cells.push([dm === null ? '' : `${dm >= 0 ? '+' : ''}${dm.toFixed(2)}`, dm !== null && dm < -1 ? 'worse' : '']);
    cells.push([r.params.toLocaleString('en-US'), '']);
    cells.push([r.seconds.length ? mean(r.seconds).toFixed(1) : '', '']);
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    t.append(tr);
  }
  return t;
}

function showSamples(data: MultiTaskData, tasks: readonly string[], scores: Record<string, TaskScore>, classNames: Record<string, readonly string[]>): void {
  const box = $('samples');
  box.replaceChildren();
  for (let r = 0; r < Math.min(8, data.count); r++) {
    const div = document.createElement('div');
    div.className = 'sample';
    const canvas = document.createElement('canvas');
    canvas.width = 28;
    canvas.height = 28;
    const g = canvas.getContext('2d')!;
    const img = g.createImageData(28, 28);
    for (let i = 0; i < PIXELS; i++) {
      const v = 255 - Math.round(data.inputs[r * PIXELS + i]! * 255);
      img.data.set([v, v, v, 255], i * 4);
    }
    g.putImageData(img, 0, 0);
    div.append(canvas);
    for (const t of tasks) {
      const line = document.createElement('div');
      const labels = data.tasks[t]!;
      const predicted = scores[t]!.predictions[r]!;
      const truth = labels.values[r]!;
      if (labels.kind === 'classification') {
        const names = classNames[t] ?? [];
        line.className = predicted === truth ? 'ok' : 'no';
        line.textContent = `${t}: ${names[predicted] ?? predicted}${predicted === truth ? '' : ` (${names[truth] ?? truth})`}`;
      } else line.textContent = `${t}: ${predicted.toFixed(2)} (${truth.toFixed(2)})`;
      div.append(line);
    }
    box.append(div);
  }
}

/** The data sets with a regression task's targets standardised by the training set's mean and deviation (R² does not change). */
function standardised(train: MultiTaskData, test: MultiTaskData, task: string): [MultiTaskData, MultiTaskData] {
  const v = train.tasks[task]!.values;
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
  const apply = (d: MultiTaskData): MultiTaskData => ({ ...d, tasks: { ...d.tasks, [task]: { ...d.tasks[task]!, values: d.tasks[task]!.values.map((x) => (x - m) / sd) } } });
  return [apply(train), apply(test)];
}

// ---- main ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  const datasets = listParam<DatasetName>('datasets', Object.keys(DATASETS) as DatasetName[], Object.keys(DATASETS));
  const taskParam = params.get('tasks');
  const taskLists = taskParam ? taskParam.split(';').map((s) => s.split(',').map((t) => t.trim()).filter(Boolean)) : [];
  const archs = listParam<Arch>('archs', ARCHS, ARCHS);
  const methods = listParam<string>('methods', Object.keys(WEIGHTINGS), Object.keys(WEIGHTINGS));
  const seeds = intParam('seeds', 3);
  const trainCount = intParam('train', 3000);
  const testCount = intParam('test', 2000);
  const epochs = intParam('epochs', 3);
  const batchSize = intParam('batch', 64);
  const lr = numberParam('lr', 1e-3, (v) => v > 0 && Number.isFinite(v), 'a positive number');
  const hidden = (params.get('hidden') ?? '256,128').split(',').map(Number);
  if (hidden.length === 0 || hidden.some((h) => !Number.isInteger(h) || h < 1)) throw new Error(`query parameter hidden=${params.get('hidden')} must be positive integers, as 256,128`);
  const settings: Settings = { hidden, experts: intParam('experts', 3) };
  const conflictEvery = intParam('conflictEvery', 10, 0);
  const costSteps = intParam('costSteps', 15);
  const costRounds = intParam('costRounds', 2);
  const inkLabels = numberParam('inkLabels', 1, (v) => v > 0 && v <= 1, 'in (0, 1]');
  const inkScale = params.get('inkScale') ?? 'raw';
  if (inkScale !== 'raw' && inkScale !== 'standard') throw new Error(`query parameter inkScale=${inkScale} must be raw or standard`);
  checkboxes('datasetBoxes', 'datasets', Object.keys(DATASETS), datasets);
  checkboxes('archBoxes', 'archs', ARCHS, archs);
  checkboxes('methodBoxes', 'methods', Object.keys(WEIGHTINGS), methods);
  const form = $('controls') as HTMLFormElement;
  for (const [k, v] of Object.entries({ tasks: taskParam ?? '', seeds, train: trainCount, epochs })) form.querySelector<HTMLInputElement>(`[name=${k}]`)!.value = String(v);
  $('weightMethod').addEventListener('change', () => showWeights(null, 1));
  const started = performance.now();

  status('Requesting a WebGPU device…');
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  log(`adapter ${engine.adapterName}`);

  status('Loading Fashion-MNIST and MNIST digits…');
  const [fashionTrain, fashionTest, digits] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test'), loadMnistDigits(dataFetcher('mnist'))]);
  const classNames: Record<string, readonly string[]> = { left: FASHION_MNIST_CLASSES, right: FASHION_MNIST_CLASSES, clothing: FASHION_MNIST_CLASSES, digit: [...'0123456789'] };
  const build = (name: DatasetName, split: 'train' | 'test', count: number, seed: number): MultiTaskData => {
    const fashion: ImageSet = split === 'train' ? fashionTrain : fashionTest;
    return name === 'multi-fashion' ? multiFashion(fashion, count, { seed }) : multiFashionMnist(fashion, digits[split], count, { seed });
  };

  const result: Record<string, unknown> = {
    adapter: engine.adapterName,
    datasets,
    methods,
    archs,
    seeds,
    train_images: trainCount,
    ink_scale: inkScale,
    test_images: testCount,
    epochs,
    batch_size: batchSize,
    hidden,
  };
  const singleAcc: Record<string, Record<string, number>> = {};
  const mtlAcc: Record<string, Record<string, Record<string, number>>> = {};
  const mtlStd: Record<string, Record<string, Record<string, number>>> = {};
  const delta: Record<string, Record<string, number>> = {};
  const paramsRatio: Record<string, Record<string, number>> = {};
  const timeRatio: Record<string, Record<string, number>> = {};
  const bytesRatio: Record<string, Record<string, number>> = {};
  const stepCost: Record<string, Record<string, number>> = {};
  const stepMs: Record<string, Record<string, number>> = {};
  const cosine: Record<string, Record<string, number>> = {};
  const cosineByMethod: Record<string, Record<string, number>> = {};
  const trainSeconds: Record<string, Record<string, number>> = {};

  const modelNames = [...methods.map((m) => m), ...archs.filter((a) => a !== 'hard').map((a) => `${a}/EW`)];
  const runsPerDataset = (tasks: number) => seeds * (tasks + modelNames.length);
  const totalRuns = datasets.reduce((n, d, i) => n + runsPerDataset((taskLists[i] ?? DATASETS[d].tasks).length), 0);
  let runsDone = 0;

  for (const [di, dataset] of datasets.entries()) {
    const tasks = taskLists[di] ?? [...DATASETS[dataset].tasks];
    setText('dataset', DATASETS[dataset].label);
    let train = build(dataset, 'train', trainCount, 1);
    let test = build(dataset, 'test', testCount, 2);
    if (inkScale === 'standard') [train, test] = standardised(train, test, 'ink');
    for (const t of tasks) if (!train.tasks[t]) throw new Error(`query parameter tasks: ${dataset} has no task "${t}" (tasks: ${Object.keys(train.tasks).join(', ')})`);
    if (inkLabels < 1 && tasks.includes('ink')) train = dropLabels(train, 'ink', inkLabels, { seed: 3 });
    const kinds = Object.fromEntries(tasks.map((t) => [t, train.tasks[t]!.kind]));
    log(`${dataset}: ${train.count} training and ${test.count} test composites; tasks ${tasks.map((t) => `${t} (${kinds[t]})`).join(', ')}`);

    const single: RunScores = { scores: [], seconds: [], params: 0 };
    const singleByTask = Object.fromEntries(tasks.map((t) => [t, [] as number[]]));
    const runs = new Map<string, RunScores>(modelNames.map((n) => [n, { scores: [], seconds: [], params: 0 }]));
    const conflictCurves = new Map<string, [number, number][]>();
    const conflictPairs = new Map<string, Map<string, number[]>>();
    const render = () => {
      const box = $('results');
      const id = `table-${dataset}`;
      const next = table(`${DATASETS[dataset].label} (${tasks.join(', ')})`, tasks, kinds, [['single-task', single], ...runs], single);
      next.id = id;
      const old = document.getElementById(id);
      if (old) old.replaceWith(next);
      else box.append(next);
    };
    render();

    const trainOne = async (name: string, model: MultiHead<Tensor>, method: string, runTasks: readonly string[], seed: number) => {
      setText('run', name);
      setText('seed', `${seed} of ${seeds}`);
      const weighting = makeWeighting(method);
      const curves: Curves = { loss: new Map(runTasks.map((t) => [t, []])), acc: new Map(runTasks.filter((t) => kinds[t] === 'classification').map((t) => [t, []])), weights: new Map(runTasks.map((t) => [t, []])) };
      const totalSteps = epochs * Math.floor(train.count / batchSize);
      const logEvery = Math.max(1, Math.floor(totalSteps / 40));
      const optimizer = new Adam(model, { lr });
      const res: MultiTaskResult = await trainMultiTask(engine, model, optimizer, train, {
        weighting,
        tasks: [...runTasks],
        epochs,
        batchSize,
        seed: seed * 1000 + runsDone,
        logEvery,
        conflictEvery: runTasks.length > 1 ? conflictEvery : 0,
        onProgress: (p) => {
          for (const t of runTasks) {
            curves.loss.get(t)!.push([p.step, p.losses[t]!]);
            if (kinds[t] === 'classification') curves.acc.get(t)!.push([p.step, p.metrics[`${t}.accuracy`]!]);
          }
          setText('loss', Object.values(p.losses).reduce((a, b) => a + b, 0).toFixed(3));
          status(`${DATASETS[dataset].label}: ${name}, seed ${seed}: epoch ${p.epoch + 1}, step ${p.step} / ${p.totalSteps}`);
          $('progress').style.width = `${((runsDone + p.step / p.totalSteps) / totalRuns) * 100}%`;
          drawCurves(curves, totalSteps);
        },
      });
      for (const w of res.weights) for (const t of runTasks) curves.weights.get(t)!.push([w.step, w.weights[t]!]);
      if (runTasks.length > 1) {
        const key = `${DATASETS[dataset].label}: ${name}`;
        if (!weightRuns.has(key)) $('weightMethod').append(new Option(key, key));
        weightRuns.set(key, { weights: curves.weights, totalSteps });
      }
      drawCurves(curves, totalSteps);
      const scores = await evaluateMultiTask(engine, model, test, { tasks: [...runTasks] });
      optimizer.dispose();
      weighting.dispose();
      runsDone++;
      return { res, scores, totalSteps };
    };

    for (let seed = 1; seed <= seeds; seed++) {
      // Single-task models: the same trunk and head, one task each.
      const singleScores: Record<string, number> = {};
      let singleSeconds = 0;
      for (const t of tasks) {
        const model = buildModel(engine, 'hard', train, [t], settings, seed * 7);
        if (seed === 1) single.params += countValues(model.parameters().values());
        const { res, scores } = await trainOne(`single-task ${t}`, model, 'EW', [t], seed);
        singleScores[t] = scores[t]!.score;
        singleByTask[t]!.push(scores[t]!.score);
        singleSeconds += res.seconds;
        log(`${dataset} seed=${seed} single-task ${t}: ${kinds[t] === 'regression' ? 'R²' : 'acc'}=${scores[t]!.score.toFixed(4)} train_s=${res.seconds.toFixed(1)}`);
        model.dispose();
      }
      single.scores.push(singleScores);
      single.seconds.push(singleSeconds);
      render();

      for (const name of modelNames) {
        const [arch, method] = archAndMethod(name);
        const model = buildModel(engine, arch, train, tasks, settings, seed * 7);
        const r = runs.get(name)!;
        r.params = countValues(model.parameters().values());
        const { res, scores, totalSteps } = await trainOne(name, model, method, tasks, seed);
        r.scores.push(Object.fromEntries(tasks.map((t) => [t, scores[t]!.score])));
        r.seconds.push(res.seconds);
        // Gradient conflict: the mean cosine over pairs at each measurement.
        const pairs = conflictPairs.get(name) ?? new Map<string, number[]>();
        conflictPairs.set(name, pairs);
        for (const c of res.conflicts) for (const [pair, v] of Object.entries(c.cosine)) pairs.set(pair, [...(pairs.get(pair) ?? []), v]);
        if (seed === seeds) {
          conflictCurves.set(name, res.conflicts.map((c) => [c.step / totalSteps, mean(Object.values(c.cosine))]));
          drawConflicts(conflictCurves);
        }
        log(`${dataset} seed=${seed} ${name}: ${tasks.map((t) => `${t}=${scores[t]!.score.toFixed(4)}`).join(' ')} train_s=${res.seconds.toFixed(1)}`);
        if (name === 'EW' && seed === seeds) showSamples(test, tasks, scores, classNames);
        model.dispose();
        render();
      }
    }

    // Summaries over seeds.
    singleAcc[dataset] = Object.fromEntries(tasks.map((t) => [t, round(mean(singleByTask[t]!))]));
    mtlAcc[dataset] = {};
    mtlStd[dataset] = {};
    delta[dataset] = {};
    cosineByMethod[dataset] = {};
    trainSeconds[dataset] = { 'single-task (all tasks)': round(mean(single.seconds), 2) };
    for (const [name, r] of runs) {
      const means = Object.fromEntries(tasks.map((t) => [t, mean(r.scores.map((s) => s[t]!))]));
      mtlAcc[dataset]![name] = Object.fromEntries(tasks.map((t) => [t, round(means[t]!)]));
      mtlStd[dataset]![name] = Object.fromEntries(tasks.map((t) => [t, round(std(r.scores.map((s) => s[t]!)))]));
      delta[dataset]![name] = round(deltaM(means, Object.fromEntries(tasks.map((t) => [t, mean(singleByTask[t]!)]))), 3);
      trainSeconds[dataset]![name] = round(mean(r.seconds), 2);
      const all = [...(conflictPairs.get(name)?.values() ?? [])].flat();
      if (all.length) cosineByMethod[dataset]![name] = round(mean(all));
    }
    const ewPairs = conflictPairs.get(methods.includes('EW') ? 'EW' : modelNames[0]!) ?? new Map();
    cosine[dataset] = Object.fromEntries([...ewPairs].map(([pair, v]) => [pair, round(mean(v))]));

    // Cost: a few steps of every model, interleaved over rounds, best round kept.
    status(`${DATASETS[dataset].label}: timing a training step of every model…`);
    const costData = takeMultiTaskRows(train, Uint32Array.from({ length: Math.min(train.count, costSteps * batchSize) }, (_, i) => i));
    const warmData = takeMultiTaskRows(train, Uint32Array.from({ length: batchSize }, (_, i) => i));
    // What is timed: each single-task model, each model of the experiment and, with FAMO, its free variant.
    const timed: { name: string; arch: Arch; tasks: readonly string[]; weighting: () => Weighting }[] = [
      ...tasks.map((t) => ({ name: `single:${t}`, arch: 'hard' as Arch, tasks: [t], weighting: () => makeWeighting('EW') })),
      ...modelNames.map((name) => {
        const [arch, method] = archAndMethod(name);
        return { name, arch, tasks, weighting: () => makeWeighting(method) };
      }),
      ...(methods.includes('FAMO') ? [{ name: 'FAMO (next batch)', arch: 'hard' as Arch, tasks, weighting: () => new FAMO({ updateBatch: 'next' }) }] : []),
    ];
    const best = new Map<string, number>();
    const peak = new Map<string, number>();
    for (let round_ = 0; round_ < costRounds; round_++) {
      for (const config of timed) {
        await engine.trim();
        const held = engine.memory().bytes;
        engine.resetPeakMemory();
        const model = buildModel(engine, config.arch, train, config.tasks, settings, 99);
        const weighting = config.weighting();
        const optimizer = new Adam(model, { lr });
        const options = { weighting, tasks: [...config.tasks], epochs: 1, batchSize, logEvery: 1_000_000 };
        // One untimed step first: pipelines compiled, buffers pooled.
        await trainMultiTask(engine, model, optimizer, warmData, options);
        const res = await trainMultiTask(engine, model, optimizer, costData, options);
        best.set(config.name, Math.min(best.get(config.name) ?? Infinity, (res.seconds * 1000) / res.steps));
        // The device memory this model's training needed (weights, gradients, optimizer state, activations, task gradients).
        peak.set(config.name, Math.max(peak.get(config.name) ?? 0, engine.memory().peakBytes - held));
        optimizer.dispose();
        weighting.dispose();
        model.dispose();
      }
    }
    const ew = best.get(methods.includes('EW') ? 'EW' : modelNames[0]!)!;
    stepMs[dataset] = Object.fromEntries([...best].map(([k, v]) => [k, round(v, 2)]));
    stepCost[dataset] = Object.fromEntries([...modelNames, ...(best.has('FAMO (next batch)') ? ['FAMO (next batch)'] : [])].map((n) => [n, round(best.get(n)! / ew, 3)]));
    const singleMs = tasks.reduce((s, t) => s + best.get(`single:${t}`)!, 0);
    const singleBytes = tasks.reduce((s, t) => s + peak.get(`single:${t}`)!, 0);
    const archKey = (a: Arch) => (a === 'hard' ? (methods.includes('EW') ? 'EW' : modelNames[0]!) : `${a}/EW`);
    paramsRatio[dataset] = Object.fromEntries(archs.map((a) => [a, round(runs.get(archKey(a))!.params / single.params, 3)]));
    timeRatio[dataset] = Object.fromEntries(archs.map((a) => [a, round(best.get(archKey(a))! / singleMs, 3)]));
    bytesRatio[dataset] = Object.fromEntries(archs.map((a) => [a, round(peak.get(archKey(a))! / singleBytes, 3)]));
    log(`${dataset} step ms: ${[...best].map(([k, v]) => `${k}=${v.toFixed(1)}`).join(' ')}`);
    log(`${dataset} params_ratio=${JSON.stringify(paramsRatio[dataset])} time_ratio=${JSON.stringify(timeRatio[dataset])} gpu_bytes_ratio=${JSON.stringify(bytesRatio[dataset])}`);
    $('costs').textContent = `Step cost against EW (${Object.keys(stepCost).map((d) => `${d}: ${Object.entries(stepCost[d]!).map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(', ')}`).join('; ')}).`;
  }

  Object.assign(result, {
    single_task_acc: singleAcc,
    mtl_acc: mtlAcc,
    mtl_acc_std: mtlStd,
    delta_m: delta,
    params_ratio: paramsRatio,
    time_ratio: timeRatio,
    gpu_bytes_ratio: bytesRatio,
    step_cost_ratio: stepCost,
    step_ms: stepMs,
    gradient_cosine: cosine,
    gradient_cosine_by_method: cosineByMethod,
    train_seconds: trainSeconds,
    seconds: round((performance.now() - started) / 1000, 1),
  });
  // The weights chart ends on the run whose weights moved most.
  const spread = (w: Map<string, [number, number][]>) => Math.max(0, ...[...w.values()].map((pts) => Math.max(...pts.map(([, v]) => v)) - Math.min(...pts.map(([, v]) => v))));
  const most = [...weightRuns].sort((a, b) => spread(b[1].weights) - spread(a[1].weights))[0];
  if (most) ($('weightMethod') as HTMLSelectElement).value = most[0];
  showWeights(null, 1);
  $('progress').style.width = '100%';
  status(`Done in ${result['seconds']} s.`);
  finish(result);
}

run(main);
