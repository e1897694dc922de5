// The transfer demo's data-efficiency curves: scratch, transfer, fine-tune and LoRA against the
// number of labelled examples per class, for three (pretrained base -> target) pairs, each drawn
// on a log axis with its spread over seeds; efficiencyCurve (src/paradigms/efficiency.ts) runs the grid.
import {
  Adam,
  aggregateRuns,
  applyLoRA,
  classSplit,
  efficiencyCurve,
  evaluate,
  FASHION_MNIST_CLASSES,
  finetune,
  fit,
  fitHead,
  loadFashionMnist,
  loadMnistDigits,
  loadWeights,
  MNIST_DIGIT_CLASSES,
  saveWeights,
  stepBudget,
  type ClassificationData,
  type EfficiencyPoint,
  type EfficiencyRun,
  type Engine,
  type LabelsPerClass,
  type MethodRun,
  type Module,
} from '../../src/index.js';
import { $, dataFetcher, drawChart, fetchBytes, intParam, mean, params, resultTable, round, type Series, status } from '../common/ui.js';
import { BATCH, FASHION_SOURCE, FASHION_TARGET, fetchModel, FINETUNE, LORA, LR, PIXELS, scratchModel, transferModel } from './bases.js';

/** The data-efficiency pairs: a pretrained base and a target task it was not trained on. */
const CURVE_PAIRS = {
  a: { base: FASHION_SOURCE.base, target: 'Fashion-MNIST classes 5-9 (sandal, shirt, sneaker, bag, ankle boot)' },
  b: { base: 'fashion-mnist-cnn', target: 'MNIST digits (10 classes)' },
  c: { base: 'mnist-cnn', target: 'Fashion-MNIST (10 classes)' },
} as const;
type PairKey = keyof typeof CURVE_PAIRS;
const CURVE_SETTINGS = {
  // steps: each method's training steps (batch 20) at every point; the full sweep's are the comparison's.
  full: { points: [1, 2, 5, 10, 20, 50, 100, 'all'] as LabelsPerClass[], seeds: 3, pairs: ['a', 'b', 'c'] as PairKey[], steps: 150, test: 1000 },
  // Within the default run's budget (about 15 minutes with the comparison on SwiftShader).
  default: { points: [1, 10, 100] as LabelsPerClass[], seeds: 1, pairs: ['a', 'b', 'c'] as PairKey[], steps: 60, test: 500 },
};
export const CURVE_METHODS = { scratch: '#9aa5b1', transfer: '#2563eb', 'fine-tune': '#ea580c', LoRA: '#15803d', 'random base': '#a855f7' };

/** A list query parameter of labels per class: positive integers and `all`. */
function pointsParam(name: string, fallback: LabelsPerClass[]): LabelsPerClass[] {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const out = raw.split(',').map((v) => (v === 'all' ? 'all' : Number(v)));
  if (out.some((v) => v !== 'all' && !(Number.isInteger(v) && v >= 1))) throw new Error(`query parameter ${name}=${raw}: give labels per class as positive integers or all, e.g. 1,5,20,all`);
  return out;
}

function pairsParam(name: string, fallback: PairKey[]): PairKey[] {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const out = raw.split(',');
  const bad = out.filter((p) => !(p in CURVE_PAIRS));
  if (bad.length) throw new Error(`query parameter ${name}=${raw}: pairs are ${Object.keys(CURVE_PAIRS).join(', ')}`);
  return out as PairKey[];
}


/** A target task: its training rows (every labelled row of the target classes), test rows and class names. */
interface TargetData {
  train: ClassificationData;
  test: ClassificationData;
  classNames: string[];
}

/** One (labels per class, seed) task of a pair: the rows trained on, within the step budget. */
interface CurveTask extends ReturnType<typeof stepBudget> {
  /** The transfer model's weights after its head's training: where fine-tune and LoRA start. */
  transferWeights?: Uint8Array;
}

/** Trains `model` with `train`, then scores it on `test`; frees what it made whatever happens. */
async function scored(engine: Engine, model: Module, optimizers: { dispose(): void }[], test: ClassificationData, train: () => Promise<{ seconds: number }>): Promise<MethodRun> {
  try {
    const { seconds } = await train();
    return { accuracy: (await evaluate(engine, model, test)).accuracy, seconds };
  } finally {
    for (const o of optimizers) o.dispose();
    model.dispose();
  }
}

/**
 * The four methods of the curves for one base and target, each on a fixed step budget:
 * scratch, transfer (cached features), fine-tune and LoRA, the last two from the transfer model.
 * Fine-tuning unfreezes every group from the start (discriminative rates, warm-up, cosine):
 * gradual unfreezing needs an epoch per group, which the step budget does not give many labels.
 */
function curveMethods(engine: Engine, base: Uint8Array, cut: string, target: TargetData, control: boolean) {
  const classes = target.classNames.length;
  const { test } = target;
  const fromTransfer = (task: CurveTask, seed: number) => {
    if (!task.transferWeights) throw new Error('the curve runs transfer before fine-tune and LoRA, which start from it');
    const tm = transferModel(engine, base, cut, classes, 200 + seed);
    loadWeights(tm.model, task.transferWeights);
    return tm;
  };
  return {
    scratch: async (task: CurveTask, _: LabelsPerClass, seed: number) => {
      const model = scratchModel(engine, base, classes, 100 + seed);
      const opt = new Adam(model.parameters(), { lr: LR.scratch });
      return scored(engine, model, [opt], test, () => fit(engine, model, opt, task.data, { epochs: task.epochs, batchSize: task.batchSize, seed }));
    },
    transfer: async (task: CurveTask, _: LabelsPerClass, seed: number) => {
      const tm = transferModel(engine, base, cut, classes, 200 + seed);
      const opt = new Adam(tm.head.parameters(), { lr: LR.head });
      return scored(engine, tm.model, [opt], test, async () => {
        const r = await fitHead(engine, tm, opt, task.data, { epochs: task.epochs, batchSize: task.batchSize, seed, cacheFeatures: true });
        task.transferWeights = await saveWeights(tm.model);
        return r;
      });
    },
    // The control (curveControl=1): transfer's head on a frozen base of random weights.
    ...(control
      ? {
          'random base': async (task: CurveTask, _: LabelsPerClass, seed: number) => {
            const tm = transferModel(engine, base, cut, classes, 200 + seed, true);
            const opt = new Adam(tm.head.parameters(), { lr: LR.head });
            return scored(engine, tm.model, [opt], test, () => fitHead(engine, tm, opt, task.data, { epochs: task.epochs, batchSize: task.batchSize, seed, cacheFeatures: true }));
          },
        }
      : {}),
    'fine-tune': async (task: CurveTask, _: LabelsPerClass, seed: number) => {
      const tm = fromTransfer(task, seed);
      const optimizers: { dispose(): void }[] = [];
      return scored(engine, tm.model, optimizers, test, async () => {
        const r = await finetune(engine, tm.model, task.data, { ...FINETUNE, gradual: false, epochs: task.epochs, batchSize: task.batchSize, seed });
        optimizers.push(r.optimizer);
        return r;
      });
    },
    LoRA: async (task: CurveTask, _: LabelsPerClass, seed: number) => {
      const tm = fromTransfer(task, seed);
      applyLoRA(tm.model, LORA.layers, { rank: LORA.rank, alpha: LORA.alpha, seed: 300 + seed, trainable: ['fc2'] });
      const opt = new Adam(tm.model.trainableParameters(), { lr: LR.lora });
      return scored(engine, tm.model, [opt], test, () => fit(engine, tm.model, opt, task.data, { epochs: task.epochs, batchSize: task.batchSize, seed }));
    },
  };
}

/** Where a point sits on the log axis: `all` at the mean number of labelled rows per class. */
const pointX = (p: LabelsPerClass, target: TargetData) => (p === 'all' ? target.train.count / target.classNames.length : p);

function drawCurve(canvas: HTMLCanvasElement, curve: Record<string, EfficiencyPoint[]>, points: LabelsPerClass[], target: TargetData): void {
  const xs = points.map((p) => pointX(p, target));
  const series: Series[] = Object.entries(curve).map(([method, ps]) => ({
    label: method,
    color: CURVE_METHODS[method as keyof typeof CURVE_METHODS],
    dots: true,
    points: ps.map((p) => [pointX(p.labelsPerClass, target), p.accuracy.mean]),
    errors: ps.map((p) => p.accuracy.std),
  }));
  drawChart(canvas, {
    series,
    xLog: true,
    xMin: Math.min(...xs) / 1.3,
    xMax: Math.max(...xs) * 1.3,
    xTicks: points.map((p, i) => ({ x: xs[i]!, label: String(p) })),
    yMin: 0,
    yMax: 1,
    xLabel: 'labelled examples per class (log)',
    yFormat: (v) => `${Math.round(v * 100)}%`,
  });
}

/** Every labelled row and a class-balanced sample of `testImages` test rows of each pair's target. */
async function curveTargets(pairs: PairKey[], testImages: number): Promise<Record<PairKey, TargetData>> {
  const asData = (s: { images: Float32Array; labels: ArrayLike<number>; count: number }): ClassificationData => ({ inputs: s.images, labels: s.labels, count: s.count, features: PIXELS, classes: 10 });
  const needFashion = pairs.some((p) => p !== 'b');
  const [fashionTrain, fashionTest] = needFashion ? await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]) : [];
  const digits = pairs.includes('b') ? await loadMnistDigits(dataFetcher('mnist')) : undefined;
  const task = (train: ClassificationData, test: ClassificationData, classes: number[], names: readonly string[]): TargetData => ({
    train: classSplit(train, classes).data,
    // The MNIST files are ordered by class: a seeded sample per class, not a prefix.
    test: classSplit(test, classes, { perClass: Math.floor(testImages / classes.length), seed: 99 }).data,
    classNames: classes.map((c) => names[c]!),
  });
  const all10 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const out: Partial<Record<PairKey, TargetData>> = {};
  for (const p of pairs) {
    if (p === 'b') out[p] = task(asData(digits!.train), asData(digits!.test), all10, MNIST_DIGIT_CLASSES);
    else out[p] = task(asData(fashionTrain!), asData(fashionTest!), p === 'a' ? FASHION_TARGET : all10, FASHION_MNIST_CLASSES);
  }
  return out as Record<PairKey, TargetData>;
}

/** Runs the curves of `pairs`, drawing each pair's chart as runs finish; returns the JSON part. */
export async function runCurves(engine: Engine, cut: string, onRun: (text: string) => void) {
  const mode = params.get('curve') ?? 'default';
  if (mode === 'off') return null;
  if (!(mode in CURVE_SETTINGS)) throw new Error(`query parameter curve=${mode}: give default, full or off`);
  const settings = CURVE_SETTINGS[mode as keyof typeof CURVE_SETTINGS];
  const points = pointsParam('curvePoints', settings.points);
  const seeds = Array.from({ length: intParam('curveSeeds', settings.seeds) }, (_, i) => i + 1);
  const pairs = pairsParam('curvePairs', settings.pairs);
  const steps = intParam('curveSteps', settings.steps);
  const testImages = intParam('curveTest', settings.test);
  const control = intParam('curveControl', 0, 0) === 1;
  if (intParam('curveControl', 0, 0) > 1) throw new Error(`query parameter curveControl=${params.get('curveControl')}: give 1 to add the random-base control, 0 (the default) for none`);
  status('Loading the curves’ data…');
  const targets = await curveTargets(pairs, testImages);
  const box = $('curveCharts');
  const result: Record<string, unknown> = {};
  // Every chart is redrawn after each run: a new card can change the others' width.
  const redraws: (() => void)[] = [];
  for (const pair of pairs) {
    const { base: baseName, target: targetName } = CURVE_PAIRS[pair];
    const base = await fetchModel(baseName);
    const target = targets[pair];
    const card = document.createElement('div');
    card.className = 'card';
    const title = document.createElement('h2');
    title.textContent = `(${pair}) ${baseName} → ${targetName}`;
    const canvas = document.createElement('canvas');
    canvas.className = 'chart';
    card.append(title, canvas);
    box.append(card);
    const started = performance.now();
    const { curve } = await efficiencyCurve<CurveTask>({
      labelsPerClass: points,
      seeds,
      prepare: (point, seed) => stepBudget(point === 'all' ? target.train : classSplit(target.train, target.classNames.map((_, i) => i), { perClass: point, seed }).data, steps, BATCH, seed),
      methods: curveMethods(engine, base, cut, target, control),
      onRun: (r: EfficiencyRun, runs) => {
        const curve = aggregateRuns(runs);
        redraws[pairs.indexOf(pair)] = () => drawCurve(canvas, curve, points, target);
        for (const redraw of redraws) redraw();
        onRun(`curve (${pair}) ${r.labelsPerClass} per class, seed ${r.seed}: ${r.method} test_acc=${r.accuracy.toFixed(4)} train_s=${r.seconds.toFixed(2)}`);
      },
    });
    const methods = Object.keys(curve);
    card.append(
      resultTable(
        `(${pair}) test accuracy, mean ± std over ${seeds.length} seed(s), and mean training seconds per run`,
        ['method', ...points.map((p) => `${p} per class`), 'training s'],
        methods.map((m) => [m, ...curve[m]!.map((p) => `${(p.accuracy.mean * 100).toFixed(1)}% ± ${(p.accuracy.std * 100).toFixed(1)}`), mean(curve[m]!.map((p) => p.seconds.mean)).toFixed(1)]),
      ),
    );
    result[pair] = {
      base: baseName,
      target: targetName,
      test_images: target.test.count,
      accuracy: Object.fromEntries(methods.map((m) => [m, Object.fromEntries(curve[m]!.map((p) => [String(p.labelsPerClass), { mean: round(p.accuracy.mean), std: round(p.accuracy.std), per_seed: p.accuracies.map((a) => round(a)) }]))])),
      train_seconds: Object.fromEntries(methods.map((m) => [m, Object.fromEntries(curve[m]!.map((p) => [String(p.labelsPerClass), round(p.seconds.mean, 2)]))])),
      seconds: round((performance.now() - started) / 1000, 1),
    };
  }
  return { settings: { points: points.map(String), seeds: seeds.length, pairs, steps, batch: BATCH }, ...result };
}
