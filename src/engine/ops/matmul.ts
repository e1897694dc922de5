// Matrix product (with the transposed forms its backward needs) and the dense-layer bias.
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { checkFused, UNARY_OPS, type FusedActivation } from './activation.js';
import { alive, output, rank } from './check.js';
import { epilogueGradient } from './elementwise.js';
import { sum } from './reduce.js';

export interface MatmulOptions {
  /** Use A transposed: A is stored [K, M]. */
  transA?: boolean;
  /** Use B transposed: B is stored [N, K]. */
  transB?: boolean;
  /** Write C into this [M, N] tensor instead of a new one. */
  out?: Tensor;
}

// Each invocation computes a 4x4 block of C; a workgroup of WG_X x WG_Y of them a block of
// 4 WG_Y rows and 4 WG_X columns. The autotuner may pick another shape for the adapter.
const DEFAULT_WORKGROUP = { WG_X: 8, WG_Y: 8 };

interface Epilogue {
  bias: Tensor | null;
  activation: FusedActivation | null;
  alpha: number;
}

/** C = op(A) . op(B) for 2-D tensors. */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const out = gemm('matmul', a, b, transA, transB, { bias: null, activation: null, alpha: 0 }, options.out);
  // C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC; then undo the op on each side.
  return record(out, 'matmul', [a, b], [
    (dy, into) => (transA ? matmul(b, dy, { transA: transB, transB: true, out: into }) : matmul(dy, b, { transB: !transB, out: into })),
    (dy, into) => (transB ? matmul(dy, a, { transA: true, transB: transA, out: into }) : matmul(a, dy, { transA: !transA, out: into })),
  ]);
}

/**
 * A dense layer's forward in one kernel: y = act(x W^T + b), W stored [out, in] as nn.Linear.
 * `slope` is leaky_relu's slope (which must be positive for its derivative to follow from y).
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, activation: FusedActivation | null = null, slope = 0.01): Tensor {
  checkFused('linear', activation, slope);
  if (bias) {
    alive('linear', bias);
    rank('linear', bias, 1);
    if (bias.shape[0] !== weight.shape[0]) {
      throw new Error(`linear: bias ${bias.name} ${shapeString(bias.shape)} does not match weight ${weight.name} ${shapeString(weight.shape)}`);
    }
  }
  const y = gemm('linear', x, weight, false, true, { bias, activation, alpha: slope });
  const op = activation ? `linear+${activation}` : 'linear';
  // The gradient before the activation, dz = dy * act'(y), is computed once for all three inputs.
  const preActivation = epilogueGradient(activation, y, slope);
  return record(
    y,
    op,
    bias ? [x, weight, bias] : [x, weight],
    [
      (dy, into) => matmul(preActivation(dy), weight, { out: into }),
      (dy, into) => matmul(preActivation(dy), x, { transA: true, out: into }),
      ...(bias ? [(dy: Tensor, into?: Tensor) => sum(preActivation(dy), 0, into)] : []),
    ],
    [y],
  );
}

function gemm(op: string, a: Tensor, b: Tensor, transA: boolean, transB: boolean, epilogue: Epilogue, into?: Tensor): Tensor {
  alive(op, a, b);
  rank(op, a, 2);
  rank(op, b, 2);
  const [M, Ka] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [Kb, N] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (Ka !== Kb) {
    throw new Error(
      `${op}: inner dimensions differ: ${a.name} ${shapeString(a.shape)}${transA ? '^T' : ''} . ${b.name} ${shapeString(b.shape)}${transB ? '^T' : ''} (${Ka} vs ${Kb})`,
    );
  }
  const K = Ka;
  const engine = a.engine;
  const out = output(op, engine, [M, N], op, into);
  const aligned = M % 4 === 0 && N % 4 === 0 && K % 4 === 0;
  const shape = engine.tuning.get('matmul') ?? DEFAULT_WORKGROUP;
  engine.dispatch('matmul', {
    bindings: { a, b, c: out, bias: epilogue.bias ?? engine.placeholder() },
    uniforms: { M, N, K, alpha: epilogue.alpha },
    constants: {
      TRANS_A: transA,
      TRANS_B: transB,
      ALIGNED: aligned,
      HAS_BIAS: epilogue.bias !== null,
      ...(epilogue.activation ? { ACT: UNARY_OPS[epilogue.activation] } : {}),
      ...shape,
    },
    workgroups: [Math.ceil(N / (4 * (shape.WG_X as number))), Math.ceil(M / (4 * (shape.WG_Y as number)))],
    flops: 2 * M * N * K,
  });
  return out;
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
  return record(out, 'addBias', [x, bias], [
    (dy) => dy,
    (dy, into) => {
      const rows = dy.engine.view(dy, [dy.size / cols, cols]);
      const db = sum(rows, 0, into);
      rows.dispose();
      return db;
    },
  ]);
}
