// This engine alone on the bench's matmul, MLP and CNN (demos/bench/workloads.ts), in the
// browser: scripts/bench-node.mjs runs it in turn with demos/bench/node.ts (the same workloads in
// Node on Dawn). Query parameters: parts (matmul,mlp,cnn), rounds (2), matmulReps (2), mlpSteps
// (20), cnnSteps (2), headless=1.
import { autotune, Engine } from '../../src/index.js';
import { runEngineBench } from '../bench/workloads.js';
import { finish, intParam, log, params, run, setText, status } from '../common/ui.js';

async function main(): Promise<void> {
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  status('Autotuning…');
  await autotune(engine);
  status('Running…');
  const figures = await runEngineBench(engine, {
    parts: new Set((params.get('parts') || 'matmul,mlp,cnn').split(',')),
    rounds: intParam('rounds', 2),
    matmulReps: intParam('matmulReps', 2),
    mlpSteps: intParam('mlpSteps', 20),
    cnnSteps: intParam('cnnSteps', 2),
    log: (line) => {
      log(line);
      document.getElementById('log')!.textContent += `${line}\n`;
    },
  });
  status('Done.');
  finish({ adapter: engine.adapterName, binding: 'chromium', ...figures });
}

run(main);
