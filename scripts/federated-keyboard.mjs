// The federated keyboard, end to end on one machine (`npm run headless -- federated-keyboard`):
// a coordinator (server/federated/main.ts, Node on Dawn) with secure aggregation; users as
// headless Chromium pages (demos/federated-keyboard, role=user) and Node clients
// (server/federated/node-client.ts), each holding only his own text; faults on purpose: one page
// is closed in the middle of a round and opened again later, and the coordinator is killed
// (SIGKILL) after a round and restarted on the same SQLite file. Every frame a client sends is
// captured (Playwright's WebSocket events for the pages, the Node client's own log) and checked
// for the user's training text. The federation runs once per strategy (FedAvg with the faults,
// then the adaptive FedAdam, Reddi et al. 2021). Then the baselines on the same users
// (role=central: the LSTM trained centrally, the Kneser-Ney trigram). Returns one result object
// (see the README).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright';
import { buildDemos } from '../esbuild.config.mjs';
import { launchOptions } from './chromium.mjs';
import { bundleNodeProgram, dawnEnv, ROOT } from './node-program.mjs';
import { sotuDir, startServer } from './serve.mjs';

const DEFAULTS = {
  users: 4,
  nodeClients: 1,
  rounds: 10,
  target: 3,
  minClients: 2,
  killClientAtRound: 3,
  restartAfterRound: 6,
  deadline: 120,
  vocab: 1000,
  embedding: 32,
  hidden: 64,
  trainTokens: 6000,
  testTokens: 1000,
  epochs: 1,
  batch: 8,
  lr: 1,
  range: 0.5,
  centralEpochs: 10,
  personalEpochs: 2,
  personalLr: 0.5,
  /** FedAdam's server learning rate (Reddi et al.'s for Stack Overflow next-word prediction). */
  serverLr: 0.01,
  /** The federations to run, the first with the faults. */
  strategies: 'fedavg,fedadam',
};

/** A child process whose stdout lines go to `onLine` (and, prefixed, to our stdout). */
function child(command, args, onLine, env) {
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  createInterface({ input: proc.stdout }).on('line', (line) => {
    console.log(line);
    onLine(line);
  });
  createInterface({ input: proc.stderr }).on('line', (line) => console.error(line));
  return proc;
}

/** A JSON payload after a `[tag] ` prefix, or null. */
function tagged(line, tag) {
  return line.startsWith(`[${tag}] `) ? JSON.parse(line.slice(tag.length + 3)) : null;
}

/** The header of a frame (a safetensors file): its __metadata__ says the message type. */
function frameType(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  return JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')).__metadata__?.type ?? '?';
}

/** Stretches of a user's text that would show it had left the client: 32 characters every 50. */
function textProbes(text) {
  const out = [];
  for (let i = 0; i + 32 <= text.length; i += 50) {
    const s = text.slice(i, i + 32);
    if (/[a-z]{3}.*\s.*[a-z]{3}/i.test(s)) out.push(s);
  }
  return out;
}

export async function runFederatedKeyboard({ query = {}, timeoutMs = 60 * 60 * 1000 } = {}) {
  const s = { ...DEFAULTS };
  for (const [k, v] of Object.entries(query)) {
    if (!(k in DEFAULTS)) throw new Error(`federated-keyboard: unknown setting ${k}; settings: ${Object.keys(DEFAULTS).join(', ')}`);
    s[k] = typeof DEFAULTS[k] === 'number' ? Number(v) : String(v);
  }
  const deadline = Date.now() + timeoutMs;
  const started = Date.now();
  const index = JSON.parse(readFileSync(join(sotuDir(), 'index.json'), 'utf8'));
  const users = index.users.slice(-s.users).map((u) => u.id);
  const nodeUsers = users.slice(users.length - s.nodeClients);
  const pageUsers = users.slice(0, users.length - s.nodeClients);
  const texts = Object.fromEntries(users.map((id) => [id, JSON.parse(readFileSync(join(sotuDir(), `${id}.json`), 'utf8')).addresses.map((a) => a.text).join('\n\n')]));
  const dir = mkdtempSync(join(tmpdir(), 'federated-keyboard-'));
  const model = { vocab: s.vocab, embedding: s.embedding, hidden: s.hidden };
  const pageQuery = { users: s.users, trainTokens: s.trainTokens, testTokens: s.testTokens, ...model };

  const root = await buildDemos();
  const web = await startServer({ port: 0, root });
  const coordinatorProgram = await bundleNodeProgram('server/federated/main.ts');
  const clientProgram = await bundleNodeProgram('server/federated/node-client.ts');
  const browser = await chromium.launch({ headless: true, ...launchOptions() });
  const procs = [];
  const remaining = () => Math.max(1000, deadline - Date.now());

  /**
   * One federation of all the users under `strategy`, from a fresh store; with `faults`, a page is
   * closed mid-round and the coordinator killed and restarted. Each user's results and frames.
   */
  async function federate(strategy, faults) {
    const db = join(dir, `${strategy}.sqlite`);
    const tokensFile = join(dir, `${strategy}-tokens.json`);
    const events = { rounds: [], restarts: 0, resumedAt: [], hashes: {}, done: null, killed: [] };
    // The coordinator: started, and with faults killed and started again on the same store and port.
    let coordinator = null;
    let port = 0;
    let onCoordinatorLine = () => {};
    const startCoordinator = (enrol) =>
      new Promise((resolve, reject) => {
        const args = ['--db', db, '--port', String(port), '--strategy', strategy, '--serverLr', String(s.serverLr), '--rounds', String(s.rounds), '--target', String(s.target), '--minClients', String(s.minClients), '--deadline', String(s.deadline), '--range', String(s.range), '--epochs', String(s.epochs), '--batch', String(s.batch), '--lr', String(s.lr), '--vocab', String(s.vocab), '--embedding', String(s.embedding), '--hidden', String(s.hidden)];
        if (enrol) args.push('--enrol', users.join(','), '--tokens', tokensFile);
        coordinator = child(process.execPath, [coordinatorProgram, ...args], (line) => {
          const listening = tagged(line, 'listening');
          if (listening) resolve(listening);
          onCoordinatorLine(line);
        }, dawnEnv());
        coordinator.once('exit', (code, signal) => reject(new Error(`the coordinator exited (${code ?? signal}) before listening`)));
        procs.push(coordinator);
      });
    port = (await startCoordinator(true)).port;
    const tokens = JSON.parse(readFileSync(tokensFile, 'utf8'));
    const url = `ws://127.0.0.1:${port}`;

    // The users: pages, each with its frames captured, and Node clients logging theirs.
    const frames = Object.fromEntries(users.map((id) => [id, []]));
    const results = {};
    const openPage = async (id) => {
      const page = await browser.newPage();
      page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => frames[id].push(Buffer.isBuffer(payload) ? payload : Buffer.from(payload))));
      page.on('console', (m) => m.text().startsWith('[progress]') && console.log(`[${id}] ${m.text()}`));
      page.on('pageerror', (e) => console.error(`[${id}] pageerror ${e.message}`));
      const q = new URLSearchParams({ headless: '1', role: 'user', user: id, token: tokens[id], coordinator: url, ...pageQuery });
      await page.goto(`${web.url}federated-keyboard/?${q}`);
      return page;
    };
    const pages = {};
    for (const id of pageUsers) pages[id] = await openPage(id);
    // The coordinator's page, following /status: what it shows is part of the result.
    const view = faults ? await browser.newPage() : null;
    await view?.goto(`${web.url}federated-keyboard/?${new URLSearchParams({ headless: '1', coordinator: url })}`);
    for (const id of nodeUsers) {
      const args = ['--url', url, '--user', id, '--tokens', tokensFile, '--frames', join(dir, `${strategy}-${id}.frames`), '--users', String(s.users), '--trainTokens', String(s.trainTokens), '--testTokens', String(s.testTokens), '--vocab', String(s.vocab), '--embedding', String(s.embedding), '--hidden', String(s.hidden), '--personalEpochs', String(s.personalEpochs), '--personalLr', String(s.personalLr)];
      procs.push(child(process.execPath, [clientProgram, ...args], (line) => {
        const r = tagged(line, 'result');
        if (r) results[id] = r;
      }, dawnEnv()));
    }

    // Faults, driven by what the coordinator prints.
    const finished = new Promise((resolve, reject) => {
      let reopen = null;
      onCoordinatorLine = (line) => {
        const selected = /^\[coordinator\] round (\d+): \d+ of \d+ clients selected/.exec(line);
        if (faults && selected && Number(selected[1]) === s.killClientAtRound && pageUsers.length) {
          // A user's page vanishes while the round is in progress (closed mid-training); it comes back after the round.
          const id = pageUsers[0];
          setTimeout(() => {
            events.killed.push({ id, round: Number(selected[1]) });
            void pages[id].close();
            reopen = id;
          }, 1500);
        }
        const round = tagged(line, 'round');
        if (round) {
          events.rounds.push(round);
          events.hashes[round.round] = round.weightsHash;
          if (reopen) {
            const id = reopen;
            reopen = null;
            void openPage(id).then((p) => (pages[id] = p));
          }
          if (faults && round.round === s.restartAfterRound && events.restarts === 0) {
            // Killed between rounds, after the round's commit; restarted on the same store.
            events.restarts++;
            coordinator.kill('SIGKILL');
            startCoordinator(false).then((l) => events.resumedAt.push(l), reject);
          }
        }
        const done = tagged(line, 'done');
        if (done) resolve(done);
      };
    });
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`federated-keyboard: no [done] from the ${strategy} coordinator within ${timeoutMs / 1000} s`)), remaining()));
    events.done = await Promise.race([finished, timeout]);

    // Each user's personalisation (pages report through window.__result, Node clients a [result] line).
    for (const id of pageUsers) {
      const handle = await pages[id].waitForFunction(() => window.__result ?? (window.__error !== undefined ? { error: window.__error } : undefined), undefined, { timeout: remaining(), polling: 500 });
      results[id] = await handle.jsonValue();
      if (results[id].error) throw new Error(`user page ${id}: ${results[id].error}`);
    }
    if (faults) await pages[pageUsers[0]]?.screenshot({ path: join(ROOT, 'reports', 'federated-keyboard-user.png'), fullPage: true }).catch(() => {});
    while (nodeUsers.some((id) => !results[id])) {
      if (Date.now() > deadline) throw new Error('federated-keyboard: a Node client reported no result');
      await new Promise((r) => setTimeout(r, 200));
    }
    if (view) {
      await view.screenshot({ path: join(ROOT, 'reports', 'federated-keyboard-coordinator.png'), fullPage: true }).catch(() => {});
      events.view = await view.evaluate(() => ({ round: document.getElementById('round')?.textContent, masked: document.querySelectorAll('#masked code').length, rounds: document.querySelectorAll('#roundsTable tr').length - 1, globalTop1: document.getElementById('globalTop1')?.textContent }));
      await view.close();
    }
    for (const page of Object.values(pages)) await page.close();
    for (const id of nodeUsers) frames[id] = readFileSync(join(dir, `${strategy}-${id}.frames`), 'utf8').split('\n').filter(Boolean).map((l) => Buffer.from(l, 'base64'));
    const resumed = events.resumedAt[0];
    events.restartsSurvived = resumed && resumed.round === s.restartAfterRound && resumed.weightsHash === events.hashes[s.restartAfterRound] && events.done.round === s.rounds ? events.restarts : 0;
    return { events, results, frames };
  }

  try {
    const strategies = s.strategies.split(',');
    const runs = {};
    for (const [i, strategy] of strategies.entries()) runs[strategy] = await federate(strategy, i === 0);
    const main = runs[strategies[0]];

    // The baselines on the same users' text.
    const central = await browser.newPage();
    central.on('console', (m) => m.text().startsWith('[progress]') && console.log(`[central] ${m.text()}`));
    await central.goto(`${web.url}federated-keyboard/?${new URLSearchParams({ headless: '1', role: 'central', centralEpochs: s.centralEpochs, lr: s.lr, batch: s.batch, ...pageQuery })}`);
    const baselines = await (await central.waitForFunction(() => window.__result ?? (window.__error !== undefined ? { error: window.__error } : undefined), undefined, { timeout: remaining(), polling: 500 })).jsonValue();
    if (baselines.error) throw new Error(`central page: ${baselines.error}`);
    await central.screenshot({ path: join(ROOT, 'reports', 'federated-keyboard.png'), fullPage: true }).catch(() => {});

    // Every frame each client sent, in every federation: the types, and whether any carries a stretch of the user's text.
    const frameTypes = {};
    let leaks = 0;
    for (const run of Object.values(runs)) {
      for (const id of users) {
        const probes = textProbes(texts[id]);
        for (const f of run.frames[id]) {
          const type = frameType(f);
          frameTypes[type] = (frameTypes[type] ?? 0) + 1;
          const asText = f.toString('latin1');
          leaks += probes.filter((p) => asText.includes(p)).length;
        }
      }
    }

    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const { events, results } = main;
    const secure = events.rounds.filter((r) => r.secure);
    return {
      central_top1: baselines.central_top1,
      central_top3: baselines.central_top3,
      federated_top1: events.done.pooled?.metrics.accuracy,
      federated_top3: events.done.pooled?.metrics.top3,
      ...Object.fromEntries(strategies.slice(1).map((st) => [`federated_${st}_top1`, runs[st].events.done.pooled?.metrics.accuracy])),
      ngram_top1: baselines.ngram_top1,
      personalised_top1: mean(users.map((id) => results[id].personalised_top1)),
      global_top1_on_users: mean(users.map((id) => results[id].global_top1)),
      rounds: events.done.round,
      strategies,
      secagg_overhead_bytes: Math.round(mean(secure.map((r) => (r.frameBytesDown + r.frameBytesUp - r.plainBytes) / r.sampled))),
      secagg_overhead_time: mean(secure.map((r) => r.secAggSeconds)),
      dropouts_survived: events.rounds.filter((r) => r.dropped.length > 0 && r.aggregated).length,
      server_restarts_survived: events.restartsSurvived,
      clients_killed: events.killed.length,
      coordinator_view: events.view,
      frames_checked: Object.values(frameTypes).reduce((a, b) => a + b, 0),
      frame_types: frameTypes,
      text_in_frames: leaks,
      mean_round_seconds: mean(events.rounds.map((r) => r.seconds)),
      train_losses: events.rounds.map((r) => r.trainLoss),
      users: Object.fromEntries(users.map((id) => [id, { global_top1: results[id].global_top1, personalised_top1: results[id].personalised_top1, rounds: results[id].rounds, bytes_sent: results[id].bytesSent }])),
      seconds: (Date.now() - started) / 1000,
      adapter: baselines.adapter,
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await browser.close().catch(() => {});
    await web.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
