import { describe, expect, it } from 'vitest';
import { FALLBACK_DISCOUNTS, KneserNeyTrigram, modifiedDiscounts } from '../../src/paradigms/keyboard/ngram.js';
import { generator } from '../reference.js';

// Vocabulary 0 <unk>, 1 <bos>, 2 a, 3 b, 4 c; one sequence "<bos> a b a b c". Its targets with
// their left-padded contexts are the trigrams (1 1 2), (1 2 3), (2 3 2), (3 2 3), (2 3 4), each
// seen once. Continuation counts, worked out by hand:
//   N(. v w): (1 2) 1 [u=1], (2 3) 2 [u=1,3], (3 2) 1 [u=2], (3 4) 1 [u=2]
//   N(. w):   a 2 [v=1,3], b 1 [v=2], c 1 [v=3]; total 4
const V = 5;
const corpus = [Uint32Array.of(1, 2, 3, 2, 3, 4)];

const expectClose = (actual: ArrayLike<number>, expected: number[]) => expected.forEach((e, i) => expect(actual[i]).toBeCloseTo(e, 12));

describe('KneserNeyTrigram', () => {
  it('matches hand-computed interpolated Kneser-Ney with D = 0.75', () => {
    const lm = KneserNeyTrigram.train(corpus, { vocabSize: V, bosId: 1, discount: 0.75 });
    // p1: g = 0.75 * 3 / 4 = 0.5625, g / V = 0.1125; a (2 - 0.75)/4 + 0.1125 = 0.425; b, c 0.25/4 + 0.1125 = 0.175
    const p1 = [0.1125, 0.1125, 0.425, 0.175, 0.175];
    // p2(. | b): N(. b a) = N(. b c) = 1 over 2, g = 0.75 * 2 / 2 = 0.75
    const p2b = [0.75 * 0.1125, 0.75 * 0.1125, 0.125 + 0.75 * 0.425, 0.75 * 0.175, 0.125 + 0.75 * 0.175];
    expectClose(p2b, [0.084375, 0.084375, 0.44375, 0.13125, 0.25625]);
    // p3(. | a b): c(a b a) = c(a b c) = 1 over 2, g = 0.75
    expectClose(lm.probabilities([2, 3]), [0.06328125, 0.06328125, 0.4578125, 0.0984375, 0.3171875]);
    // Unseen trigram context (c b): the bigram b alone. Unseen bigram context (c): the unigram.
    expectClose(lm.probabilities([4, 3]), p2b);
    expectClose(lm.probabilities([3, 4]), p1);
    // A context of one id is padded with <bos>: (<bos> a) was seen, c(<bos> a b) = 1 over 1, g = 0.75;
    // p2(b | a) = (2 - 0.75)/2 + 0.375 * 0.175 = 0.690625 (g(a) = 0.75 / 2 = 0.375)
    expect(lm.probabilities([2])[3]).toBeCloseTo(0.25 + 0.75 * 0.690625, 12);
    expect(lm.discounts.map((d) => d.source)).toEqual(['fixed', 'fixed', 'fixed']);
  });

  it('matches hand-computed modified Kneser-Ney with the fallback discounts on a text too small to estimate them', () => {
    const lm = KneserNeyTrigram.train(corpus, { vocabSize: V, bosId: 1 });
    expect(lm.discounts.map((d) => d.source)).toEqual(['fallback', 'fallback', 'fallback']);
    expect(FALLBACK_DISCOUNTS).toEqual([0.5, 1, 1.5]);
    // p1: N(. a) = 2 takes D2 = 1, b and c take D1 = 0.5: g = (0.5 * 2 + 1) / 4 = 0.5, g / V = 0.1
    const p1 = [0.1, 0.1, 1 / 4 + 0.1, 0.5 / 4 + 0.1, 0.5 / 4 + 0.1];
    // p2(. | b): N = 1, 1 over 2, g = 0.5 * 2 / 2 = 0.5
    const p2b = [0.05, 0.05, 0.25 + 0.5 * 0.35, 0.5 * 0.225, 0.25 + 0.5 * 0.225];
    expectClose(lm.probabilities([2, 3]), [0.025, 0.025, 0.25 + 0.5 * 0.425, 0.5 * 0.1125, 0.25 + 0.5 * 0.3625]);
    expectClose(lm.probabilities([4, 3]), p2b);
    expectClose(lm.probabilities([4, 4]), p1);
    // p2(b | a): N(. a b) = 2 takes D2 = 1: (2 - 1)/2 + g(a) p1(b), g(a) = 1 * 1 / 2
    expectClose(lm.probabilities([0, 2]), [0.05, 0.05, 0.5 * 0.35, 0.5 + 0.5 * 0.225, 0.5 * 0.225]);
  });

  it("estimates discounts by Chen & Goodman's eq. 26", () => {
    // n = 10, 4, 2, 1: Y = 10/18; D1 = 1 - 2 (10/18)(4/10) = 10/18; D2 = 2 - 3 (10/18)(2/4) = 7/6; D3+ = 3 - 4 (10/18)(1/2) = 17/9
    const d = modifiedDiscounts(10, 4, 2, 1)!;
    expect(d[0]).toBeCloseTo(5 / 9, 12);
    expect(d[1]).toBeCloseTo(7 / 6, 12);
    expect(d[2]).toBeCloseTo(17 / 9, 12);
    expect(modifiedDiscounts(10, 4, 0, 1)).toBeNull();
    // n = 1, 1, 10, 1: Y = 1/3, D2 = 2 - 3 (1/3)(10/1) = -8 < 0
    expect(modifiedDiscounts(1, 1, 10, 1)).toBeNull();
  });

  it('sums to 1 for seen and unseen contexts, gives unseen words more than 0, and estimates discounts per order on a larger text', () => {
    const rng = generator(7);
    const vocab = 60;
    // Zipf-like ids 2..59 so that every order has counts 1 to 4 and more; id 0 never occurs.
    const seqs = Array.from({ length: 40 }, () => Uint32Array.from({ length: 60 }, (_, t) => (t === 0 ? 1 : 2 + Math.floor(50 * rng() ** 2))));
    const lm = KneserNeyTrigram.train(seqs, { vocabSize: vocab, bosId: 1 });
    // Each order on its own: 50 words each follow many distinct words, so few have N(. w) of 1..4
    // and the unigram order falls back, while the bigram and trigram counts give discounts.
    expect(lm.discounts.map((d) => d.source)).toEqual(['fallback', 'estimated', 'estimated']);
    for (const ctx of [[], [1], [2, 3], [seqs[0]![5]!, seqs[0]![6]!], [59, 0], [0, 0]]) {
      const p = lm.probabilities(ctx);
      expect(p.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
      expect(p[0]).toBeGreaterThan(0);
      expect(Math.min(...p)).toBeGreaterThan(0);
    }
    const top = lm.topK([2, 3], 3, [0, 1]);
    const p = lm.probabilities([2, 3]);
    const best = [...p.keys()].filter((i) => i > 1).sort((a, b) => p[b]! - p[a]! || a - b).slice(0, 3);
    expect(top.map((t) => t.id)).toEqual(best);
    expect(top.map((t) => t.probability)).toEqual(best.map((i) => p[i]));
  });

  it('names bad input', () => {
    expect(() => KneserNeyTrigram.train([Uint32Array.of(1, 7)], { vocabSize: V, bosId: 1 })).toThrow(/sequences\[0\]\[1\] is 7, not an id below vocabSize 5/);
    expect(() => KneserNeyTrigram.train(corpus, { vocabSize: V, bosId: 5 })).toThrow(/bosId 5 is not an id below vocabSize 5/);
    expect(() => KneserNeyTrigram.train(corpus, { vocabSize: V, bosId: 1, discount: 1.5 })).toThrow(/discount must be 'modified' or a number in \(0, 1\], got 1.5/);
    const lm = KneserNeyTrigram.train(corpus, { vocabSize: V, bosId: 1 });
    expect(() => lm.probabilities([9])).toThrow(/context id 9 is not below vocabSize 5/);
  });
});
