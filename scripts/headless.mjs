// Runs a demo in headless Chromium (WebGPU on SwiftShader unless WEBGPU_ADAPTER=gpu) and prints
// its progress; the last line of stdout is the demo's one-line JSON result.
//   npm run headless -- mlp [--epochs N] [--train N] [--test N] [--timeout SECONDS]
// Builds the demos, serves them on a free port, saves a screenshot to reports/<demo>.png and
// exits non-zero when the demo reports an error or times out (see scripts/page-runner.mjs).
import { parseArgs } from 'node:util';
import { demoNames } from '../esbuild.config.mjs';
import { runPage } from './page-runner.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    epochs: { type: 'string' },
    train: { type: 'string' },
    test: { type: 'string' },
    timeout: { type: 'string', default: String(30 * 60) },
  },
});
const demo = positionals[0] ?? 'mlp';
if (!demoNames().includes(demo)) {
  console.error(`headless: unknown demo "${demo}"; demos: ${demoNames().join(', ')}`);
  process.exit(2);
}
const query = {};
for (const k of ['epochs', 'train', 'test']) if (values[k] !== undefined) query[k] = values[k];

const { ok, outcome } = await runPage({ demo, query, timeoutMs: Number(values.timeout) * 1000 });
console.log(JSON.stringify({ demo, ...outcome }));
process.exit(ok ? 0 : 1);
