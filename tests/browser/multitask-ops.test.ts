// Ops for multi-task learning (gram, weightedSum: src/engine/ops/flat.ts; mixture:
// src/engine/ops/mixture.ts) against the float64 references in tests/reference.ts, with the
// op-check harness (GPU forward and backward against the reference, the reference's gradient
// against finite differences) where the op is differentiable; and the engine's peak memory.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import { ACCUMULATED, expectClose } from '../close.js';
import { opChecker, type Input } from '../op-check.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

const abs = (x: Float64Array) => x.map(Math.abs);

const checkOp = opChecker(() => engine, 9100, { tol: ACCUMULATED, fdCount: 16 });

/** The call throws a message with every fragment, and allocates nothing before throwing. */
function expectError(call: () => unknown, ...fragments: string[]): void {
  const before = engine.memory().inUseBuffers;
  let message = '';
  try {
    call();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    message = (e as Error).message;
  }
  for (const f of fragments) expect(message, `message "${message}" should contain ${f}`).toContain(f);
  expect(engine.memory().inUseBuffers, `buffers allocated before "${message}"`).toBe(before);
}

describe('gram', () => {
  // n: a single element, a vec4 tail, several invocations, many workgroups with a tail.
  for (const T of [1, 2, 3, 5]) {
    for (const n of [1, 7, 1000, 300001]) {
      test(`T = ${T}, n = ${n}`, async () => {
        const x = ref.normal([T, n], 100 * T + n);
        const got = await engine.scope(async () => {
          const g = ops.gram(engine.tensor(Float32Array.from(x), [T, n]));
          expect([...g.shape]).toEqual([T, T]);
          return g.data();
        });
        expectClose(got, ref.gram(x, T), ACCUMULATED, `gram T = ${T}, n = ${n}`, ref.gram(abs(x), T));
      });
    }
  }

  test('T = 16 (the most in one tile: 136 pairs, a smaller workgroup) on a [16, 3, 333] stack', async () => {
    const shape = [16, 3, 333];
    const x = ref.normal(shape, 77);
    const got = await engine.scope(() => ops.gram(engine.tensor(Float32Array.from(x), shape)).data());
    expectClose(got, ref.gram(x, 16), ACCUMULATED, 'gram T = 16', ref.gram(abs(x), 16));
  });

  test('the result is exactly symmetric and the diagonal is the squared norms', async () => {
    const x = ref.normal([4, 5001], 78);
    await engine.scope(async () => {
      const stack = engine.tensor(Float32Array.from(x), [4, 5001]);
      const g = await ops.gram(stack).data();
      for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expect(g[i * 4 + j]).toBe(g[j * 4 + i]);
      const row = ops.slice(stack, 0, 2, 1);
      expect(g[2 * 4 + 2]).toBeCloseTo(await ops.sumOfSquares(row).item(), 1);
    });
  });

  test('errors name the op, the shape and the limit', async () => {
    await engine.scope(() => {
      const [tasks129, none, scalar] = [engine.zeros([129, 4], 'tasks129'), engine.zeros([0, 4], 'none'), engine.zeros([], 'scalar')];
      expectError(() => ops.gram(tasks129), 'gram', 'tasks129', '[129,4]', 'T = 129', `at most ${ops.MAX_GRAM_VECTORS}`);
      expectError(() => ops.gram(none), 'gram', 'none', '[0,4]', 'T >= 1');
      expectError(() => ops.gram(scalar), 'gram', 'scalar', '[]');
    });
  });
});

describe('weightedSum', () => {
  const cases: { name: string; shape: number[]; weights: number[] | 'tensor' }[] = [
    { name: 'coefficients not summing to 1', shape: [3, 7, 43], weights: [0.5, 2, -1.25] },
    { name: 'coefficients summing to 0', shape: [2, 301], weights: [1, -1] },
    { name: 'GPU tensor weights', shape: [4, 1001], weights: 'tensor' },
    { name: 'K = 1', shape: [1, 9], weights: [3] },
    { name: 'several workgroups', shape: [3, 100003], weights: [10, -30, 0.5] },
  ];
  for (const c of cases) {
    test(`${c.name}: [${c.shape}]`, async () => {
      const K = c.shape[0]!;
      const w = c.weights === 'tensor' ? ref.uniform([K], 90, -2, 2) : Float64Array.from(c.weights);
      const inputs: Input[] = [{ data: ref.normal(c.shape, 91 + K), shape: c.shape }];
      if (c.weights === 'tensor') inputs.push({ data: w, shape: [K], diff: false });
      await checkOp(`weightedSum ${c.name}`, {
        inputs,
        gpu: ([stack, wt]) => ops.weightedSum(stack!, c.weights === 'tensor' ? wt! : (c.weights as number[])),
        forward: ([stack]) => ({ data: ref.weightedSum(stack!, K, w), shape: c.shape.slice(1) }),
        grad: (_, dy) => [ref.weightedSumGrad(K, w, dy), null],
        fwdScale: ([stack]) => ref.weightedSum(abs(stack!), K, abs(w)),
      });
    });
  }

  test('into: writes a view of a flat gradient buffer in place, returns it, records nothing', async () => {
    const K = 3;
    const P = 257;
    const x = ref.normal([K, P], 92);
    const w = [0.25, -1.5, 2];
    await engine.scope(async () => {
      const target = engine.parameter(new Float32Array(P + 64).fill(7), [P + 64], 'flat');
      const stack = engine.parameter(Float32Array.from(x), [K, P], 'stack');
      const view = engine.view(target, [P], 'flat.head');
      const out = ops.weightedSum(stack, w, { into: view });
      expect(out).toBe(view);
      expect(out.node).toBeFalsy();
      const all = await target.data();
      expectClose(all.subarray(0, P), ref.weightedSum(x, K, w), ACCUMULATED, 'weightedSum into', ref.weightedSum(abs(x), K, w.map(Math.abs)));
      expect(Array.from(all.subarray(P))).toEqual(new Array(64).fill(7)); // the rest is untouched
      target.dispose();
      stack.dispose();
    });
  });

  test('weightedAverage still normalises (the same kernel with NORMALIZE on)', async () => {
    const x = ref.normal([2, 5], 93);
    await engine.scope(async () => {
      const stack = engine.tensor(Float32Array.from(x), [2, 5]);
      const avg = await ops.weightedAverage(stack, [1, 3]).data();
      expectClose(avg, ref.weightedSum(x, 2, [0.25, 0.75]), ACCUMULATED, 'weightedAverage');
    });
  });

  test('errors name the op and the shapes', async () => {
    await engine.scope(() => {
      const stack = engine.zeros([3, 4], 'grads');
      const [w2, none, small, alias] = [engine.zeros([2], 'w2'), engine.zeros([0, 4], 'none'), engine.zeros([5], 'small'), engine.view(stack, [4], 'alias')];
      expectError(() => ops.weightedSum(stack, [1, 2]), 'weightedSum', '2 weights', '[3,4]', 'K = 3');
      expectError(() => ops.weightedSum(stack, [1, Infinity, 2]), 'weightedSum', 'finite');
      expectError(() => ops.weightedSum(stack, w2), 'weightedSum', 'w2', '[2]', 'expected [3]');
      expectError(() => ops.weightedSum(none, []), 'weightedSum', 'K = 0');
      expectError(() => ops.weightedSum(stack, [1, 2, 3], { into: small }), 'weightedSum', 'small', '[5]', '5 elements', '[3,4]', 'has 4');
      expectError(() => ops.weightedSum(stack, [1, 2, 3], { into: alias }), 'weightedSum', 'alias', 'share a buffer');
    });
  });
});

describe('mixture', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 5, 7],
    [4, 16, 33],
    [8, 2, 300],
  ];
  for (const [E, B, F] of shapes) {
    test(`experts [${E}, ${B}, ${F}], gates [${B}, ${E}]`, async () => {
      await checkOp(`mixture ${E}x${B}x${F}`, {
        inputs: [
          { data: ref.normal([E, B, F], 94 + E), shape: [E, B, F] },
          { data: ref.softTargets(B, E, 95 + B), shape: [B, E] },
        ],
        gpu: ([experts, gates]) => ops.mixture(experts!, gates!),
        forward: ([experts, gates]) => ({ data: ref.mixture(experts!, gates!, E, B, F), shape: [B, F] }),
        grad: ([experts, gates], dy) => ref.mixtureGrad(experts!, gates!, E, B, F, dy),
        byAbs: true,
      });
    });
  }

  test('gradients flow through a softmax gate into the logits (as MMoE uses it)', async () => {
    const [E, B, F] = [3, 4, 5];
    const experts = ref.normal([E, B, F], 96);
    const logits = ref.normal([B, E], 97);
    const w = ref.normal([B, F], 98);
    const loss = (l: Float64Array) => ref.dot(ref.mixture(experts, ref.softmax(l, B, E), E, B, F), w);
    await engine.scope(async () => {
      const l = engine.parameter(Float32Array.from(logits), [B, E], 'logits');
      const out = ops.mixture(engine.tensor(Float32Array.from(experts), [E, B, F]), ops.softmax(l));
      const g = gradients(ops.sum(ops.mul(out, engine.tensor(Float32Array.from(w), [B, F]))), [l]).get(l)!;
      const idx = Array.from({ length: B * E }, (_, i) => i);
      expectClose(await g.data(), ref.finiteDifferences(loss, logits, idx), { atol: 1e-5, rtol: 1e-4 }, 'd(logits)');
      l.dispose();
    });
  });

  test('errors name the op and both shapes', async () => {
    await engine.scope(() => {
      const experts = engine.zeros([3, 4, 5], 'experts');
      const [gates, g33, flat, g] = [engine.zeros([4, 2], 'gates'), engine.zeros([3, 3], 'g33'), engine.zeros([4, 5], 'flat'), engine.zeros([4, 3], 'g')];
      expectError(() => ops.mixture(experts, gates), 'mixture', 'experts', '[3,4,5]', 'gates', '[4,2]', '[E, B, F]');
      expectError(() => ops.mixture(experts, g33), 'mixture', '[3,3]');
      expectError(() => ops.mixture(flat, g), 'mixture', '[4,5]');
    });
  });
});

describe('inContext', () => {
  test('a copy in the given context whose gradient passes through', async () => {
    const ctx = engine.context();
    await checkOp('inContext', {
      inputs: [{ data: ref.normal([3, 5], 96), shape: [3, 5] }],
      gpu: ([x]) => {
        const y = ops.inContext(ctx, x!);
        expect(y.engine).toBe(ctx);
        return y;
      },
      forward: ([x]) => ({ data: Float64Array.from(x!), shape: [3, 5] }),
      grad: (_, dy) => [Float64Array.from(dy)],
    });
  });

  test('refuses a freed tensor, naming the op and the tensor', () => {
    const t = engine.tensor([1, 2, 3], [3], 'freed');
    t.dispose();
    expectError(() => ops.inContext(engine, t), 'inContext', 'freed');
  });
});

describe('peak memory', () => {
  test('peakBytes keeps the high-water mark of bytes through frees and trims, until resetPeakMemory', async () => {
    await engine.trim();
    engine.resetPeakMemory();
    const start = engine.memory();
    expect(start.peakBytes).toBe(start.bytes);
    // An odd size: a size class no pooled buffer has, so the pool must make a new buffer.
    const big = engine.zeros([1_234_567], 'big');
    const size = Math.ceil((1_234_567 * 4) / 256) * 256;
    const held = engine.memory();
    expect(held.bytes).toBeGreaterThanOrEqual(start.bytes + size);
    expect(held.peakBytes).toBe(held.bytes);
    big.dispose();
    await engine.trim(); // the buffer is destroyed: bytes fall, the peak stays
    const after = engine.memory();
    expect(after.bytes).toBeLessThan(held.bytes);
    expect(after.peakBytes).toBe(held.peakBytes);
    engine.resetPeakMemory();
    expect(engine.memory().peakBytes).toBe(engine.memory().bytes);
    // Reusing a pooled buffer holds no new bytes; the peak does not move.
    const a = engine.zeros([1000], 'a');
    a.dispose();
    const peak = engine.memory().peakBytes;
    const b = engine.zeros([1000], 'b');
    expect(engine.memory().peakBytes).toBe(peak);
    b.dispose();
  });
});
