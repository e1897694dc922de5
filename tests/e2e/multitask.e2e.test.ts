// End-to-end: the multi-task demo with small settings (one seed, 640 training composites per data
// set, one epoch, a short timing phase) in headless Chromium: every method and architecture on both
// data sets, and every key of the result.
import { expect, test } from 'vitest';
import { runDemo } from './demo.js';

const ARGS = ['--seeds', '1', '--train', '640', '--test', '400', '--epochs', '1', '--costSteps', '3', '--costRounds', '1', '--conflictEvery', '3', '--timeout', '900'];
const METHODS = ['EW', 'UW', 'DWA', 'RLW', 'FAMO', 'GradNorm', 'MGDA', 'PCGrad', 'CAGrad'];
const MODELS = [...METHODS, 'cross-stitch/EW', 'mmoe/EW'];
const TASKS = { 'multi-fashion': ['left', 'right', 'ink'], 'multi-fashion-mnist': ['clothing', 'digit'] };

test('multi-task demo runs every method and architecture on both data sets and reports the comparison', async () => {
  const { result, context } = await runDemo('multitask', ARGS);
  const r = result as Record<string, Record<string, any>>;
  for (const [dataset, tasks] of Object.entries(TASKS)) {
    for (const t of tasks) {
      const single = r['single_task_acc']![dataset][t] as number;
      // Classification accuracy above chance (0.1); the ink regression's R² above 0 (the mean).
      expect(single, `${dataset} single-task ${t}\n${context}`).toBeGreaterThan(t === 'ink' ? 0 : 0.15);
      for (const m of MODELS) {
        const v = r['mtl_acc']![dataset][m][t] as number;
        expect(Number.isFinite(v), `${dataset} ${m} ${t}`).toBe(true);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
    for (const m of MODELS) expect(Number.isFinite(r['delta_m']![dataset][m]), `${dataset} Δm ${m}`).toBe(true);
    // One trunk for T tasks: a third (T = 3) or a half (T = 2) of the single-task models' parameters, plus the heads.
    expect(r['params_ratio']![dataset]['hard']).toBeLessThan(0.6);
    expect(r['params_ratio']![dataset]['cross-stitch']).toBeGreaterThanOrEqual(1);
    for (const k of ['hard', 'cross-stitch', 'mmoe']) {
      expect(r['time_ratio']![dataset][k], `${dataset} time ratio ${k}`).toBeGreaterThan(0);
      expect(r['gpu_bytes_ratio']![dataset][k], `${dataset} bytes ratio ${k}`).toBeGreaterThan(0);
    }
    expect(r['gpu_bytes_ratio']![dataset]['hard']).toBeLessThan(1);
    expect(r['step_cost_ratio']![dataset]['EW']).toBe(1);
    for (const m of [...MODELS, 'FAMO (next batch)']) expect(r['step_cost_ratio']![dataset][m], `${dataset} step cost ${m}`).toBeGreaterThan(0);
    const pairs = Object.keys(r['gradient_cosine']![dataset]);
    expect(pairs.length).toBe((tasks.length * (tasks.length - 1)) / 2);
    for (const p of pairs) {
      expect(r['gradient_cosine']![dataset][p]).toBeGreaterThanOrEqual(-1);
      expect(r['gradient_cosine']![dataset][p]).toBeLessThanOrEqual(1);
    }
  }
  expect(result.seeds).toBe(1);
  expect(result.train_images).toBe(640);
});
