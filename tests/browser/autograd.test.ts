// Autograd and engine housekeeping: scopes and the buffer pool, gradient accumulation,
// gradients with respect to chosen tensors, per-task gradients through a shared layer, model
// surgery (get / replace), error messages, NaN detection in fit, and device loss.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  add,
  backward,
  Dense,
  Engine,
  fit,
  gradients,
  mse,
  mul,
  ReLU,
  relu,
  Sequential,
  softmaxCrossEntropy,
  sum,
  type Tensor,
} from '../../src/index.js';
import { oneHot } from '../../src/paradigms/train.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

function mlp(seed = 1): Sequential {
  const model = new Sequential({
    fc1: new Dense(engine, 6, 8, { seed }),
    relu1: ReLU(),
    fc2: new Dense(engine, 8, 8, { seed: seed + 1 }),
    relu2: ReLU(),
    fc3: new Dense(engine, 8, 3, { seed: seed + 2 }),
  });
  model.parameters();
  return model;
}

function expectAllClose(actual: Float32Array, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    expect(Math.abs(actual[i]! - expected[i]!), `element ${i}: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(tol * (1 + Math.abs(expected[i]!)));
  }
}

describe('scopes and the buffer pool', () => {
  test('a scope frees its intermediates; returned tensors survive', async () => {
    await engine.sync();
    const before = engine.memory().inUseBuffers;
    let a: Tensor | null = null;
    let b: Tensor | null = null;
    const { out, extra } = await engine.scope(async () => {
      a = engine.tensor([1, 2, 3, 4], [4], 'a');
      b = add(a, a);
      const c = mul(b, b);
      await engine.flush(); // intermediates stay alive across awaits inside the scope
      const d = engine.tensor([1, 1, 1, 1], [4], 'd');
      return { out: add(c, d), extra: [d] };
    });
    expect(a!.disposed).toBe(true);
    expect(b!.disposed).toBe(true);
    expect(out.disposed).toBe(false);
    expect(extra[0]!.disposed).toBe(false);
    expect(engine.memory().inUseBuffers).toBe(before + 2);
    expect(Array.from(await out.data())).toEqual([5, 17, 37, 65]);
    out.dispose();
    extra[0]!.dispose();
    expect(engine.memory().inUseBuffers).toBe(before);
  });

  test('nested scopes pass returned tensors to the outer scope', async () => {
    const before = engine.memory().inUseBuffers;
    let inner: Tensor | null = null;
    await engine.scope(async () => {
      inner = await engine.scope(() => engine.tensor([1, 2], [2], 'inner'));
      expect(inner.disposed).toBe(false);
    });
    expect(inner!.disposed).toBe(true);
    expect(engine.memory().inUseBuffers).toBe(before);
  });

  test('a scope that throws still frees its intermediates', async () => {
    const before = engine.memory().inUseBuffers;
    await expect(
      engine.scope(() => {
        engine.tensor([1, 2], [2]);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    // Tensors made in a failed scope pass to nothing; they must not stay allocated forever.
    expect(engine.memory().inUseBuffers).toBe(before);
  });

  test('the pool reuses buffers: a repeated training step allocates no new buffer', async () => {
    const model = mlp(3);
    const optimizer = new Adam(model.parameters(), { lr: 0.01 });
    const x = engine.randn([4, 6], { seed: 1 });
    const t = engine.tensor(oneHot([0, 1, 2, 0], 3), [4, 3]);
    const step = () =>
      engine.scope(async () => {
        backward(softmaxCrossEntropy(model.forward(x), t));
        optimizer.step();
        optimizer.zeroGrad();
        await engine.sync();
      });
    // The first step creates the optimizer state after backward, where it reuses a buffer that
    // backward just freed; from the second step on that buffer is live at the peak, so the pool
    // is warm after two steps. From then on a step must not allocate a single buffer.
    await step();
    const first = engine.memory();
    await step();
    const warm = engine.memory();
    expect(warm.buffers - first.buffers).toBeLessThanOrEqual(1);
    for (let i = 0; i < 3; i++) {
      await step();
      expect(engine.memory()).toEqual(warm);
    }
    expect(warm.inUseBuffers).toBe(first.inUseBuffers); // nothing leaks out of a step
    optimizer.dispose();
    model.dispose();
    x.dispose();
    t.dispose();
  });
});

describe('gradients', () => {
  test('gradients accumulate across two backward calls', async () => {
    const p = engine.parameter([1, -2, 3], [3], 'p');
    const c = engine.tensor([0.5, 2, -1], [3], 'c');
    await engine.scope(() => {
      const loss = sum(mul(p, c));
      backward(loss);
      backward(loss); // same graph twice
    });
    expect(Array.from(await p.grad!.data())).toEqual([1, 4, -2]);
    await engine.scope(() => backward(sum(mul(mul(p, p), c)))); // + 2 c p
    expect(Array.from(await p.grad!.data())).toEqual([2, -4, -8]);
    p.dispose();
    c.dispose();
  });

  test('gradients(loss, [h]) for a tensor that is not a parameter', async () => {
    const p = engine.parameter([1, -2, 3, 0.5], [4], 'p');
    const a = engine.tensor([2, 1, -1, 4], [4], 'a');
    await engine.scope(async () => {
      const h = mul(p, a); // [2, -2, -3, 2]
      const loss = sum(mul(h, h));
      const g = gradients(loss, [h, p]);
      expect([...g.keys()]).toEqual(expect.arrayContaining([h, p]));
      expect(Array.from(await g.get(h)!.data())).toEqual([4, -4, -6, 4]); // 2h
      expect(Array.from(await g.get(p)!.data())).toEqual([8, -4, 6, 16]); // 2h a
      expect(p.grad).toBeNull(); // gradients() does not touch .grad
    });
    p.dispose();
    a.dispose();
  });

  test('gradients(loss, [x]) for a model input', async () => {
    const model = mlp(5);
    const x = engine.randn([2, 6], { seed: 2, name: 'x' });
    const t = engine.tensor(oneHot([1, 2], 3), [2, 3]);
    await engine.scope(async () => {
      // An input is not recorded unless asked for: gradients() says so instead of returning nothing.
      expect(() => gradients(softmaxCrossEntropy(model.forward(x), t), [x])).toThrow(/x \[2,6\] is not recorded.*requiresGrad/);
      x.requiresGrad = true;
      const g = gradients(softmaxCrossEntropy(model.forward(x), t), [x]);
      const dx = g.get(x);
      expect(dx, 'gradient for the input x').toBeDefined();
      expect(dx!.shape).toEqual([2, 6]);
      // Check against finite differences of the loss.
      const analytic = await dx!.data();
      const base = await x.data();
      const lossAt = async (values: Float32Array) =>
        engine.scope(() => softmaxCrossEntropy(model.predict(engine.tensor(values, [2, 6])), t).item());
      const h = 1e-2;
      for (const i of [0, 5, 7]) {
        const plus = Float32Array.from(base);
        const minus = Float32Array.from(base);
        plus[i]! += h;
        minus[i]! -= h;
        const numeric = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * h);
        expect(Math.abs(analytic[i]! - numeric)).toBeLessThan(2e-3);
      }
    });
    model.dispose();
  });

  test('per-task gradients through a shared layer from one forward graph', async () => {
    const shared = new Dense(engine, 5, 6, { seed: 21 });
    const head1 = new Dense(engine, 6, 3, { seed: 22 });
    const head2 = new Dense(engine, 6, 2, { seed: 23 });
    const model = new Sequential({ shared, head1, head2 });
    const names = model.parameters();
    const sharedParams = [names.get('shared.weight')!, names.get('shared.bias')!];
    const x = engine.randn([4, 5], { seed: 24 });
    const t1 = engine.tensor(oneHot([0, 1, 2, 1], 3), [4, 3]);
    const t2 = engine.randn([4, 2], { seed: 25 });
    await engine.scope(async () => {
      const h = relu(shared.forward(x));
      const loss1 = softmaxCrossEntropy(head1.forward(h), t1);
      const loss2 = mse(head2.forward(h), t2);
      const g1 = gradients(loss1, sharedParams);
      const g2 = gradients(loss2, sharedParams);
      for (const p of sharedParams) {
        expect(g1.get(p)!.shape).toEqual(p.shape);
        expect(g2.get(p)!.shape).toEqual(p.shape);
      }
      // Heads get no gradient from the other task.
      expect(gradients(loss1, [head2.weight]).size).toBe(0);
      backward(add(loss1, loss2));
      for (const p of sharedParams) {
        const a = await g1.get(p)!.data();
        const b = await g2.get(p)!.data();
        expectAllClose(await p.grad!.data(), a.map((v, i) => v + b[i]!));
        expect(a.some((v) => v !== 0) && b.some((v) => v !== 0)).toBe(true);
      }
      // Each head's gradient comes from its own loss only.
      const h1 = gradients(loss1, [head1.weight]).get(head1.weight)!;
      expectAllClose(await head1.weight.grad!.data(), await h1.data());
    });
    model.dispose();
  });

  test('backward on a non-scalar loss without a seed throws', async () => {
    const p = engine.parameter([1, 2], [2], 'p');
    await engine.scope(() => {
      expect(() => backward(mul(p, p))).toThrow(/\[2\].*seed/);
    });
    p.dispose();
  });
});

describe('model surgery', () => {
  test('get and replace a head; parameters() lists the new layer', async () => {
    const model = mlp(7);
    const fc1 = model.get('fc1');
    expect(fc1).toBeInstanceOf(Dense);
    expect((fc1 as Dense).weight).toBe(model.parameters().get('fc1.weight'));
    const oldHead = model.get('fc3') as Dense;
    const head = new Dense(engine, 8, 5, { seed: 70 });
    const old = model.replace('fc3', head);
    expect(old).toBe(oldHead);
    old.dispose();
    const params = model.parameters();
    expect([...params.keys()]).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias']);
    expect(params.get('fc3.weight')).toBe(head.weight);
    expect(params.get('fc3.weight')!.shape).toEqual([5, 8]);
    const y = await engine.scope(async () => {
      const out = model.predict(engine.randn([2, 6], { seed: 3 }));
      expect(out.shape).toEqual([2, 5]);
      return out.data();
    });
    expect(y.every(Number.isFinite)).toBe(true);
    expect(() => model.replace('nope', head)).toThrow(/nope.*fc1, relu1, fc2, relu2, fc3/);
    expect(() => model.get('nope')).toThrow(/nope/);

    // Cutting at a named layer: the base shares the model's parameters and computes its features.
    const base = model.upTo('relu2');
    expect(base.names()).toEqual(['fc1', 'relu1', 'fc2', 'relu2']);
    expect(base.parameters().get('fc2.weight')).toBe(params.get('fc2.weight'));
    const [features, full, fromFeatures] = await engine.scope(async () => {
      const x = engine.randn([3, 6], { seed: 4 });
      const f = base.predict(x);
      return Promise.all([f.data(), model.predict(x).data(), head.predict(f).data()]);
    });
    expect(features.length).toBe(3 * 8);
    expect(Array.from(fromFeatures)).toEqual(Array.from(full));
    expect(() => model.upTo('nope')).toThrow(/Sequential.upTo: no layer named "nope"/);
    model.dispose();
  });
});

describe('error messages', () => {
  test('freezing an unknown layer names it and lists the layers', () => {
    const model = mlp(8);
    expect(() => model.freeze('fc9')).toThrow(/freeze: no layer or parameter named "fc9".*fc1/);
    expect(() => model.unfreeze('fc1.nope')).toThrow(/"fc1\.nope"/);
    model.dispose();
  });

  test('Dense with the wrong input shape names both shapes', async () => {
    const model = mlp(9);
    await engine.scope(() => {
      const x = engine.zeros([2, 5], 'wrongInput');
      expect(() => model.forward(x)).toThrow(/Dense\(6 -> 8\).*wrongInput.*\[2,5\].*\[batch, 6\]/);
    });
    model.dispose();
  });

  test('a tensor over maxStorageBufferBindingSize throws naming the limit, before allocating', () => {
    const max = engine.limits.maxStorageBufferBindingSize;
    const before = engine.memory();
    const elements = Math.floor(max / 4) + 1;
    expect(() => engine.empty([elements], 'huge')).toThrow(new RegExp(`huge.*maxStorageBufferBindingSize \\(${max}\\)`));
    expect(() => engine.zeros([2, Math.ceil(elements / 2)], 'huge2')).toThrow(/maxStorageBufferBindingSize/);
    expect(engine.memory()).toEqual(before);
  });

  test('a disposed tensor used in an op throws naming it', async () => {
    const a = engine.tensor([1, 2], [2], 'myDisposedTensor');
    const b = engine.tensor([3, 4], [2], 'b');
    a.dispose();
    expect(() => add(a, b)).toThrow(/myDisposedTensor.*disposed/);
    expect(() => add(b, a)).toThrow(/myDisposedTensor.*disposed/);
    await expect(a.data()).rejects.toThrow(/myDisposedTensor/);
    expect(() => a.dispose()).not.toThrow(); // disposing twice is harmless
    b.dispose();
  });

  test('fit with checkFinite throws on a NaN loss', async () => {
    const model = new Sequential({ fc1: new Dense(engine, 4, 3, { seed: 1 }) });
    const optimizer = new Adam(model.parameters(), { lr: 0.01 });
    const inputs = new Float32Array(8 * 4).fill(0.5);
    inputs[5] = NaN;
    const data = { inputs, labels: [0, 1, 2, 0, 1, 2, 0, 1], count: 8, features: 4, classes: 3 };
    await expect(fit(engine, model, optimizer, data, { epochs: 1, batchSize: 8, logEvery: 1, checkFinite: true })).rejects.toThrow(/train: after step 1 \(epoch 1\): loss is NaN/);
    // Without the check, fit reports the NaN instead.
    const model2 = new Sequential({ fc1: new Dense(engine, 4, 3, { seed: 1 }) });
    const result = await fit(engine, model2, new Adam(model2.parameters(), { lr: 0.01 }), data, { epochs: 1, batchSize: 8, logEvery: 1 });
    expect(result.losses[0]!.loss).toBeNaN();
    model.dispose();
    model2.dispose();
  });
});

describe('device loss', () => {
  test('destroying the device rejects a later read and fires onLost', async () => {
    const e = await Engine.create();
    const t = e.tensor([1, 2, 3], [3], 'beforeLoss');
    expect(Array.from(await t.data())).toEqual([1, 2, 3]);
    const lost: Error[] = [];
    e.onLost((err) => lost.push(err));
    e.device.destroy();
    const read = t.data();
    const outcome = await Promise.race([
      read.then(
        () => 'resolved',
        (err: Error) => err.message,
      ),
      new Promise<string>((r) => setTimeout(() => r('hung'), 10_000)),
    ]);
    expect(outcome).toMatch(/lost/i);
    await new Promise((r) => setTimeout(r, 0));
    expect(lost.length).toBe(1);
    expect(lost[0]!.message).toMatch(/GPU device lost \(destroyed\)/);
    expect(e.lost).toBe(true);
    // Later calls fail at once with the same error.
    expect(() => e.tensor([1], [1])).toThrow(/device lost/);
    await expect(t.data()).rejects.toThrow(/device lost/);
    let late: Error | null = null;
    e.onLost((err) => (late = err));
    expect(late).toBe(lost[0]);
  });
});
