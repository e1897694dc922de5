// End-to-end: the MLP demo, built, served and trained for one epoch on 3000 Fashion-MNIST images
// in headless Chromium by scripts/headless.mjs (the full dataset when Debian's package is
// installed, else the committed subset in tests/data/fashion-mnist).
import { expect, test } from 'vitest';
import { runDemo } from './demo.js';

test('mlp demo trains in headless Chromium and reports its result', async () => {
  const { result, context } = await runDemo('mlp', ['--epochs', '1', '--train', '3000', '--timeout', '900']);
  expect(typeof result.test_acc).toBe('number');
  expect(result.test_acc as number, context).toBeGreaterThan(0.6);
  expect(result.samples_per_s as number).toBeGreaterThan(0);
  expect(typeof result.adapter).toBe('string');
  expect((result.adapter as string).length).toBeGreaterThan(0);
  expect(result.epochs).toBe(1);
  expect(result.train_images).toBe(3000);
  expect(result.test_images as number).toBeGreaterThan(0);
  expect(Number.isFinite(result.final_loss)).toBe(true);
});
