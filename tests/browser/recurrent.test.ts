// The recurrent op (LSTM, CIFG, GRU over a sequence: one fused cell kernel per step forward and
// backward) against the float64 reference unrolled on the CPU in tests/reference.ts: forward,
// the gradient of every input, and the reference's gradient against finite differences.
// Then the LSTM, CIFG and GRU layers (2 layers, several steps) against the float64 stack,
// outputs and every parameter's gradient; truncated BPTT with the state carried across batches;
// tied input and output embeddings.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import type { Parameter } from '../../src/engine/parameters.js';
import { TiedEmbedding } from '../../src/engine/layers.js';
import { GRU, LSTM, type Recurrent, type RecurrentState } from '../../src/engine/recurrent.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { expectClose, type Tol } from '../close.js';
import { opChecker } from '../op-check.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

/** Sums of H products and a few transcendental functions per step, over several steps. */
const RECURRENT: Tol = { atol: 2e-5, rtol: 1e-4 };

const checkOp = opChecker(() => engine, 11000, { tol: RECURRENT, fdCount: 12 });

describe('recurrent op', () => {
  const cases: { cell: ref.RecurrentCellName; B: number; T: number; H: number; bias: boolean }[] = [
    { cell: 'lstm', B: 3, T: 1, H: 5, bias: true },
    { cell: 'lstm', B: 3, T: 6, H: 5, bias: true },
    { cell: 'cifg', B: 2, T: 6, H: 7, bias: true },
    { cell: 'gru', B: 3, T: 6, H: 5, bias: true },
    { cell: 'gru', B: 2, T: 5, H: 4, bias: false },
    { cell: 'lstm', B: 2, T: 5, H: 4, bias: false },
  ];
  for (const { cell, B, T, H, bias } of cases) {
    test(`${cell} B=${B} T=${T} H=${H}${bias ? '' : ' without bias'}: forward and every gradient`, async () => {
      const G = ops.gateCount(cell);
      const lstm = cell !== 'gru';
      const shapes = [[B, T, G * H], [B, H], ...(lstm ? [[B, H]] : []), [G * H, H], ...(bias ? [[G * H]] : [])];
      const unpack = (x: Float64Array[]): ref.RecurrentInputs => {
        const [gatesX, h0, ...rest] = x;
        const c0 = lstm ? rest.shift()! : null;
        return { cell, B, T, H, gatesX: gatesX!, h0: h0!, c0, weight: rest[0]!, bias: bias ? rest[1]! : null };
      };
      await checkOp(`${cell}`, {
        inputs: shapes.map((shape, i) => ({ data: ref.normal(shape, 900 + i, i === shapes.length - (bias ? 2 : 1) ? 0.4 : 0.8), shape })),
        gpu: ([gatesX, h0, ...rest]) => {
          const c0 = lstm ? rest.shift()! : null;
          return ops.recurrent(cell, gatesX!, h0!, c0, rest[0]!, bias ? rest[1]! : null).output;
        },
        forward: (x) => ref.recurrent(unpack(x)).output,
        grad: (x, dy) => {
          const g = ref.recurrentGrad(unpack(x), dy);
          return [g.gatesX, g.h0, ...(lstm ? [g.c0] : []), g.weight, ...(bias ? [g.bias] : [])];
        },
      });
    });
  }

  test('one matmul and one cell kernel per step, forward and backward; h0 and c0 may be one tensor', async () => {
    await engine.scope(async () => {
      const [B, T, H] = [2, 5, 3];
      const x = ref.normal([B, T, 4 * H], 70);
      const s = ref.normal([B, H], 71);
      const w = ref.normal([4 * H, H], 72, 0.5);
      const gatesX = engine.tensor(Float32Array.from(x), [B, T, 4 * H]);
      const state = engine.parameter(Float32Array.from(s), [B, H], 'state');
      const weight = engine.parameter(Float32Array.from(w), [4 * H, H], 'weight');
      const { result, dispatches } = engine.traceDispatches(() => ops.recurrent('lstm', gatesX, state, state, weight, null));
      const kernels = dispatches.map((d) => d.kernel.replace(/^matmul_\w+$/, 'matmul')); // whichever matmul variant is in use
      expect(kernels.slice(0, 2 * T)).toEqual(Array.from({ length: 2 * T }, (_, i) => (i % 2 ? 'recurrent' : 'matmul')));
      const loss = ops.sum(result.output);
      const traced = engine.traceDispatches(() => gradients(loss, [state, weight]));
      const backwardKernels = traced.dispatches.map((d) => d.kernel);
      expect(backwardKernels.filter((k) => k === 'recurrent_backward')).toHaveLength(T);
      // T - 1 recurrent paths, then d(h0) and d(W_hh).
      expect(backwardKernels.filter((k) => /^matmul(_\w+)?$/.test(k))).toHaveLength(T + 1);
      // The one tensor gets both gradients: d(h0) + d(c0).
      const g = ref.recurrentGrad({ cell: 'lstm', B, T, H, gatesX: x, h0: s, c0: s, weight: w, bias: null }, new Float64Array(B * T * H).fill(1));
      expectClose(await traced.result.get(state)!.data(), g.h0.map((v, i) => v + g.c0![i]!), RECURRENT, 'd(state) as h0 and c0');
      state.dispose();
      weight.dispose();
    });
  });

  test('the final state is the last step, detached; c0 is refused for GRU and required for LSTM', async () => {
    await engine.scope(async () => {
      const [B, T, H] = [2, 3, 4];
      const gatesX = engine.randn([B, T, 4 * H], { seed: 1 });
      const w = engine.parameter(ref.normal([4 * H, H], 2, 0.3), [4 * H, H], 'w');
      const h0 = engine.zeros([B, H]);
      const { output, h, c } = ops.recurrent('lstm', gatesX, h0, engine.zeros([B, H]), w, null);
      expect(h.node).toBeNull();
      expect(c!.node).toBeNull();
      const out = await output.data();
      const last = await h.data();
      for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) expect(last[b * H + j]).toBe(out[(b * T + T - 1) * H + j]);
      expect(() => ops.recurrent('lstm', gatesX, h0, null, w, null)).toThrow('lstm: gatesX [2,3,16], h0 [2,4], c0 none, weightHH [16,4], biasHH none; expected gatesX [B, T, 4*H], h0 [B, H], c0 [B, H], weightHH [4*H, H], biasHH [4*H]');
      expect(() => ops.recurrent('gru', gatesX, h0, null, w, null)).toThrow('gru: gatesX [2,3,16], h0 [2,4], c0 none, weightHH [16,4]');
      w.dispose();
    });
  });
});

// ---------------------------------------------------------------- layers

const f64 = async (t: Tensor) => Float64Array.from(await t.data());

async function referenceWeights(m: Recurrent): Promise<ref.RecurrentLayerWeights[]> {
  return Promise.all(
    m.layers.map(async (w) => ({
      weightIH: await f64(w.weightIH),
      weightHH: await f64(w.weightHH),
      biasIH: w.biasIH ? await f64(w.biasIH) : null,
      biasHH: w.biasHH ? await f64(w.biasHH) : null,
    })),
  );
}

/** Checks every parameter's gradient (p.grad after backward) against the reference's. */
async function expectParameterGradients(m: Recurrent, want: ref.RecurrentLayerWeights[], what: string): Promise<void> {
  for (const [l, w] of m.layers.entries()) {
    const pairs: [string, Parameter | null, Float64Array | null][] = [
      ['weight_ih', w.weightIH, want[l]!.weightIH],
      ['weight_hh', w.weightHH, want[l]!.weightHH],
      ['bias_ih', w.biasIH, want[l]!.biasIH],
      ['bias_hh', w.biasHH, want[l]!.biasHH],
    ];
    for (const [name, p, g] of pairs) {
      if (!p) continue;
      expectClose(await p.gradView().data(), g!, RECURRENT, `${what}: d(${name}_l${l})`);
    }
  }
}

const LAYER_CASES: { name: string; make: (e: Engine) => Recurrent }[] = [
  { name: 'LSTM', make: (e) => new LSTM(e, 4, 5, { layers: 2, seed: 31 }) },
  { name: 'LSTM (CIFG)', make: (e) => new LSTM(e, 4, 5, { layers: 2, cifg: true, seed: 32 }) },
  { name: 'GRU', make: (e) => new GRU(e, 4, 5, { layers: 2, seed: 33 }) },
  { name: 'GRU without bias', make: (e) => new GRU(e, 3, 6, { layers: 2, bias: false, seed: 34 }) },
];

describe('recurrent layers', () => {
  for (const { name, make } of LAYER_CASES) {
    test(`${name}, 2 layers, T=6, initial state given: output, final state and every parameter gradient`, async () => {
      const m = make(engine);
      const [B, T, H, I] = [3, 6, m.hiddenSize, m.inputSize];
      const lstm = m.cell !== 'gru';
      try {
        await engine.scope(async () => {
          const x = ref.normal([B, T, I], 40);
          const h0 = [ref.normal([B, H], 41, 0.5), ref.normal([B, H], 42, 0.5)];
          const c0 = lstm ? [ref.normal([B, H], 43, 0.5), ref.normal([B, H], 44, 0.5)] : null;
          const want = ref.recurrentStack(m.cell, x, B, T, H, await referenceWeights(m), h0, c0);
          const t = (d: Float64Array, shape: number[]) => engine.tensor(Float32Array.from(d), shape);
          const state: RecurrentState = { h: h0.map((d) => t(d, [B, H])), c: c0 ? c0.map((d) => t(d, [B, H])) : null };
          const { output, state: final } = m.run(t(x, [B, T, I]), state);
          expectClose(await output.data(), want.output.data, RECURRENT, `${name}: output`);
          for (let l = 0; l < 2; l++) {
            expectClose(await final.h[l]!.data(), want.h[l]!, RECURRENT, `${name}: final h of layer ${l}`);
            if (lstm) expectClose(await final.c![l]!.data(), want.c![l]!, RECURRENT, `${name}: final c of layer ${l}`);
          }
          const w = ref.normal([B, T, H], 45);
          m.zeroGrad();
          backward(ops.sum(ops.mul(output, t(w, [B, T, H]))));
          await expectParameterGradients(m, want.grad(w), name);
        });
      } finally {
        m.dispose();
      }
    });
  }

  test('parameters are named and shaped as torch.nn.LSTM / GRU', () => {
    const lstm = new LSTM(engine, 7, 5, { layers: 2 });
    const cifg = new LSTM(engine, 7, 5, { cifg: true, bias: false });
    const gru = new GRU(engine, 7, 5);
    const shapes = (m: Recurrent) => [...m.parameters()].map(([n, p]) => `${n} ${p.shape.join('x')}`);
    expect(shapes(lstm)).toEqual([
      'weight_ih_l0 20x7',
      'weight_hh_l0 20x5',
      'bias_ih_l0 20',
      'bias_hh_l0 20',
      'weight_ih_l1 20x5',
      'weight_hh_l1 20x5',
      'bias_ih_l1 20',
      'bias_hh_l1 20',
    ]);
    expect(shapes(cifg)).toEqual(['weight_ih_l0 15x7', 'weight_hh_l0 15x5']);
    expect(shapes(gru)).toEqual(['weight_ih_l0 15x7', 'weight_hh_l0 15x5', 'bias_ih_l0 15', 'bias_hh_l0 15']);
    for (const m of [lstm, cifg, gru]) m.dispose();
  });

  test('truncated BPTT: the carried state brings the values, not the graph, into the next batch', async () => {
    const m = new LSTM(engine, 4, 5, { layers: 2, seed: 35 });
    const [B, T, H] = [2, 5, 5];
    try {
      const x1 = ref.normal([B, T, 4], 50);
      const x2 = ref.normal([B, T, 4], 51);
      // Batch 1 in a scope of its own: its graph is freed when the scope ends, the state kept.
      const carried = await engine.scope(() => {
        const { state } = m.run(engine.tensor(Float32Array.from(x1), [B, T, 4]));
        return state;
      });
      expect(carried.h.every((t) => t.node === null) && carried.c!.every((t) => t.node === null)).toBe(true);
      const weights = await referenceWeights(m);
      const first = ref.recurrentStack('lstm', x1, B, T, H, weights, null, null);
      await engine.scope(async () => {
        const { output } = m.run(engine.tensor(Float32Array.from(x2), [B, T, 4]), carried);
        // Batch 2 continues from batch 1's final state...
        const want = ref.recurrentStack('lstm', x2, B, T, H, weights, first.h, first.c);
        expectClose(await output.data(), want.output.data, RECURRENT, 'batch 2 output from the carried state');
        // ...and its gradient stops there: exactly the gradient with that state as a constant.
        const w = ref.normal([B, T, H], 52);
        m.zeroGrad();
        backward(ops.sum(ops.mul(output, engine.tensor(Float32Array.from(w), [B, T, H]))));
        await expectParameterGradients(m, want.grad(w), 'batch 2');
        // The state is a leaf: no gradient can be taken through it into batch 1.
        expect(() => gradients(ops.sum(output), [carried.h[0]!])).toThrow('is not recorded by autograd');
      });
      for (const t of [...carried.h, ...carried.c!]) t.dispose();
    } finally {
      m.dispose();
    }
  });

  test('errors name the layer and the shapes', async () => {
    const m = new LSTM(engine, 4, 5, { layers: 2 });
    const g = new GRU(engine, 4, 5);
    await engine.scope(() => {
      const x = engine.zeros([2, 3, 4]);
      expect(() => m.run(engine.zeros([2, 3, 5]))).toThrow('LSTM(4, 5): input zeros has shape [2,3,5], expected [batch, steps, 4]');
      expect(() => m.run(x, { h: [engine.zeros([2, 5])], c: [engine.zeros([2, 5])] })).toThrow(
        'LSTM(4, 5): initial state h [[2,5]], c [[2,5]]; expected 2 h and c tensors of shape [2, 5]',
      );
      expect(() => g.run(x, { h: [engine.zeros([3, 5])], c: null })).toThrow('GRU(4, 5): initial state h [[3,5]], c none; expected 1 h tensors of shape [2, 5] and no c');
      expect(() => new GRU(engine, 4, 0)).toThrow('GRU(4, 0): input size, hidden size and layers must be positive integers, got 4, 0, 1');
    });
    m.dispose();
    g.dispose();
  });
});

// ---------------------------------------------------------------- tied embeddings

describe('TiedEmbedding', () => {
  for (const [dim, hidden] of [
    [4, 6],
    [5, 5],
  ] as const) {
    test(`dim ${dim}, hidden ${hidden}: embed and logits share the table, both gradients reach it`, async () => {
      const [V, N] = [7, 5];
      const m = new TiedEmbedding(engine, V, dim, { hidden, seed: 60 });
      expect([...m.parameters()].map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([`weight ${V}x${dim}`, `bias ${V}`, ...(hidden === dim ? [] : [`projection.weight ${dim}x${hidden}`])]);
      try {
        await engine.scope(async () => {
          const idx = [3, 0, 6, 3];
          const h = ref.normal([N, hidden], 61);
          const w1 = ref.normal([idx.length, dim], 62);
          const w2 = ref.normal([N, V], 63);
          engine.write(m.bias!, Float32Array.from({ length: V }, (_, i) => 0.1 * i));
          const E = await f64(m.weight);
          const P = m.projection ? await f64(m.projection.weight) : null;
          const b = await f64(m.bias!);
          // logits = (h P^T) E^T + b
          const hp = P ? ref.matmul(h, [N, hidden], P, [dim, hidden], false, true).data : h;
          const want = ref.matmul(hp, [N, dim], E, [V, dim], false, true).data.map((v, i) => v + b[i % V]!);
          const t = (d: Float64Array, shape: number[]) => engine.tensor(Float32Array.from(d), shape);
          const emb = m.forward(m.indices(idx));
          const logits = m.logits(t(h, [N, hidden]));
          expectClose(await logits.data(), want, RECURRENT, 'logits');
          m.zeroGrad();
          backward(ops.add(ops.sum(ops.mul(emb, t(w1, [idx.length, dim]))), ops.sum(ops.mul(logits, t(w2, [N, V])))));
          // d(E) = the embedding rows' dy at their indices + dlogits^T (h P^T); d(P) = (dlogits E)^T h; d(b) = column sums.
          const dE = ref.matmul(w2, [N, V], hp, [N, dim], true).data;
          idx.forEach((row, k) => {
            for (let d = 0; d < dim; d++) dE[row * dim + d]! += w1[k * dim + d]!;
          });
          expectClose(await m.weight.gradView().data(), dE, RECURRENT, 'd(weight)');
          if (P) expectClose(await m.projection!.weight.gradView().data(), ref.matmul(ref.matmul(w2, [N, V], E, [V, dim]).data, [N, dim], h, [N, hidden], true).data, RECURRENT, 'd(projection)');
          expectClose(await m.bias!.gradView().data(), ref.reduce(w2, [N, V], 0, false).data, RECURRENT, 'd(bias)');
          expect(() => m.logits(engine.zeros([N, hidden + 1]))).toThrow(`TiedEmbedding(7, ${dim}).logits: h zeros has shape [5,${hidden + 1}], expected [N, ${hidden}]`);
        });
      } finally {
        m.dispose();
      }
    });
  }
});
