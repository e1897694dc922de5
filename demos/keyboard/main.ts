// Keyboard experiment: next-word prediction on State of the Union addresses, one "user" per
// president (his first 80% of words to train, the rest to test). A Kneser-Ney trigram and a CIFG
// LSTM with tied embeddings are trained on all users' training text; each is scored on every
// user's held-out text (top-1 and top-3 recall, perplexity). Then each user's copy of the LSTM is
// fine-tuned on his own training text (all layers; only the head: the output projection and bias;
// or LoRA on the projection with the bias) and scored on his held-out text again. Both models score the same positions: each user's
// test tokens cut into the same parallel streams.
// Query parameters: users (8: the latest presidents), vocab (2000), trainTokens (per user, 15000),
// testTokens (per user, 3000), embedding (64), hidden (128), batch (32), steps (20), epochs (3),
// lr (0.003), personalEpochs (1), personalLr (0.001), streams (8, evaluation), headless=1. The
// result goes to window.__result and a `[result] {...}` console line.
import { Adam, applyLoRA, Engine, evaluateLanguageModel, KeyboardModel, KneserNeyTrigram, loadSotu, NextWordTally, splitUserText, tokenStreams, trainLanguageModel, WordTokenizer, type NextWordMetrics } from '../../src/index.js';
import { $, dataFetcher, drawChart, finish, intParam, log, mean, numberParam, params, resultTable, run, type Series, setText, status } from '../common/ui.js';


const settings = {
  users: intParam('users', 8),
  vocab: intParam('vocab', 2000, 10),
  trainTokens: intParam('trainTokens', 15000, 100),
  testTokens: intParam('testTokens', 3000, 100),
  embedding: intParam('embedding', 64),
  hidden: intParam('hidden', 128),
  batch: intParam('batch', 32),
  steps: intParam('steps', 20),
  epochs: intParam('epochs', 3),
  lr: numberParam('lr', 0.003),
  personalEpochs: intParam('personalEpochs', 1),
  personalLr: numberParam('personalLr', 0.001),
  streams: intParam('streams', 8),
};

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;


run(async () => {
  const form = $('controls') as HTMLFormElement;
  for (const [k, v] of params) {
    const field = form.querySelector<HTMLInputElement>(`[name=${k}]`);
    if (field) field.value = v;
  }
  if (settings.hidden === settings.embedding) throw new Error(`hidden ${settings.hidden} = embedding ${settings.embedding}: the LoRA personalisation adapts the head's projection, which exists only when they differ`);
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  const started = performance.now();
  const progress = (f: number) => ($('progress').style.width = `${100 * f}%`);

  status('Loading the addresses…');
  const all = await loadSotu(dataFetcher('sotu'));
  const users = all.slice(-settings.users);
  const split = users.map((u) => ({ user: u, ...splitUserText(u.text) }));
  const tokenizer = WordTokenizer.fit(split.map((s) => s.train), { maxSize: settings.vocab });
  const V = tokenizer.vocab.length;
  // Each user's training tokens (the first trainTokens) and test tokens (the first testTokens of his held-out text).
  const data = split.map((s) => ({ id: s.user.id, name: s.user.name, train: tokenizer.encode(s.train).subarray(0, settings.trainTokens), test: tokenizer.encode(s.test).subarray(0, settings.testTokens) }));
  const exclude = tokenizer.markerIds;
  log(`${users.length} users (${users.map((u) => u.id).join(', ')}), vocabulary ${V}, ${data.reduce((n, d) => n + d.train.length, 0)} training tokens, adapter ${engine.adapterName}`);

  // The same positions for both models: each user's test tokens as `streams` streams.
  const testStreams = data.map((d) => tokenStreams(d.test, settings.streams));

  setText('phase', 'n-gram');
  status('Kneser-Ney trigram…');
  const ngram = KneserNeyTrigram.train(data.map((d) => d.train), { vocabSize: V, bosId: tokenizer.bosId });
  const ngramUsers: NextWordMetrics[] = [];
  const ngramAll = new NextWordTally(exclude);
  for (const streams of testStreams) {
    const tally = new NextWordTally(exclude);
    tally.addSequences((context) => ngram.probabilities(context), streams);
    ngramAll.merge(tally);
    ngramUsers.push(tally.result());
  }
  const ngramOverall = ngramAll.result();
  log(`trigram: top-1 ${ngramOverall.top1.toFixed(4)}, top-3 ${ngramOverall.top3.toFixed(4)}, perplexity ${ngramOverall.perplexity.toFixed(1)}`);

  setText('phase', 'global LSTM');
  const options = { vocab: V, embedding: settings.embedding, hidden: settings.hidden, cell: 'cifg' as const, seed: 1 };
  const model = new KeyboardModel(engine, options);
  const params_ = [...model.parameters().values()].reduce((n, p) => n + p.size, 0);
  setText('params', params_.toLocaleString('en-US'));
  const losses: [number, number][] = [];
  const optimizer = new Adam(model, { lr: settings.lr, clipNorm: 1 });
  // Users' texts joined, each after the previous (the streams cut across users, as one corpus).
  const joined = new Uint32Array(data.reduce((n, d) => n + d.train.length, 0));
  data.reduce((at, d) => (joined.set(d.train, at), at + d.train.length), 0);
  const trained = await trainLanguageModel(engine, model, optimizer, joined, {
    batchSize: settings.batch,
    steps: settings.steps,
    epochs: settings.epochs,
    logEvery: 10,
    onProgress: (p) => {
      losses.push([p.step / p.totalSteps, p.loss]);
      setText('loss', p.loss.toFixed(3));
      setText('speed', Math.round(p.tokens / (p.elapsedMs / 1000)).toLocaleString('en-US'));
      drawChart($<HTMLCanvasElement>('lossChart'), { series: [{ points: losses, color: '#2563eb' }], xMax: 1, yMin: 0, yMax: Math.max(...losses.map(([, l]) => l)) * 1.05, xLabel: 'fraction of training', yFormat: (v) => v.toFixed(1) });
      progress(0.5 * (p.step / p.totalSteps));
      if (p.step % 50 === 0 || p.step === p.totalSteps) log(`LSTM: step ${p.step}/${p.totalSteps}: loss ${p.loss.toFixed(3)}, ${Math.round(p.tokens / (p.elapsedMs / 1000))} tokens/s`);
    },
  });
  optimizer.dispose();
  const globalUsers: NextWordMetrics[] = [];
  const globalAll = new NextWordTally(exclude);
  for (const d of data) globalUsers.push(await evaluateLanguageModel(engine, model, d.test, { streams: settings.streams, steps: settings.steps, exclude, into: globalAll }));
  const lstmOverall = globalAll.result();
  log(`LSTM: top-1 ${lstmOverall.top1.toFixed(4)}, top-3 ${lstmOverall.top3.toFixed(4)}, perplexity ${lstmOverall.perplexity.toFixed(1)}, ${Math.round(trained.tokensPerSecond)} tokens/s`);

  // Personalisation: each user's copy from the global weights, fine-tuned on his own training tokens.
  const modes = ['all', 'head', 'lora'] as const;
  const personal: Record<(typeof modes)[number], NextWordMetrics[]> = { all: [], head: [], lora: [] };
  const globalWeights = model.flatWeights();
  for (const [i, d] of data.entries()) {
    for (const mode of modes) {
      setText('phase', `personal (${mode}): ${d.name}`);
      const copy = new KeyboardModel(engine, options);
      copy.setFlatWeights(globalWeights);
      if (mode === 'head') copy.freeze('rnn', 'embedding').unfreeze('embedding.projection', 'embedding.bias');
      // LoRA on the head: a rank-4 update of the output projection and the output bias train, the rest frozen.
      if (mode === 'lora') applyLoRA(copy, ['embedding.projection'], { rank: 4, seed: 7, trainable: ['embedding.bias'] });
      const mine = new Adam(copy, { lr: settings.personalLr, clipNorm: 1 });
      await trainLanguageModel(engine, copy, mine, d.train, { batchSize: Math.min(settings.batch, Math.floor(d.train.length / (settings.steps + 1))), steps: settings.steps, epochs: settings.personalEpochs, logEvery: 1000 });
      personal[mode].push(await evaluateLanguageModel(engine, copy, d.test, { streams: settings.streams, steps: settings.steps, exclude }));
      mine.dispose();
      copy.dispose();
    }
    log(`${d.name}: top-1 trigram ${ngramUsers[i]!.top1.toFixed(4)}, global ${globalUsers[i]!.top1.toFixed(4)}, personalised ${personal.all[i]!.top1.toFixed(4)} (head only ${personal.head[i]!.top1.toFixed(4)}, LoRA head ${personal.lora[i]!.top1.toFixed(4)})`);
    progress(0.5 + 0.5 * ((i + 1) / data.length));
    const series: Series[] = [
      { label: 'global', points: globalUsers.slice(0, i + 1).map((m, k) => [k + 1, m.top1]), color: '#9aa5b1', dots: true },
      { label: 'personalised', points: personal.all.map((m, k) => [k + 1, m.top1]), color: '#16a34a', dots: true },
    ];
    drawChart($<HTMLCanvasElement>('userChart'), { series, xMax: data.length, yMin: 0, yMax: Math.max(0.3, ...personal.all.map((m) => m.top1)) * 1.1, xLabel: 'user', yFormat: pct });
  }
  globalWeights.dispose();

  const rows = data.map((d, i) => [d.name, ngramUsers[i]!.top1, globalUsers[i]!.top1, personal.head[i]!.top1, personal.lora[i]!.top1, personal.all[i]!.top1, globalUsers[i]!.top3, personal.all[i]!.top3, globalUsers[i]!.targets]);
  $('results').replaceChildren(
    resultTable('Overall (pooled over users)', ['model', 'top-1', 'top-3', 'perplexity'], [
      ['Kneser-Ney trigram', ngramOverall.top1, ngramOverall.top3, ngramOverall.perplexity],
      [`CIFG LSTM (${params_.toLocaleString('en-US')} parameters)`, lstmOverall.top1, lstmOverall.top3, lstmOverall.perplexity],
    ]),
    resultTable('Per user (top-1 unless marked)', ['user', 'trigram', 'global', 'personal head', 'personal LoRA head', 'personal all', 'global top-3', 'personal top-3', 'targets'], rows),
  );
  const minutes = (performance.now() - started) / 60000;
  $('notes').textContent = `Adapter ${engine.adapterName}; ${minutes.toFixed(1)} minutes.`;
  status('Done.');
  setText('phase', 'done');
  model.dispose();
  finish({
    ngram_top1: ngramOverall.top1,
    ngram_top3: ngramOverall.top3,
    ngram_perplexity: ngramOverall.perplexity,
    lstm_top1: lstmOverall.top1,
    lstm_top3: lstmOverall.top3,
    perplexity: lstmOverall.perplexity,
    personalised_top1: mean(personal.all.map((m) => m.top1)),
    personalised_head_top1: mean(personal.head.map((m) => m.top1)),
    personalised_lora_top1: mean(personal.lora.map((m) => m.top1)),
    global_top1_on_users: mean(globalUsers.map((m) => m.top1)),
    ngram_top1_on_users: mean(ngramUsers.map((m) => m.top1)),
    users: Object.fromEntries(data.map((d, i) => [d.id, { ngram: ngramUsers[i]!.top1, global: globalUsers[i]!.top1, personal_head: personal.head[i]!.top1, personal_lora: personal.lora[i]!.top1, personal_all: personal.all[i]!.top1 }])),
    params: params_,
    train_tokens_per_s: trained.tokensPerSecond,
    vocab: V,
    settings,
    adapter: engine.adapterName,
    seconds: (performance.now() - started) / 1000,
  });
});
