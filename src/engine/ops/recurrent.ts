// The recurrence of an LSTM (or its CIFG variant) or GRU layer over a whole sequence, given the
// input side of the gates for every step (x W_ih^T + b_ih: one matmul before the loop). Forward,
// per step: the recurrent product h_{t-1} W_hh^T + b_hh as one matmul (the tuned tiled kernel,
// reading h_{t-1} in place from a time-major copy of the hidden states), then one recurrent.wgsl
// dispatch for the gates and the new state, which keeps every step's gate activations and cell
// state for the backward. Backward, per step from t = T-1 down to 0: the recurrent path of dh_t,
// (d gates_hh of step t+1) W_hh, as one matmul, then one recurrent_backward.wgsl dispatch for the
// gate gradients; then d(W_hh) and d(b_hh) for all steps at once as a matmul and a sum over the
// kept states.
//
// Why the recurrent products are matmuls of their own rather than loops inside the cell kernels:
// the tuned tiled matmul is faster than an invocation per (b, j) running a dot product of length
// H per gate (on SwiftShader, B 32, H 256: forward 100 ms a step in the loop, against a few ms).
import { noGrad, record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive } from './check.js';
import { add } from './elementwise.js';
import { batchedGemm, matmul } from './matmul.js';
import { sum } from './reduce.js';
import { concat, reshape, slice } from './shape.js';

export const RECURRENT_CELLS = ['lstm', 'cifg', 'gru'] as const;

/** lstm: gates i, f, g, o; cifg: f, g, o with i = 1 - f (Hard et al. 2018); gru: r, z, n (PyTorch's equations). */
export type RecurrentCell = (typeof RECURRENT_CELLS)[number];

const CELL_NUMBER: Record<RecurrentCell, number> = { lstm: 0, cifg: 1, gru: 2 };

/** Gate blocks of the cell: the G of weight_ih [G*H, in] and weight_hh [G*H, H]. */
export function gateCount(cell: RecurrentCell): number {
  return cell === 'lstm' ? 4 : 3;
}

export interface RecurrentResult {
  /** h_t for every step, [B, T, H]; differentiable. */
  output: Tensor;
  /** The final hidden state [B, H], detached (not recorded): for carrying into the next batch. */
  h: Tensor;
  /** The final cell state [B, H] (LSTM, CIFG; null for GRU), detached. */
  c: Tensor | null;
}

/**
 * Runs the cell over T steps. gatesX [B, T, G*H] is x_t W_ih^T + b_ih for every step, h0 [B, H]
 * the initial hidden state, c0 [B, H] the initial cell state (LSTM, CIFG; null for GRU),
 * weightHH [G*H, H] and biasHH [G*H] (or null) the recurrent weights, gate blocks in PyTorch's
 * order. Differentiable in gatesX, h0, c0, weightHH and biasHH.
 */
export function recurrent(cell: RecurrentCell, gatesX: Tensor, h0: Tensor, c0: Tensor | null, weightHH: Tensor, biasHH: Tensor | null): RecurrentResult {
  const op = cell;
  const G = gateCount(cell);
  const lstm = cell !== 'gru';
  alive(op, gatesX, h0, weightHH, ...(c0 ? [c0] : []), ...(biasHH ? [biasHH] : []));
  const H = weightHH.shape[1] ?? 0;
  const [B, T] = gatesX.shape as [number, number];
  const shapes = () =>
    `gatesX ${shapeString(gatesX.shape)}, h0 ${shapeString(h0.shape)}, c0 ${c0 ? shapeString(c0.shape) : 'none'}, weightHH ${shapeString(weightHH.shape)}, biasHH ${biasHH ? shapeString(biasHH.shape) : 'none'}`;
  const expected = `expected gatesX [B, T, ${G}*H], h0 [B, H],${lstm ? ' c0 [B, H],' : ''} weightHH [${G}*H, H], biasHH [${G}*H]`;
  const is = (t: Tensor | null, shape: number[]) => !t || (t.rank === shape.length && t.shape.every((d, i) => d === shape[i]));
  if (
    gatesX.rank !== 3 ||
    weightHH.rank !== 2 ||
    H === 0 ||
    T === 0 ||
    !is(weightHH, [G * H, H]) ||
    !is(gatesX, [B, T, G * H]) ||
    !is(h0, [B, H]) ||
    (lstm && (!c0 || !is(c0, [B, H]))) ||
    (!lstm && c0) ||
    !is(biasHH, [G * H])
  ) {
    throw new Error(`${op}: ${shapes()}; ${expected}`);
  }
  const engine = gatesX.engine;
  const constants = { CELL: CELL_NUMBER[cell] };
  const uniformsAt = (step: number) => ({ batch: B, steps: T, hidden: H, step });
  // The state before step 0 that the kernels read: c0 (LSTM, CIFG; h0 goes into the first matmul) or h0 (GRU).
  const initial = c0 ?? h0;
  // Gate blocks of the backward's dgates: GRU's n has an input and a recurrent side.
  const K = lstm ? G : 4;
  const output = engine.empty([B, T, H], op);
  // LSTM, CIFG: c per step; GRU: W_hn h + b_hn per step.
  const cells = engine.empty([B, T, H], `${op}.cells`);
  const saved = engine.empty([B, T, G * H], `${op}.gates`);
  // h_t time-major [T, B, H], so that step t's matmul reads h_{t-1} as one [B, H] block.
  const hidden = engine.empty([T, B, H], `${op}.hidden`);
  const gatesH = engine.empty([B, G * H], `${op}.gatesH`);
  for (let t = 0; t < T; t++) {
    const previous = t === 0 ? { tensor: h0 } : { tensor: hidden, offset: (t - 1) * B * H };
    batchedGemm(op, { batch: 1, M: B, N: G * H, K: H, a: previous, b: { tensor: weightHH }, transB: true, c: { tensor: gatesH }, bias: biasHH ? { tensor: biasHH } : null });
    engine.dispatch('recurrent', {
      bindings: { gates_x: gatesX, gates_h: gatesH, initial, out: output, hidden, cells, saved },
      uniforms: uniformsAt(t),
      constants,
      threads: B * H,
    });
  }
  hidden.dispose();
  gatesH.dispose();
  const last = (t: Tensor) => noGrad(() => reshape(slice(t, 1, T - 1, 1), [B, H]));
  const final = { h: last(output), c: lstm ? last(cells) : null };

  // The backward runs once per dy; each input's gradient function takes its part of it.
  let doneFor: Tensor | null = null;
  let done: { dgates: Tensor; dgatesHH: Tensor; carry: Tensor; dHH: Tensor } | null = null;
  const backwardFor = (dy: Tensor) => {
    if (doneFor === dy && done) return done;
    const dgates = engine.empty([B * T, K * H], `d(${op}.gates)`);
    // Step t's recurrent-side gate gradients, the operand of the matmul that gives step t-1 its recurrent path.
    const dgatesHH = engine.empty([B, G * H], `d(${op}.gatesHH)`);
    // [carry; the recurrent path of dh], see recurrent_backward.wgsl.
    const state = engine.zeros([2, B, H], `${op}.backwardState`);
    for (let t = T - 1; t >= 0; t--) {
      if (t < T - 1) batchedGemm(op, { batch: 1, M: B, N: H, K: G * H, a: { tensor: dgatesHH }, b: { tensor: weightHH }, c: { tensor: state, offset: B * H } });
      engine.dispatch('recurrent_backward', {
        bindings: { saved, cells, initial, out: output, dy, dgates, dgates_hh: dgatesHH, state },
        uniforms: uniformsAt(t),
        constants,
        threads: B * H,
      });
    }
    // The recurrent side's gate gradients [B*T, G*H] (GRU: r, z and n times r; n of the input side is the fourth block).
    const dHH = K === G ? dgates : slice(dgates, 1, 0, G * H);
    done = { dgates, dgatesHH, carry: engine.view(state, [B, H], `${op}.carry`), dHH };
    doneFor = dy;
    return done;
  };
  type Part = (d: NonNullable<typeof done>) => Tensor;
  const hPrev = () => {
    const first = reshape(h0, [B, 1, H]);
    return reshape(T > 1 ? concat([first, slice(output, 1, 0, T - 1)], 1) : first, [B * T, H]);
  };
  const gradientsOf: [Tensor | null, Part][] = [
    [gatesX, (d) => reshape(K === G ? d.dgates : concat([slice(d.dgates, 1, 0, 2 * H), slice(d.dgates, 1, 3 * H, H)], 1), gatesX.shape)],
    // After step 0, dgatesHH holds step 0's: the recurrent path into h0.
    [h0, (d) => (lstm ? matmul(d.dgatesHH, weightHH) : add(matmul(d.dgatesHH, weightHH), d.carry))],
    [c0, (d) => d.carry],
    [weightHH, (d) => matmul(d.dHH, hPrev(), { transA: true })],
    [biasHH, (d) => sum(d.dHH, 0)],
  ];
  const present = gradientsOf.filter((e): e is [Tensor, Part] => e[0] !== null);
  record(
    output,
    op,
    present.map(([input]) => input),
    present.map(([, part]) => (dy: Tensor) => part(backwardFor(dy))),
    [cells, saved],
  );
  return { output, ...final };
}
