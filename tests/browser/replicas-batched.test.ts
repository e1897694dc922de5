// Batched replicas: the matmul kernel over a batch of strided matrices, replicaLinear (K
// replicas' dense layer in one kernel, gradients written straight into the [K, P] gradient
// block) and Replicas.forward, against float64 references and against each replica on its own.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Activation,
  backward,
  BatchNorm,
  Dense,
  Engine,
  Flatten,
  gradients,
  mul,
  ReLU,
  replicaLinear,
  replicate,
  reshape,
  scale,
  Sequential,
  SGD,
  softmaxCrossEntropy,
  sum,
  type FusedActivation,
  type Replicas,
  type Tensor,
} from '../../src/index.js';
import { batchedGemm } from '../../src/engine/ops/matmul.js';
import { checkBatchedGemm, type BatchedGemmCase } from '../matmul-check.js';
import { expectClose } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const f32 = (x: Float64Array) => Float32Array.from(x);
const TOL = { atol: 1e-5, rtol: 1e-5 };

describe('batched matmul', () => {
  const cases: Record<string, BatchedGemmCase> = {
    'aligned, dense batches': { batch: 3, M: 8, N: 12, K: 16, a: [0, 128], b: [0, 192], c: [0, 96] },
    'unaligned shapes, offsets and strides, A transposed': { batch: 3, M: 5, N: 7, K: 3, transA: true, a: [1, 17], b: [2, 23], c: [3, 37] },
    'aligned, B shared by every batch, B transposed': { batch: 2, M: 8, N: 8, K: 8, transB: true, a: [4, 68], b: [8, 0], c: [12, 72] },
    'aligned shapes, unaligned stride of C': { batch: 2, M: 4, N: 8, K: 4, a: [0, 16], b: [0, 32], c: [0, 33] },
    // The vec4 path with rows past M or N clamped, and with a scalar tail of K % 4 steps.
    'M and N not multiples of 4, B transposed (a dense layer on a batch of 10)': { batch: 3, M: 10, N: 7, K: 12, transB: true, a: [4, 124], b: [8, 84], c: [1, 71] },
    'K not a multiple of 4, A transposed (a weight gradient on a batch of 10)': { batch: 2, M: 8, N: 12, K: 10, transA: true, a: [0, 80], b: [4, 124], c: [0, 96] },
    'both transposed, bias per batch, relu': { batch: 4, M: 4, N: 8, K: 4, transA: true, transB: true, a: [64, 100], b: [0, 32], c: [64, 100], bias: [3, 9], activation: 'relu' },
  };
  for (const [name, c] of Object.entries(cases)) {
    test(name, () => checkBatchedGemm(engine, name, c, TOL));
  }

  test('an operand that does not fit its tensor names the op, the operand and the extent', () => {
    const t = engine.tensor(new Float32Array(20), [20], 'small');
    const c = engine.empty([8], 'c');
    expect(() => batchedGemm('test', { batch: 2, M: 2, N: 2, K: 4, a: { tensor: t, offset: 5, stride: 8 }, b: { tensor: t }, c: { tensor: c, stride: 4 } })).toThrow(
      /test: a = small \[20\] is too small for 2 matrices of 8 elements from element 5, 8 apart \(needs 21\)/,
    );
    expect(() => batchedGemm('test', { batch: 2, M: 2, N: 2, K: 4, a: { tensor: t, offset: 4, stride: 8 }, b: { tensor: t }, c: { tensor: c, stride: 5 } })).toThrow(/test: c = c \[8\] .* \(needs 9\)/);
    t.dispose();
    c.dispose();
  });
});

/** Writes seeded random values into every parameter of every replica, so that replicas differ. */
function scramble(reps: Replicas<Sequential>, seed: number): void {
  reps.models.forEach((m, k) => [...m.parameters().values()].forEach((p, i) => engine.write(p, Float32Array.from(ref.normal(p.shape, seed + 100 * k + i, 0.5)))));
}

async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

describe('replicaLinear', () => {
  const shapes: [number, number, number, number, FusedActivation | null, boolean][] = [
    // K, B, in, out, activation, bias
    [3, 5, 6, 7, null, true],
    [2, 4, 8, 8, 'relu', true],
    [4, 3, 5, 4, 'leaky_relu', false],
    [2, 6, 4, 3, 'tanh', true],
  ];
  for (const [K, B, inF, outF, act, hasBias] of shapes) {
    test(`K=${K} B=${B} ${inF} -> ${outF} ${act ?? 'no activation'}${hasBias ? '' : ', no bias'}: one dispatch each way, against float64 and against each replica's linear`, async () => {
      const slope = 0.1;
      const source = new Sequential({ fc: new Dense(engine, inF, outF, { bias: hasBias, seed: 5 }), ...(act ? { act: new Activation(act, act === 'leaky_relu' ? slope : 0) } : {}) });
      const reps = replicate(source, K);
      scramble(reps, 10 * K + inF);
      const fc0 = reps.model(0).children()[0]![1] as Dense;
      const weights = reps.rowsOf(fc0.weight);
      const biases = fc0.bias ? reps.rowsOf(fc0.bias) : null;
      const X = ref.normal([K, B, inF], 7);
      const Wy = ref.normal([K, B, outF], 8); // loss = sum(y * Wy): dy = Wy
      const x = engine.parameter(f32(X), [K, B, inF], 'x'); // a parameter, so that backward writes dx too
      const Ws = await Promise.all(weights.map(values));
      const bs = biases ? await Promise.all(biases.map(values)) : null;

      // float64 reference, replica by replica
      const want = { y: new Float64Array(K * B * outF), dx: new Float64Array(K * B * inF), dW: [] as Float64Array[], db: [] as Float64Array[] };
      for (let k = 0; k < K; k++) {
        const xk = X.slice(k * B * inF, (k + 1) * B * inF);
        const z = ref.matmul(xk, [B, inF], Ws[k]!, [outF, inF], false, true).data.map((v, e) => v + (bs ? bs[k]![e % outF]! : 0));
        const y = act ? ref.unary(act, z, slope) : z;
        want.y.set(y, k * B * outF);
        const dz = act ? ref.unaryGrad(act, z, Wy.slice(k * B * outF, (k + 1) * B * outF), slope) : Wy.slice(k * B * outF, (k + 1) * B * outF);
        const [dxk, dWk] = ref.matmulGrad(xk, [B, inF], Ws[k]!, [outF, inF], dz, false, true);
        want.dx.set(dxk, k * B * inF);
        want.dW.push(dWk);
        want.db.push(ref.reduce(dz, [B, outF], 0, false).data);
      }

      await engine.scope(async () => {
        const { result: y, dispatches: fwd } = engine.traceDispatches(() => replicaLinear(x, weights, biases, act, slope));
        expect(fwd.map((d) => d.kernel)).toEqual([expect.stringMatching(/^matmul/)]); // one matmul variant's dispatch
        expect([...y.shape]).toEqual([K, B, outF]);
        expectClose(await y.data(), want.y, TOL, 'forward');
        const loss = sum(mul(y, engine.tensor(f32(Wy), [K, B, outF], 'Wy')));
        const { dispatches: bwd } = engine.traceDispatches(() => backward(loss));
        // dx, every dW, every db: one matmul each (plus the activation's derivative and filling dy, ones).
        expect(bwd.filter((d) => d.kernel.startsWith('matmul')).length).toBe(hasBias ? 3 : 2);
      });
      expectClose(await x.grad!.data(), want.dx, TOL, 'dx');
      const got = { dW: await Promise.all(weights.map((w) => w.grad!.data())), db: biases ? await Promise.all(biases.map((b) => b.grad!.data())) : [] };
      for (let k = 0; k < K; k++) {
        expectClose(got.dW[k]!, want.dW[k]!, TOL, `dW of replica ${k}`);
        if (biases) expectClose(got.db[k]!, want.db[k]!, TOL, `db of replica ${k}`);
      }

      // Each replica's own model (linear, fused as Sequential fuses it) gives the same.
      for (let k = 0; k < K; k++) {
        const m = reps.model(k);
        m.zeroGrad();
        x.zeroGrad();
        await engine.scope(async () => {
          const xk = engine.tensor(f32(X.slice(k * B * inF, (k + 1) * B * inF)), [B, inF], 'xk');
          const yk = m.forward(xk);
          expectClose(await yk.data(), want.y.slice(k * B * outF, (k + 1) * B * outF), TOL, `replica ${k} on its own: forward`);
          backward(sum(mul(yk, engine.tensor(f32(Wy.slice(k * B * outF, (k + 1) * B * outF)), [B, outF], 'Wyk'))));
        });
        expectClose(await weights[k]!.grad!.data(), got.dW[k]!, TOL, `replica ${k} on its own: dW`);
        if (biases) expectClose(await biases[k]!.grad!.data(), got.db[k]!, TOL, `replica ${k} on its own: db`);
      }
      x.dispose();
      reps.dispose();
      source.dispose();
    });
  }
});

describe('Replicas.forward', () => {
  const K = 4;
  const B = 6;
  const C = 5;
  const mlp = () =>
    new Sequential({
      flat: new Flatten(),
      fc1: new Dense(engine, 12, 16, { seed: 1 }),
      relu1: ReLU(), // fused into fc1's kernel
      fc2: new Dense(engine, 16, 10, { seed: 2 }),
      gelu: new Activation('gelu'), // not fusable: its own kernel
      fc3: new Dense(engine, 10, C, { seed: 3 }),
    });
  const X = ref.normal([K, B, 3, 4], 21);
  const T = Float32Array.from(ref.oneHot(K * B, C, 22));

  /** K times the mean loss over all K * B rows: each replica gets the gradient of its own mean loss. */
  function batchedLoss(reps: Replicas<Sequential>): Tensor {
    const out = reps.forward(engine.tensor(f32(X), [K, B, 3, 4], 'X'));
    return scale(softmaxCrossEntropy(reshape(out, [K * B, C]), engine.tensor(T, [K * B, C], 'T')), K);
  }

  test('one SGD step over all replicas trains each as training it alone on its batch does', async () => {
    const source = mlp();
    const batched = replicate(source, K);
    const alone = replicate(source, K);
    scramble(batched, 30);
    scramble(alone, 30);
    const joint = new SGD(batched, { lr: 0.1 });
    const each = new SGD(alone, { lr: 0.1 });
    for (let step = 0; step < 3; step++) {
      await engine.scope(async () => {
        const { dispatches } = engine.traceDispatches(() => batchedLoss(batched));
        expect(dispatches.filter((d) => d.kernel.startsWith('matmul')).length).toBe(3); // one per layer for all K
        backward(batchedLoss(batched));
        joint.step();
        joint.zeroGrad();
        for (let k = 0; k < K; k++) {
          const xk = engine.tensor(f32(X.slice(k * B * 12, (k + 1) * B * 12)), [B, 3, 4], 'xk');
          backward(softmaxCrossEntropy(alone.model(k).forward(xk), engine.tensor(T.slice(k * B * C, (k + 1) * B * C), [B, C], 'tk')));
        }
        each.step();
        each.zeroGrad();
        await engine.flush();
      });
    }
    const got = await batched.weights().data();
    const want = await alone.weights().data();
    expectClose(got, want, { atol: 1e-5, rtol: 1e-4 }, 'weights after 3 steps');
    // The replicas trained apart.
    const P = batched.store.size;
    expect(Array.from(got.slice(0, P))).not.toEqual(Array.from(got.slice(P, 2 * P)));
    joint.dispose();
    each.dispose();
    batched.dispose();
    alone.dispose();
    source.dispose();
  });

  test('frozen layers (frozen in every replica) get no gradient and stay as they are', async () => {
    const source = mlp();
    source.freeze('fc1');
    const reps = replicate(source, K);
    const optimizer = new SGD(reps, { lr: 0.1 });
    const before = await reps.weights().data();
    await engine.scope(async () => {
      backward(batchedLoss(reps));
      optimizer.step();
    });
    const fc1 = (reps.model(2).children()[1]![1] as Dense).weight;
    expect(fc1.grad).toBeNull();
    const after = await reps.weights().data();
    const at = fc1.flatOffset;
    expect(Array.from(after.slice(at, at + fc1.size))).toEqual(Array.from(before.slice(at, at + fc1.size)));
    expect(Array.from(after)).not.toEqual(Array.from(before));
    optimizer.dispose();
    reps.dispose();
    source.dispose();
  });
});

describe('errors', () => {
  test('a layer batched forward does not support is named', async () => {
    const source = new Sequential({ fc: new Dense(engine, 4, 6), bn: new BatchNorm(engine, 6) });
    const reps = replicate(source, 2);
    await engine.scope(() => {
      expect(() => reps.forward(engine.zeros([2, 3, 4]))).toThrow(/Replicas\.forward: layer bn is a BatchNorm; batched forward supports only a Sequential of Dense, Activation, Flatten and Dropout layers/);
      expect(() => reps.forward(engine.zeros([3, 3, 4]))).toThrow(/Replicas\.forward: input zeros has shape \[3,3,4\]; expected \[2, batch, \.\.\.\]/);
    });
    reps.dispose();
    source.dispose();
  });

  test('parameters that are not one slot of consecutive replicas of one store', async () => {
    const source = new Sequential({ fc: new Dense(engine, 4, 6), fc2: new Dense(engine, 6, 5) });
    const a = replicate(source, 2);
    const b = replicate(source, 2);
    const [fc, fc2] = a.model(0).children().map(([, l]) => l as Dense);
    const x = engine.zeros([2, 3, 4]);
    const w = a.rowsOf(fc!.weight);
    const other = b.rowsOf((b.model(0).children()[0]![1] as Dense).weight);
    expect(() => replicaLinear(x, [w[0]!, other[1]!], null)).toThrow(/replicaLinear: weights must be one parameter of consecutive replicas .*weights\[1\] .* of store \d+, weights\[0\] .* of store \d+/);
    expect(() => replicaLinear(x, [w[0]!, a.rowsOf(fc2!.weight)[1]!], null)).toThrow(/replicaLinear: weights must be .*weights\[1\] .* is slot 2 of row 1/);
    expect(() => replicaLinear(x, [w[1]!, w[0]!], null)).toThrow(/replicaLinear: weights must be one parameter of consecutive replicas/);
    expect(() => replicaLinear(x, [w[0]!], null)).toThrow(/replicaLinear: 1 weights for x's 2 replicas/);
    expect(() => replicaLinear(x, w, a.rowsOf(fc2!.bias!))).toThrow(/replicaLinear: bias .* \[5\] does not match weight .* \[6,4\]/);
    w[1]!.freeze();
    expect(() => replicaLinear(x, w, null)).toThrow(/replicaLinear: weights .* are frozen in some replicas and not in others/);
    x.dispose();
    a.dispose();
    b.dispose();
    source.dispose();
  });

  test('a gradient already present, a masked replica, or gradients() are refused', async () => {
    const source = new Sequential({ fc: new Dense(engine, 4, 6) });
    const reps = replicate(source, 2);
    const fc = reps.model(0).children()[0]![1] as Dense;
    const weights = reps.rowsOf(fc.weight);
    const biases = reps.rowsOf(fc.bias!);
    const lossOf = () => sum(replicaLinear(engine.rand([2, 3, 4], { seed: 1 }), weights, biases));
    await engine.scope(() => {
      backward(lossOf());
      expect(() => backward(lossOf())).toThrow(/replicaLinear: .* \(replica 0\) already has a gradient; replicaLinear writes every replica's gradient straight into its region, so it needs empty, unmasked replica gradients \(zeroGrad after each step\)/);
      for (const p of [...weights, ...biases]) p.zeroGrad();
      expect(() => gradients(lossOf(), weights)).toThrow(/replicaLinear: .* is not written by backward\(\) alone/);
      // Replica 1 already has its gradient from elsewhere: refused before anything is written.
      reps.model(1).zeroGrad();
      backward(sum(reps.model(1).forward(engine.rand([3, 4], { seed: 2 }))));
      expect(() => backward(lossOf())).toThrow(/\(replica 1\) already has a gradient/);
      reps.model(1).zeroGrad();
      weights[1]!.setMask(new Array(24).fill(1));
      expect(() => backward(lossOf())).toThrow(/\(replica 1\) is masked/);
    });
    reps.dispose();
    source.dispose();
  });
});
