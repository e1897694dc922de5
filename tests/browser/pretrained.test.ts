// The pretrained bases in models/ (scripts/pretrain.ts) and the file format: weights load bit for
// bit (checked with an independent safetensors reader), the architecture in the metadata rebuilds
// the model, the bases classify held-out images as well as the file says, and a file that does
// not fit the expected architecture is refused naming each layer that differs.
import { beforeAll, expect, test } from 'vitest';
import {
  architectureOf,
  buildModel,
  classSplit,
  Conv2d,
  Dense,
  Engine,
  evaluate,
  Flatten,
  loadFashionMnist,
  loadPretrained,
  readPretrainedInfo,
  ReLU,
  Reshape,
  savePretrained,
  saveWeights,
  Sequential,
  type ClassificationData,
  type LayerSpec,
} from '../../src/index.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

async function fetchBytes(path: string): Promise<Uint8Array> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`fetch ${path}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Tensor name -> raw little-endian bytes, read from the format description, independent of src/. */
function rawTensors(bytes: Uint8Array): Map<string, Uint8Array> {
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, { data_offsets: [number, number] }>;
  const out = new Map<string, Uint8Array>();
  for (const [name, info] of Object.entries(header)) if (name !== '__metadata__') out.set(name, bytes.subarray(8 + headerLength + info.data_offsets[0], 8 + headerLength + info.data_offsets[1]));
  return out;
}

test.each(['fashion-mnist-cnn', 'fashion-mnist-0-4-cnn', 'mnist-cnn'])('the committed base %s loads bit for bit, with its architecture and training settings', async (name) => {
  const bytes = await fetchBytes(`/models/${name}.safetensors`);
  const info = readPretrainedInfo(bytes);
  expect(info.architecture.map((l) => l.name)).toEqual(['image', 'conv1', 'bn1', 'relu1', 'pool1', 'conv2', 'bn2', 'relu2', 'pool2', 'flatten', 'fc1', 'relu3', 'fc2']);
  expect(info.training['epochs']).toBeGreaterThan(0);
  expect(info.metrics['testAccuracy']).toBeGreaterThan(0.8);
  const { model } = loadPretrained(engine, bytes, { expect: info.architecture });
  try {
    expect(architectureOf(model)).toEqual(info.architecture);
    const saved = rawTensors(await saveWeights(model));
    const original = rawTensors(bytes);
    expect([...saved.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [k, v] of original) expect(saved.get(k), k).toEqual(v);
  } finally {
    model.dispose();
  }
});

test('the Fashion-MNIST bases classify the committed test images about as well as their files say', async () => {
  const [images] = await Promise.all([loadFashionMnist((f) => fetchBytes(`/tests/data/fashion-mnist/${f}`), 'test')]);
  const all: ClassificationData = { inputs: images.images, labels: images.labels, count: images.count, features: 784, classes: 10 };
  for (const [name, data] of [
    ['fashion-mnist-cnn', all],
    ['fashion-mnist-0-4-cnn', classSplit(all, [0, 1, 2, 3, 4]).data],
  ] as const) {
    const bytes = await fetchBytes(`/models/${name}.safetensors`);
    const { model, info } = loadPretrained(engine, bytes);
    try {
      model.eval();
      const { accuracy } = await evaluate(engine, model, data);
      // The committed subset is a few hundred of the 10,000 test images the file's figure is on.
      expect(Math.abs(accuracy - info.metrics['testAccuracy']!), `${name}: ${accuracy} on ${data.count} images vs ${info.metrics['testAccuracy']}`).toBeLessThan(0.06);
    } finally {
      model.dispose();
    }
  }
});

function small(seed: number): Sequential {
  return new Sequential({
    image: new Reshape([1, 6, 6]),
    conv1: new Conv2d(engine, 1, 3, [3, 2], { padding: [1, 0], stride: [1, 2], seed }),
    relu1: ReLU(),
    flatten: new Flatten(),
    fc1: new Dense(engine, 3 * 6 * 3, 4, { seed: seed + 2, bias: false }),
  });
}

test('savePretrained then loadPretrained rebuilds the same model: the same architecture and the same outputs', async () => {
  const m = small(5);
  const bytes = await savePretrained(m, { dataset: 'random', classes: ['a', 'b', 'c', 'd'], training: { epochs: 0 }, metrics: {} });
  const { model, info } = loadPretrained(engine, bytes);
  try {
    expect(info.dataset).toBe('random');
    expect(info.architecture).toEqual(architectureOf(m));
    const x = engine.randn([2, 36], { seed: 9 });
    const [a, b] = await engine.scope(() => Promise.all([m.forward(x).data(), model.forward(x).data()]));
    expect(b).toEqual(a);
    x.dispose();
  } finally {
    model.dispose();
    m.dispose();
  }
});

test('loadPretrained refuses a file whose architecture differs from the expected one, naming each layer, and builds nothing', async () => {
  const m = small(5);
  const bytes = await savePretrained(m, { dataset: 'random', classes: [], training: {}, metrics: {} });
  const expected = architectureOf(m);
  m.dispose();
  const wider = expected.map((l): LayerSpec => (l.type === 'conv2d' ? { ...l, out: 8 } : l)).slice(0, -1);
  const before = engine.memory().inUseBuffers;
  let message = '';
  try {
    loadPretrained(engine, bytes, { expect: wider });
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message).toMatch(/layer 1: expected .*"out":8.*found .*"out":3/);
  expect(message).toMatch(/layer 4 \(fc1, dense\) is extra/);
  expect(engine.memory().inUseBuffers).toBe(before);
});

test('a file whose weights do not match its own architecture is refused and the model it started is freed', async () => {
  const m = small(5);
  const good = await savePretrained(m, { dataset: 'random', classes: [], training: {}, metrics: {} });
  m.dispose();
  // The same metadata over another model's weights: conv1 then has another shape.
  const info = readPretrainedInfo(good);
  const other = buildModel(engine, info.architecture.map((l): LayerSpec => (l.type === 'conv2d' ? { ...l, kernel: [3, 3] } : l.type === 'dense' ? { ...l, in: 3 * 6 * 2 } : l)), { seed: 1 });
  const bad = await saveWeights(other, { metadata: { 'webgpu-train.pretrained': JSON.stringify(info) } });
  other.dispose();
  const before = engine.memory().inUseBuffers;
  expect(() => loadPretrained(engine, bad)).toThrow(/conv1\.weight is \[3,1,3,3\] in the file but \[3,1,3,2\] in the model/);
  expect(engine.memory().inUseBuffers).toBe(before);
});

test('a weights file without an architecture is refused as such', async () => {
  const m = small(5);
  const plain = await saveWeights(m);
  m.dispose();
  expect(() => loadPretrained(engine, plain)).toThrow(/has no "webgpu-train.pretrained" metadata/);
});

test('buildModel refuses a layer of unknown type or activation, naming it, and frees the layers it had built', () => {
  const before = engine.memory().inUseBuffers;
  const dense: LayerSpec = { name: 'fc1', type: 'dense', in: 4, out: 3, bias: true };
  expect(() => buildModel(engine, [dense, { name: 'act', type: 'activation', op: 'swish', alpha: 0 }])).toThrow(/layer act is an activation of unknown op "swish"/);
  expect(() => buildModel(engine, [dense, { name: 'odd', type: 'lstm' } as unknown as LayerSpec])).toThrow(/layer odd has unknown type "lstm"/);
  expect(engine.memory().inUseBuffers).toBe(before);
});
