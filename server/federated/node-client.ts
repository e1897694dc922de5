// A federated keyboard client in Node (WebGPU through Dawn), so one machine can run a coordinator
// and many clients: it holds one user's text (a State of the Union president's, read from disk),
// trains on it when the coordinator asks, and sends back only its masked update.
//   node scripts/node-program.mjs server/federated/node-client.ts --url ws://127.0.0.1:8787 --user <id> --tokens reports/fl-tokens.json
// Settings (defaults in brackets): --users (4: the federation's last presidents), --vocab (1000),
// --embedding (32), --hidden (64), --trainTokens (3000), --testTokens (1000), --steps (20: BPTT
// window), --streams (4: evaluation), --frames (a file: every frame sent, one base64 line each,
// for inspection). It reconnects when the coordinator goes away, and exits when it says bye.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from 'webgpu';
import WebSocket from 'ws';
import { Engine, FederatedClient, keepConnected, KeyboardModel, keyboardUsers, loadSotu, personaliseAfterFederation, type SocketLike } from '../../src/index.js';
import { programSettings } from './settings.js';

const KNOWN = ['url', 'user', 'token', 'tokens', 'users', 'vocab', 'embedding', 'hidden', 'trainTokens', 'testTokens', 'steps', 'streams', 'frames', 'personalEpochs', 'personalLr'];

/** The addresses as npm run setup writes them, else the committed subset (as scripts/serve.mjs serves them). */
function sotuDir(): string {
  if (process.env.SOTU_DIR) return process.env.SOTU_DIR;
  return existsSync('data/sotu/index.json') ? 'data/sotu' : 'tests/data/sotu';
}

async function main(): Promise<void> {
  const { text, required, number, has } = programSettings('fl:client', process.argv.slice(2), KNOWN);
  const userId = required('user');
  const token = has('token') ? required('token') : (JSON.parse(readFileSync(required('tokens'), 'utf8')) as Record<string, string>)[userId];
  if (!token) throw new Error(`node-client: no token for ${userId}`);
  const dir = sotuDir();
  const { tokenizer, users } = keyboardUsers(await loadSotu((file) => Promise.resolve(readFileSync(join(dir, file)))), {
    users: number('users', 4),
    vocab: number('vocab', 1000),
    trainTokens: number('trainTokens', 3000),
    testTokens: number('testTokens', 1000),
  });
  const user = users.find((u) => u.id === userId);
  if (!user) throw new Error(`node-client: ${userId} is not one of the users ${users.map((u) => u.id).join(', ')}`);

  const gpu = create(['backend=vulkan']);
  const engine = await Engine.create({ gpu });
  const model = new KeyboardModel(engine, { vocab: tokenizer.vocab.length, embedding: number('embedding', 32), hidden: number('hidden', 64), seed: 1 });
  const tokenData = (tokens: Uint32Array) => ({ tokens, steps: number('steps', 20), streams: number('streams', 4), exclude: tokenizer.markerIds });
  const client = new FederatedClient({ id: user.id, model, data: tokenData(user.train), test: tokenData(user.test) });
  const frames = text('frames', '');
  const log = (line: string) => console.log(`[node-client] ${line}`);
  const connection = keepConnected({
    url: required('url'),
    token,
    model: model.spec,
    client,
    engine,
    socket: (url) => new WebSocket(url) as unknown as SocketLike,
    onSend: frames ? (frame) => appendFileSync(frames, `${Buffer.from(frame).toString('base64')}\n`) : undefined,
    onConnect: () => log(`${user.id} connected`),
    log,
  });
  await connection.finished;
  log(`${user.id}: the coordinator ended the federation`);
  const global = connection.lastGlobal();
  if (global) {
    const r = await personaliseAfterFederation(engine, client, global, { head: ['embedding.projection', 'embedding.bias'], epochs: number('personalEpochs', 2), batchSize: 4, learningRate: number('personalLr', 0.5) });
    console.log(`[result] ${JSON.stringify({ user: user.id, global_top1: r.global, personalised_top1: r.personalised, ...connection.stats })}`);
  }
  model.dispose();
  void gpu;
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`[node-client] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
