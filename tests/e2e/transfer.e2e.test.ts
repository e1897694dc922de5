// End-to-end: the transfer-learning demo with small settings (one seed, 10 labelled images per
// target class, a few steps, 200 test images) and a one-point, one-seed efficiency curve of one
// pair, in headless Chromium. The base is the pretrained models/fashion-mnist-0-4-cnn.
import { expect, test } from 'vitest';
import { runDemo } from './demo.js';

const ARGS = ['--seeds', '1', '--perClass', '10', '--steps', '20', '--distillEpochs', '1', '--unlabelled', '200', '--test', '200', '--curvePoints', '2', '--curveSeeds', '1', '--curvePairs', 'a', '--curveSteps', '10', '--curveTest', '100', '--timeout', '900'];

test('transfer demo runs every method and reports the comparison and the efficiency curve', async () => {
  const { result, context } = await runDemo('transfer', ARGS);
  for (const key of ['scratch_acc', 'transfer_acc', 'finetune_acc', 'lora_acc', 'distill_student_acc', 'student_alone_acc']) {
    expect(result[key] as number, `${key}\n${context}`).toBeGreaterThan(0.3); // chance is 0.2
    expect(result[key] as number, key).toBeLessThanOrEqual(1);
  }
  expect(result.frozen_bit_identical, context).toBe(true);
  expect(result.frozen_step_ms as number).toBeGreaterThan(0);
  expect(result.frozen_step_ms as number, context).toBeLessThan(result.full_step_ms as number);
  expect(result.cached_features_speedup as number, context).toBeGreaterThan(1);
  expect(result.lora_trainable_params as number).toBeGreaterThan(0);
  expect(result.lora_trainable_params as number).toBeLessThan((result.full_trainable_params as number) / 4);
  expect(result.seeds).toBe(1);
  expect(result.per_class).toBe(10);
  expect(result.base).toBe('fashion-mnist-0-4-cnn');
  expect(result.base_source_acc as number).toBeGreaterThan(0.8); // from the file's metrics
  expect(result.source_images as number).toBeGreaterThan(1000);
  expect(result.target_test_images).toBe(200);
  const curve = result.efficiency_curve as Record<string, any>;
  expect(curve.settings).toEqual({ points: ['2'], seeds: 1, pairs: ['a'], steps: 10, batch: 20 });
  expect(curve.a.base).toBe('fashion-mnist-0-4-cnn');
  expect(curve.a.test_images).toBe(100);
  expect(Object.keys(curve.a.accuracy)).toEqual(['scratch', 'transfer', 'fine-tune', 'LoRA']);
  for (const [method, points] of Object.entries(curve.a.accuracy as Record<string, Record<string, { mean: number; std: number; per_seed: number[] }>>)) {
    expect(Object.keys(points), method).toEqual(['2']);
    expect(points['2']!.per_seed, method).toEqual([points['2']!.mean]);
    expect(points['2']!.std, method).toBe(0);
    expect(points['2']!.mean, method).toBeGreaterThanOrEqual(0);
    expect(points['2']!.mean, method).toBeLessThanOrEqual(1);
    expect(curve.a.train_seconds[method]['2'], method).toBeGreaterThan(0);
  }
  // The pretrained features separate the new classes from 2 labels each (chance is 0.2).
  expect(curve.a.accuracy.transfer['2'].mean, context).toBeGreaterThan(0.4);
});
