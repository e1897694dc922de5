import { describe, expect, it } from 'vitest';
import { nextWordReport, NextWordTally, topKIds, type Scorer } from '../../src/paradigms/keyboard/metrics.js';

// Vocabulary 0 <unk>, 1 <bos>, 2 <eos>, 3 <num>, 4 a, 5 b, 6 c, 7 d; markers are excluded.
const MARKERS = [0, 1, 2, 3];

describe('topKIds', () => {
  it('takes the highest scores outside the excluded ids, ties to the lower id', () => {
    const scores = [0.5, 0, 0, 0, 0.1, 0.2, 0.2, 0.05];
    expect(topKIds(scores, 3, MARKERS)).toEqual([5, 6, 4]);
    expect(topKIds(scores, 2)).toEqual([0, 5]);
    expect(topKIds(scores, 0)).toEqual([]);
    expect(topKIds(scores, 20, MARKERS)).toEqual([5, 6, 4, 7]);
  });
});

describe('NextWordTally', () => {
  it('counts top-1, top-3 and perplexity by hand, skipping marker targets and marker suggestions', () => {
    const tally = new NextWordTally(MARKERS);
    // <unk> ranks first, but a keyboard does not suggest it: a (0.3) is the first suggestion. Hit at 1.
    tally.addProbabilities([0.4, 0, 0, 0, 0.3, 0.2, 0.1, 0], 4);
    // c is third among the words (a 0.4, b 0.3, c 0.2): hit at 3 only.
    tally.addProbabilities([0, 0, 0.05, 0, 0.4, 0.3, 0.2, 0.05], 6);
    // d ties with c at 0.1 and loses on id: fourth, no hit.
    tally.addProbabilities([0, 0, 0, 0, 0.5, 0.3, 0.1, 0.1], 7);
    // Targets <unk> and <eos> are not counted at all.
    tally.addProbabilities([0.9, 0, 0.1, 0, 0, 0, 0, 0], 0);
    tally.addProbabilities([0.9, 0, 0.1, 0, 0, 0, 0, 0], 2);
    const r = tally.result();
    expect(r.targets).toBe(3);
    expect(r.top1).toBeCloseTo(1 / 3, 12);
    expect(r.top3).toBeCloseTo(2 / 3, 12);
    // exp(-(ln 0.3 + ln 0.2 + ln 0.1) / 3) = (0.3 * 0.2 * 0.1)^(-1/3) = 0.006^(-1/3)
    expect(r.perplexity).toBeCloseTo(5.503212081491044, 10);
  });

  it('gives the same figures from logits as from their softmax, row by row or as a block', () => {
    const logits = [
      [1, 0, 0, 0, 2, Math.log(3), 0.5, -1],
      [0, 0, 3, 0, 1, 1, 2, 0],
    ];
    const targets = [5, 6];
    const softmax = (z: number[]) => {
      const e = z.map(Math.exp);
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / s);
    };
    const fromProbs = new NextWordTally(MARKERS);
    const fromLogits = new NextWordTally(MARKERS);
    const fromBlock = new NextWordTally(MARKERS);
    logits.forEach((z, i) => {
      fromProbs.addProbabilities(softmax(z), targets[i]!);
      fromLogits.addLogits(z, targets[i]!);
    });
    fromBlock.addLogitRows(Float32Array.from(logits.flat()), 8, targets);
    // Row 1: b (ln 3 = 1.0986) is second after a (2): top-3 hit. Row 2: c (2) is first among the
    // words (<eos> 3 is excluded): top-1 hit.
    expect(fromLogits.result().top1).toBe(0.5);
    expect(fromLogits.result().top3).toBe(1);
    expect(fromLogits.result().perplexity).toBeCloseTo(fromProbs.result().perplexity, 12);
    expect(fromBlock.result().perplexity).toBeCloseTo(fromProbs.result().perplexity, 6);
    expect(() => fromBlock.addLogitRows(new Float32Array(15), 8, targets)).toThrow(/15 logits for 2 targets of a 8-word vocabulary \(expected 16\)/);
    expect(() => fromBlock.addLogits([0, 1], 5)).toThrow(/target 5 is outside the row of 2 entries/);
  });

  it('reports per user and overall over the pooled targets', () => {
    // A scorer that always suggests a, b, c in that order, with p = 0.5, 0.25, 0.125.
    const fixed: Scorer = () => [0, 0, 0.0625, 0.0625, 0.5, 0.25, 0.125, 0];
    // A scorer that has learned user "bo" writes d after a.
    const personal: Scorer = (ctx) => (ctx[ctx.length - 1] === 4 ? [0, 0, 0, 0, 0, 0, 0, 1] : fixed(ctx));
    const users = [
      { id: 'al', sequences: [Uint32Array.of(1, 4, 5, 2)] }, // targets a (hit 1), b (hit 3); <eos> not counted
      { id: 'bo', sequences: [Uint32Array.of(1, 4, 7), Uint32Array.of(1, 6)] }, // targets a, d, c
    ];
    const global = nextWordReport(users, () => fixed, MARKERS);
    expect(global.users.al).toMatchObject({ targets: 2, top1: 0.5, top3: 1 });
    expect(global.users.al!.perplexity).toBeCloseTo(Math.sqrt(1 / (0.5 * 0.25)), 12);
    // bo: a hit 1, d never suggested (p 0: perplexity Infinity), c hit 3
    expect(global.users.bo).toMatchObject({ targets: 3, top1: 1 / 3, top3: 2 / 3, perplexity: Infinity });
    expect(global.overall).toMatchObject({ targets: 5, top1: 2 / 5, top3: 4 / 5 });
    const own = nextWordReport(users, (id) => (id === 'bo' ? personal : fixed), MARKERS);
    // bo: a (hit 1, p 0.5), d (hit 1, p 1), c (hit 3, p 0.125): perplexity (0.5 * 1 * 0.125)^(-1/3) = 2.5198
    expect(own.users.bo).toMatchObject({ targets: 3, top1: 2 / 3, top3: 1 });
    expect(own.users.bo!.perplexity).toBeCloseTo(Math.cbrt(16), 12);
    // overall: 5 targets, p = 0.5, 0.25, 0.5, 1, 0.125
    expect(own.overall.top1).toBeCloseTo(3 / 5, 12);
    expect(own.overall.perplexity).toBeCloseTo((0.5 * 0.25 * 0.5 * 1 * 0.125) ** (-1 / 5), 12);
    expect(() => nextWordReport([users[0]!, users[0]!], () => fixed, MARKERS)).toThrow(/user "al" appears twice/);
  });
});
