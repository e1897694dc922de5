// End-to-end: the federated demo with small settings (20 clients of 50 rows, 5 per round, a few
// rounds per setting) in headless Chromium: every run of the experiment and every key of the result.
import { expect, test } from 'vitest';
import { runDemo } from './demo.js';

const ARGS = ['--clients', '20', '--perClient', '50', '--fraction', '0.25', '--rounds', '4', '--robustRounds', '2', '--centralEpochs', '1', '--noises', '1', '--poisons', '0,0.3', '--headRounds', '2', '--personalEpochs', '2', '--speedRounds', '1', '--test', '400', '--timeout', '900'];

test('federated demo runs every setting of the experiment and reports every figure', async () => {
  const { result, context } = await runDemo('federated', ARGS);
  const r = result as Record<string, any>;
  for (const k of ['centralised_acc', 'fedavg_iid_acc', 'fedavg_noniid_acc', 'fedprox_noniid_acc', 'personalised_acc', 'global_acc']) {
    expect(r[k], `${k}\n${context}`).toBeGreaterThanOrEqual(0);
    expect(r[k], k).toBeLessThanOrEqual(1);
  }
  // One epoch of centralised SGD on 800 rows is well above chance (10%).
  expect(r['centralised_acc']).toBeGreaterThan(0.3);
  expect(Object.keys(r['rounds_to_target'])).toEqual(['iid E=1', 'noniid E=1', 'fedprox noniid E=1']);
  for (const a of ['FedAvg', 'FedMedian', 'FedTrimmedAvg', 'Krum']) expect(Object.keys(r['robust_acc'][a]), a).toEqual(['0', '0.3']);
  expect(r['dp_epsilon']).toHaveLength(1);
  expect(r['dp_epsilon'][0]).toBeGreaterThan(0);
  expect(r['dp_acc']).toHaveLength(1);
  // 2NN: 199,210 values; 5 clients down and up per round in f32.
  expect(r['bytes_per_round']['f32']).toBe(5 * 2 * 4 * 199210);
  expect(r['bytes_per_round']['int8']).toBeLessThan(0.7 * r['bytes_per_round']['f32']);
  // Only the head (200 x 10 + 10 values) travels over a frozen base.
  expect(r['bytes_per_round']['frozen_base_f32']).toBe(5 * 2 * 4 * 2010);
  expect(r['batched_round_speedup']).toBeGreaterThan(0);
  expect(r['settings']['clients']).toBe(20);
});
