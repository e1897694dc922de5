// Optimizers against a float64 CPU reference of the torch.optim formulas: SGD (dampening 0,
// momentum, Nesterov, L2 weight decay), Adam (L2 added to the gradient), AdamW (decoupled
// decay), parameter groups, global-norm clipping and learning-rate schedules.
import { beforeAll, describe, expect, test } from 'vitest';
import {
  Adam,
  AdamW,
  add,
  backward,
  cosineDecay,
  Engine,
  mul,
  SGD,
  square,
  stepDecay,
  sub,
  sum,
  type Optimizer,
  type Parameter,
  type Schedule,
  type Tensor,
} from '../../src/index.js';
import { randomNormal } from '../../src/engine/random.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const N = 37; // not a multiple of 4 or of the workgroup size
const STEPS = 5;

// ------------------------------------------------------------------ CPU reference (float64)

interface RefOptions {
  kind: 'sgd' | 'adam' | 'adamw';
  lr: number;
  weightDecay?: number;
  momentum?: number;
  nesterov?: boolean;
  betas?: [number, number];
  eps?: number;
}

/** One parameter's optimizer as torch.optim computes it, in float64. */
class RefOptimizer {
  private buf: Float64Array | null = null;
  private m: Float64Array;
  private v: Float64Array;
  private t = 0;

  constructor(
    readonly o: RefOptions,
    n: number,
  ) {
    this.m = new Float64Array(n);
    this.v = new Float64Array(n);
  }

  step(w: Float64Array, grad: Float64Array, lr: number): void {
    const wd = this.o.weightDecay ?? 0;
    this.t++;
    if (this.o.kind === 'sgd') {
      const mu = this.o.momentum ?? 0;
      const g = grad.map((gi, i) => gi + wd * w[i]!);
      let d: Float64Array = g;
      if (mu > 0) {
        // torch: the first step sets buf = g; later buf = mu * buf + g (dampening 0).
        this.buf = this.buf === null ? Float64Array.from(g) : this.buf.map((b, i) => mu * b + g[i]!);
        const buf = this.buf;
        d = this.o.nesterov ? g.map((gi, i) => gi + mu * buf[i]!) : buf;
      }
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - lr * d[i]!;
      return;
    }
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    const eps = this.o.eps ?? 1e-8;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    for (let i = 0; i < w.length; i++) {
      let g = grad[i]!;
      if (this.o.kind === 'adamw') w[i] = w[i]! * (1 - lr * wd);
      else g += wd * w[i]!;
      this.m[i] = b1 * this.m[i]! + (1 - b1) * g;
      this.v[i] = b2 * this.v[i]! + (1 - b2) * g * g;
      w[i] = w[i]! - (lr * (this.m[i]! / bc1)) / (Math.sqrt(this.v[i]! / bc2) + eps);
    }
  }
}

// ------------------------------------------------------------------ GPU side

/** loss = sum(c * (p - t)^2): grad = 2 c (p - t), different at every step. */
interface Problem {
  p: Parameter;
  c: Float64Array;
  t: Float64Array;
  cT: Tensor;
  tT: Tensor;
}

function problem(name: string, seed: number, n = N): Problem {
  const init = randomNormal(n, seed);
  const c = Float64Array.from(randomNormal(n, seed + 1), (v) => 0.5 + Math.abs(v));
  const t = Float64Array.from(randomNormal(n, seed + 2));
  return {
    p: engine.parameter(init, [n], name),
    c,
    t,
    cT: engine.keep(engine.tensor(Float32Array.from(c), [n], `${name}.c`)),
    tT: engine.keep(engine.tensor(Float32Array.from(t), [n], `${name}.t`)),
  };
}

function lossOf(pr: Problem): Tensor {
  return sum(mul(square(sub(pr.p, pr.tT)), pr.cT));
}

/** The CPU gradient of lossOf at w, computed from float32-rounded constants. */
function cpuGrad(pr: Problem, w: Float64Array): Float64Array {
  const c = Float32Array.from(pr.c);
  const t = Float32Array.from(pr.t);
  return w.map((wi, i) => 2 * c[i]! * (wi - t[i]!));
}

async function gpuStep(problems: Problem[], optimizer: Optimizer): Promise<void> {
  await engine.scope(async () => {
    let loss = lossOf(problems[0]!);
    for (const pr of problems.slice(1)) loss = add(loss, lossOf(pr));
    backward(loss);
    optimizer.step();
    optimizer.zeroGrad();
    await engine.flush();
  });
}

/** Throws naming the worst element outside atol + rtol |expected|; a NaN anywhere counts as outside. */
function expectClose(actual: Float32Array, expected: Float64Array, what: string, rtol = 2e-5, atol = 2e-6): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - (atol + rtol * Math.abs(expected[i]!));
    if (Number.isNaN(err) || err > worst) {
      worst = Number.isNaN(err) ? Number.POSITIVE_INFINITY : err;
      worstAt = i;
    }
  }
  expect(worstAt, `${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]}`).toBe(-1);
}

test('the comparison fails on NaN, on either side', () => {
  expect(() => expectClose(Float32Array.of(1, Number.NaN), Float64Array.of(1, 2), 'nan actual')).toThrow(/element 1 is NaN/);
  expect(() => expectClose(Float32Array.of(1, 2), Float64Array.of(1, Number.NaN), 'nan expected')).toThrow(/element 1 is 2, expected NaN/);
  expect(() => expectClose(Float32Array.of(1, 2), Float64Array.of(1, 2), 'equal')).not.toThrow();
});

/**
 * Compares, then continues the reference from the GPU's float32 values: each step is checked
 * against the formula applied to the same parameters, and float32 rounding does not compound
 * (near a minimum Adam's normalised step amplifies tiny differences in the gradient).
 * The optimizer state stays the reference's own, in float64.
 */
function expectCloseThenSync(actual: Float32Array, expected: Float64Array, what: string, rtol?: number, atol?: number): void {
  expectClose(actual, expected, what, rtol, atol);
  expected.set(actual);
}

const f64 = async (t: Tensor) => Float64Array.from(await t.data());

describe('single parameter against the CPU reference', () => {
  const CASES: [string, RefOptions, (p: Parameter[]) => Optimizer][] = [
    ['SGD', { kind: 'sgd', lr: 0.05 }, (p) => new SGD(p, { lr: 0.05 })],
    ['SGD weight decay', { kind: 'sgd', lr: 0.05, weightDecay: 0.1 }, (p) => new SGD(p, { lr: 0.05, weightDecay: 0.1 })],
    ['SGD momentum', { kind: 'sgd', lr: 0.05, momentum: 0.9 }, (p) => new SGD(p, { lr: 0.05, momentum: 0.9 })],
    ['SGD momentum + weight decay', { kind: 'sgd', lr: 0.05, momentum: 0.8, weightDecay: 0.1 }, (p) => new SGD(p, { lr: 0.05, momentum: 0.8, weightDecay: 0.1 })],
    ['SGD Nesterov', { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true }, (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true })],
    [
      'SGD Nesterov + weight decay',
      { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.05 },
      (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.05 }),
    ],
    ['Adam', { kind: 'adam', lr: 0.1 }, (p) => new Adam(p, { lr: 0.1 })],
    ['Adam + weight decay', { kind: 'adam', lr: 0.1, weightDecay: 0.2 }, (p) => new Adam(p, { lr: 0.1, weightDecay: 0.2 })],
    [
      'Adam betas/eps',
      { kind: 'adam', lr: 0.05, betas: [0.8, 0.99], eps: 1e-3 },
      (p) => new Adam(p, { lr: 0.05, betas: [0.8, 0.99], eps: 1e-3 }),
    ],
    ['AdamW (default decay 0.01)', { kind: 'adamw', lr: 0.1, weightDecay: 0.01 }, (p) => new AdamW(p, { lr: 0.1 })],
    ['AdamW decay 0.3', { kind: 'adamw', lr: 0.1, weightDecay: 0.3 }, (p) => new AdamW(p, { lr: 0.1, weightDecay: 0.3 })],
  ];

  CASES.forEach(([name, ref, make], k) => {
    test(name, async () => {
      const pr = problem(`w${k}`, 100 + 7 * k);
      const w = await f64(pr.p);
      const cpu = new RefOptimizer(ref, N);
      const optimizer = make([pr.p]);
      for (let s = 0; s < STEPS; s++) {
        cpu.step(w, cpuGrad(pr, w), ref.lr);
        await gpuStep([pr], optimizer);
        expectCloseThenSync(await pr.p.data(), w, `${name}, step ${s + 1}`);
      }
      expect(optimizer.steps).toBe(STEPS);
      optimizer.dispose();
      pr.p.dispose();
    });
  });

  test('a constant gradient: loss = sum(p * c) gives grad = c exactly', async () => {
    const c = randomNormal(N, 9);
    const p = engine.parameter(randomNormal(N, 8), [N], 'p');
    const cT = engine.tensor(c, [N], 'c');
    await engine.scope(() => backward(sum(mul(p, cT))));
    expect(Array.from(await p.grad!.data())).toEqual(Array.from(c));
    const w = await f64(p);
    const optimizer = new SGD([p], { lr: 0.25 });
    optimizer.step();
    // One SGD step: w - lr * c, rounded to float32 as the GPU does.
    const expected = w.map((wi, i) => Math.fround(wi - Math.fround(0.25 * c[i]!)));
    expect(Array.from(await p.data())).toEqual(Array.from(expected));
    optimizer.dispose();
    p.dispose();
    cT.dispose();
  });
});

describe('parameter groups', () => {
  test('groups with their own lr and weight decay; lr 0 leaves a group bit-identical', async () => {
    const a = problem('a', 300);
    const b = problem('b', 310);
    const z = problem('z', 320);
    const optimizer = new Adam(
      [
        { params: [a.p], lr: 0.1 },
        { params: [b.p], lr: 0.02, weightDecay: 0.5 },
        { params: [z.p], lr: 0 },
      ],
      { lr: 1, weightDecay: 0.1 },
    );
    expect(optimizer.groups.map((g) => [g.lr, g.weightDecay])).toEqual([
      [0.1, 0.1],
      [0.02, 0.5],
      [0, 0.1],
    ]);
    const wa = await f64(a.p);
    const wb = await f64(b.p);
    const z0 = new Uint32Array((await z.p.data()).buffer);
    const ra = new RefOptimizer({ kind: 'adam', lr: 0.1, weightDecay: 0.1 }, N);
    const rb = new RefOptimizer({ kind: 'adam', lr: 0.02, weightDecay: 0.5 }, N);
    for (let s = 0; s < STEPS; s++) {
      ra.step(wa, cpuGrad(a, wa), 0.1);
      rb.step(wb, cpuGrad(b, wb), 0.02);
      await gpuStep([a, b, z], optimizer);
      expectCloseThenSync(await a.p.data(), wa, `group 0, step ${s + 1}`);
      expectCloseThenSync(await b.p.data(), wb, `group 1, step ${s + 1}`);
    }
    expect(Array.from(new Uint32Array((await z.p.data()).buffer))).toEqual(Array.from(z0));
    optimizer.dispose();
    for (const pr of [a, b, z]) pr.p.dispose();
  });

  test('a parameter in two groups is rejected', () => {
    const p = engine.parameter([1, 2], [2], 'dup');
    expect(() => new SGD([{ params: [p] }, { params: [p] }], { lr: 0.1 })).toThrow(/dup.*two groups/);
    p.dispose();
  });
});

describe('global-norm clipping', () => {
  async function clipped(clipNorm: number, momentum: number): Promise<{ clippedSteps: number }> {
    const a = problem('ca', 400);
    const b = problem('cb', 410, 70);
    const optimizer = new SGD([a.p, b.p], { lr: 0.05, momentum, clipNorm });
    const ref = { kind: 'sgd', lr: 0.05, momentum } as const;
    const ra = new RefOptimizer(ref, N);
    const rb = new RefOptimizer(ref, 70);
    const wa = await f64(a.p);
    const wb = await f64(b.p);
    let clippedSteps = 0;
    for (let s = 0; s < STEPS; s++) {
      const ga = cpuGrad(a, wa);
      const gb = cpuGrad(b, wb);
      let sq = 0;
      for (const g of [ga, gb]) for (const v of g) sq += v * v;
      const factor = Math.min(1, clipNorm / Math.sqrt(sq));
      if (factor < 1) clippedSteps++;
      ra.step(wa, ga.map((v) => v * factor), 0.05);
      rb.step(wb, gb.map((v) => v * factor), 0.05);
      await gpuStep([a, b], optimizer);
      expectCloseThenSync(await a.p.data(), wa, `clip ${clipNorm}: a, step ${s + 1}`, 5e-5, 5e-6);
      expectCloseThenSync(await b.p.data(), wb, `clip ${clipNorm}: b, step ${s + 1}`, 5e-5, 5e-6);
    }
    optimizer.dispose();
    a.p.dispose();
    b.p.dispose();
    return { clippedSteps };
  }

  test('a small clipNorm scales every gradient by clipNorm / ||g|| over all parameters', async () => {
    expect((await clipped(1, 0)).clippedSteps).toBe(STEPS);
  });

  test('clipping with momentum', async () => {
    expect((await clipped(2, 0.9)).clippedSteps).toBe(STEPS);
  });

  test('a large clipNorm changes nothing', async () => {
    expect((await clipped(1e6, 0)).clippedSteps).toBe(0);
  });

  test('clipNorm must be positive', async () => {
    const pr = problem('cz', 420);
    expect(() => new SGD([pr.p], { lr: 0.1, clipNorm: 0 })).toThrow(/SGD: invalid clipNorm: 0 \(must be a finite number > 0\)/);
    pr.p.dispose();
  });
});

describe('schedules', () => {
  // Independent statements of the documented schedules (step is 0-based).
  const stepFactor = (s: number) => 0.5 ** Math.floor(s / 2);
  const cosineFactor = (s: number) => {
    const warmup = 2;
    const total = 6;
    const minFactor = 0.1;
    if (s < warmup) return (s + 1) / warmup;
    const progress = Math.min(1, (s - warmup) / (total - warmup));
    return minFactor + ((1 - minFactor) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
  const CASES: [string, Schedule, (s: number) => number, RefOptions['kind']][] = [
    ['stepDecay(2, 0.5) with SGD', stepDecay(2, 0.5), stepFactor, 'sgd'],
    ['cosineDecay(6, warmup 2, minFactor 0.1) with SGD', cosineDecay(6, { warmup: 2, minFactor: 0.1 }), cosineFactor, 'sgd'],
    ['cosineDecay(6, warmup 2, minFactor 0.1) with AdamW', cosineDecay(6, { warmup: 2, minFactor: 0.1 }), cosineFactor, 'adamw'],
  ];

  for (const [name, schedule, factor, kind] of CASES) {
    test(name, async () => {
      const pr = problem('s', 500);
      const base = 0.1;
      const optimizer =
        kind === 'sgd' ? new SGD([pr.p], { lr: base, momentum: 0.5, schedule }) : new AdamW([pr.p], { lr: base, weightDecay: 0.1, schedule });
      const ref = new RefOptimizer({ kind, lr: base, momentum: 0.5, weightDecay: kind === 'adamw' ? 0.1 : 0 }, N);
      const w = await f64(pr.p);
      for (let s = 0; s < 8; s++) {
        const lr = base * factor(s);
        expect(optimizer.lr(0)).toBeCloseTo(lr, 12);
        ref.step(w, cpuGrad(pr, w), lr);
        await gpuStep([pr], optimizer);
        expectCloseThenSync(await pr.p.data(), w, `${name}, step ${s + 1}`);
      }
      optimizer.dispose();
      pr.p.dispose();
    });
  }
});
