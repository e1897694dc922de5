// A keyboard that learns: a small global next-word model is trained in the page on State of the
// Union addresses, then a personal copy is fine-tuned on what the person types, in the page, one
// step after each completed word, while typing goes on (the work is queued; typing never waits on
// it). Each completed word is scored against the three suggestions each model made just before it
// was typed (the personal model having learned only from earlier words): top-1 and top-3 recall
// on the person's own text, global against personal. Nothing typed is sent anywhere.
// Query parameters: users (4), trainTokens (8000), vocab (1000), embedding (32), hidden (64),
// epochs (2), lr (0.005), personalLr (0.01), context (20 tokens), headless=1. The page reports
// `{ ready: true, ... }` through window.__result once the global model is trained; the typing
// statistics are in window.__typing.
import { Adam, Engine, KeyboardModel, keyboardWords, loadSotu, noGrad, splitUserText, topKIds, trainLanguageModel, WordTokenizer } from '../../src/index.js';
import { $, dataFetcher, fail, finish, intParam, log, numberParam, run, setText, status } from '../common/ui.js';


const settings = {
  users: intParam('users', 4),
  trainTokens: intParam('trainTokens', 8000, 100),
  vocab: intParam('vocab', 1000, 10),
  embedding: intParam('embedding', 32),
  hidden: intParam('hidden', 64),
  epochs: intParam('epochs', 2),
  lr: numberParam('lr', 0.005),
  personalLr: numberParam('personalLr', 0.01),
  context: intParam('context', 20, 2),
};

interface WordScore {
  word: string;
  global: number;
  personal: number;
}

declare global {
  interface Window {
    __typing?: { words: WordScore[]; queued: number; steps: number };
  }
}

run(async () => {
  const engine = await Engine.create();
  setText('adapter', engine.adapterName);
  status('Training the global model on State of the Union addresses…');
  const users = (await loadSotu(dataFetcher('sotu'))).slice(-settings.users);
  const texts = users.map((u) => splitUserText(u.text).train);
  const tokenizer = WordTokenizer.fit(texts, { maxSize: settings.vocab });
  const tokens = texts.flatMap((t) => Array.from(tokenizer.encode(t).subarray(0, settings.trainTokens)));
  const options = { vocab: tokenizer.vocab.length, embedding: settings.embedding, hidden: settings.hidden, seed: 1 };
  const global = new KeyboardModel(engine, options);
  const optimizer = new Adam(global, { lr: settings.lr, clipNorm: 1 });
  const trained = await trainLanguageModel(engine, global, optimizer, tokens, {
    batchSize: 16,
    steps: 20,
    epochs: settings.epochs,
    logEvery: 20,
    onProgress: (p) => {
      status(`Training the global model: step ${p.step} of ${p.totalSteps}, loss ${p.loss.toFixed(2)}`);
      log(`global model: step ${p.step}/${p.totalSteps}, loss ${p.loss.toFixed(3)}`);
    },
  });
  optimizer.dispose();
  const personal = new KeyboardModel(engine, options);
  const weights = global.flatWeights();
  personal.setFlatWeights(weights);
  weights.dispose();
  const personalOptimizer = new Adam(personal, { lr: settings.personalLr, clipNorm: 1 });

  /** `model`'s next-word scores over the vocabulary after the context (the last `context` tokens, <bos> first when short). */
  const scoresAfter = async (model: KeyboardModel, ids: number[]): Promise<Float32Array> => {
    const context = ids.slice(-settings.context);
    return engine.scope(async () => {
      const logits = noGrad(() => model.forward(engine.tensor(context, [1, context.length], 'typing.context')));
      return (await logits.data()).slice((context.length - 1) * options.vocab);
    });
  };
  /** The three best words that begin with what has been typed of the current word (any word when nothing has). */
  const strip = (scores: Float32Array, partial: string): number[] => {
    const prefix = partial.toLowerCase();
    if (!prefix) return topKIds(scores, 3, tokenizer.markerIds);
    const matching = scores.map((s, id) => (tokenizer.vocab[id]!.startsWith(prefix) ? s : -Infinity));
    return topKIds(matching, 3, tokenizer.markerIds).filter((id) => matching[id]! > -Infinity);
  };

  // What has been typed, as completed words' ids (<bos> first), and the work queue.
  const typed: number[] = [tokenizer.bosId];
  const stats = { words: [] as WordScore[], queued: 0, steps: 0 };
  window.__typing = stats;
  // Each model's scores for the next word, made before any of it was typed: the recall counts these.
  const next = async () => ({ global: await scoresAfter(global, typed), personal: await scoresAfter(personal, typed) });
  let scores = await next();
  const box = $<HTMLTextAreaElement>('text');
  /** The letters of the word being typed (after the last completed word). */
  const partialWord = () => /[\p{L}\p{N}'’-]*$/u.exec(box.value)![0];
  let shown: number[] = [];
  const render = () => {
    shown = strip(scores.personal, partialWord());
    for (let i = 0; i < 3; i++) setText(`s${i}`, shown[i] === undefined ? '' : tokenizer.vocab[shown[i]!]!);
    const counted = stats.words;
    const rate = (key: 'global' | 'personal') => (counted.length ? `${Math.round((100 * counted.filter((w) => w[key] >= 0 && w[key] < 3).length) / counted.length)}%` : '–');
    setText('words', String(counted.length));
    setText('globalTop3', rate('global'));
    setText('personalTop3', rate('personal'));
    setText('steps', String(stats.steps));
  };
  render();

  // One job per completed word, in order: score it, fine-tune on the recent text, suggest anew.
  let chain = Promise.resolve();
  const completed = (word: string) => {
    stats.queued++;
    chain = chain
      .then(async () => {
      const id = tokenizer.idOf(word);
      // Unknown words and markers cannot be suggested, so they are not scored (as metrics.ts).
      const rank = (key: 'global' | 'personal') => strip(scores[key], '').indexOf(id);
      if (!tokenizer.markerIds.includes(id)) stats.words.push({ word, global: rank('global'), personal: rank('personal') });
      typed.push(id);
      if (typed.length > 2) {
        await trainLanguageModel(engine, personal, personalOptimizer, typed.slice(-(settings.context + 1)), { batchSize: 1, steps: settings.context, epochs: 1, logEvery: 1000 });
        stats.steps++;
      }
      scores = await next();
      stats.queued--;
      render();
      })
      .catch(fail);
  };

  let done = 0;
  box.addEventListener('input', () => {
    // Tokens as the tokenizer reads them, of the text before the word being typed (which is not complete yet).
    const words = keyboardWords(box.value.slice(0, box.value.length - partialWord().length));
    for (const w of words.slice(done)) completed(w);
    done = Math.max(done, words.length);
    render();
  });
  // Tapping a suggestion completes the word being typed with it, as on a phone.
  for (let i = 0; i < 3; i++) {
    $(`s${i}`).addEventListener('click', () => {
      const word = shown[i];
      if (word === undefined) return;
      box.value = `${box.value.slice(0, box.value.length - partialWord().length)}${tokenizer.vocab[word]} `;
      box.dispatchEvent(new Event('input'));
      box.focus();
    });
  }
  box.disabled = false;
  box.placeholder = 'Type here: the suggestions above learn from what you type, in this page only.';
  status(`Ready: the global model trained on ${tokens.length.toLocaleString('en-US')} tokens (${Math.round(trained.tokensPerSecond)} tokens/s).`);
  finish({ ready: true, vocab: options.vocab, train_tokens: tokens.length, train_tokens_per_s: trained.tokensPerSecond, adapter: engine.adapterName });
});
