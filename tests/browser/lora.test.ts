// LoRA: an adapted model starts bit-identical to its base; training moves only A, B and the
// named trainable layers (the base weights stay bit-identical); the forward and the gradients
// of A and B match float64 CPU references; merging folds s B A into the base weight without
// changing the outputs; adapters save and load by name.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  applyLoRA,
  backward,
  Conv2d,
  decodeSafetensors,
  Dense,
  Engine,
  Flatten,
  loadWeights,
  LoRAConv2d,
  LoRADense,
  LoRALayer,
  mergeLoRA,
  mul,
  oneHot,
  ReLU,
  saveAdapter,
  saveWeights,
  Sequential,
  softmaxCrossEntropy,
  sum,
  type Parameter,
  type Tensor,
} from '../../src/index.js';
import { expectClose, type Tol } from '../close.js';
import * as ref from '../reference.js';

const BATCH = 8;
const IN = 12;
const CLASSES = 3;
/** f32 forward of a few layers against float64. */
const FORWARD: Tol = { atol: 2e-5, rtol: 1e-4 };

let engine: Engine;
let x: Tensor;
let targets: Tensor;
let images: Tensor;

beforeAll(async () => {
  engine = await Engine.create();
  x = engine.keep(engine.randn([BATCH, IN], { seed: 5, name: 'x' }));
  const labels = Array.from({ length: BATCH }, (_, i) => (i * 7 + 1) % CLASSES);
  targets = engine.keep(engine.tensor(oneHot(labels, CLASSES), [BATCH, CLASSES], 'targets'));
  images = engine.keep(engine.randn([BATCH, 2, 6, 6], { seed: 6, name: 'images' }));
});

afterAll(async () => {
  await engine?.sync();
});

function mlp(seed = 1): Sequential {
  return new Sequential({
    fc1: new Dense(engine, IN, 16, { seed }),
    relu1: ReLU(),
    fc2: new Dense(engine, 16, 8, { seed: seed + 10 }),
    relu2: ReLU(),
    head: new Dense(engine, 8, CLASSES, { seed: seed + 20 }),
  });
}

/** Two convolutions (one in a nested Sequential, with stride and padding) and a dense head; input [N, 2, 6, 6]. */
function cnn(seed = 1): Sequential {
  return new Sequential({
    conv1: new Conv2d(engine, 2, 4, 3, { padding: 1, seed }),
    relu1: ReLU(),
    block: new Sequential({ conv: new Conv2d(engine, 4, 6, 3, { stride: 2, padding: 1, seed: seed + 10 }), relu: ReLU() }),
    flatten: new Flatten(),
    fc: new Dense(engine, 6 * 3 * 3, CLASSES, { seed: seed + 20 }),
  });
}

async function output(model: Sequential, input: Tensor): Promise<Float32Array> {
  return engine.scope(() => model.predict(input).data());
}

async function train(model: Sequential, input: Tensor, steps: number, params: Map<string, Parameter> = model.parameters()): Promise<Adam> {
  const optimizer = new Adam(params, { lr: 0.02 });
  for (let i = 0; i < steps; i++) {
    await engine.scope(async () => {
      backward(softmaxCrossEntropy(model.forward(input), targets));
      optimizer.step();
      optimizer.zeroGrad();
      await engine.flush();
    });
  }
  return optimizer;
}

/** Values of every parameter by name, as float64 and as raw bits. */
async function snapshot(model: Sequential): Promise<Map<string, { values: Float64Array; bits: Uint32Array }>> {
  const out = new Map<string, { values: Float64Array; bits: Uint32Array }>();
  for (const [name, p] of model.parameters()) {
    const d = await p.data();
    out.set(name, { values: Float64Array.from(d), bits: new Uint32Array(d.slice().buffer) });
  }
  return out;
}

/** x W^T + b (+ s (x A^T) B^T) over `rows` rows, in float64. */
function denseRef(h: Float64Array, rows: number, W: Float64Array, b: Float64Array, inF: number, outF: number, lora?: { A: Float64Array; B: Float64Array; r: number; s: number }): Float64Array {
  const y = ref.addBias(ref.matmul(h, [rows, inF], W, [outF, inF], false, true).data, b);
  if (!lora) return y;
  const xa = ref.matmul(h, [rows, inF], lora.A, [lora.r, inF], false, true).data;
  const u = ref.matmul(xa, [rows, lora.r], lora.B, [outF, lora.r], false, true).data;
  return y.map((v, i) => v + lora.s * u[i]!);
}

/** W + s B A for B [out, r] and A [r, fanIn] (W in any shape with out * fanIn elements). */
function mergedRef(W: Float64Array, A: Float64Array, B: Float64Array, r: number, s: number): Float64Array {
  const out = W.length / (A.length / r);
  const ba = ref.matmul(B, [out, r], A, [r, A.length / r]).data;
  return W.map((v, i) => v + s * ba[i]!);
}

describe('an adapted model starts as its base', () => {
  test('Dense layers: outputs bit-identical before training', async () => {
    const model = mlp();
    const before = await output(model, x);
    const adapters = applyLoRA(model, ['fc1', 'fc2'], { rank: 2, alpha: 4, seed: 3 });
    expect([...adapters.keys()]).toEqual(['fc1', 'fc2']);
    expect(model.get('fc1')).toBeInstanceOf(LoRADense);
    expect(adapters.get('fc1')!.scaling).toBe(2);
    expect(Array.from(await adapters.get('fc1')!.loraB.data()).every((v) => v === 0)).toBe(true);
    expect(await output(model, x)).toEqual(before);
    model.dispose();
  });

  test('Conv2d layers (nested, strided, padded) and a Dense head: outputs bit-identical before training', async () => {
    const model = cnn();
    const before = await output(model, images);
    const adapters = applyLoRA(model, ['conv1', 'block.conv', 'fc'], { rank: 3, seed: 3 });
    expect(model.get('block.conv')).toBeInstanceOf(LoRAConv2d);
    expect(adapters.get('block.conv')!.loraA.shape).toEqual([3, 4, 3, 3]);
    expect(adapters.get('block.conv')!.loraB.shape).toEqual([6, 3, 1, 1]);
    // A is uniform in +-1/sqrt(fan-in), as PEFT's kaiming_uniform_(a=sqrt(5)).
    const a = await adapters.get('block.conv')!.loraA.data();
    expect(a.every((v) => Math.abs(v) <= 1 / Math.sqrt(4 * 9))).toBe(true);
    expect(new Set(a).size).toBe(a.length);
    expect(await output(model, images)).toEqual(before);
    model.dispose();
  });

  test('weights saved from the base model load into the adapted one (same names)', async () => {
    const source = mlp(7);
    const bytes = await saveWeights(source);
    const model = mlp(1);
    applyLoRA(model, ['fc1', 'fc2'], { rank: 2, seed: 3 });
    loadWeights(model, bytes, { strict: false });
    expect(await output(model, x)).toEqual(await output(source, x));
    source.dispose();
    model.dispose();
  });
});

describe('training moves only the adapter', () => {
  test('Dense: base weights bit-identical, A and B and the head changed, forward matches the float64 reference', async () => {
    const model = mlp();
    applyLoRA(model, ['fc1', 'fc2'], { rank: 2, alpha: 4, seed: 3, trainable: ['head'] });
    // The optimizer is given every parameter, frozen ones included (it skips them).
    const start = await snapshot(model);
    const optimizer = await train(model, x, 6);
    const end = await snapshot(model);
    for (const name of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) expect(end.get(name)!.bits, name).toEqual(start.get(name)!.bits);
    for (const name of ['fc1.lora_a', 'fc1.lora_b', 'fc2.lora_a', 'fc2.lora_b', 'head.weight', 'head.bias']) {
      expect(end.get(name)!.bits, name).not.toEqual(start.get(name)!.bits);
    }

    const p = (n: string) => end.get(n)!.values;
    const input = Float64Array.from(await x.data());
    const relu = (v: Float64Array) => ref.unary('relu', v);
    const h1 = relu(denseRef(input, BATCH, p('fc1.weight'), p('fc1.bias'), IN, 16, { A: p('fc1.lora_a'), B: p('fc1.lora_b'), r: 2, s: 2 }));
    const h2 = relu(denseRef(h1, BATCH, p('fc2.weight'), p('fc2.bias'), 16, 8, { A: p('fc2.lora_a'), B: p('fc2.lora_b'), r: 2, s: 2 }));
    const expected = denseRef(h2, BATCH, p('head.weight'), p('head.bias'), 8, CLASSES);
    expectClose(await output(model, x), expected, FORWARD, 'adapted MLP forward');
    optimizer.dispose();
    model.dispose();
  });

  test('Conv2d: base weights bit-identical, A and B changed, the strided layer matches the float64 reference', async () => {
    const model = cnn();
    applyLoRA(model, ['conv1', 'block.conv'], { rank: 2, alpha: 1, seed: 3, trainable: ['fc'] });
    const start = await snapshot(model);
    const optimizer = await train(model, images, 6, model.trainableParameters());
    const end = await snapshot(model);
    for (const name of ['conv1.weight', 'conv1.bias', 'block.conv.weight', 'block.conv.bias']) expect(end.get(name)!.bits, name).toEqual(start.get(name)!.bits);
    for (const name of ['conv1.lora_a', 'conv1.lora_b', 'block.conv.lora_a', 'block.conv.lora_b', 'fc.weight']) {
      expect(end.get(name)!.bits, name).not.toEqual(start.get(name)!.bits);
    }

    const layer = model.get('block.conv') as LoRAConv2d;
    const h = engine.randn([BATCH, 4, 6, 6], { seed: 9 });
    const got = await engine.scope(() => layer.predict(h).data());
    const p = (n: string) => end.get(n)!.values;
    const input = Float64Array.from(await h.data());
    const gBase: ref.ConvGeometry = { N: BATCH, C: 4, H: 6, W: 6, OC: 6, KH: 3, KW: 3, stride: 2, padding: 1 };
    const gA: ref.ConvGeometry = { ...gBase, OC: 2 };
    const gB: ref.ConvGeometry = { N: BATCH, C: 2, H: 3, W: 3, OC: 6, KH: 1, KW: 1, stride: 1, padding: 0 };
    const base = ref.conv2d(input, p('block.conv.weight'), p('block.conv.bias'), gBase).data;
    const u = ref.conv2d(ref.conv2d(input, p('block.conv.lora_a'), null, gA).data, p('block.conv.lora_b'), null, gB).data;
    expectClose(got, base.map((v, i) => v + 0.5 * u[i]!), FORWARD, 'LoRAConv2d forward');
    h.dispose();
    optimizer.dispose();
    model.dispose();
  });
});

describe('gradients of A and B', () => {
  test('LoRADense: d/dA and d/dB of sum(y * w) match the float64 reference; the base gets none', async () => {
    const [inF, outF, r, s] = [6, 5, 2, 1.5];
    const layer = new LoRADense(engine, new Dense(engine, inF, outF, { seed: 4 }), { rank: r, alpha: r * s, seed: 5 });
    const B = ref.normal([outF, r], 11);
    engine.write(layer.loraB, Float32Array.from(B));
    const xs = ref.normal([4, inF], 12);
    const w = ref.normal([4, outF], 13);
    await engine.scope(async () => {
      const input = engine.tensor(Float32Array.from(xs), [4, inF]);
      backward(sum(mul(layer.forward(input), engine.tensor(Float32Array.from(w), [4, outF]))));
      await engine.flush();
    });
    const A = Float64Array.from(await layer.loraA.data());
    // y = ... + s (x A^T) B^T with dy = w: dB = s w^T (x A^T), dA = s (w B)^T x.
    const xa = ref.matmul(xs, [4, inF], A, [r, inF], false, true).data;
    const dB = ref.matmul(w, [4, outF], xa, [4, r], true).data.map((v) => s * v);
    const wb = ref.matmul(w, [4, outF], B, [outF, r]).data;
    const dA = ref.matmul(wb, [4, r], xs, [4, inF], true).data.map((v) => s * v);
    expectClose(await layer.loraB.grad!.data(), dB, FORWARD, 'd lora_b');
    expectClose(await layer.loraA.grad!.data(), dA, FORWARD, 'd lora_a');
    expect(layer.weight.grad).toBeNull();
    expect(layer.bias!.grad).toBeNull();
    layer.dispose();
  });

  test('LoRAConv2d: d/dA and d/dB of sum(y * w) match the float64 reference', async () => {
    const [r, s] = [2, 2];
    const g: ref.ConvGeometry = { N: 2, C: 2, H: 5, W: 5, OC: 3, KH: 3, KW: 3, stride: 2, padding: 1 };
    const layer = new LoRAConv2d(engine, new Conv2d(engine, 2, 3, 3, { stride: 2, padding: 1, seed: 4 }), { rank: r, alpha: r * s, seed: 5 });
    const B = ref.normal([3, r, 1, 1], 11);
    engine.write(layer.loraB, Float32Array.from(B));
    const xs = ref.normal([2, 2, 5, 5], 12);
    const w = ref.normal([2, 3, 3, 3], 13);
    await engine.scope(async () => {
      const input = engine.tensor(Float32Array.from(xs), [2, 2, 5, 5]);
      backward(sum(mul(layer.forward(input), engine.tensor(Float32Array.from(w), [2, 3, 3, 3]))));
      await engine.flush();
    });
    const A = Float64Array.from(await layer.loraA.data());
    const gA: ref.ConvGeometry = { ...g, OC: r };
    const gB: ref.ConvGeometry = { N: 2, C: r, H: 3, W: 3, OC: 3, KH: 1, KW: 1, stride: 1, padding: 0 };
    const h = ref.conv2d(xs, A, null, gA).data;
    const [dh, dB] = ref.conv2dGrad(h, B, gB, w.map((v) => s * v));
    const [, dA] = ref.conv2dGrad(xs, A, gA, dh);
    expectClose(await layer.loraB.grad!.data(), dB, FORWARD, 'd lora_b');
    expectClose(await layer.loraA.grad!.data(), dA, FORWARD, 'd lora_a');
    expect(layer.weight.grad).toBeNull();
    layer.dispose();
  });
});

describe('mergeLoRA', () => {
  test('Dense: W + s B A in place (within the model\'s flat parameter buffer), plain Dense back, outputs unchanged', async () => {
    const model = mlp();
    const names = [...model.parameters().keys()];
    const fc1 = model.get('fc1') as Dense;
    // The model holds every weight in one flat buffer.
    (await train(model, x, 2)).dispose();
    expect(fc1.weight.storage).toBe((model.get('head') as Dense).weight.storage);
    applyLoRA(model, ['fc1', 'fc2'], { rank: 2, alpha: 4, seed: 3, trainable: ['head'] });
    const optimizer = await train(model, x, 6, model.trainableParameters());
    const before = await output(model, x);
    const trained = await snapshot(model);

    expect(mergeLoRA(model)).toBe(2);
    expect(model.get('fc1')).toBe(fc1);
    expect(model.get('fc2')).toBeInstanceOf(Dense);
    expect([...model.modules().values()].some((m) => m instanceof LoRALayer)).toBe(false);
    expect([...model.parameters().keys()]).toEqual(names);
    for (const layer of ['fc1', 'fc2']) {
      const t = (n: string) => trained.get(`${layer}.${n}`)!.values;
      const merged = await model.parameters().get(`${layer}.weight`)!.data();
      expectClose(merged, mergedRef(t('weight'), t('lora_a'), t('lora_b'), 2, 2), { atol: 1e-6, rtol: 1e-5 }, `${layer}.weight merged`);
      // Its neighbour in the flat buffer is untouched.
      expect(new Uint32Array((await model.parameters().get(`${layer}.bias`)!.data()).buffer)).toEqual(trained.get(`${layer}.bias`)!.bits);
    }
    expect(fc1.weight.frozen).toBe(true);
    expectClose(await output(model, x), before, FORWARD, 'merged MLP forward');
    expect(mergeLoRA(model)).toBe(0);
    optimizer.dispose();
    model.dispose();
  });

  test('Conv2d (nested): merged weight matches, plain Conv2d back, outputs unchanged', async () => {
    const model = cnn();
    applyLoRA(model, ['conv1', 'block.conv', 'fc'], { rank: 2, alpha: 3, seed: 3 });
    const optimizer = await train(model, images, 6, model.trainableParameters());
    const before = await output(model, images);
    const trained = await snapshot(model);
    expect(mergeLoRA(model)).toBe(3);
    expect(model.get('conv1')).toBeInstanceOf(Conv2d);
    expect(model.get('block.conv')).toBeInstanceOf(Conv2d);
    expect(model.get('fc')).toBeInstanceOf(Dense);
    for (const layer of ['conv1', 'block.conv', 'fc']) {
      const t = (n: string) => trained.get(`${layer}.${n}`)!.values;
      const merged = await model.parameters().get(`${layer}.weight`)!.data();
      expectClose(merged, mergedRef(t('weight'), t('lora_a'), t('lora_b'), 2, 1.5), { atol: 1e-6, rtol: 1e-5 }, `${layer}.weight merged`);
    }
    expectClose(await output(model, images), before, FORWARD, 'merged CNN forward');
    optimizer.dispose();
    model.dispose();
  });
});

describe('applyLoRA', () => {
  test('freezes everything but A, B and the trainable layers', async () => {
    const model = mlp();
    applyLoRA(model, ['fc1', 'fc2'], { rank: 2, trainable: ['head'] });
    expect([...model.trainableParameters().keys()].sort()).toEqual(['fc1.lora_a', 'fc1.lora_b', 'fc2.lora_a', 'fc2.lora_b', 'head.bias', 'head.weight']);
    model.dispose();

    // A larger model: the adapter is a small fraction of the parameters.
    const big = new Sequential({ fc1: new Dense(engine, 256, 256), relu: ReLU(), fc2: new Dense(engine, 256, 256) });
    applyLoRA(big, ['fc1', 'fc2'], { rank: 4 });
    const count = (ps: Map<string, Parameter>) => [...ps.values()].reduce((n, p) => n + p.size, 0);
    expect(count(big.trainableParameters())).toBe(2 * (4 * 256 + 256 * 4));
    expect(count(big.trainableParameters()) / count(big.parameters())).toBeLessThan(0.04);
    big.dispose();
  });

  test('clear errors, and nothing changes when one is thrown', () => {
    const model = mlp();
    expect(() => applyLoRA(model, ['nope'], { rank: 2 })).toThrow(/no layer named "nope"/);
    expect(() => applyLoRA(model, ['fc1', 'relu1'], { rank: 2 })).toThrow(/layer "relu1" has type Activation; LoRA applies to Dense and Conv2d layers/);
    expect(() => applyLoRA(model, ['fc1'], { rank: 13 })).toThrow(/layer "fc1" \(Dense\(12 -> 16\), weight \[16,12\]\): rank 13 must be a positive integer no larger than 12/);
    expect(() => applyLoRA(model, ['fc1'], { rank: 0 })).toThrow(/rank 0 must be a positive integer/);
    expect(() => applyLoRA(model, ['fc1'], { rank: 1.5 })).toThrow(/rank 1.5 must be a positive integer/);
    expect(() => applyLoRA(model, ['fc1'], { rank: 2, trainable: ['hed'] })).toThrow(/no layer or parameter named "hed"/);
    expect(() => applyLoRA(model, [], { rank: 2 })).toThrow(/no layers named/);
    expect(model.get('fc1')).toBeInstanceOf(Dense);
    expect(model.trainableParameters().size).toBe(6);
    applyLoRA(model, ['fc1'], { rank: 12 });
    expect(() => applyLoRA(model, ['fc1'], { rank: 2 })).toThrow(/layer "fc1" already has LoRA/);
    model.dispose();

    const conv = cnn();
    expect(() => applyLoRA(conv, ['conv1'], { rank: 5 })).toThrow(/layer "conv1" \(Conv2d\(2 -> 4, 3x3\), weight \[4,2,3,3\]\): rank 5 must be a positive integer no larger than 4/);
    conv.dispose();
    const base = new Dense(engine, 3, 4);
    expect(() => new LoRADense(engine, base, { rank: 4 })).toThrow(/LoRA Dense\(3 -> 4\), weight \[4,3\]: rank 4 must be a positive integer no larger than 3/);
    expect(base.weight.frozen).toBe(false);
    base.dispose();
  });
});

describe('saveAdapter', () => {
  test('saves only A, B and the included layers; loading into a freshly adapted copy reproduces the outputs', async () => {
    const model = mlp();
    applyLoRA(model, ['fc1', 'fc2'], { rank: 2, alpha: 4, seed: 3, trainable: ['head'] });
    const optimizer = await train(model, x, 6);
    const bytes = await saveAdapter(model, { include: ['head'], metadata: { task: 'test' } });
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect([...tensors.keys()].sort()).toEqual(['fc1.lora_a', 'fc1.lora_b', 'fc2.lora_a', 'fc2.lora_b', 'head.bias', 'head.weight']);
    expect(tensors.get('fc2.lora_b')!.shape).toEqual([8, 2]);
    expect(metadata.task).toBe('test');
    expect(JSON.parse(metadata.lora!)).toEqual({ fc1: { rank: 2, alpha: 4 }, fc2: { rank: 2, alpha: 4 } });
    const onlyLora = decodeSafetensors(await saveAdapter(model));
    expect([...onlyLora.tensors.keys()].sort()).toEqual(['fc1.lora_a', 'fc1.lora_b', 'fc2.lora_a', 'fc2.lora_b']);

    // The same base weights, another seed for A: equal outputs only once the adapter is loaded.
    const copy = mlp();
    applyLoRA(copy, ['fc1', 'fc2'], { rank: 2, alpha: 4, seed: 99, trainable: ['head'] });
    const expected = await output(model, x);
    expect(await output(copy, x)).not.toEqual(expected);
    loadWeights(copy, bytes, { strict: false });
    expect(await output(copy, x)).toEqual(expected);

    const plain = mlp();
    await expect(saveAdapter(plain)).rejects.toThrow(/no LoRA layers/);
    await expect(saveAdapter(model, { include: ['nope'] })).rejects.toThrow(/no layer or parameter named "nope"/);
    for (const m of [model, copy, plain]) m.dispose();
    optimizer.dispose();
  });
});
