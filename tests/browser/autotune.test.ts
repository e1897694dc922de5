// The autotuner checks each matmul candidate (kernel variant and workgroup shape) against a
// float64 product, times the survivors and keeps the fastest; results stay correct whichever wins
// (each matmul variant: matmul-variants.test.ts; conv2d, which runs on the matmul kernel, here).
import { expect, test } from 'vitest';
import { autotune, conv2d, Engine } from '../../src/index.js';
import { describeMatmul, matmulCandidates, tuneMatmul } from '../../src/engine/autotune.js';
import { matmulTuning, subgroupSizes, type MatmulChoice } from '../../src/engine/ops/matmul.js';
import * as ref from '../reference.js';

test('autotune keeps the fastest of the matmul candidates that pass the float64 check; conv2d stays correct with each', async () => {
  const engine = await Engine.create();
  const [result] = await autotune(engine);
  expect(result!.kernel).toBe('matmul');
  const candidates = matmulCandidates(engine);
  expect(candidates.some((c) => c.variant === 'subgroup')).toBe(subgroupSizes(engine) !== null);
  // Every candidate is correct, so every one is timed, in order.
  expect(result!.rejected).toEqual([]);
  expect(result!.timings.map((t) => t.constants)).toEqual(candidates.map(matmulTuning));
  const fastest = Math.min(...result!.timings.map((t) => t.ms));
  expect(result!.timings.find((t) => t.constants === result!.best)!.ms).toBe(fastest);
  expect(engine.tuning.get('matmul')).toEqual(result!.best);
  console.log(`matmul on ${engine.adapterName}: best ${describeMatmul(result!.best)}; ${result!.timings.map((t) => `${describeMatmul(t.constants)}: ${t.ms.toFixed(2)} ms`).join(', ')}`);

  const g = { N: 2, C: 3, H: 9, W: 7, OC: 5, KH: 3, KW: 3, stride: 1, padding: 1 };
  const xd = ref.normal([2, 3, 9, 7], 1);
  const wd = ref.normal([5, 3, 3, 3], 2);
  const want = ref.conv2d(xd, wd, null, g).data;
  for (const candidate of candidates) {
    engine.tuning.set('matmul', matmulTuning(candidate));
    const got = await engine.scope(() => conv2d(engine.tensor(Float32Array.from(xd), [2, 3, 9, 7]), engine.tensor(Float32Array.from(wd), [5, 3, 3, 3]), null, { padding: 1 }).data());
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!), describeMatmul(matmulTuning(candidate))).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
  }
});

test('a matmul candidate that computes a wrong product is rejected with the element it got wrong, and can never win', async () => {
  const engine = await Engine.create();
  const good: MatmulChoice = { variant: 'block8', constants: { WG_X: 4, WG_Y: 4 } };
  // ALIGNED forced on: vec4 loads on operands whose rows are not multiples of 4 read the wrong elements.
  const broken: MatmulChoice = { variant: 'block4', constants: { WG_X: 8, WG_Y: 8, ALIGNED: true } };
  const result = await tuneMatmul(engine, { candidates: [broken, good], n: 64, repeats: 1 });
  expect(result.rejected.map((r) => r.constants)).toEqual([matmulTuning(broken)]);
  expect(result.rejected[0]!.reason).toMatch(/^37x53x29 transA=true transB=false: C\[\d+, \d+\] = .*, float64 reference/);
  expect(result.timings.map((t) => t.constants)).toEqual([matmulTuning(good)]);
  expect(result.best).toEqual(matmulTuning(good));
  expect(engine.tuning.has('matmul')).toBe(false); // tuneMatmul leaves the engine's choice alone
  await expect(tuneMatmul(engine, { candidates: [broken], n: 64, repeats: 1 })).rejects.toThrow(/tuneMatmul: every candidate failed the float64 check: block4 WG_X=8 WG_Y=8 ALIGNED=true: 37x53x29/);
});
