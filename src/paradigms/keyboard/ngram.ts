// The keyboard baseline: a trigram language model with interpolated modified Kneser-Ney smoothing
// (Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques for Language Modeling",
// eqs. 17 and 26), over token ids. Pure TypeScript, no GPU.
//
// For a context (u, v) and a word w, with D(c) = 0, D1, D2 or D3+ for c = 0, 1, 2 or >= 3:
//   p3(w | u v) = (c(u v w) - D(c(u v w))) / c(u v .)  +  g(u v) p2(w | v)
//   p2(w | v)   = (N(. v w) - D(N(. v w))) / N(. v .)  +  g(v)   p1(w)
//   p1(w)       = (N(. w)   - D(N(. w)))   / N(. .)    +  g()    / |V|
// where c are the trigram counts, N(. v w) the number of distinct u before "v w" (the
// continuation count Kneser-Ney gives the lower orders), N(. w) the number of distinct v before
// w among the bigrams with N(. v w) > 0, and each g the mass the discounts took from its
// context, (D1 n1 + D2 n2 + D3+ n3+) / total over that context's words. A context with no
// counts leaves its order out (p3 = p2, p2 = p1). The uniform distribution under p1 gives every
// vocabulary word, seen or not, a probability above zero, and every order sums to 1.
//
// Each order has its own three discounts, from that order's count-of-counts n1..n4 (eq. 26):
//   Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.
// When an order's counts cannot give them (some n_k is 0, or a D_k falls outside [0, k], as on
// small texts), that order uses KenLM's fallback discounts 0.5, 1, 1.5. `discount: 0.75` instead
// gives plain interpolated Kneser-Ney with one discount everywhere.
//
// Padding: a context shorter than two ids is padded on the left with `<bos>`, and training counts
// every position t >= 1 of a sequence as a target of (ids[t-2] or `<bos>`, ids[t-1]); position 0
// (the sequence's `<bos>`) is context only, as in the metrics.
import { topKIds } from './metrics.js';

export type Discounts = readonly [d1: number, d2: number, d3plus: number];

/** KenLM's --discount_fallback defaults, for orders whose count-of-counts give no valid discounts. */
export const FALLBACK_DISCOUNTS: Discounts = [0.5, 1, 1.5];

export interface KneserNeyOptions {
  vocabSize: number;
  /** The id contexts are padded with. */
  bosId: number;
  /** 'modified' (default): three discounts per order from its counts; a number in (0, 1]: that one discount everywhere. */
  discount?: 'modified' | number;
}

export interface OrderDiscounts {
  discounts: Discounts;
  /** Where they came from: the order's count-of-counts, the fallback, or the `discount` option. */
  source: 'estimated' | 'fallback' | 'fixed';
}

/** Chen & Goodman's eq. 26 from count-of-counts n1..n4; null when they give no valid discounts. */
export function modifiedDiscounts(n1: number, n2: number, n3: number, n4: number): Discounts | null {
  if (!(n1 > 0 && n2 > 0 && n3 > 0 && n4 > 0)) return null;
  const y = n1 / (n1 + 2 * n2);
  const d: Discounts = [1 - (2 * y * n2) / n1, 2 - (3 * y * n3) / n2, 3 - (4 * y * n4) / n3];
  return d.every((dk, k) => dk >= 0 && dk <= k + 1) ? d : null;
}

/** One context's words: how much probability each keeps after discounting, and the mass the discounts freed. */
interface Distribution {
  words: Uint32Array;
  kept: Float64Array;
  gamma: number;
}

type Counts = Map<number, Map<number, number>>;

function increment(counts: Counts, context: number, word: number): void {
  let row = counts.get(context);
  if (!row) counts.set(context, (row = new Map()));
  row.set(word, (row.get(word) ?? 0) + 1);
}

function countOfCounts(values: Iterable<number>): [number, number, number, number] {
  const n: [number, number, number, number] = [0, 0, 0, 0];
  for (const c of values) if (c >= 1 && c <= 4) n[c - 1]++;
  return n;
}

function orderDiscounts(values: () => Iterable<number>, discount: 'modified' | number): OrderDiscounts {
  if (discount !== 'modified') return { discounts: [discount, discount, discount], source: 'fixed' };
  const d = modifiedDiscounts(...countOfCounts(values()));
  return d ? { discounts: d, source: 'estimated' } : { discounts: FALLBACK_DISCOUNTS, source: 'fallback' };
}

function discountOf(c: number, [d1, d2, d3]: Discounts): number {
  return c === 0 ? 0 : c === 1 ? d1 : c === 2 ? d2 : d3;
}

function distribution(row: Map<number, number>, d: Discounts): Distribution {
  let total = 0;
  let freed = 0;
  for (const c of row.values()) {
    total += c;
    freed += discountOf(c, d);
  }
  const words = Uint32Array.from(row.keys());
  const kept = Float64Array.from(words, (w) => (row.get(w)! - discountOf(row.get(w)!, d)) / total);
  return { words, kept, gamma: freed / total };
}

export class KneserNeyTrigram {
  readonly vocabSize: number;
  readonly bosId: number;
  /** Per order: [unigram, bigram, trigram]. */
  readonly discounts: readonly [OrderDiscounts, OrderDiscounts, OrderDiscounts];
  private readonly unigram: Float64Array;
  private readonly bigrams: Map<number, Distribution>;
  private readonly trigrams: Map<number, Distribution>;

  private constructor(vocabSize: number, bosId: number, trigramCounts: Counts, discount: 'modified' | number) {
    this.vocabSize = vocabSize;
    this.bosId = bosId;
    const V = vocabSize;
    // Continuation counts: each distinct trigram (u, v, w) adds one to N(. v w), and each distinct
    // bigram (v, w) with N(. v w) > 0 one to N(. w).
    const bigramCounts: Counts = new Map();
    for (const [uv, row] of trigramCounts) for (const w of row.keys()) increment(bigramCounts, uv % V, w);
    const unigramCounts = new Float64Array(V);
    for (const row of bigramCounts.values()) for (const w of row.keys()) unigramCounts[w]!++;

    const d3 = orderDiscounts(function* () {
      for (const row of trigramCounts.values()) yield* row.values();
    }, discount);
    const d2 = orderDiscounts(function* () {
      for (const row of bigramCounts.values()) yield* row.values();
    }, discount);
    const d1 = orderDiscounts(() => unigramCounts, discount);
    this.discounts = [d1, d2, d3];

    let total = 0;
    let freed = 0;
    for (const c of unigramCounts) {
      total += c;
      freed += discountOf(c, d1.discounts);
    }
    // No training targets at all: only the uniform distribution is left.
    const gamma = total > 0 ? freed / total : 1;
    this.unigram = Float64Array.from(unigramCounts, (c) => (total > 0 ? (c - discountOf(c, d1.discounts)) / total : 0) + gamma / V);
    this.bigrams = new Map([...bigramCounts].map(([v, row]) => [v, distribution(row, d2.discounts)]));
    this.trigrams = new Map([...trigramCounts].map(([uv, row]) => [uv, distribution(row, d3.discounts)]));
  }

  /** Counts the trigrams of `sequences` (ids below vocabSize) and builds the model. */
  static train(sequences: readonly ArrayLike<number>[], { vocabSize, bosId, discount = 'modified' }: KneserNeyOptions): KneserNeyTrigram {
    if (!(Number.isInteger(vocabSize) && vocabSize >= 1 && vocabSize * vocabSize <= Number.MAX_SAFE_INTEGER)) {
      throw new Error(`KneserNeyTrigram.train: vocabSize must be a positive integer (at most ${Math.floor(Math.sqrt(Number.MAX_SAFE_INTEGER))}), got ${vocabSize}`);
    }
    if (!(Number.isInteger(bosId) && bosId >= 0 && bosId < vocabSize)) throw new Error(`KneserNeyTrigram.train: bosId ${bosId} is not an id below vocabSize ${vocabSize}`);
    if (discount !== 'modified' && !(typeof discount === 'number' && discount > 0 && discount <= 1)) {
      throw new Error(`KneserNeyTrigram.train: discount must be 'modified' or a number in (0, 1], got ${String(discount)}`);
    }
    const counts: Counts = new Map();
    sequences.forEach((seq, s) => {
      for (let t = 0; t < seq.length; t++) {
        const id = seq[t]!;
        if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) throw new Error(`KneserNeyTrigram.train: sequences[${s}][${t}] is ${id}, not an id below vocabSize ${vocabSize}`);
        if (t >= 1) increment(counts, (t >= 2 ? seq[t - 2]! : bosId) * vocabSize + seq[t - 1]!, id);
      }
    });
    return new KneserNeyTrigram(vocabSize, bosId, counts, discount);
  }

  /** p(w | context) for every id w (sums to 1); only the last two ids of the context matter. Writes into `out` when given. */
  probabilities(context: ArrayLike<number>, out = new Float64Array(this.vocabSize)): Float64Array {
    if (out.length !== this.vocabSize) throw new Error(`KneserNeyTrigram.probabilities: out has ${out.length} entries, expected ${this.vocabSize}`);
    const n = context.length;
    const v = n >= 1 ? context[n - 1]! : this.bosId;
    const u = n >= 2 ? context[n - 2]! : this.bosId;
    for (const id of [u, v]) {
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) throw new Error(`KneserNeyTrigram.probabilities: context id ${id} is not below vocabSize ${this.vocabSize}`);
    }
    out.set(this.unigram);
    for (const dist of [this.bigrams.get(v), this.trigrams.get(u * this.vocabSize + v)]) {
      if (!dist) continue;
      for (let w = 0; w < out.length; w++) out[w]! *= dist.gamma;
      dist.words.forEach((w, i) => (out[w]! += dist.kept[i]!));
    }
    return out;
  }

  /** The k most probable next ids outside `exclude` (e.g. the tokenizer's markers), most probable first, ties to the lower id. */
  topK(context: ArrayLike<number>, k: number, exclude: readonly number[] = []): { id: number; probability: number }[] {
    const p = this.probabilities(context);
    return topKIds(p, k, exclude).map((id) => ({ id, probability: p[id]! }));
  }
}
