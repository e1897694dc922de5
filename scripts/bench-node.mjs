// `npm run bench:node`: this engine's matmul, MLP and CNN (demos/bench/workloads.ts) in Node on
// Dawn (the `webgpu` package; demos/bench/node.ts) against the same code in headless Chromium
// (the bench-engine page), on the same adapter: SwiftShader unless WEBGPU_ADAPTER=gpu. The three
// runs (browser; Node with the engine's default dawnTickIntervalMs; Node with 0, the binding's
// own busy wait) take turns, once per round, so that a machine whose load changes treats them
// alike; each run's figure is its best of --inner rounds.
//   npm run bench:node [-- --rounds 2 --inner 2 --parts matmul,mlp,cnn --mlp-steps 20 --cnn-steps 2 --matmul-reps 2]
// The last line of stdout is one JSON object: each configuration's best figures and
// node_over_browser (Node with the default setting / the browser) per figure.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { bundleNodeProgram, dawnEnv, ROOT } from './node-program.mjs';
import { runPage } from './page-runner.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    inner: { type: 'string', default: '2' },
    parts: { type: 'string', default: 'matmul,mlp,cnn' },
    'matmul-reps': { type: 'string', default: '2' },
    'mlp-steps': { type: 'string', default: '20' },
    'cnn-steps': { type: 'string', default: '2' },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds <= 0) throw new Error(`bench:node: --rounds ${values.rounds} must be a positive integer`);
const figures = ['matmul_gflops', 'mlp_samples_per_s', 'cnn_samples_per_s'];
const program = await bundleNodeProgram('demos/bench/node.ts');
const shared = ['--parts', values.parts, '--rounds', values.inner, '--matmul-reps', values['matmul-reps'], '--mlp-steps', values['mlp-steps'], '--cnn-steps', values['cnn-steps']];

function node(extra) {
  const r = spawnSync(process.execPath, [program, ...shared, ...extra], { cwd: ROOT, env: dawnEnv(), encoding: 'utf8', timeout: 20 * 60 * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('[result] '));
  if (!line) throw new Error(`bench:node: the Node run ${extra.join(' ') || '(default)'} gave no result (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line.slice('[result] '.length));
}

async function browser() {
  const query = { parts: values.parts, rounds: values.inner, matmulReps: values['matmul-reps'], mlpSteps: values['mlp-steps'], cnnSteps: values['cnn-steps'] };
  const { ok, outcome } = await runPage({ demo: 'bench-engine', query, label: 'bench:node' });
  if (!ok) throw new Error(`bench:node: the browser run failed: ${JSON.stringify(outcome)}`);
  return outcome;
}

const configs = { browser: () => browser(), node: () => node([]), node_busy_wait: () => node(['--tick-ms', '0']) };
const runs = Object.fromEntries(Object.keys(configs).map((k) => [k, []]));
let adapter = '';
for (let r = 0; r < rounds; r++) {
  for (const [name, runOnce] of Object.entries(configs)) {
    const result = await runOnce();
    adapter ||= result.adapter;
    runs[name].push(result);
    console.log(`[bench:node] round ${r + 1}/${rounds} ${name}: ${figures.filter((f) => f in result).map((f) => `${f} ${result[f]}`).join(', ')}`);
  }
}
const summary = { adapter };
for (const [name, results] of Object.entries(runs)) {
  summary[name] = Object.fromEntries(figures.filter((f) => f in results[0]).map((f) => [f, Math.max(...results.map((x) => x[f]))]));
  summary[`${name}_runs`] = Object.fromEntries(figures.filter((f) => f in results[0]).map((f) => [f, results.map((x) => x[f])]));
}
summary.node_over_browser = Object.fromEntries(Object.keys(summary.browser).map((f) => [f, Number((summary.node[f] / summary.browser[f]).toFixed(3))]));
summary.busy_wait_over_browser = Object.fromEntries(Object.keys(summary.browser).map((f) => [f, Number((summary.node_busy_wait[f] / summary.browser[f]).toFixed(3))]));
console.log(JSON.stringify(summary));
