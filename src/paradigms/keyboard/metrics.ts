// Next-word metrics as the keyboard papers report them (Hard et al. 2018, "Federated Learning for
// Mobile Keyboard Prediction"): top-1 and top-3 recall, the share of held-out next words that the
// model's first (first three) suggestions contain, and perplexity, exp of the mean negative
// log-likelihood of the same next words.
//
// Which targets count: a position counts when its word is one a keyboard could suggest, that is
// not one of the `exclude` ids (pass the tokenizer's `markerIds`). So `<unk>` targets are not
// counted (no keyboard can suggest an unknown word), nor `<eos>` (sentence ends are typed with
// the punctuation keys, not picked from the strip), nor `<num>` (no particular number can be
// suggested), nor `<bos>`. The suggestions are the k most probable ids outside `exclude`, ties
// to the lower id; perplexity uses the model's full probability of the target (not renormalised
// over the suggestable words), so it is the model's own perplexity on those positions.

/** A model as the metrics see it: the context (ids so far, `<bos>` first) to probabilities over the vocabulary. */
export type Scorer = (context: Uint32Array) => ArrayLike<number>;

export interface NextWordMetrics {
  /** The positions counted. */
  targets: number;
  /** Share of counted positions whose word is the first suggestion (NaN when none counted). */
  top1: number;
  /** Share of counted positions whose word is among the first three suggestions. */
  top3: number;
  /** exp(mean of -ln p(target)); Infinity when some target had probability 0. */
  perplexity: number;
}

/** The ids of the k highest scores outside `exclude`, highest first, ties to the lower id. */
export function topKIds(scores: ArrayLike<number>, k: number, exclude: readonly number[] = []): number[] {
  if (!(Number.isInteger(k) && k >= 0)) throw new Error(`topKIds: k must be a non-negative integer, got ${k}`);
  const out: number[] = [];
  // Insertion into a short sorted list: k is a suggestion strip's length, far below the vocabulary.
  for (let i = 0; i < scores.length; i++) {
    if (exclude.includes(i)) continue;
    const s = scores[i]!;
    if (out.length === k && !(s > scores[out[k - 1]!]!)) continue;
    let j = Math.min(out.length, k - 1);
    while (j > 0 && s > scores[out[j - 1]!]!) j--;
    out.splice(j, 0, i);
    if (out.length > k) out.pop();
  }
  return out;
}

/** The number of ids outside `exclude` that rank above `target` (higher score, or equal and lower id). */
function rankOf(scores: ArrayLike<number>, target: number, exclude: readonly number[]): number {
  const s = scores[target]!;
  let rank = 0;
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i]!;
    if (v > s || (v === s && i < target)) rank++;
  }
  for (const e of exclude) {
    const v = scores[e]!;
    if (e !== target && (v > s || (v === s && e < target))) rank--;
  }
  return rank;
}

/**
 * Running counts of the metrics; one per user, merged for the overall figures (which are then over
 * all users' targets pooled, not a mean of per-user figures).
 */
export class NextWordTally {
  targets = 0;
  top1Hits = 0;
  top3Hits = 0;
  /** Sum of -ln p(target) over the counted positions. */
  nll = 0;

  constructor(readonly exclude: readonly number[]) {}

  private check(row: ArrayLike<number>, target: number, what: string): boolean {
    if (!(Number.isInteger(target) && target >= 0 && target < row.length)) {
      throw new Error(`NextWordTally.${what}: target ${target} is outside the row of ${row.length} entries`);
    }
    return !this.exclude.includes(target);
  }

  private count(scores: ArrayLike<number>, target: number, nll: number): void {
    const rank = rankOf(scores, target, this.exclude);
    this.targets++;
    if (rank < 1) this.top1Hits++;
    if (rank < 3) this.top3Hits++;
    this.nll += nll;
  }

  /** Counts one position from the model's probabilities over the vocabulary. */
  addProbabilities(probabilities: ArrayLike<number>, target: number): void {
    if (!this.check(probabilities, target, 'addProbabilities')) return;
    const p = probabilities[target]!;
    if (!(p >= 0 && p <= 1 + 1e-6)) throw new Error(`NextWordTally.addProbabilities: probability of target ${target} is ${p}, not in [0, 1]`);
    this.count(probabilities, target, -Math.log(p));
  }

  /** Counts one position from the model's logits (softmax taken here, in float64). */
  addLogits(logits: ArrayLike<number>, target: number): void {
    if (!this.check(logits, target, 'addLogits')) return;
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
    this.count(logits, target, max + Math.log(sum) - logits[target]!);
  }

  /** Counts rows × vocabSize logits (row-major) against their next ids. */
  addLogitRows(logits: ArrayLike<number>, vocabSize: number, targets: ArrayLike<number>): void {
    if (logits.length !== targets.length * vocabSize) {
      throw new Error(`NextWordTally.addLogitRows: ${logits.length} logits for ${targets.length} targets of a ${vocabSize}-word vocabulary (expected ${targets.length * vocabSize})`);
    }
    // One float64 copy, so each row is a view rather than a copy.
    const all = Float64Array.from(logits);
    for (let r = 0; r < targets.length; r++) this.addLogits(all.subarray(r * vocabSize, (r + 1) * vocabSize), targets[r]!);
  }

  /** Scores every position t >= 1 of each sequence from its prefix (position 0, `<bos>`, is only context). */
  addSequences(scorer: Scorer, sequences: readonly Uint32Array[]): void {
    for (const seq of sequences) for (let t = 1; t < seq.length; t++) this.addProbabilities(scorer(seq.subarray(0, t)), seq[t]!);
  }

  merge(other: NextWordTally): void {
    this.targets += other.targets;
    this.top1Hits += other.top1Hits;
    this.top3Hits += other.top3Hits;
    this.nll += other.nll;
  }

  result(): NextWordMetrics {
    return { targets: this.targets, top1: this.top1Hits / this.targets, top3: this.top3Hits / this.targets, perplexity: Math.exp(this.nll / this.targets) };
  }
}

/**
 * Per-user and overall metrics: each user's held-out sequences scored by that user's scorer (the
 * global model for every user, or each user's personalised copy); overall pools all users' targets.
 */
export function nextWordReport(
  users: readonly { id: string; sequences: readonly Uint32Array[] }[],
  scorerFor: (userId: string) => Scorer,
  exclude: readonly number[],
): { users: Record<string, NextWordMetrics>; overall: NextWordMetrics } {
  const overall = new NextWordTally(exclude);
  const perUser: Record<string, NextWordMetrics> = {};
  for (const { id, sequences } of users) {
    if (id in perUser) throw new Error(`nextWordReport: user ${JSON.stringify(id)} appears twice`);
    const tally = new NextWordTally(exclude);
    tally.addSequences(scorerFor(id), sequences);
    perUser[id] = tally.result();
    overall.merge(tally);
  }
  return { users: perUser, overall: overall.result() };
}
