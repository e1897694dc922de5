// softmax and the knowledge-distillation loss against float64 CPU references (tests/reference.ts):
// softmax forward and backward (loss = sum(softmax(x) * w), w a fixed random weighting), the
// reference gradient against finite differences, distillationLoss values and student gradients,
// the teacher as a constant, and the error messages.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { expectClose, FD, type Tol } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

/** exp in the kernel (WGSL allows a few ulp), one division per element. */
const TRANSCENDENTAL: Tol = { atol: 2e-6, rtol: 2e-5 };

const f32 = (data: ArrayLike<number>) => Float64Array.from(data, (v) => Math.fround(v));

/** A tensor autograd differentiates (scoped, unlike a Parameter). */
function input(data: Float64Array, shape: number[], name: string): Tensor {
  const t = engine.tensor(Float32Array.from(data), shape, name);
  t.requiresGrad = true;
  return t;
}

describe('softmax', () => {
  function softmaxCase(name: string, rows: number, cols: number, x: Float64Array, seed: number): void {
    test(name, async () => {
      await engine.scope(async () => {
        const xt = input(x, [rows, cols], 'x');
        const y = ops.softmax(xt);
        expect([...y.shape]).toEqual([rows, cols]);
        expectClose(await y.data(), ref.softmax(x, rows, cols), TRANSCENDENTAL, `${name}: forward`);

        const w = ref.normal([rows, cols], seed);
        const loss = ops.sum(ops.mul(y, engine.tensor(Float32Array.from(w), [rows, cols], 'w')));
        const g = gradients(loss, [xt]).get(xt)!;
        const want = ref.softmaxGrad(x, rows, cols, w);
        expectClose(await g.data(), want, TRANSCENDENTAL, `${name}: backward`);

        const idx = ref.sampleIndices(x.length, 24, seed + 1);
        const fd = ref.finiteDifferences((xi) => ref.dot(ref.softmax(xi, rows, cols), w), x, idx);
        expectClose(
          fd,
          idx.map((j) => want[j]!),
          FD,
          `${name}: reference gradient against finite differences`,
        );
      });
    });
  }

  softmaxCase('[1,1]', 1, 1, ref.normal([1, 1], 1), 2);
  softmaxCase('one column [5,1]: all ones, zero gradient', 5, 1, ref.normal([5, 1], 3, 3), 4);
  softmaxCase('[7,10]', 7, 10, ref.normal([7, 10], 5, 2), 6);
  softmaxCase('more rows than a workgroup [130,3]', 130, 3, ref.normal([130, 3], 7, 2), 8);
  softmaxCase('many columns [3,300]', 3, 300, ref.normal([3, 300], 9, 2), 10);
  // exp(1000) overflows float32 (and float64): only a max-shifted kernel survives.
  softmaxCase('logits around 1000 [4,8]', 4, 8, f32(ref.normal([4, 8], 11, 2).map((v) => 1000 + v)), 12);
  const spread = f32(ref.normal([4, 8], 13, 300));
  spread[0] = 1000;
  spread[9] = -1000;
  spread[17] = 1000;
  spread[18] = 1000;
  softmaxCase('logits spread over +-1000 [4,8]', 4, 8, spread, 14);

  test('large logits give exact values', async () => {
    await engine.scope(async () => {
      const y = ops.softmax(engine.tensor([1000, 0, -1000, 1000, 1000, 1000], [3, 2]));
      expect(Array.from(await y.data())).toEqual([1, 0, 0, 1, 0.5, 0.5]);
    });
  });
});

describe('distillationLoss', () => {
  interface Case {
    rows: number;
    cols: number;
    temperature?: number;
    alpha?: number;
    /** Rows whose target is all zeros (unlabelled). */
    unlabelled?: number[];
    seed: number;
  }

  function data(c: Case): { student: Float64Array; teacher: Float64Array; targets: Float64Array } {
    const targets = ref.oneHot(c.rows, c.cols, c.seed + 2);
    for (const r of c.unlabelled ?? []) targets.fill(0, r * c.cols, (r + 1) * c.cols);
    return { student: ref.normal([c.rows, c.cols], c.seed, 2), teacher: ref.normal([c.rows, c.cols], c.seed + 1, 3), targets };
  }

  const cases: Case[] = [
    { rows: 6, cols: 10, seed: 20 }, // defaults: T = 4, alpha = 0.9
    { rows: 5, cols: 7, temperature: 1, alpha: 0.5, unlabelled: [1, 4], seed: 30 },
    { rows: 8, cols: 5, temperature: 10, alpha: 0.7, unlabelled: [0], seed: 40 },
    { rows: 4, cols: 300, temperature: 2.5, alpha: 0.3, unlabelled: [2], seed: 50 },
    { rows: 3, cols: 6, temperature: 3, alpha: 1, seed: 60 }, // soft term only
    { rows: 3, cols: 6, temperature: 3, alpha: 0, unlabelled: [1], seed: 70 }, // hard term only
    { rows: 2, cols: 4, alpha: 0.5, unlabelled: [0, 1], seed: 80 }, // no labels at all
  ];
  for (const c of cases) {
    const T = c.temperature ?? 4;
    const alpha = c.alpha ?? 0.9;
    const name = `[${c.rows},${c.cols}] T=${c.temperature ?? 'default'} alpha=${c.alpha ?? 'default'} unlabelled=${c.unlabelled?.length ?? 0}`;
    test(name, async () => {
      await engine.scope(async () => {
        const { student, teacher, targets } = data(c);
        const s = input(student, [c.rows, c.cols], 'student');
        const t = engine.tensor(Float32Array.from(teacher), [c.rows, c.cols], 'teacher');
        const y = engine.tensor(Float32Array.from(targets), [c.rows, c.cols], 'targets');
        const options = c.temperature === undefined && c.alpha === undefined ? undefined : { temperature: c.temperature, alpha: c.alpha };
        const loss = ops.distillationLoss(s, t, y, options);
        expect([...loss.shape]).toEqual([]);
        const f = (x: Float64Array) => ref.distillationLoss(x, teacher, targets, c.rows, c.cols, T, alpha);
        // The soft term is a difference of two cross-entropies (float32), amplified by T^2.
        const tol: Tol = { atol: 2e-6 * (1 + alpha * T * T), rtol: 2e-5 };
        expectClose([await loss.item()], [f(student)], tol, `${name}: value`);

        const g = gradients(loss, [s]).get(s)!;
        const all = Array.from({ length: student.length }, (_, i) => i);
        expectClose(await g.data(), ref.finiteDifferences(f, student, all), { atol: 2e-7 * (1 + alpha * T), rtol: 1e-4 }, `${name}: gradient against finite differences`);
      });
    });
  }

  test('student == teacher with alpha = 1: zero loss, zero gradient', async () => {
    await engine.scope(async () => {
      const x = ref.normal([5, 9], 90, 3);
      const s = input(x, [5, 9], 'student');
      const t = engine.tensor(Float32Array.from(x), [5, 9], 'teacher');
      const loss = ops.distillationLoss(s, t, engine.tensor(Float32Array.from(ref.oneHot(5, 9, 91)), [5, 9]), { alpha: 1, temperature: 2 });
      // Both cross-entropies run on bit-identical inputs, so the KL cancels exactly.
      expect(Math.abs(await loss.item())).toBe(0);
      const g = await gradients(loss, [s]).get(s)!.data();
      expectClose(g, new Float64Array(g.length), { atol: 1e-6, rtol: 0 }, 'gradient');
    });
  });

  test('no gradient flows into the teacher', async () => {
    await engine.scope(async () => {
      const s = engine.parameter(Float32Array.from(ref.normal([4, 5], 100)), [4, 5], 'student');
      const t = engine.parameter(Float32Array.from(ref.normal([4, 5], 101)), [4, 5], 'teacher');
      try {
        const loss = ops.distillationLoss(s, t, engine.tensor(Float32Array.from(ref.oneHot(4, 5, 102)), [4, 5]));
        expect([...gradients(loss, [s, t]).keys()]).toEqual([s]);
        expect([...gradients(loss, null).keys()]).toEqual([s]);
      } finally {
        s.dispose();
        t.dispose();
      }
    });
  });
});

describe('error messages', () => {
  test('softmax names the op and the shape', async () => {
    await engine.scope(() => {
      expect(() => ops.softmax(engine.zeros([6], 'flat'))).toThrow(/softmax: flat has shape \[6\], expected rank 2/);
      expect(() => ops.softmax(engine.zeros([2, 3, 4], 'cube'))).toThrow(/softmax: cube has shape \[2,3,4\], expected rank 2/);
      expect(() => ops.softmax(engine.zeros([3, 0], 'hollow'))).toThrow(/softmax: hollow \[3,0\] has no columns/);
      const ghost = engine.zeros([2, 2], 'ghost');
      ghost.dispose();
      expect(() => ops.softmax(ghost)).toThrow(/softmax.*ghost/);
    });
  });

  test('distillationLoss names the op, shapes and values', async () => {
    await engine.scope(() => {
      const s = engine.zeros([2, 3], 'student');
      const t = engine.zeros([2, 3], 'teacher');
      const y = engine.zeros([2, 3], 'targets');
      expect(() => ops.distillationLoss(s, engine.zeros([2, 4], 'wide'), y)).toThrow(/distillationLoss: shapes \[2,3\] \(student\) and \[2,4\] \(wide\) differ/);
      expect(() => ops.distillationLoss(s, t, engine.zeros([3, 3], 'labels'))).toThrow(/distillationLoss: shapes \[2,3\] \(student\) and \[3,3\] \(labels\) differ/);
      expect(() => ops.distillationLoss(engine.zeros([6], 'flat'), engine.zeros([6]), engine.zeros([6]))).toThrow(/distillationLoss: flat has shape \[6\], expected rank 2/);
      for (const temperature of [0, -1, NaN, Infinity]) {
        expect(() => ops.distillationLoss(s, t, y, { temperature })).toThrow(`distillationLoss: temperature must be a positive finite number, got ${temperature}`);
      }
      for (const alpha of [-0.1, 1.5, NaN]) {
        expect(() => ops.distillationLoss(s, t, y, { alpha })).toThrow(`distillationLoss: alpha must be in [0, 1], got ${alpha}`);
      }
    });
  });
});
