// `npm run profile -- [demo]` (default mlp): runs the demo in headless Chromium with profile=1
// and small settings (one epoch on a few thousand images), and prints the per-kernel GPU time
// table of a few training steps that the demo profiles with engine.profile() after training.
//   npm run profile -- mlp [--epochs N] [--train N] [--test N] [--steps N] [--json] [--timeout SECONDS]
// --json also prints the rows as one JSON line, last. Saves a screenshot to reports/<demo>-profile.png.
import { parseArgs } from 'node:util';
import { runPage } from './page-runner.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    epochs: { type: 'string', default: '1' },
    train: { type: 'string', default: '2560' },
    test: { type: 'string', default: '500' },
    steps: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
    timeout: { type: 'string', default: String(15 * 60) },
  },
});
const demo = positionals[0] ?? 'mlp';
const query = { profile: '1', epochs: values.epochs, train: values.train, test: values.test, profileSteps: values.steps };

const { ok, outcome, extra } = await runPage({
  demo,
  query,
  timeoutMs: Number(values.timeout) * 1000,
  label: 'profile',
  screenshotName: `${demo}-profile`,
  after: (page) => page.evaluate(() => ({ table: window.__profile, data: window.__profileData })),
});
if (!ok) {
  console.log(JSON.stringify(outcome));
  process.exit(1);
}
if (typeof extra?.table !== 'string') {
  console.error(`[profile] the ${demo} demo set no window.__profile (does it support profile=1?)`);
  process.exit(1);
}
console.log(extra.table);
if (values.json) console.log(JSON.stringify(extra.data));
process.exit(0);
