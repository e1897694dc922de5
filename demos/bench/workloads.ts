// This engine's side of the benchmark, with nothing of the browser in it: the random data, the
// MLP and FedAvg CNN, and the timed loops (matmul products, training steps, forward passes). The
// bench page runs them beside TF.js and jax-js; node.ts and the bench-engine page run the same
// code in Node (Dawn) and in Chromium, so `npm run bench:node` compares the two bindings on one
// adapter with nothing else differing.
import { Adam, backward, Conv2d, Dense, Flatten, matmul, MaxPool2d, noGrad, ReLU, Reshape, Sequential, softmaxCrossEntropy, type Engine, type Module, type Optimizer, type Tensor } from '../../src/index.js';

export const PIXELS = 784;
export const CLASSES = 10;
export const MATMUL_N = 1024;
export const MLP_BATCH = 128;
export const CNN_BATCH = 64;

export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export interface Batch {
  x: Float32Array<ArrayBuffer>;
  y: Float32Array<ArrayBuffer>;
}

/** A few batches of uniform [0, 1) pixels with random one-hot labels, used in turn. */
export function batches(count: number, batch: number, seed: number): Batch[] {
  const rand = lcg(seed);
  return Array.from({ length: count }, () => {
    const x = new Float32Array(batch * PIXELS).map(() => rand());
    const y = new Float32Array(batch * CLASSES);
    for (let r = 0; r < batch; r++) y[r * CLASSES + Math.floor(rand() * CLASSES)] = 1;
    return { x, y };
  });
}

/** MLP 784-256-10 (ReLU). */
export function benchMlp(engine: Engine): Sequential {
  return new Sequential({ fc1: new Dense(engine, PIXELS, 256, { seed: 1 }), relu1: ReLU(), fc2: new Dense(engine, 256, CLASSES, { seed: 2 }) });
}

/** The FedAvg paper's CNN: conv5x5 32 'same', maxpool 2, conv5x5 64 'same', maxpool 2, dense 512, dense 10. */
export function fedAvgCnn(engine: Engine): Sequential {
  return new Sequential({
    image: new Reshape([1, 28, 28]),
    conv1: new Conv2d(engine, 1, 32, 5, { padding: 2, seed: 3 }),
    relu1: ReLU(),
    pool1: new MaxPool2d(2),
    conv2: new Conv2d(engine, 32, 64, 5, { padding: 2, seed: 4 }),
    relu2: ReLU(),
    pool2: new MaxPool2d(2),
    flatten: new Flatten(),
    fc1: new Dense(engine, 7 * 7 * 64, 512, { seed: 5 }),
    relu3: ReLU(),
    fc2: new Dense(engine, 512, CLASSES, { seed: 6 }),
  });
}

/** Mean ms per training step (upload, forward, loss, backward, optimizer step), one sync at the end. */
export async function trainSteps(engine: Engine, model: Module, opt: Optimizer, data: Batch[], batch: number, steps: number): Promise<number> {
  await engine.sync();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const b = data[i % data.length]!;
    await engine.scope(async () => {
      const l = softmaxCrossEntropy(model.forward(engine.tensor(b.x, [batch, PIXELS], 'x')), engine.tensor(b.y, [batch, CLASSES], 'y'));
      backward(l);
      opt.step();
      opt.zeroGrad();
      await engine.flush();
    });
  }
  await engine.sync();
  return (performance.now() - t0) / steps;
}

/** Mean ms per forward pass alone (no graph recorded), uploads included: the floor of a frozen step. */
export async function forwardPasses(engine: Engine, model: Module, data: Batch[], batch: number, steps: number): Promise<number> {
  await engine.sync();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const b = data[i % data.length]!;
    await engine.scope(async () => {
      noGrad(() => model.forward(engine.tensor(b.x, [batch, PIXELS], 'x')));
      await engine.flush();
    });
  }
  await engine.sync();
  return (performance.now() - t0) / steps;
}

/** Mean ms per product of `a` and `b` over `reps` products, the last read back. */
export function matmulProducts(engine: Engine, a: Tensor, b: Tensor, reps: number): Promise<number> {
  return engine.scope(async () => {
    await engine.sync();
    const t0 = performance.now();
    let c = matmul(a, b);
    for (let i = 1; i < reps; i++) c = matmul(a, b);
    await c.data();
    return (performance.now() - t0) / reps;
  });
}

export const ENGINE_BENCH_PARTS: readonly string[] = ['matmul', 'mlp', 'cnn'];

export interface EngineBenchSettings {
  parts: ReadonlySet<string>;
  rounds: number;
  matmulReps: number;
  mlpSteps: number;
  cnnSteps: number;
  log: (line: string) => void;
}

/** This engine alone on the bench's matmul, MLP and CNN (each part warmed up, best of the rounds). */
export async function runEngineBench(engine: Engine, s: EngineBenchSettings): Promise<Record<string, number | number[]>> {
  const unknown = [...s.parts].filter((p) => !ENGINE_BENCH_PARTS.includes(p));
  if (unknown.length) throw new Error(`engine bench: unknown parts ${unknown.join(', ')}; parts: ${ENGINE_BENCH_PARTS.join(', ')}`);
  const out: Record<string, number | number[]> = {};
  const best = (key: string, values: number[], digits: number) => {
    out[`${key}_rounds`] = values.map((v) => Number(v.toFixed(digits)));
    out[key] = Number(Math.max(...values).toFixed(digits));
    s.log(`${key}: ${values.map((v) => v.toFixed(digits)).join(', ')}`);
  };
  if (s.parts.has('matmul')) {
    const a = engine.randn([MATMUL_N, MATMUL_N], { seed: 1, name: 'bench.a' });
    const b = engine.randn([MATMUL_N, MATMUL_N], { seed: 2, name: 'bench.b' });
    await matmulProducts(engine, a, b, 1);
    const gflops: number[] = [];
    for (let r = 0; r < s.rounds; r++) gflops.push((2 * MATMUL_N ** 3) / ((await matmulProducts(engine, a, b, s.matmulReps)) * 1e6));
    best('matmul_gflops', gflops, 3);
    a.dispose();
    b.dispose();
  }
  for (const [part, build, batch, steps, seed] of [
    ['mlp', benchMlp, MLP_BATCH, s.mlpSteps, 7],
    ['cnn', fedAvgCnn, CNN_BATCH, s.cnnSteps, 11],
  ] as const) {
    if (!s.parts.has(part)) continue;
    const data = batches(2, batch, seed);
    const model = build(engine);
    const opt = new Adam(model.parameters(), { lr: 1e-3 });
    await trainSteps(engine, model, opt, data, batch, 1);
    const rates: number[] = [];
    for (let r = 0; r < s.rounds; r++) rates.push((batch * 1000) / (await trainSteps(engine, model, opt, data, batch, steps)));
    best(`${part}_samples_per_s`, rates, 1);
    opt.dispose();
    model.dispose();
  }
  return out;
}
