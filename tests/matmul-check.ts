// Matmul checks that several test files run (ops, batched replicas, every kernel variant): the
// op case for matmul(a, b) and a batch of strided products through batchedGemm, each against
// the float64 reference.
import type { Engine } from '../src/engine/engine.js';
import type { FusedActivation } from '../src/engine/ops/activation.js';
import { batchedGemm, matmul } from '../src/engine/ops/matmul.js';
import { expectClose, type Tol } from './close.js';
import type { OpCase } from './op-check.js';
import * as ref from './reference.js';

/** matmul(A, B) with op(A) [M, K] and op(B) [K, N], forward and both gradients (tolerances relative to the sums of |terms|). */
export function matmulCase(M: number, K: number, N: number, transA: boolean, transB: boolean, tol: Tol): OpCase {
  const aShape = transA ? [K, M] : [M, K];
  const bShape = transB ? [N, K] : [K, N];
  return {
    inputs: [
      { data: ref.normal(aShape, M * 100 + K), shape: aShape },
      { data: ref.normal(bShape, N * 100 + K + 1), shape: bShape },
    ],
    gpu: ([a, b]) => matmul(a!, b!, { transA, transB }),
    forward: ([a, b]) => ref.matmul(a!, aShape, b!, bShape, transA, transB),
    grad: ([a, b], dy) => ref.matmulGrad(a!, aShape, b!, bShape, dy, transA, transB),
    tol,
    byAbs: true,
  };
}

export interface BatchedGemmCase {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** [offset, stride] per operand. */
  a: [number, number];
  b: [number, number];
  c: [number, number];
  bias?: [number, number];
  activation?: FusedActivation;
}

/** One batchedGemm call on random operands against the float64 reference; elements of C outside the batch's matrices must stay untouched. */
export async function checkBatchedGemm(engine: Engine, name: string, c: BatchedGemmCase, tol: Tol): Promise<void> {
  const f32 = (x: Float64Array) => Float32Array.from(x);
  await engine.scope(async () => {
    const extent = ([offset, stride]: [number, number], size: number) => offset + (c.batch - 1) * stride + size + 5;
    const data = (n: number, seed: number) => ref.normal([n], seed);
    const A = data(extent(c.a, c.M * c.K), 1);
    const B = data(extent(c.b, c.K * c.N), 2);
    const bias = c.bias ? data(extent(c.bias, c.N), 3) : null;
    const C = new Float64Array(extent(c.c, c.M * c.N)).fill(7); // untouched elements stay 7
    const ct = engine.tensor(f32(C), [C.length], 'c');
    batchedGemm('test', {
      batch: c.batch,
      M: c.M,
      N: c.N,
      K: c.K,
      a: { tensor: engine.tensor(f32(A), [A.length], 'a'), offset: c.a[0], stride: c.a[1] },
      b: { tensor: engine.tensor(f32(B), [B.length], 'b'), offset: c.b[0], stride: c.b[1] },
      c: { tensor: ct, offset: c.c[0], stride: c.c[1] },
      transA: c.transA,
      transB: c.transB,
      bias: bias && c.bias ? { tensor: engine.tensor(f32(bias), [bias.length], 'bias'), offset: c.bias[0], stride: c.bias[1] } : null,
      activation: c.activation,
    });
    const want = Float64Array.from(C);
    const scaleOf = new Float64Array(C.length);
    const aShape = c.transA ? [c.K, c.M] : [c.M, c.K];
    const bShape = c.transB ? [c.N, c.K] : [c.K, c.N];
    for (let i = 0; i < c.batch; i++) {
      const Ai = A.slice(c.a[0] + i * c.a[1], c.a[0] + i * c.a[1] + c.M * c.K);
      const Bi = B.slice(c.b[0] + i * c.b[1], c.b[0] + i * c.b[1] + c.K * c.N);
      const prod = ref.matmul(Ai, aShape, Bi, bShape, c.transA, c.transB).data;
      const mag = ref.matmul(Ai.map(Math.abs), aShape, Bi.map(Math.abs), bShape, c.transA, c.transB).data;
      for (let e = 0; e < c.M * c.N; e++) {
        const z = prod[e]! + (bias && c.bias ? bias[c.bias[0] + i * c.bias[1] + (e % c.N)]! : 0);
        want[c.c[0] + i * c.c[1] + e] = c.activation ? ref.unaryValue(c.activation, z) : z;
        scaleOf[c.c[0] + i * c.c[1] + e] = mag[e]! + 1;
      }
    }
    expectClose(await ct.data(), want, tol, name, scaleOf);
  });
}
