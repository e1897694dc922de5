// The Node/Dawn smoke script that tests/node/dawn.test.ts bundles (with esbuild, WGSL as linked text)
// and runs in a child process: the Vulkan loader must see its environment before Node starts.
// Prints one line of JSON on stdout and exits.
import { create } from 'webgpu';
import { Adam, backward, Dense, Engine, matmul, MultiHead, PCGrad, ReLU, Sequential, softmaxCrossEntropy, trainMultiTask } from '../../src/index.js';
import { randomNormal } from '../../src/engine/random.js';
import { oneHot } from '../../src/paradigms/train.js';

async function main(): Promise<Record<string, unknown>> {
  const engine = await Engine.create({ gpu: create(['backend=vulkan']) });
  // The GPU object from create() is referenced only by the engine now: dawn.node crashes the
  // process if it is collected while the device lives. Collect now (the child runs with
  // --expose-gc) so that the engine's hold on it is tested on every run, not by chance.
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 50));
  (globalThis as { gc?: () => void }).gc?.();

  // A matmul against the CPU (shapes not multiples of 4, so the unaligned path runs too).
  const [M, K, N] = [5, 7, 3];
  const a = randomNormal(M * K, 1);
  const b = randomNormal(K * N, 2);
  const c = await matmul(engine.tensor(a, [M, K]), engine.tensor(b, [K, N])).data();
  let matmulMaxError = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
      matmulMaxError = Math.max(matmulMaxError, Math.abs(s - c[i * N + j]!));
    }
  }

  // A tiny MLP trained a few steps with Adam on fixed random data.
  const model = new Sequential({ fc1: new Dense(engine, 6, 16, { seed: 1 }), relu1: ReLU(), fc2: new Dense(engine, 16, 3, { seed: 2 }) });
  const optimizer = new Adam(model.parameters(), { lr: 0.02 });
  const x = engine.tensor(randomNormal(16 * 6, 3), [16, 6], 'x');
  const t = engine.tensor(oneHot(Array.from({ length: 16 }, (_, i) => i % 3), 3), [16, 3], 'targets');
  const losses: number[] = [];
  for (let step = 0; step < 20; step++) {
    const loss = await engine.scope(async () => {
      const l = softmaxCrossEntropy(model.forward(x), t);
      backward(l);
      optimizer.step();
      optimizer.zeroGrad();
      return l.item();
    });
    losses.push(loss);
  }
  // Multi-task training with PCGrad: per-task gradients, the Gram matrix read back each step (an async step).
  const twoTasks = new MultiHead(new Sequential({ fc: new Dense(engine, 6, 16, { seed: 3 }), relu: ReLU() }), { a: new Dense(engine, 16, 3, { seed: 4 }), b: new Dense(engine, 16, 1, { seed: 5 }) });
  const rows = 32;
  const multiTask = await trainMultiTask(engine, twoTasks, new Adam(twoTasks, { lr: 0.02 }), {
    count: rows,
    features: 6,
    inputs: randomNormal(rows * 6, 4),
    tasks: {
      a: { kind: 'classification', width: 3, values: Float32Array.from({ length: rows }, (_, i) => i % 3) },
      b: { kind: 'regression', width: 1, values: randomNormal(rows, 5) },
    },
  }, { weighting: new PCGrad(), epochs: 20, batchSize: 16, logEvery: 2 });
  const multiTaskLosses = multiTask.history.map((h) => h.losses['a']! + h.losses['b']!);
  await engine.sync();
  return { ok: true, adapter: engine.adapterName, matmulMaxError, losses, multiTaskLosses, dispatches: engine.dispatchCount };
}

main().then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(0);
  },
  (error: unknown) => {
    process.stdout.write(JSON.stringify({ ok: false, error: error instanceof Error ? `${error.message}\n${error.stack}` : String(error) }) + '\n');
    process.exit(1);
  },
);
