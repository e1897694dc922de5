// A real learning test: an MLP trained on the committed Fashion-MNIST subset (3000 training
// images, 300 per class) must classify the 1000 held-out test images well above chance (10%).
import { expect, test } from 'vitest';
import { Adam, Dense, Engine, evaluate, fit, loadFashionMnist, ReLU, Sequential, type ClassificationData } from '../../src/index.js';

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
