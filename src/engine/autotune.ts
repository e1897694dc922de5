// A small autotuner: times a few workgroup shapes of the matmul kernel on this adapter and keeps
// the fastest for the session (in engine.tuning, which the ops read; convolutions run on the same
// kernel). It sits above the ops it times; the engine knows nothing of it. Each invocation computes
// the same register block either way; the shape decides how blocks are grouped, which is what
// differs most between GPUs (and CPU emulation).
import type { Constants } from './kernel.js';
import type { Engine } from './engine.js';

export const MATMUL_WORKGROUPS: readonly Constants[] = [
  { WG_X: 8, WG_Y: 8 },
  { WG_X: 16, WG_Y: 16 },
  { WG_X: 32, WG_Y: 8 },
  { WG_X: 64, WG_Y: 4 },
  { WG_X: 16, WG_Y: 4 },
];

/** Times a few configurations of the matmul kernel on this adapter and keeps the fastest. */
export async function autotune(engine: Engine): Promise<TuningResult[]> {
  const results = [await tuneMatmul(engine)];
  for (const r of results) engine.tuning.set(r.kernel, r.best);
  return results;
}

export interface TuningResult {
  kernel: string;
  best: Constants;
  /** Mean milliseconds per dispatch for each configuration tried. */
  timings: { constants: Constants; ms: number }[];
}

/** Times each matmul workgroup shape on an n x n x n product and returns the fastest. */
export async function tuneMatmul(engine: Engine, n = 256, repeats = 3): Promise<TuningResult> {
  const timings: { constants: Constants; ms: number }[] = [];
  await engine.scope(async () => {
    const a = engine.randn([n, n], { seed: 1, name: 'autotune.a' });
    const b = engine.randn([n, n], { seed: 2, name: 'autotune.b' });
    const c = engine.empty([n, n], 'autotune.c');
    for (const constants of MATMUL_WORKGROUPS) {
      const wx = constants.WG_X as number;
      const wy = constants.WG_Y as number;
      const run = () =>
        engine.dispatch('matmul', {
          bindings: { a, b, c, bias: engine.placeholder() },
          uniforms: { M: n, N: n, K: n, alpha: 0, a_offset: 0, a_stride: 0, b_offset: 0, b_stride: 0, c_offset: 0, c_stride: 0, bias_offset: 0, bias_stride: 0 },
          constants: { ...constants, ALIGNED: true },
          workgroups: [Math.ceil(n / (4 * wx)), Math.ceil(n / (4 * wy))],
        });
      run(); // compiles the pipeline and warms up
      await engine.sync();
      const start = performance.now();
      for (let i = 0; i < repeats; i++) run();
      await engine.sync();
      timings.push({ constants, ms: (performance.now() - start) / repeats });
    }
  });
  const best = timings.reduce((x, y) => (y.ms < x.ms ? y : x)).constants;
  return { kernel: 'matmul', best, timings };
}
