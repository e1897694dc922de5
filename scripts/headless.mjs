// Runs a demo in headless Chromium (WebGPU on SwiftShader unless WEBGPU_ADAPTER=gpu) and prints
// its progress; the last line of stdout is the demo's one-line JSON result.
//   npm run headless -- <demo> [--<query parameter> VALUE ...] [--timeout SECONDS]
//   e.g. npm run headless -- mlp --epochs 1 --train 5000
//        npm run headless -- transfer --seeds 1 --perClass 10
// Every --name VALUE but --timeout becomes a query parameter of the page (see each demo's
// main.ts for its own). Builds the demos, serves them on a free port, saves a screenshot to
// reports/<demo>.png and exits non-zero when the demo reports an error or times out
// (see scripts/page-runner.mjs).
import { demoNames } from '../esbuild.config.mjs';
import { runPage } from './page-runner.mjs';

const args = process.argv.slice(2);
const demo = args[0] && !args[0].startsWith('--') ? args.shift() : 'mlp';
if (!demoNames().includes(demo)) {
  console.error(`headless: unknown demo "${demo}"; demos: ${demoNames().join(', ')}`);
  process.exit(2);
}
const query = {};
let timeoutSeconds = 60 * 60;
for (let i = 0; i < args.length; i += 2) {
  const name = args[i].startsWith('--') ? args[i].slice(2) : '';
  const value = args[i + 1];
  if (!name || value === undefined || value.startsWith('--')) {
    console.error(`headless: expected --name VALUE pairs after the demo name, got "${args.slice(i).join(' ')}"`);
    process.exit(2);
  }
  if (name === 'timeout') timeoutSeconds = Number(value);
  else query[name] = value;
}

if (demo === 'federated-keyboard') {
  // Not one page: a coordinator, user pages and Node clients (scripts/federated-keyboard.mjs).
  const { runFederatedKeyboard } = await import('./federated-keyboard.mjs');
  try {
    const result = await runFederatedKeyboard({ query, timeoutMs: timeoutSeconds * 1000 });
    console.log(JSON.stringify({ demo, ...result }));
    process.exit(0);
  } catch (e) {
    console.error(`[headless] federated-keyboard failed: ${e instanceof Error ? e.message : String(e)}`);
    console.log(JSON.stringify({ demo, error: e instanceof Error ? e.message : String(e) }));
    process.exit(1);
  }
}
const { ok, outcome } = await runPage({ demo, query, timeoutMs: timeoutSeconds * 1000 });
console.log(JSON.stringify({ demo, ...outcome }));
process.exit(ok ? 0 : 1);
