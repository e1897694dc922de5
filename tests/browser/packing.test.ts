// Optimizers pack each parameter group into one buffer and update it with one kernel per step.
// A parameter joins its group's pack on its first update (frozen ones take no space), with the
// state of those already there carried over and its own step count (torch semantics).
import { beforeAll, expect, test } from 'vitest';
import { Adam, backward, Engine, mul, SGD, sum, type Parameter, type Tensor } from '../../src/index.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

/** loss = sum(a * ca) + sum(b * cb): the gradients are the constants, exactly. */
function step(a: Parameter, b: Parameter, ca: Tensor, cb: Tensor, optimizer: SGD | Adam): Promise<void> {
  return engine.scope(async () => {
    backward(sum(mul(a, ca)) /* b's term only when b is trainable */);
    if (!b.frozen) backward(sum(mul(b, cb)));
    optimizer.step();
    optimizer.zeroGrad();
    await engine.flush();
  });
}

test('one update kernel per group and step, whatever the number of parameters', async () => {
  const ps = [0, 1, 2, 3].map((i) => engine.parameter([1, 2, 3, 4, 5], [5], `p${i}`));
  const optimizer = new Adam([{ params: ps.slice(0, 3) }, { params: ps.slice(3), lr: 0.1 }], { lr: 0.01 });
  const { dispatches } = engine.traceDispatches(() => {
    for (const p of ps) backward(sum(mul(p, p)));
    optimizer.step();
  });
  expect(dispatches.filter((d) => d.kernel === 'adam').length).toBe(2);
  optimizer.dispose();
  for (const p of ps) p.dispose();
});

test('a parameter unfrozen later joins the pack with its own step count; the others keep their state', async () => {
  const ga = [0.5, -1, 2];
  const gb = [1, -0.25];
  for (const kind of ['sgd', 'adam'] as const) {
    const a = engine.parameter([1, 2, 3], [3], 'a');
    const b = engine.parameter([-1, 4], [2], 'b');
    const ca = engine.tensor(ga, [3]);
    const cb = engine.tensor(gb, [2]);
    const lr = 0.1;
    const optimizer = kind === 'sgd' ? new SGD([a, b], { lr, momentum: 0.9 }) : new Adam([a, b], { lr });
    b.freeze();
    await step(a, b, ca, cb, optimizer); // only a is packed and updated
    b.unfreeze();
    await step(a, b, ca, cb, optimizer); // b joins: repacked, a's state carried over
    await step(a, b, ca, cb, optimizer);

    // float64 reference of torch's per-parameter semantics: a has 3 updates, b has 2.
    const reference = (w0: number[], g: number[], updates: number): number[] =>
      w0.map((w, i) => {
        let v = 0;
        let m = 0;
        let s = 0;
        for (let t = 1; t <= updates; t++) {
          const gi = g[i]!;
          if (kind === 'sgd') {
            v = 0.9 * v + gi;
            w -= lr * v;
          } else {
            m = 0.9 * m + 0.1 * gi;
            s = 0.999 * s + 0.001 * gi * gi;
            w -= (lr * (m / (1 - 0.9 ** t))) / (Math.sqrt(s / (1 - 0.999 ** t)) + 1e-8);
          }
        }
        return w;
      });
    const wantA = reference([1, 2, 3], ga, 3);
    const wantB = reference([-1, 4], gb, 2);
    const [gotA, gotB] = await Promise.all([a.data(), b.data()]);
    gotA.forEach((v, i) => expect(v, `${kind} a[${i}]`).toBeCloseTo(wantA[i]!, 5));
    gotB.forEach((v, i) => expect(v, `${kind} b[${i}]`).toBeCloseTo(wantB[i]!, 5));
    expect(optimizer.stateOf(a).length).toBe(kind === 'sgd' ? 1 : 2);

    // Another optimizer that packs the same parameters makes the first one refuse to step.
    const other = new SGD([a, b], { lr: 0.01 });
    await step(a, b, ca, cb, other);
    await expect(step(a, b, ca, cb, optimizer)).rejects.toThrow(/parameter a was packed by another optimizer since/);
    other.dispose();
    optimizer.dispose();
    for (const t of [a, b, ca, cb]) t.dispose();
  }
});
