// A small autotuner: times configurations of the matmul kernel on this adapter and keeps the
// fastest for the session (in engine.tuning, which the ops read; convolutions run on the same
// kernel). It sits above the ops it times; the engine knows nothing of it. A configuration is a
// kernel variant (register blocks, workgroup-memory tiles, subgroup lanes) with its workgroup shape:
// which wins differs most between GPUs and CPU emulation. Every candidate must first match a
// float64 product on shapes that are not multiples of its tile; one that does not can never win.
import type { Constants } from './kernel.js';
import type { Engine } from './engine.js';
import { decodeMatmulTuning, matmul, matmulTuning, subgroupSizes, type MatmulChoice } from './ops/matmul.js';
import type { Tensor } from './tensor.js';

/** The matmul candidates on every adapter; matmulCandidates adds the subgroup variant where it runs. */
export const MATMUL_CANDIDATES: readonly MatmulChoice[] = [
  { variant: 'block4', constants: { WG_X: 8, WG_Y: 8 } },
  { variant: 'block4', constants: { WG_X: 16, WG_Y: 16 } },
  { variant: 'block8', constants: { WG_X: 4, WG_Y: 4 } },
  { variant: 'block8', constants: { WG_X: 8, WG_Y: 2 } },
  { variant: 'block8', constants: { WG_X: 8, WG_Y: 8 } },
  // One tiled shape: SwiftShader takes seconds to compile each (and the tiled variant is its slowest).
  { variant: 'tiled', constants: { WG_X: 16, WG_Y: 16, BK: 16 } },
];

// Workgroups of the subgroup variant: 64 and 128 invocations, each a multiple of every subgroup size up to it.
const SUBGROUP_CANDIDATES: readonly MatmulChoice[] = [
  { variant: 'subgroup', constants: { WG: 64, QX: 4 } },
  { variant: 'subgroup', constants: { WG: 128, QX: 4 } },
];

/** The matmul candidates for this engine's device: MATMUL_CANDIDATES, and the subgroup variant where it runs. */
export function matmulCandidates(engine: Engine): MatmulChoice[] {
  const sizes = subgroupSizes(engine);
  return [...MATMUL_CANDIDATES, ...(sizes ? SUBGROUP_CANDIDATES.filter((c) => (c.constants.WG as number) % sizes.max === 0) : [])];
}

/** Tunes the matmul kernel on this adapter and keeps the fastest candidate. */
export async function autotune(engine: Engine): Promise<TuningResult[]> {
  const results = [await tuneMatmul(engine)];
  for (const r of results) engine.tuning.set(r.kernel, r.best);
  return results;
}

export interface TuningResult {
  kernel: string;
  /** The engine.tuning entry of the fastest configuration. */
  best: Constants;
  /** Milliseconds per dispatch for each configuration timed (the fastest of the repeats). */
  timings: { constants: Constants; ms: number }[];
  /** Configurations that failed the correctness check and were not timed, with what went wrong. */
  rejected: { constants: Constants; reason: string }[];
}

/**
 * The products every matmul candidate must get right, with M and N not multiples of any tile: the
 * element-wise path with A transposed, and the vec4 path as timed (no transposes, so the check and
 * the timing share a pipeline: compiling takes most of a candidate's time on SwiftShader).
 */
const MATMUL_CHECKS = [
  { M: 37, N: 29, K: 53, transA: true, transB: false },
  { M: 37, N: 28, K: 52, transA: false, transB: false },
] as const;

/**
 * Checks each candidate against float64 products (MATMUL_CHECKS), then times the survivors on an
 * n x n x n product and returns the fastest (as its engine.tuning entry, matmulTuning).
 */
export async function tuneMatmul(engine: Engine, options: { candidates?: readonly MatmulChoice[]; n?: number; repeats?: number } = {}): Promise<TuningResult> {
  const { candidates = matmulCandidates(engine), n = 256, repeats = 3 } = options;
  const timings: TuningResult['timings'] = [];
  const rejected: TuningResult['rejected'] = [];
  const outer = engine.tuning.get('matmul');
  try {
    for (const candidate of candidates) {
      const constants = matmulTuning(candidate);
      engine.tuning.set('matmul', constants);
      const reason = await matmulError(engine);
      if (reason) rejected.push({ constants, reason });
      else timings.push({ constants, ms: await timeMatmul(engine, n, repeats) });
    }
  } finally {
    if (outer) engine.tuning.set('matmul', outer);
    else engine.tuning.delete('matmul');
  }
  if (timings.length === 0) {
    throw new Error(`tuneMatmul: every candidate failed the float64 check: ${rejected.map((r) => `${describeMatmul(r.constants)}: ${r.reason}`).join('; ')}`);
  }
  const best = timings.reduce((x, y) => (y.ms < x.ms ? y : x)).constants;
  return { kernel: 'matmul', best, timings, rejected };
}

/** "variant {constants}" for an engine.tuning 'matmul' entry. */
export function describeMatmul(tuned: Constants): string {
  const { variant, constants } = decodeMatmulTuning(tuned);
  return `${variant} ${Object.entries(constants).map(([k, v]) => `${k}=${v}`).join(' ')}`;
}

/** Why the engine's matmul gets MATMUL_CHECKS wrong (the first wrong element), or null when it gets them right. */
async function matmulError(engine: Engine): Promise<string | null> {
  try {
    return await engine.scope(async () => {
      for (const [i, check] of MATMUL_CHECKS.entries()) {
        const { M, N, K, transA, transB } = check;
        const a = engine.randn(transA ? [K, M] : [M, K], { seed: 10 + i, name: 'autotune.check.a' });
        const b = engine.randn(transB ? [N, K] : [K, N], { seed: 20 + i, name: 'autotune.check.b' });
        const got = await matmul(a, b, { transA, transB }).data();
        const wrong = await firstWrong(got, a, b, check);
        if (wrong) return `${M}x${K}x${N} transA=${transA} transB=${transB}: ${wrong}`;
      }
      return null;
    });
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The first element of `got` that differs from the float64 product by more than f32 summation
 * allows (1e-5 of the sum of |terms|, plus 1e-6), described; null when none does.
 */
async function firstWrong(got: Float32Array, a: Tensor, b: Tensor, shape: (typeof MATMUL_CHECKS)[number]): Promise<string | null> {
  const { M, N, K, transA, transB } = shape;
  const [av, bv] = [await a.data(), await b.data()];
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let want = 0;
      let terms = 0;
      for (let k = 0; k < K; k++) {
        const p = av[transA ? k * M + i : i * K + k]! * bv[transB ? j * K + k : k * N + j]!;
        want += p;
        terms += Math.abs(p);
      }
      const g = got[i * N + j]!;
      if (!(Math.abs(g - want) <= 1e-6 + 1e-5 * terms)) return `C[${i}, ${j}] = ${g}, float64 reference ${want}`;
    }
  }
  return null;
}

/**
 * Milliseconds of the engine's matmul on an n x n x n product: the fastest of `repeats` runs after
 * one warm-up (the fastest, as other work on the machine only ever adds time).
 */
async function timeMatmul(engine: Engine, n: number, repeats: number): Promise<number> {
  return engine.scope(async () => {
    const a = engine.randn([n, n], { seed: 1, name: 'autotune.a' });
    const b = engine.randn([n, n], { seed: 2, name: 'autotune.b' });
    const c = engine.empty([n, n], 'autotune.c');
    matmul(a, b, { out: c });
    await engine.sync();
    let fastest = Infinity;
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      matmul(a, b, { out: c });
      await engine.sync();
      fastest = Math.min(fastest, performance.now() - start);
    }
    return fastest;
  });
}
