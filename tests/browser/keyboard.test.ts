// The keyboard model (tied embeddings over a CIFG LSTM) and its language-model loop: shapes and
// parameter count, the tied table's gradient (both uses) against finite differences, carried state
// (short windows score exactly as one long one), learning a small repetitive text, errors.
import { beforeAll, describe, expect, test } from 'vitest';
import { Adam, backward, Engine, SGD, softmaxCrossEntropy } from '../../src/index.js';
import { KeyboardModel } from '../../src/paradigms/keyboard/model.js';
import { batchify, evaluateLanguageModel, tokenStreams, trainLanguageModel } from '../../src/paradigms/keyboard/train.js';
import * as ref from '../reference.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

describe('keyboard model', () => {
  test('logits [B*T, vocab] through the embedding table; parameters: table, projection, output bias, CIFG LSTM', async () => {
    const model = new KeyboardModel(engine, { vocab: 30, embedding: 8, hidden: 12, seed: 1 });
    const names = [...model.parameters().keys()];
    expect(names).toEqual(['embedding.weight', 'embedding.bias', 'embedding.projection.weight', 'rnn.weight_ih_l0', 'rnn.weight_hh_l0', 'rnn.bias_ih_l0', 'rnn.bias_hh_l0']);
    const count = [...model.parameters().values()].reduce((n, p) => n + p.size, 0);
    // CIFG: 3 gate blocks of 12.
    expect(count).toBe(30 * 8 + 3 * 12 * (8 + 12 + 2) + 12 * 8 + 30);
    const ids = engine.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const logits = model.forward(ids);
    expect(logits.shape).toEqual([6, 30]);
    // Tied: word 7 is not among the inputs, so scaling its row of the table changes its logits (the output side) and nothing else.
    const before = await logits.data();
    const table = await model.embedding.weight.data();
    const scaled = table.slice();
    for (let d = 0; d < 8; d++) scaled[7 * 8 + d]! *= 2;
    engine.write(model.embedding.weight, scaled);
    const after = await model.forward(ids).data();
    for (let r = 0; r < 6; r++) {
      for (let c = 0; c < 30; c++) {
        const changed = Math.abs(after[r * 30 + c]! - before[r * 30 + c]!) > 1e-6;
        expect(changed, `row ${r} word ${c}`).toBe(c === 7);
      }
    }
    model.dispose();
  });

  test("the tied table's gradient sums its input and output uses (against finite differences)", async () => {
    const model = new KeyboardModel(engine, { vocab: 9, embedding: 4, hidden: 4, cell: 'lstm', seed: 2 });
    const ids = [1, 4, 2, 7, 3, 1];
    const targets = Float32Array.from(ref.oneHot(6, 9, 5));
    const lossOf = () => softmaxCrossEntropy(model.forward(engine.tensor(ids, [2, 3])), engine.tensor(targets, [6, 9]));
    await engine.scope(async () => backward(lossOf()));
    const grad = await model.embedding.weight.grad!.data();
    const table = await model.embedding.weight.data();
    const h = 1e-2;
    // Word 1 is an input and an output; word 8 only an output.
    for (const i of [1 * 4 + 2, 8 * 4 + 1]) {
      const at = async (v: number) => {
        const t = table.slice();
        t[i] = v;
        engine.write(model.embedding.weight, t);
        return engine.scope(() => lossOf().item());
      };
      const fd = ((await at(table[i]! + h)) - (await at(table[i]! - h))) / (2 * h);
      expect(grad[i]!).toBeCloseTo(fd, 3);
    }
    model.dispose();
  });

  test('gradient clipping: one SGD step moves every LSTM and embedding weight by -lr * g * maxNorm / ||g|| (the global norm over all parameters)', async () => {
    const model = new KeyboardModel(engine, { vocab: 11, embedding: 6, hidden: 8, layers: 2, cell: 'lstm', seed: 6 });
    const params = [...model.parameters().values()];
    const ids = engine.tensor([1, 4, 2, 7, 3, 1, 9, 10], [2, 4]);
    const targets = engine.tensor(Float32Array.from(ref.oneHot(8, 11, 7)), [8, 11]);
    const lr = 0.5;
    await engine.scope(async () => backward(softmaxCrossEntropy(model.forward(ids), targets)));
    const grads = await Promise.all(params.map((p) => p.grad!.data()));
    const before = await Promise.all(params.map((p) => p.data()));
    const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((t, v) => t + v * v, 0), 0));
    // A quarter of the unclipped norm, so the step must clip.
    const optimizer = new SGD(model, { lr, clipNorm: norm / 4 });
    optimizer.step();
    const after = await Promise.all(params.map((p) => p.data()));
    params.forEach((p, i) => {
      for (let j = 0; j < p.size; j++) {
        expect(after[i]![j]! - before[i]![j]!, `${p.name}[${j}]`).toBeCloseTo(-lr * grads[i]![j]! / 4, 5);
      }
    });
    optimizer.dispose();
    model.dispose();
  });
});

describe('language-model loop', () => {
  test('state carried across windows: short windows score exactly as one long window', async () => {
    const model = new KeyboardModel(engine, { vocab: 12, embedding: 6, hidden: 6, seed: 3 });
    const tokens = Array.from({ length: 41 }, (_, i) => 4 + ((i * 5) % 8));
    const long = await evaluateLanguageModel(engine, model, tokens, { streams: 2, steps: 40, exclude: [0, 1, 2, 3] });
    const short = await evaluateLanguageModel(engine, model, tokens, { streams: 2, steps: 3, exclude: [0, 1, 2, 3] });
    expect(short.targets).toBe(long.targets);
    expect(short.targets).toBe(2 * 19);
    expect(short.top1).toBe(long.top1);
    expect(short.perplexity).toBeCloseTo(long.perplexity, 4);
    model.dispose();
  });

  test('learns a repetitive text: next-word recall near 1 on it after training, far above before', async () => {
    const model = new KeyboardModel(engine, { vocab: 16, embedding: 16, hidden: 24, seed: 4 });
    // "a b c d e b c a ..." with a period of 7: the next word depends on more than the current one (b follows a and e).
    const cycle = [4, 5, 6, 7, 8, 5, 6];
    const tokens = Array.from({ length: 700 }, (_, i) => cycle[i % 7]!);
    const exclude = [0, 1, 2, 3];
    const before = await evaluateLanguageModel(engine, model, tokens.slice(0, 141), { streams: 4, steps: 10, exclude });
    const optimizer = new Adam(model, { lr: 0.02 });
    const result = await trainLanguageModel(engine, model, optimizer, tokens, { batchSize: 8, steps: 10, epochs: 4, logEvery: 5 });
    const after = await evaluateLanguageModel(engine, model, tokens.slice(0, 141), { streams: 4, steps: 10, exclude });
    console.log(`keyboard loop: top-1 ${before.top1} -> ${after.top1}, perplexity ${before.perplexity.toFixed(2)} -> ${after.perplexity.toFixed(2)}, ${result.tokensPerSecond.toFixed(0)} tokens/s`);
    expect(result.steps).toBe(4 * 9);
    expect(result.losses.at(-1)!.loss).toBeLessThan(result.losses[0]!.loss);
    expect(before.top1).toBeLessThan(0.5);
    expect(after.top1).toBeGreaterThan(0.9);
    optimizer.dispose();
    model.dispose();
  });

  test('bad settings are refused, naming them', async () => {
    expect(() => batchify([1, 2, 3], 2)).toThrow('3 tokens make streams of 1');
    expect(() => batchify([1, 2, 3], 0)).toThrow('streams 0 must be a positive integer');
    // The streams one by one: consecutive runs of the text, the remainder dropped.
    expect(tokenStreams([1, 2, 3, 4, 5, 6, 7], 2).map((s) => Array.from(s))).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(() => tokenStreams([1, 2, 3], 2)).toThrow('3 tokens make streams of 1');
    const model = new KeyboardModel(engine, { vocab: 5, embedding: 4, hidden: 4, seed: 5 });
    expect(() => model.forward(engine.tensor([1, 2, 3], [3]))).toThrow('KeyboardModel: ids tensor have shape [3], expected [batch, steps]');
    const optimizer = new Adam(model, { lr: 0.01 });
    await expect(trainLanguageModel(engine, model, optimizer, [1, 2, 3, 9, 1, 2], { batchSize: 1, steps: 2, epochs: 1 })).rejects.toThrow('token id 9 is outside the 5-word vocabulary');
    await expect(trainLanguageModel(engine, model, optimizer, [1, 2, 3], { batchSize: 1, steps: 0, epochs: 1 })).rejects.toThrow('steps 0 must be a positive integer');
    optimizer.dispose();
    model.dispose();
  });
});
