// `npm run fl:server`: the federated keyboard's coordinator, in Node on WebGPU through Dawn.
//   npm run fl:server -- [--name value ...]
// Settings (defaults in brackets): --db (reports/fl-coordinator.sqlite), --port (8787; 0 picks a
// free one), --enrol (comma-separated client ids to enrol; their tokens go to --tokens, shown
// once), --tokens (reports/fl-tokens.json), --vocab (1000), --embedding (32), --hidden (64),
// --rounds (20: the round to stop after), --target (3 reports a round), --minClients (2),
// --overselect (1.3), --deadline (120 s a round), --stageDeadline (20 s), --secagg (1; 0 sends
// plain updates), --range (0.5: each coordinate's clip under secure aggregation), --maxWeight
// (100000 examples), --strategy (fedavg | fedadam), --serverLr (FedAdam's eta, 0.01), --epochs (1), --batch (8), --lr (1),
// --evaluate (1: ask the clients for a federated evaluation at the end), --grace (20 s: a round
// waits this long for --target clients before starting with fewer), --waitClients (600 s: for the
// fewest a round needs).
// Prints `[coordinator] ...` lines and, per round and at the end, one line of JSON starting
// `[round] ` or `[done] ` for scripts that follow it. A killed coordinator restarted with the same
// --db resumes after the last committed round.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { create } from 'webgpu';
import { Engine, FedAdam, FedAvg, FederatedServer, fnv1a, KeyboardModel } from '../../src/index.js';
import { Coordinator } from './coordinator.js';
import { programSettings } from './settings.js';
import { CoordinatorStore } from './store.js';

const KNOWN = ['db', 'port', 'enrol', 'tokens', 'vocab', 'embedding', 'hidden', 'rounds', 'target', 'minClients', 'overselect', 'deadline', 'stageDeadline', 'secagg', 'range', 'maxWeight', 'strategy', 'epochs', 'batch', 'lr', 'evaluate', 'waitClients', 'grace', 'serverLr', 'seed'];

async function main(): Promise<void> {
  const { text, number } = programSettings('fl:server', process.argv.slice(2), KNOWN);
  // Every setting is read (and a bad one refused) before anything is opened or created.
  const db = text('db', 'reports/fl-coordinator.sqlite');
  const enrol = text('enrol', '').split(',').filter(Boolean);
  const tokensFile = text('tokens', 'reports/fl-tokens.json');
  const modelSettings = { vocab: number('vocab', 1000), embedding: number('embedding', 32), hidden: number('hidden', 64), seed: number('seed', 1) };
  const strategyName = text('strategy', 'fedavg');
  if (strategyName !== 'fedavg' && strategyName !== 'fedadam') throw new Error(`fl:server: --strategy ${strategyName}: expected fedavg or fedadam`);
  const serverLr = number('serverLr', 0.01);
  const minClients = number('minClients', 2);
  const training = { epochs: number('epochs', 1), batchSize: number('batch', 8), learningRate: number('lr', 1), proximalMu: 0, compression: null };
  const secure = number('secagg', 1) !== 0;
  const target = number('target', 3);
  const port = number('port', 8787);
  const overselect = number('overselect', 1.3);
  const deadlineMs = 1000 * number('deadline', 120);
  const stageDeadlineMs = 1000 * number('stageDeadline', 20);
  const secureAggregation = secure ? { range: number('range', 0.5), maxWeight: number('maxWeight', 100_000) } : null;
  const rounds = number('rounds', 20);
  const waitMs = 1000 * number('waitClients', 600);
  const graceMs = 1000 * number('grace', 20);
  const evaluate = number('evaluate', 1) !== 0;

  mkdirSync(dirname(db), { recursive: true });
  const store = CoordinatorStore.open(db);
  if (enrol.length) {
    const tokens = Object.fromEntries(enrol.map((id) => [id, store.enrol(id)]));
    mkdirSync(dirname(tokensFile), { recursive: true });
    writeFileSync(tokensFile, JSON.stringify(tokens, null, 2), { mode: 0o600 });
    console.log(`[coordinator] enrolled ${enrol.join(', ')}; their tokens are in ${tokensFile}`);
  }

  const gpu = create(['backend=vulkan']);
  const engine = await Engine.create({ gpu });
  const model = new KeyboardModel(engine, modelSettings);
  const strategy = strategyName === 'fedadam' ? new FedAdam({ eta: serverLr }) : new FedAvg();
  const server = new FederatedServer(engine, model, { strategy, fraction: 1, minClients, seed: modelSettings.seed, normFactor: Infinity, training });
  const coordinator = await Coordinator.start({
    engine,
    server,
    modelName: model.spec,
    store,
    port,
    target,
    overselect,
    roundDeadlineMs: deadlineMs,
    stageDeadlineMs,
    secureAggregation,
  });
  /** A hash of the global weights' bytes: scripts compare it across a restart. */
  const weightsHash = async () => {
    const { weights } = await server.saveState();
    return fnv1a(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength));
  };
  console.log(`[listening] ${JSON.stringify({ port: coordinator.port, round: server.round, model: model.spec, weightsHash: await weightsHash() })}`);
  while (server.round < rounds) {
    // A round starts once the target's worth of clients have checked in, or after a grace period with the fewest a round needs.
    await coordinator.waitForClients(target, graceMs).catch(() => coordinator.waitForClients(server.required, waitMs));
    const r = await coordinator.runRound();
    console.log(`[round] ${JSON.stringify({ round: r.round, sampled: r.sampled.length, accepted: r.accepted.length, dropped: r.dropped, rejected: r.rejected, aggregated: r.aggregated, secure: r.secure, frameBytesDown: r.frameBytesDown, frameBytesUp: r.frameBytesUp, plainBytes: r.plainBytes, seconds: r.seconds, secAggSeconds: r.secAggSeconds, trainLoss: r.trainLoss, weightsHash: await weightsHash() })}`);
  }
  const evaluations = evaluate ? await coordinator.evaluate(deadlineMs) : [];
  console.log(`[done] ${JSON.stringify({ round: server.round, evaluations, pooled: coordinator.status().evaluation })}`);
  // Status pages poll once a second: give them the final state before the port closes.
  await new Promise((r) => setTimeout(r, 2500));
  await coordinator.close(true);
  store.close();
  model.dispose();
  // Dawn holds the event loop open while its instance lives; the work is done.
  void gpu;
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`[coordinator] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
