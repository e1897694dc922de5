// End-to-end: the transfer-learning demo with small settings (one seed, a 1500-image source
// task, 10 labelled images per target class, a few epochs) in headless Chromium.
import { expect, test } from 'vitest';
import { runDemo } from './demo.js';

const ARGS = ['--seeds', '1', '--sourceImages', '1500', '--baseEpochs', '1', '--perClass', '10', '--steps', '20', '--distillEpochs', '2', '--test', '500', '--timeout', '900'];

test('transfer demo runs every method and reports the comparison', async () => {
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
  expect(result.source_images).toBe(1500);
  expect(result.target_test_images).toBe(500);
});
