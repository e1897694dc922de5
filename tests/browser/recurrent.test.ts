// The recurrent op (LSTM, CIFG, GRU over a sequence: one fused cell kernel per step forward and
// backward) against the float64 reference unrolled on the CPU in tests/reference.ts: forward,
// the gradient of every input, and the reference's gradient against finite differences.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import type { Tol } from '../close.js';
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
