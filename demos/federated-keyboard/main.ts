// The federated keyboard, one page per role (scripts/federated-keyboard.mjs runs them all for
// `npm run headless -- federated-keyboard`):
//   ?role=user&user=<id>&token=<token>&coordinator=ws://127.0.0.1:8787
//       one user: holds only his own text (a president's State of the Union words), trains on it when
//       the coordinator asks (`npm run fl:server`), sends back only masked updates, reconnects when
//       the coordinator restarts; when the federation ends, scores the last global model on his own
//       held-out text, fine-tunes its head on his own text (personalisation) and scores it again.
//   ?role=central
//       the baselines on the same users' texts: the LSTM trained centrally on all their training text
//       pooled (as many passes as the federation's rounds), and the Kneser-Ney trigram.
//   (no role) the coordinator's view: rounds, clients, bytes, and what the server sees of each
//       update (masked bytes), polled from the coordinator's /status.
// Query parameters (defaults): users (4), vocab (1000), embedding (32), hidden (64), trainTokens
// (3000), testTokens (1000), steps (20), streams (4), batch (8), lr (1), centralEpochs (12),
// personalEpochs (2), personalLr (0.5), coordinator (ws://127.0.0.1:8787), headless=1.
import {
  Engine,
  evaluateLanguageModel,
  FederatedClient,
  keepConnected,
  KeyboardModel,
  keyboardUsers,
  keyboardWords,
  KneserNeyTrigram,
  loadSotu,
  NextWordTally,
  noGrad,
  personaliseAfterFederation,
  SGD,
  tokenStreams,
  topKIds,
  trainLanguageModel,
  type KeyboardUser,
  type WordTokenizer,
} from '../../src/index.js';
import { $, dataFetcher, finish, intParam, log, numberParam, params, resultTable, run, setText, status } from '../common/ui.js';

const settings = {
  role: params.get('role') ?? 'coordinator',
  coordinator: params.get('coordinator') ?? 'ws://127.0.0.1:8787',
  user: params.get('user') ?? '',
  token: params.get('token') ?? '',
  users: intParam('users', 4),
  vocab: intParam('vocab', 1000, 10),
  embedding: intParam('embedding', 32),
  hidden: intParam('hidden', 64),
  trainTokens: intParam('trainTokens', 3000, 100),
  testTokens: intParam('testTokens', 1000, 100),
  steps: intParam('steps', 20),
  streams: intParam('streams', 4),
  batch: intParam('batch', 8),
  lr: numberParam('lr', 1),
  centralEpochs: intParam('centralEpochs', 12),
  personalEpochs: intParam('personalEpochs', 2),
  personalLr: numberParam('personalLr', 0.5),
};

/** The federation's users and vocabulary, as every party computes them (keyboardUsers). */
async function population(): Promise<{ tokenizer: WordTokenizer; users: KeyboardUser[] }> {
  return keyboardUsers(await loadSotu(dataFetcher('sotu')), settings);
}

function newModel(engine: Engine, tokenizer: WordTokenizer): KeyboardModel {
  // The same seed as the coordinator's (server/federated/main.ts): only the architecture must match, the weights come from it.
  return new KeyboardModel(engine, { vocab: tokenizer.vocab.length, embedding: settings.embedding, hidden: settings.hidden, seed: 1 });
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

async function userPage(): Promise<void> {
  $('userCard').hidden = false;
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  const { tokenizer, users } = await population();
  const me = users.find((u) => u.id === settings.user);
  if (!me) throw new Error(`user ${JSON.stringify(settings.user)} is not one of the federation's users: ${users.map((u) => u.id).join(', ')}`);
  setText('title', `Federated keyboard: ${me.name}`);
  setText('user', me.name);
  const model = newModel(engine, tokenizer);
  const text = (tokens: Uint32Array) => ({ tokens, steps: settings.steps, streams: settings.streams, exclude: tokenizer.markerIds });
  const client = new FederatedClient({ id: me.id, model, data: text(me.train), test: text(me.test) });
  status(`Holding ${me.train.length.toLocaleString('en-US')} training tokens of ${me.name}'s text; connecting to ${settings.coordinator}…`);
  const connection = keepConnected({
    url: settings.coordinator,
    token: settings.token,
    model: model.spec,
    client,
    engine,
    onConnect: () => setText('connection', 'connected'),
    log: (line) => log(line),
  });
  // Suggestions from this page's model for what has been typed (its weights: the last round's local training, or the personalised head at the end).
  const box = $<HTMLTextAreaElement>('text');
  box.disabled = false;
  // A context of its own: suggesting runs while the client trains, and neither's scope may take the other's tensors.
  const suggestions = engine.context();
  const suggest = () => {
    const context = [tokenizer.bosId, ...keyboardWords(box.value).map((w) => tokenizer.idOf(w))].slice(-settings.steps);
    void suggestions
      .scope(async () => {
        const logits = noGrad(() => model.forward(suggestions.tensor(context, [1, context.length], 'suggest.context')));
        return topKIds((await logits.data()).subarray((context.length - 1) * model.vocab), 3, tokenizer.markerIds);
      })
      .then((ids) => ids.forEach((id, i) => setText(`s${i}`, tokenizer.vocab[id]!)));
  };
  box.addEventListener('input', suggest);
  let shownAfter = -1;
  const render = () => {
    setText('rounds', String(connection.stats.rounds));
    setText('sent', connection.stats.bytesSent.toLocaleString('en-US'));
    setText('secagg', `${Math.round(connection.stats.secAggMs)} ms`);
    // New suggestions after each round the page trained.
    if (connection.stats.rounds !== shownAfter) {
      shownAfter = connection.stats.rounds;
      suggest();
    }
  };
  const timer = setInterval(render, 500);

  await connection.finished;
  clearInterval(timer);
  render();
  setText('connection', 'federation ended');
  const global = connection.lastGlobal();
  if (!global) throw new Error('the federation ended before this page received a global model');
  status('The federation has ended: personalising the head on this user’s own text…');
  const r = await personaliseAfterFederation(engine, client, global, { head: ['embedding.projection', 'embedding.bias'], epochs: settings.personalEpochs, batchSize: 4, learningRate: settings.personalLr });
  status(`Top-1 next-word recall on ${me.name}'s held-out text: global model ${pct(r.global)}, personalised ${pct(r.personalised)}.`);
  suggest();
  finish({ user: me.id, global_top1: r.global, personalised_top1: r.personalised, ...connection.stats, adapter: engine.adapterName });
}

async function centralPage(): Promise<void> {
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  const { tokenizer, users } = await population();
  const exclude = tokenizer.markerIds;
  const V = tokenizer.vocab.length;
  status('Kneser-Ney trigram…');
  // The same positions as the federated evaluation (FederatedClient.evaluate): each user's test tokens as `streams` streams.
  const ngram = KneserNeyTrigram.train(users.map((u) => u.train), { vocabSize: V, bosId: tokenizer.bosId });
  const ngramAll = new NextWordTally(exclude);
  for (const u of users) ngramAll.addSequences((context) => ngram.probabilities(context), tokenStreams(u.test, settings.streams));
  const ngramResult = ngramAll.result();
  log(`trigram: top-1 ${ngramResult.top1.toFixed(4)}`);

  status('LSTM trained centrally on all users’ training text…');
  const model = newModel(engine, tokenizer);
  const joined = new Uint32Array(users.reduce((n, u) => n + u.train.length, 0));
  users.reduce((at, u) => (joined.set(u.train, at), at + u.train.length), 0);
  // Local SGD as the federated clients use it, over the pooled text.
  const optimizer = new SGD(model, { lr: settings.lr });
  const trained = await trainLanguageModel(engine, model, optimizer, joined, {
    batchSize: settings.batch,
    steps: settings.steps,
    epochs: settings.centralEpochs,
    logEvery: 20,
    onProgress: (p) => {
      if (p.step % 100 === 0 || p.step === p.totalSteps) log(`central LSTM: step ${p.step}/${p.totalSteps}, loss ${p.loss.toFixed(3)}`);
    },
  });
  optimizer.dispose();
  const centralAll = new NextWordTally(exclude);
  for (const u of users) await evaluateLanguageModel(engine, model, u.test, { streams: settings.streams, steps: settings.steps, exclude, into: centralAll });
  const central = centralAll.result();
  log(`central LSTM: top-1 ${central.top1.toFixed(4)}, top-3 ${central.top3.toFixed(4)}`);
  $('results').replaceChildren(resultTable('Baselines on the users’ held-out text (pooled)', ['model', 'top-1', 'top-3', 'perplexity'], [
    ['Kneser-Ney trigram', ngramResult.top1, ngramResult.top3, ngramResult.perplexity],
    ['LSTM, trained centrally', central.top1, central.top3, central.perplexity],
  ]));
  status('Done.');
  model.dispose();
  finish({ central_top1: central.top1, central_top3: central.top3, central_perplexity: central.perplexity, ngram_top1: ngramResult.top1, ngram_top3: ngramResult.top3, central_tokens_per_s: trained.tokensPerSecond, adapter: engine.adapterName });
}

async function coordinatorPage(): Promise<void> {
  $('coordinatorCard').hidden = false;
  setText('adapter', 'the coordinator’s (Node, Dawn)');
  const url = settings.coordinator.replace(/^ws/, 'http') + '/status';
  status(`Following ${url}`);
  for (;;) {
    try {
      const s = (await (await fetch(url, { cache: 'no-store' })).json()) as {
        round: number;
        connected: string[];
        secure: boolean;
        maskedPreview: Record<string, string>;
        evaluation: { metrics: Record<string, number> } | null;
        rounds: { round: number; sampled: number; accepted: number; dropped: number; rejected: number; aggregated: boolean | null; frameBytesDown: number; frameBytesUp: number; seconds: number; trainLoss: number | null }[];
      };
      setText('round', String(s.round));
      setText('connected', `${s.connected.length}: ${s.connected.join(', ')}`);
      if (s.evaluation) setText('globalTop1', pct(s.evaluation.metrics.accuracy ?? NaN));
      $('masked').replaceChildren(
        ...Object.entries(s.maskedPreview).map(([id, hex]) => {
          const p = document.createElement('p');
          p.innerHTML = `<b></b>: <code class="masked"></code> …`;
          p.querySelector('b')!.textContent = id;
          p.querySelector('code')!.textContent = hex;
          return p;
        }),
      );
      $('roundsTable').replaceChildren(resultTable('Rounds', ['round', 'selected', 'accepted', 'dropped', 'rejected', 'aggregated', 'bytes down', 'bytes up', 'seconds', 'train loss'], s.rounds.map((r) => [r.round, r.sampled, r.accepted, r.dropped, r.rejected, r.aggregated === null ? null : r.aggregated ? 'yes' : 'no', r.frameBytesDown, r.frameBytesUp, r.seconds, r.trainLoss])));
    } catch (e) {
      status(`${url}: ${e instanceof Error ? e.message : String(e)} (is npm run fl:server running?)`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

run(async () => {
  if (settings.role === 'user') await userPage();
  else if (settings.role === 'central') await centralPage();
  else if (settings.role === 'coordinator') await coordinatorPage();
  else throw new Error(`role ${settings.role}: expected user, central or coordinator`);
});
