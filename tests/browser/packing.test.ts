// Optimizers update each parameter group with one kernel per step over the model's flat buffers,
// their state laid out like their parameters. A parameter frozen at first joins the updates with
// its own step count when unfrozen, the others keeping their state (torch semantics).
import { beforeAll, expect, test } from 'vitest';
import { Adam, backward, Dense, Engine, mul, Sequential, SGD, sum, type Parameter, type Tensor } from '../../src/index.js';

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

test('one update kernel per group and step, whatever the number of parameters; one per store when they live apart', async () => {
  const model = new Sequential({ a: new Dense(engine, 3, 4), b: new Dense(engine, 4, 4), c: new Dense(engine, 4, 2) });
  const ps = [...model.parameters().values()];
  const optimizer = new Adam([{ params: ps.slice(0, 4) }, { params: ps.slice(4), lr: 0.1 }], { lr: 0.01 });
  const { dispatches } = engine.traceDispatches(() => {
    for (const p of ps) backward(sum(mul(p, p)));
    optimizer.step();
  });
  expect(dispatches.filter((d) => d.kernel === 'adam').length).toBe(2);
  // Parameters of no model each have a store of their own: a group over two of them is two dispatches.
  const loose = [0, 1].map((i) => engine.parameter([1, 2, 3], [3], `loose${i}`));
  const other = new Adam(loose, { lr: 0.01 });
  const apart = engine.traceDispatches(() => {
    for (const p of loose) backward(sum(mul(p, p)));
    other.step();
  });
  expect(apart.dispatches.filter((d) => d.kernel === 'adam').length).toBe(2);
  for (const o of [optimizer, other]) o.dispose();
  for (const p of loose) p.dispose();
  model.dispose();
});

test('a parameter unfrozen later joins the updates with its own step count; the others keep their state', async () => {
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
    await step(a, b, ca, cb, optimizer); // only a is updated
    b.unfreeze();
    await step(a, b, ca, cb, optimizer); // b joins; a keeps its state
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
    // Frozen again, b stays as it is while a goes on (fewer parameters updated than the step before).
    b.freeze();
    const bBefore = Array.from(await b.data());
    await step(a, b, ca, cb, optimizer);
    expect(Array.from(await b.data())).toEqual(bBefore);
    const wantA4 = reference([1, 2, 3], ga, 4);
    (await a.data()).forEach((v, i) => expect(v, `${kind} a[${i}] after 4 updates`).toBeCloseTo(wantA4[i]!, 5));

    optimizer.dispose();
    for (const t of [a, b, ca, cb]) t.dispose();
  }
});
