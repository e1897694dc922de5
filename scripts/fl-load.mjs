// The federated coordinator's load test on this machine, over loopback only (npm run fl:load):
// how many simulated clients one coordinator holds, and its rounds per minute, memory and frame
// bytes as they grow. Each step starts a coordinator (server/federated/load.ts on Dawn, with the
// keyboard model and FedAvg) and one process of simulated clients, which answer every round at
// once with a random delta of the right layout instead of training. Three sweeps, each stopped by
// its first bound (connection failures, a round that misses its target by the deadline, memory,
// or its share of the time):
//   connected  more and more connected clients, a round aiming at --target (100) plain updates;
//   selected   every connected client selected each round (target n / 1.3), plain updates;
//   secure     the same under secure aggregation, a real SecAggClient per connection.
//   npm run fl:load -- [--budget 570] [--connected 10,100,...] [--target 100] [--selected 100,...]
//                      [--secure 10,25,...] [--rounds 5] [--stepSeconds 40] [--maxClients 16000]
//                      [--maxRssMb 8000] [--deadline 60] [--vocab 1000 --embedding 32 --hidden 64]
//                      [--out reports/fl-load.json]
// --budget: seconds for the whole run, steps included (the default ends within 10 minutes); the
// sweeps may run until 45%, 72% and 100% of it. --maxClients caps the connections (each side of a
// connection is a file descriptor of its process: see ulimit -n).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { bundleNodeProgram, dawnEnv, ROOT } from './node-program.mjs';

const DEFAULTS = {
  budget: '570',
  connected: '10,100,1000,2000,5000,10000,15000',
  target: '100',
  selected: '100,500,1000,2000',
  secure: '10,25,50,100,150',
  rounds: '5',
  stepSeconds: '40',
  maxClients: '16000',
  maxRssMb: '8000',
  deadline: '60',
  vocab: '1000',
  embedding: '32',
  hidden: '64',
  out: 'reports/fl-load.json',
};

function options(argv) {
  const out = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.startsWith('--') ? argv[i].slice(2) : '';
    if (!(name in DEFAULTS) || argv[i + 1] === undefined) throw new Error(`fl:load: unknown or incomplete setting "${argv.slice(i, i + 2).join(' ')}"; known: ${Object.keys(DEFAULTS).map((k) => `--${k}`).join(' ')}`);
    out[name] = argv[i + 1];
  }
  return out;
}

const settings = options(process.argv.slice(2));
const budget = Number(settings.budget);
const maxClients = Number(settings.maxClients);
const started = Date.now();
const elapsed = () => (Date.now() - started) / 1000;
const model = ['vocab', 'embedding', 'hidden'].flatMap((k) => [`--${k}`, settings[k]]);

/** Runs a bundle's role in a child and calls onLine with each JSON line it prints; `exited` gives its exit code (null when killed at `limitSeconds`). */
function child(args, env, onLine, limitSeconds) {
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buffered = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) if (line.startsWith('{')) onLine(JSON.parse(line));
  });
  proc.stderr.setEncoding('utf8').on('data', (chunk) => (stderr = (stderr + chunk).slice(-2000)));
  const timer = setTimeout(() => proc.kill('SIGKILL'), limitSeconds * 1000);
  const exited = new Promise((done) =>
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code: signal ? null : code, stderr });
    }),
  );
  return { exited };
}

/** One step within `seconds`: a coordinator with `clients` connections and a round target, and the process of simulated clients. */
async function step(bundle, dir, { clients, target, secure }, seconds) {
  const result = { clients, target, secure };
  // Rounds get up to stepSeconds; connecting gets what is left of the step (enrolment and Dawn's start take a little).
  const roundSeconds = Math.min(Number(settings.stepSeconds), seconds / 3);
  const connectSeconds = Math.max(10, seconds - roundSeconds - 15);
  let clientsRun = null;
  const coordinator = child(
    [bundle, 'coordinator', '--dir', dir, '--clients', String(clients), '--target', String(target), '--rounds', settings.rounds, '--seconds', String(roundSeconds), '--connectSeconds', String(connectSeconds), '--secure', secure ? '1' : '0', '--deadline', settings.deadline, ...model],
    dawnEnv(),
    (line) => {
      if (line.event === 'listening') {
        clientsRun = child(
          [bundle, 'clients', '--url', `ws://127.0.0.1:${line.port}`, '--dir', dir, '--clients', String(clients), '--model', line.model],
          process.env,
          (l) => (result.simulated = { ...result.simulated, [l.event]: l }),
          seconds,
        );
      }
      if (line.event === 'step') Object.assign(result, line);
    },
    seconds,
  );
  const ended = await coordinator.exited;
  const clientsEnded = clientsRun ? await clientsRun.exited : null;
  const failure = (who, e) => `${who} ${e.code === null ? `killed at the step's ${Math.round(seconds)} s` : `exited ${e.code}`}: ${e.stderr.trim().split('\n').at(-1) ?? ''}`;
  if (ended.code !== 0) result.failure = failure('coordinator', ended);
  else if (clientsEnded && clientsEnded.code !== 0) result.failure = failure('clients', clientsEnded);
  return result;
}

/** Why a step's results end its sweep, or null. */
function bound(r) {
  if (r.failure) return r.failure;
  if (r.connectError) return r.connectError;
  const failures = Object.values(r.simulated?.connected?.failures ?? {}).reduce((s, n) => s + n, 0);
  if (failures > 0) return `${failures} connection failures`;
  if (r.deadlineMisses > 0) return `${r.deadlineMisses} rounds missed their target by the deadline`;
  if (r.rssPeakMb > Number(settings.maxRssMb)) return `coordinator RSS ${r.rssPeakMb} MB > ${settings.maxRssMb} MB`;
  return null;
}

const fixed = (v, digits) => (v ?? 0).toFixed(digits);
const COLUMNS = [
  ['sweep', (r) => r.sweep],
  ['connected', (r) => r.connected ?? 0],
  ['target (selected)', (r) => `${r.target} (${r.selected ?? 0})`],
  ['connect s (per s)', (r) => `${fixed(r.connectSeconds, 1)} (${Math.round((r.connected ?? 0) / (r.connectSeconds || 1))})`],
  ['rounds', (r) => r.rounds ?? 0],
  ['rounds/min', (r) => fixed(r.roundsPerMinute, 1)],
  ['s/round', (r) => fixed(r.secondsPerRound, 2)],
  ['of it secagg s', (r) => (r.secure ? fixed(r.secAggSecondsPerRound, 2) : '-')],
  ['coordinator CPU s/round', (r) => fixed(r.cpuSecondsPerRound, 2)],
  ['clients CPU s/round', (r) => (r.simulated?.done && r.rounds ? fixed((r.simulated.done.cpuSeconds - r.simulated.connected.cpuSeconds) / r.rounds, 2) : '-')],
  ['RSS idle / connected / peak MB', (r) => `${r.rssIdleMb ?? 0} / ${r.rssConnectedMb ?? 0} / ${r.rssPeakMb ?? 0}`],
  ['heap peak MB', (r) => r.heapPeakMb ?? 0],
  ['frames MB/round', (r) => fixed((r.frameBytesPerRound ?? 0) / 2 ** 20, 1)],
];
const row = (r) => COLUMNS.map(([, cell]) => cell(r)).join(' | ');
const header = COLUMNS.map(([name]) => name).join(' | ');

const bundle = await bundleNodeProgram('server/federated/load.ts');
const dir = mkdtempSync(join(tmpdir(), 'fl-load-'));
const counts = (text) => text.split(',').filter(Boolean).map(Number);
const everyone = (n) => ({ clients: n, target: Math.floor(n / 1.3) });
const sweeps = [
  { name: 'connected', secure: false, until: 0.45 * budget, steps: counts(settings.connected).map((n) => ({ clients: n, target: Math.min(Number(settings.target), Math.floor(n / 1.3)) })) },
  { name: 'selected', secure: false, until: 0.72 * budget, steps: counts(settings.selected).map(everyone) },
  { name: 'secure', secure: true, until: budget, steps: counts(settings.secure).map(everyone) },
];
const results = [];
const stops = [];
console.log(`fl:load: loopback only, within ${budget} s\n${header}`);
try {
  for (const sweep of sweeps) {
    for (const s of sweep.steps) {
      const left = sweep.until - elapsed();
      const reason = s.clients > maxClients ? `--maxClients ${maxClients}` : left < 30 ? `the time budget (${Math.round(left)} s left)` : null;
      if (reason) {
        stops.push({ sweep: sweep.name, at: s, reason });
        break;
      }
      const r = { sweep: sweep.name, ...(await step(bundle, dir, { ...s, secure: sweep.secure }, left)) };
      results.push(r);
      const hit = bound(r);
      console.log(`${row(r)}   [${elapsed().toFixed(0)} s]${r.notes?.length ? ` notes: ${r.notes.join('; ')}` : ''}${hit ? `\n  bound: ${hit}` : ''}`);
      if (hit) {
        stops.push({ sweep: sweep.name, at: s, reason: hit });
        break;
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const out = resolve(ROOT, settings.out);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify({ settings, seconds: elapsed(), results, stops }, null, 2));
console.log(`\n| ${header} |\n|${COLUMNS.map(() => ' --- ').join('|')}|\n${results.map((r) => `| ${row(r)} |`).join('\n')}`);
console.log(`\nstopped: ${stops.map((s) => `${s.sweep} at ${s.at.clients}: ${s.reason}`).join('; ') || 'no sweep (every step ran)'}; ${elapsed().toFixed(0)} s in all; details in ${settings.out}`);
