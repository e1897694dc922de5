// `npm run bench`: runs demos/bench (this engine, TensorFlow.js 4.22 and jax-js 0.1.25 on WebGPU,
// in the same page on the same adapter) in headless Chromium.
// SwiftShader unless WEBGPU_ADAPTER=gpu.
//   npm run bench [-- --rounds N --mlp-steps N --cnn-steps N --frozen-steps N --conv-rounds N --matmul-reps N --mem-steps N --replica-steps N --lstm-steps N
//                     --parts matmul,mlp,replicas,cnn,lstm --timeout SECONDS]
// Prints progress lines; the last line of stdout is one JSON object (adapter, matmul_gflops,
// tfjs_matmul_gflops, jax_matmul_gflops, mlp_samples_per_s, tfjs_mlp_samples_per_s,
// jax_mlp_samples_per_s, cnn_samples_per_s, tfjs_cnn_samples_per_s, jax_cnn_samples_per_s,
// frozen_step_ratio, frozen_step_over_forward, conv_gflops and conv_over_matmul (conv2d's passes against the matmul kernel), gpu_bytes_start, gpu_bytes_end, lstm_tokens_per_s, tfjs_lstm_tokens_per_s,
// jax_lstm_tokens_per_s, and extras, among them replica_step_ratio, the ratios ours / jax-js
// (matmul_, mlp_, cnn_ and lstm_speedup_over_jax) and lstm_speedup_over_tfjs); with --parts, only
// the named parts' figures.
// Saves a screenshot to reports/bench.png.
import { parseArgs } from 'node:util';
import { runPage } from './page-runner.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    'mlp-steps': { type: 'string' },
    'cnn-steps': { type: 'string' },
    'frozen-steps': { type: 'string' },
    'conv-rounds': { type: 'string' },
    'matmul-reps': { type: 'string' },
    'mem-steps': { type: 'string' },
    'replica-steps': { type: 'string' },
    'lstm-steps': { type: 'string' },
    parts: { type: 'string' },
    timeout: { type: 'string', default: String(20 * 60) },
  },
});
const query = {};
const names = { rounds: 'rounds', 'mlp-steps': 'mlpSteps', 'cnn-steps': 'cnnSteps', 'frozen-steps': 'frozenSteps', 'conv-rounds': 'convRounds', 'matmul-reps': 'matmulReps', 'mem-steps': 'memSteps', 'replica-steps': 'replicaSteps', 'lstm-steps': 'lstmSteps', parts: 'parts' };
for (const [flag, param] of Object.entries(names)) if (values[flag] !== undefined) query[param] = values[flag];

const { ok, outcome } = await runPage({ demo: 'bench', query, timeoutMs: Number(values.timeout) * 1000, label: 'bench' });
console.log(JSON.stringify(outcome));
process.exit(ok ? 0 : 1);
