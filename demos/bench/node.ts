// This engine alone on the bench's matmul, MLP and CNN (workloads.ts) in Node, on Dawn through
// the `webgpu` package: run by scripts/bench-node.mjs (npm run bench:node) in turn with the
// bench-engine page, which runs the same code in Chromium. Arguments: --parts, --rounds,
// --matmul-reps, --mlp-steps, --cnn-steps, --tick-ms (Engine.create's dawnTickIntervalMs; by
// default the engine's). Prints one `[result] {...}` line.
import { parseArgs } from 'node:util';
import { create } from 'webgpu';
import { autotune, Engine } from '../../src/index.js';
import { runEngineBench } from './workloads.js';

const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: 'matmul,mlp,cnn' },
    rounds: { type: 'string', default: '2' },
    'matmul-reps': { type: 'string', default: '2' },
    'mlp-steps': { type: 'string', default: '20' },
    'cnn-steps': { type: 'string', default: '2' },
    'tick-ms': { type: 'string' },
  },
});
const count = (flag: keyof typeof values) => {
  const v = Number(values[flag]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`bench:node: --${flag} ${values[flag]} must be a positive integer`);
  return v;
};
const tickMs = values['tick-ms'] === undefined ? undefined : Number(values['tick-ms']);
const gpu = create(['backend=vulkan']);
const engine = await Engine.create({ gpu, ...(tickMs === undefined ? {} : { dawnTickIntervalMs: tickMs }) });
await autotune(engine);
const figures = await runEngineBench(engine, {
  parts: new Set(values.parts!.split(',')),
  rounds: count('rounds'),
  matmulReps: count('matmul-reps'),
  mlpSteps: count('mlp-steps'),
  cnnSteps: count('cnn-steps'),
  log: (line) => console.log(`[progress] ${line}`),
});
console.log(`[result] ${JSON.stringify({ adapter: engine.adapterName, binding: 'dawn.node', dawn_tick_ms: tickMs ?? 'default', ...figures })}`);
void gpu; // kept alive while its device is used
process.exit(0);
