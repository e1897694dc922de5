// End-to-end: the keyboard experiment with small settings (3 users, short texts, a small model):
// the trigram, the global LSTM and both personalisations run, and every key of the result.
import { expect, test } from 'vitest';
import { runDemo } from './demo.js';

const ARGS = ['--users', '3', '--trainTokens', '3000', '--testTokens', '600', '--vocab', '500', '--epochs', '1', '--hidden', '32', '--embedding', '16', '--timeout', '900'];

test('keyboard demo trains the trigram and the LSTM, personalises per user and reports every figure', async () => {
  const { result, context } = await runDemo('keyboard', ARGS);
  const r = result as Record<string, any>;
  // The trigram is well above chance (1/500) on held-out text even from 9,000 training tokens.
  expect(r['ngram_top1'], context).toBeGreaterThan(0.05);
  for (const k of ['lstm_top1', 'lstm_top3', 'personalised_top1', 'personalised_head_top1', 'personalised_lora_top1', 'global_top1_on_users']) {
    expect(r[k], k).toBeGreaterThanOrEqual(0);
    expect(r[k], k).toBeLessThanOrEqual(1);
  }
  expect(r['lstm_top3']).toBeGreaterThanOrEqual(r['lstm_top1']);
  expect(r['perplexity']).toBeGreaterThan(1);
  expect(Object.keys(r['users'])).toHaveLength(3);
  // V x 16 table, 16 x 32 projection, V output biases, CIFG: 3 x 32 x (16 + 32 + 2).
  const V = r['vocab'] as number;
  expect(V).toBeLessThanOrEqual(500);
  expect(r['params']).toBe(V * 16 + 16 * 32 + V + 3 * 32 * 50);
  expect(r['train_tokens_per_s']).toBeGreaterThan(0);
});
