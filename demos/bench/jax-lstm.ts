// The bench's keyboard model in jax-js (@jax-js/jax 0.1.25) on its WebGPU device: the embedding
// table, a standard LSTM (gates i, f, g, o as PyTorch; one bias), the projection hidden ->
// embedding, logits through the same table (tied, as ours) plus a bias, softmax cross-entropy and
// Adam, all in one jit. What 0.1.25 cannot do, and what stands in for it:
//   - no scan or loop primitive: the T steps are unrolled when jit traces the step (as JAX traces
//     a Python loop), so the compiled program holds T copies of the cell;
//   - jit cannot compile the gradient of a gather (np.take's transpose is a scatter: "jit: routine
//     primitive scatter input is not imm"), so the lookup is a one-hot [B*T, V] x [V, E] matmul, as
//     in jax-js's own char-rnn demo: 4 B*T*V*E FLOPs a step (that product and the table's gradient
//     through it) that a gather does not spend;
//   - its optimizers (@jax-js/optax) are not on the npm registry: Adam is written with array ops
//     (jax-train.ts).
// Arrays follow jax-js's ownership rules: every call consumes its arguments, `.ref` keeps one.
import { blockUntilReady, jit, lax, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
import { adamUpdate, AdamState, uniformArray } from './jax-train.js';

export interface LstmSizes {
  vocab: number;
  embedding: number;
  hidden: number;
  /** B: streams (rows) a step. */
  streams: number;
  /** T: tokens a stream a step. */
  unroll: number;
  lr: number;
}

/** Ids [B*T] as f32 and one-hot targets [B*T, V]. */
export interface LstmBatch {
  x: Float32Array<ArrayBuffer>;
  y: Float32Array<ArrayBuffer>;
}

type Params = { table: np.Array; bias: np.Array; projection: np.Array; wIh: np.Array; wHh: np.Array; b: np.Array };

/** Mean cross-entropy of the next-token logits for ids [B, T] (int32) against one-hot targets [B*T, V], from state (h, c); the final state is the aux output. */
function lstmLoss(sizes: LstmSizes, p: Params, ids: np.Array, targets: np.Array, h: np.Array, c: np.Array): [np.Array, [np.Array, np.Array]] {
  const { vocab: V, hidden: H, streams: B, unroll: T } = sizes;
  const x = np.dot(lax.stopGradient(nn.oneHot(ids.reshape([B * T]), V)), p.table.ref);
  const inputGates = np.dot(x, p.wIh).add(p.b).reshape([B, T, 4 * H]);
  const hs: np.Array[] = [];
  for (let t = 0; t < T; t++) {
    const z = inputGates.ref.slice([], t).add(np.dot(h, p.wHh.ref));
    const i = nn.sigmoid(z.ref.slice([], [0, H]));
    const f = nn.sigmoid(z.ref.slice([], [H, 2 * H]));
    const g = np.tanh(z.ref.slice([], [2 * H, 3 * H]));
    const o = nn.sigmoid(z.slice([], [3 * H, 4 * H]));
    c = f.mul(c).add(i.mul(g));
    h = o.mul(np.tanh(c.ref));
    hs.push(h.ref);
  }
  inputGates.dispose();
  p.wHh.dispose();
  const logits = np.dot(np.dot(np.stack(hs, 1).reshape([B * T, H]), p.projection), p.table.transpose()).add(p.bias);
  return [nn.logSoftmax(logits).mul(targets).sum().mul(-1 / (B * T)), [h, c]];
}

/** Forward, gradient and Adam update of one batch, as one jit (compiled on its first call). */
function compileTrainStep(sizes: LstmSizes) {
  const lossAndGradient = valueAndGrad((p: Params, ids: np.Array, targets: np.Array, h: np.Array, c: np.Array) => lstmLoss(sizes, p, ids, targets, h, c), { hasAux: true });
  return jit((p: Params, m: Params, v: Params, ids: np.Array, targets: np.Array, h: np.Array, c: np.Array, lr: np.Array) => {
    const [[loss, [hNext, cNext]], g] = lossAndGradient(tree.ref(p), ids, targets, h, c);
    return [...adamUpdate(p, m, v, g, lr), loss, hNext, cNext] as const;
  });
}

export class JaxLstm {
  private params: Params;
  private readonly adam: AdamState<Params>;
  private readonly trainStep: ReturnType<typeof compileTrainStep>;

  /** The weights from `rand`, on jax-js's default device (startJaxWebGpu). */
  constructor(private readonly sizes: LstmSizes, rand: () => number) {
    const { vocab: V, embedding: E, hidden: H } = sizes;
    const uniform = (shape: [number, number], scale: number) => uniformArray(shape, scale, rand);
    this.params = { table: uniform([V, E], 1 / Math.sqrt(E)), bias: np.zeros([V]), projection: uniform([H, E], 1 / Math.sqrt(H)), wIh: uniform([E, 4 * H], 1 / Math.sqrt(H)), wHh: uniform([H, 4 * H], 1 / Math.sqrt(H)), b: np.zeros([4 * H]) };
    this.adam = new AdamState(this.params, sizes.lr);
    this.trainStep = compileTrainStep(sizes);
  }

  get parameterCount(): number {
    return tree.leaves(this.params).reduce((n, w) => n + w.size, 0);
  }

  /** Milliseconds a step over `steps` steps on the batches in turn (ids as f32, one-hot targets), from a zero state, synchronised only at the end. */
  async steps(data: LstmBatch[], steps: number): Promise<number> {
    const { vocab: V, hidden: H, streams: B, unroll: T } = this.sizes;
    // jax-js is lazy: waiting on every parameter runs every step's whole update, not only the bias's kernels.
    const sync = () => blockUntilReady(this.params);
    await sync();
    let h = np.zeros([B, H]);
    let c = np.zeros([B, H]);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const b = data[i % data.length]!;
      const ids = np.array(Int32Array.from(b.x), { dtype: np.int32 }).reshape([B, T]);
      let loss: np.Array;
      [this.params, this.adam.m, this.adam.v, loss, h, c] = this.trainStep(this.params, this.adam.m, this.adam.v, ids, np.array(b.y).reshape([B * T, V]), h, c, this.adam.nextLr());
      loss.dispose();
    }
    await sync();
    const ms = (performance.now() - t0) / steps;
    h.dispose();
    c.dispose();
    return ms;
  }

  /** The loss on one batch from a zero state (eager, no update). */
  async loss(b: LstmBatch): Promise<number> {
    const { vocab: V, hidden: H, streams: B, unroll: T } = this.sizes;
    const ids = np.array(Int32Array.from(b.x), { dtype: np.int32 }).reshape([B, T]);
    const [loss, state] = lstmLoss(this.sizes, tree.ref(this.params), ids, np.array(b.y).reshape([B * T, V]), np.zeros([B, H]), np.zeros([B, H]));
    tree.dispose(state);
    return (await loss.data())[0]!;
  }

  dispose(): void {
    tree.dispose(this.params);
    this.adam.dispose();
  }
}
