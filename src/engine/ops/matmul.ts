// Matrix product (with the transposed forms its backward needs) and the dense-layer bias.
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, rank } from './check.js';
import { sum } from './reduce.js';

export interface MatmulOptions {
  /** Use A transposed: A is stored [K, M]. */
  transA?: boolean;
  /** Use B transposed: B is stored [N, K]. */
  transB?: boolean;
}

// Each invocation computes a 4x4 block of C; a workgroup of WG_X x WG_Y of them a block of
// 4 WG_Y rows and 4 WG_X columns. The autotuner may pick another shape for the adapter.
const DEFAULT_WORKGROUP = { WG_X: 8, WG_Y: 8 };

/** C = op(A) . op(B) for 2-D tensors. */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  alive('matmul', a, b);
  rank('matmul', a, 2);
  rank('matmul', b, 2);
  const [M, Ka] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [Kb, N] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (Ka !== Kb) {
    throw new Error(
      `matmul: inner dimensions differ: ${a.name} ${shapeString(a.shape)}${transA ? '^T' : ''} . ${b.name} ${shapeString(b.shape)}${transB ? '^T' : ''} (${Ka} vs ${Kb})`,
    );
  }
  const K = Ka;
  const out = a.engine.empty([M, N], 'matmul');
  if (K === 0) {
    a.engine.dispatch('fill', { bindings: { out }, uniforms: { n: out.size, value: 0 }, threads: out.size });
  } else {
    const aligned = M % 4 === 0 && N % 4 === 0 && K % 4 === 0;
    const shape = a.engine.tuning.get('matmul') ?? DEFAULT_WORKGROUP;
    a.engine.dispatch('matmul', {
      bindings: { a, b, c: out },
      uniforms: { M, N, K },
      constants: { TRANS_A: transA, TRANS_B: transB, ALIGNED: aligned, ...shape },
      workgroups: [Math.ceil(N / (4 * (shape.WG_X as number))), Math.ceil(M / (4 * (shape.WG_Y as number)))],
      flops: 2 * M * N * K,
    });
  }
  // C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC; then undo the op on each side.
  return record(out, 'matmul', [a, b], [
    (dy) => (transA ? matmul(b, dy, { transA: transB, transB: true }) : matmul(dy, b, { transB: !transB })),
    (dy) => (transB ? matmul(dy, a, { transA: true, transB: transA }) : matmul(a, dy, { transA: !transA })),
  ]);
}

/** x [.., C] + bias [C] added to every row. */
export function addBias(x: Tensor, bias: Tensor): Tensor {
  alive('addBias', x, bias);
  rank('addBias', bias, 1);
  const cols = bias.shape[0]!;
  if (x.rank < 1 || x.shape[x.rank - 1] !== cols) {
    throw new Error(`addBias: bias ${bias.name} ${shapeString(bias.shape)} does not match the last axis of ${x.name} ${shapeString(x.shape)}`);
  }
  const out = x.engine.empty(x.shape, 'addBias');
  x.engine.dispatch('bias_add', { bindings: { x, bias, out }, uniforms: { n: x.size, cols }, threads: x.size });
  return record(out, 'addBias', [x, bias], [(dy) => dy, (dy) => sum(dy.engine.view(dy, [dy.size / cols, cols]), 0)]);
}
