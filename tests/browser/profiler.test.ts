// The profiler: per-kernel GPU time from timestamp queries (SwiftShader has them), with GFLOP/s
// where the FLOPs are known.
import { expect, test } from 'vitest';
import { Engine, formatProfile, matmul, relu } from '../../src/index.js';

test('profile() reports GPU time per kernel with calls, mean and GFLOP/s', async () => {
  const engine = await Engine.create();
  const a = engine.randn([128, 96], { seed: 1 });
  const b = engine.randn([96, 64], { seed: 2 });
  const { result, profile } = await engine.profile(async () => {
    let last = 0;
    for (let i = 0; i < 3; i++) {
      last = await engine.scope(async () => (await relu(matmul(a, b)).data())[0]!);
    }
    return last;
  });
  expect(Number.isFinite(result)).toBe(true);
  expect(profile.method).toBe(engine.device.features.has('timestamp-query') ? 'timestamp-query' : 'submit-to-done');
  const mm = profile.rows.find((r) => r.kernel.startsWith('matmul'))!;
  const un = profile.rows.find((r) => r.kernel === 'unary')!;
  expect(mm.calls).toBe(3);
  expect(un.calls).toBe(3);
  expect(mm.totalMs).toBeGreaterThan(0);
  expect(mm.meanMs).toBeCloseTo(mm.totalMs / 3, 6);
  expect(mm.gflops).toBeGreaterThan(0);
  expect(mm.gflops).toBeCloseTo((3 * 2 * 128 * 96 * 64) / (mm.totalMs * 1e6), 6);
  expect(un.gflops).toBeNull(); // FLOPs of elementwise kernels are not counted
  expect(profile.totalMs).toBeCloseTo(profile.rows.reduce((s, r) => s + r.totalMs, 0), 6);
  const table = formatProfile(profile);
  expect(table).toContain(profile.method);
  expect(table).toMatch(/matmul\w*\s+3\s+\d/);
  console.log(table);
  // Outside a profile nothing is timed, and a second profile can run.
  const again = await engine.profile(() => engine.scope(() => matmul(a, b).data()));
  expect(again.profile.rows.find((r) => r.kernel.startsWith('matmul'))!.calls).toBe(1);
});
