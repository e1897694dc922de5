// The op-checking harness the op tests share: for one application of an op,
//   1. the GPU forward against the float64 reference forward,
//   2. the GPU backward (gradients of loss = sum(op(x) * w), w a fixed random weighting, so dy is
//      not uniform) against the reference's analytic gradient,
//   3. the reference's analytic gradient against float64 central finite differences.
import { expect } from 'vitest';
import { gradients } from '../src/engine/autograd.js';
import type { Engine } from '../src/engine/engine.js';
import { mul, sum } from '../src/engine/ops/index.js';
import type { Tensor } from '../src/engine/tensor.js';
import { expectClose, FD, type Tol } from './close.js';
import * as ref from './reference.js';

export interface Input {
  data: Float64Array;
  shape: number[];
  /** false: a constant (targets, indices): a plain tensor, no gradient asked. */
  diff?: boolean;
}

export interface OpCase {
  inputs: Input[];
  gpu: (t: Tensor[]) => Tensor;
  forward: (x: Float64Array[]) => ref.Arr;
  grad: (x: Float64Array[], dy: Float64Array) => (Float64Array | null)[];
  tol?: Tol;
  gradTol?: Tol;
  /**
   * For multilinear ops (matmul, reductions, bias): tolerances relative to the forward and
   * gradient of |inputs| with |dy|, i.e. the sum of absolute terms.
   */
  byAbs?: boolean;
  /** Magnitudes the forward's error is relative to (default |expected|). */
  fwdScale?: (x: Float64Array[]) => ArrayLike<number>;
  /** Magnitudes each gradient's error is relative to (default |expected|). */
  gradScale?: (x: Float64Array[], dy: Float64Array) => (ArrayLike<number> | null)[];
  /** Elements left out of the finite-difference check (kinks). */
  fdSkip?: (input: number, value: number) => boolean;
  fdCount?: number;
  fdTol?: Tol;
  seed?: number;
}

const abs = (x: Float64Array) => x.map(Math.abs);

/**
 * A checker for one test file: `engine()` gives the file's engine, seeds count up from
 * `firstSeed`, and `defaults` fill what a case leaves out.
 */
export function opChecker(engine: () => Engine, firstSeed: number, defaults: { tol: Tol; gradTol?: Tol; fdCount: number }): (name: string, c: OpCase) => Promise<void> {
  let caseSeed = firstSeed;
  return async (name, c) => {
    const e = engine();
    const seed = c.seed ?? caseSeed++;
    await e.scope(async () => {
      const params: Tensor[] = [];
      const ts = c.inputs.map((inp, i) => {
        const label = `${name}.x${i}`;
        if (inp.diff === false) return e.tensor(Float32Array.from(inp.data), inp.shape, label);
        const p = e.parameter(Float32Array.from(inp.data), inp.shape, label);
        params.push(p);
        return p;
      });
      try {
        const xs = c.inputs.map((inp) => inp.data);
        const want = c.forward(xs);
        const y = c.gpu(ts);
        expect([...y.shape], `${name}: output shape`).toEqual(want.shape);
        const fwdScale = c.fwdScale?.(xs) ?? (c.byAbs ? c.forward(xs.map(abs)).data : undefined);
        expectClose(await y.data(), want.data, c.tol ?? defaults.tol, `${name}: forward`, fwdScale);

        const w = ref.normal(want.shape, seed * 7919 + 17);
        const loss = sum(mul(y, e.tensor(Float32Array.from(w), want.shape, `${name}.w`)));
        const diff = c.inputs.flatMap((inp, i) => (inp.diff === false ? [] : [i]));
        const grads = gradients(loss, diff.map((i) => ts[i]!));
        expect(grads.size, `${name}: number of gradients`).toBe(diff.length);
        const refGrads = c.grad(xs, w);
        const scales = c.gradScale?.(xs, w) ?? (c.byAbs ? c.grad(xs.map(abs), abs(w)) : null);
        for (const i of diff) {
          const g = grads.get(ts[i]!);
          expect(g, `${name}: gradient of input ${i}`).toBeDefined();
          expect([...g!.shape], `${name}: gradient shape of input ${i}`).toEqual(c.inputs[i]!.shape);
          const rg = refGrads[i]!;
          expectClose(await g!.data(), rg, c.gradTol ?? c.tol ?? defaults.gradTol ?? defaults.tol, `${name}: backward d(x${i})`, scales?.[i] ?? undefined);

          const x = xs[i]!;
          const idx = ref.sampleIndices(x.length, c.fdCount ?? defaults.fdCount, seed + i).filter((j) => !c.fdSkip?.(i, x[j]!));
          const fd = ref.finiteDifferences((xi) => ref.dot(c.forward(xs.map((v, k) => (k === i ? xi : v))).data, w), x, idx);
          expectClose(
            fd,
            idx.map((j) => rg[j]!),
            c.fdTol ?? FD,
            `${name}: reference d(x${i}) against finite differences`,
          );
        }
      } finally {
        for (const p of params) p.dispose();
      }
    });
  };
}
