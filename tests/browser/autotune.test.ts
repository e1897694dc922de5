// The autotuner times each matmul workgroup shape and the engine then uses the fastest; results
// (matmul and conv2d, which runs on the matmul kernel) stay correct whichever shape wins.
import { expect, test } from 'vitest';
import { autotune, conv2d, Engine, matmul } from '../../src/index.js';
import { MATMUL_WORKGROUPS } from '../../src/engine/autotune.js';
import * as ref from '../reference.js';

function cpuMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) c[i * n + j] += a[i * k + t]! * b[t * n + j]!;
  return c;
}

test('autotune picks the fastest matmul workgroup shape; matmul and conv2d stay correct with each', async () => {
  const engine = await Engine.create();
  const [result] = await autotune(engine);
  expect(result!.kernel).toBe('matmul');
  expect(result!.timings.map((t) => t.constants)).toEqual(MATMUL_WORKGROUPS);
  const fastest = Math.min(...result!.timings.map((t) => t.ms));
  expect(result!.timings.find((t) => t.constants === result!.best)!.ms).toBe(fastest);
  expect(engine.tuning.get('matmul')).toEqual(result!.best);
  console.log(result!.timings.map((t) => `${t.constants.WG_X}x${t.constants.WG_Y}: ${t.ms.toFixed(2)} ms`).join(', '));

  const g = { N: 2, C: 3, H: 9, W: 7, OC: 5, KH: 3, KW: 3, stride: 1, padding: 1 };
  const xd = ref.normal([2, 3, 9, 7], 1);
  const wd = ref.normal([5, 3, 3, 3], 2);
  const want = ref.conv2d(xd, wd, null, g).data;
  for (const shape of MATMUL_WORKGROUPS) {
    engine.tuning.set('matmul', shape);
    for (const [m, k, n] of [[37, 20, 45], [68, 64, 132]] as const) {
      await engine.scope(async () => {
        const a = engine.randn([m, k], { seed: m });
        const b = engine.randn([k, n], { seed: n });
        const expected = cpuMatmul(await a.data(), await b.data(), m, k, n);
        const got = await matmul(a, b).data();
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(expected[i]!)));
      });
    }
    const got = await engine.scope(() => conv2d(engine.tensor(Float32Array.from(xd), [2, 3, 9, 7]), engine.tensor(Float32Array.from(wd), [5, 3, 3, 3]), null, { padding: 1 }).data());
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
  }
});
