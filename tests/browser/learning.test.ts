// A real learning test: an MLP trained on the committed Fashion-MNIST subset (3000 training
// images, 300 per class) must classify the 1000 held-out test images well above chance (10%).
import { expect, test } from 'vitest';
import { Adam, Dense, Engine, evaluate, fit, loadFashionMnist, ReLU, Sequential, SGD, type ClassificationData } from '../../src/index.js';

async function fetchBytes(file: string): Promise<Uint8Array> {
  const response = await fetch(`/tests/data/fashion-mnist/${file}`);
  if (!response.ok) throw new Error(`fetch ${file}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

test('an MLP learns Fashion-MNIST: at least 75% test accuracy on held-out images', async () => {
  const engine = await Engine.create();
  const [train, testSet] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  const asData = (s: typeof train): ClassificationData => ({ inputs: s.images, labels: s.labels, count: s.count, features: 784, classes: 10 });
  const model = new Sequential({
    fc1: new Dense(engine, 784, 128, { seed: 11 }),
    relu1: ReLU(),
    fc2: new Dense(engine, 128, 10, { seed: 12 }),
  });
  const before = await evaluate(engine, model, asData(testSet));
  const optimizer = new Adam(model.parameters(), { lr: 2e-3 });
  const result = await fit(engine, model, optimizer, asData(train), { epochs: 6, batchSize: 100, seed: 3, logEvery: 30, checkFinite: true });
  const after = await evaluate(engine, model, asData(testSet));
  console.log(`fashion-mnist subset: test accuracy ${before.accuracy} -> ${after.accuracy}, loss ${before.loss.toFixed(3)} -> ${after.loss.toFixed(3)}, ${result.samplesPerSecond.toFixed(0)} samples/s`);
  expect(before.accuracy).toBeLessThan(0.3);
  expect(after.accuracy).toBeGreaterThanOrEqual(0.75);
  expect(result.losses.at(-1)!.loss).toBeLessThan(result.losses[0]!.loss);
});

test("fit's augment transforms each batch before its step, never the data", async () => {
  const engine = await Engine.create();
  const data: ClassificationData = { inputs: Float32Array.from({ length: 16 * 4 }, (_, i) => Math.sin(i) + 1), labels: Array.from({ length: 16 }, (_, i) => i % 3), count: 16, features: 4, classes: 3 };
  const original = data.inputs.slice();
  // Zeroed inputs give the first layer's weight a zero gradient: it moves only if the step saw the
  // data, and stays put if it saw the augmented batch.
  const run = async (augment?: (inputs: Float32Array, rows: number) => void) => {
    const model = new Sequential({ fc1: new Dense(engine, 4, 5, { seed: 1 }), relu: ReLU(), fc2: new Dense(engine, 5, 3, { seed: 2 }) });
    const before = await model.get('fc1')!.parameters().get('weight')!.data();
    const optimizer = new SGD(model.parameters(), { lr: 0.5 });
    await fit(engine, model, optimizer, data, { epochs: 2, batchSize: 4, seed: 1, augment });
    const after = await model.get('fc1')!.parameters().get('weight')!.data();
    optimizer.dispose();
    model.dispose();
    return after.some((v, i) => v !== before[i]);
  };
  const calls: number[] = [];
  expect(await run((inputs, rows) => {
    calls.push(rows);
    inputs.fill(0, 0, rows * 4);
  })).toBe(false);
  expect(calls).toEqual([4, 4, 4, 4, 4, 4, 4, 4]);
  expect(await run()).toBe(true);
  expect(data.inputs).toEqual(original);
});
