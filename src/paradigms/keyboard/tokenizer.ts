// Tokenizers for the next-word keyboard model: word-level (what a phone keyboard suggests) and
// character-level. Pure TypeScript, no GPU: the same code runs in Node and in the page.
//
// What the word tokenizer sees as a token, and why:
// - words are letters with inner apostrophes or hyphens ("don't", "well-being"), lower-cased,
//   since a keyboard suggests a word and the shift key decides its case; curly apostrophes count
//   as apostrophes (phones type them);
// - dotted acronyms ("U.S.", "D.C.", "a.m.") are one word with their dots, since a keyboard
//   suggests them whole;
// - a number (digits, with inner . , : / - and letter suffixes: "1,000", "3.5", "1990s", "21st")
//   is one `<num>` token: a keyboard cannot usefully suggest a particular number, and one token
//   keeps the vocabulary for words;
// - a run of sentence-ending punctuation (. ! ?) gives one `<eos>`, except a period after a title
//   abbreviation ("Mr.", "St.") or a single-letter initial ("John F. Kennedy"), which ends no
//   sentence, nor does the final dot of an acronym (so "... in the U.S. We" runs on: a missed
//   sentence end costs less than one in the middle of "Mr. Lincoln"); all other punctuation is
//   dropped (keyboards suggest words, not commas).

/** The marker tokens: a word vocabulary starts with all four (ids 0-3), a character vocabulary with `<unk>` and `<bos>` (0-1). */
export const UNK = '<unk>';
export const BOS = '<bos>';
export const EOS = '<eos>';
export const NUM = '<num>';
const WORD_MARKERS = [UNK, BOS, EOS, NUM] as const;
const CHAR_MARKERS = [UNK, BOS] as const;

// Periods after these end no sentence ("Mr. Lincoln", "St. Louis").
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'messrs', 'dr', 'st', 'jr', 'sr', 'gen', 'gov', 'sen', 'rep', 'hon', 'col', 'capt', 'lt', 'vs']);

// One alternative per token kind, tried left to right at each position: acronym, word, number,
// sentence end. Anything else (spaces, other punctuation) is skipped.
const TOKEN = /((?:\p{L}\.){2,})|(\p{L}[\p{L}\p{M}]*(?:['’‘\-‑][\p{L}\p{M}]+)*)|(\p{N}[\p{N}\p{L}]*(?:[.,:/\-][\p{N}][\p{N}\p{L}]*)*)|([.!?]+)/gu;

/** A token of the word tokenizer's text pass: its string (a word or a marker) and where it ends in the text. */
export interface ScannedToken {
  token: string;
  end: number;
}

/** Normalises a matched word: compatibility forms, lower case, straight apostrophes, ASCII hyphens. */
function normaliseWord(word: string): string {
  return word.normalize('NFKC').toLowerCase().replace(/[’‘]/g, "'").replace(/‑/g, '-');
}

/**
 * The word tokenizer's text pass, before any vocabulary: words (normalised), `<num>` and `<eos>`,
 * each with the offset just after it in `text`. At most one `<eos>` in a row, none first.
 */
export function scanWords(text: string): ScannedToken[] {
  const out: ScannedToken[] = [];
  for (const m of text.matchAll(TOKEN)) {
    const end = m.index + m[0].length;
    if (m[1] !== undefined || m[2] !== undefined) {
      out.push({ token: normaliseWord(m[0]), end });
    } else if (m[3] !== undefined) {
      out.push({ token: NUM, end });
    } else {
      const prev = out[out.length - 1];
      if (!prev || prev.token === EOS) continue;
      // A lone period right after "Mr" or an initial ("F") abbreviates; it ends no sentence.
      const abbreviated = m[0] === '.' && (ABBREVIATIONS.has(prev.token) || /^\p{L}$/u.test(prev.token)) && prev.end === m.index;
      if (!abbreviated) out.push({ token: EOS, end });
    }
  }
  return out;
}

/** The word tokens of `text` (words, `<num>`, `<eos>`), before any vocabulary. */
export function keyboardWords(text: string): string[] {
  return scanWords(text).map((t) => t.token);
}

export interface VocabularyOptions {
  /** The most entries the vocabulary may have, markers included. Default: no limit. */
  maxSize?: number;
  /** Words seen fewer times than this are left out (they become `<unk>`). Default 1. */
  minCount?: number;
}

export interface EncodeOptions {
  /** Put `<bos>` first, so the first word has a context. Default true. */
  bos?: boolean;
}

/** What every tokenizer offers the keyboard code. */
export interface Tokenizer {
  readonly kind: 'word' | 'char';
  /** The vocabulary: id -> token. Markers first. */
  readonly vocab: readonly string[];
  readonly unkId: number;
  readonly bosId: number;
  /** The ids a keyboard never suggests and metrics never count as targets (the markers). */
  readonly markerIds: readonly number[];
  encode(text: string, options?: EncodeOptions): Uint32Array;
  decode(ids: ArrayLike<number>): string;
  /** The id of a vocabulary entry (a marker, a normalised word or a character), `unkId` when it has none. */
  idOf(token: string): number;
  toJSON(): TokenizerJSON;
}

export interface TokenizerJSON {
  kind: 'word' | 'char';
  vocab: string[];
}

/** The entries of a vocabulary made from token counts: markers, then by count (ties by code point order). */
function buildVocab(markers: readonly string[], counts: Map<string, number>, options: VocabularyOptions, what: string): string[] {
  const { maxSize = Infinity, minCount = 1 } = options;
  if (!(maxSize === Infinity || (Number.isInteger(maxSize) && maxSize > markers.length))) {
    throw new Error(`${what}: maxSize must be an integer above the ${markers.length} markers (${markers.join(' ')}), got ${maxSize}`);
  }
  if (!(Number.isInteger(minCount) && minCount >= 1)) throw new Error(`${what}: minCount must be a positive integer, got ${minCount}`);
  const entries = [...counts].filter(([t, c]) => c >= minCount && !markers.includes(t));
  entries.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return [...markers, ...entries.slice(0, maxSize - markers.length).map(([t]) => t)];
}

/** Checks a serialised vocabulary: markers in place, strings, no duplicates. */
function checkVocab(json: unknown, kind: 'word' | 'char', markers: readonly string[]): string[] {
  const what = `${kind} tokenizer JSON`;
  if (typeof json !== 'object' || json === null) throw new Error(`${what}: expected an object, got ${json === null ? 'null' : typeof json}`);
  const { kind: k, vocab } = json as Partial<TokenizerJSON>;
  if (k !== kind) throw new Error(`${what}: kind is ${JSON.stringify(k)}, expected "${kind}"`);
  if (!Array.isArray(vocab)) throw new Error(`${what}: vocab must be an array of strings`);
  markers.forEach((m, i) => {
    if (vocab[i] !== m) throw new Error(`${what}: vocab[${i}] must be the marker ${m}, got ${JSON.stringify(vocab[i])}`);
  });
  const seen = new Set<string>();
  vocab.forEach((t, i) => {
    if (typeof t !== 'string' || t === '') throw new Error(`${what}: vocab[${i}] must be a non-empty string, got ${JSON.stringify(t)}`);
    if (seen.has(t)) throw new Error(`${what}: vocab[${i}] ${JSON.stringify(t)} appears twice`);
    seen.add(t);
  });
  return vocab.slice();
}

/** What both tokenizers share: a vocabulary with `<unk>` at 0 and `<bos>` at 1, and tokens to ids and back. */
abstract class VocabularyTokenizer implements Tokenizer {
  abstract readonly kind: 'word' | 'char';
  abstract readonly markerIds: readonly number[];
  readonly unkId = 0;
  readonly bosId = 1;
  readonly vocab: readonly string[];
  private readonly ids: Map<string, number>;

  protected constructor(vocab: string[]) {
    this.vocab = vocab;
    this.ids = new Map(vocab.map((t, i) => [t, i]));
  }

  /** The tokens of `text` before the vocabulary maps them to ids. */
  protected abstract tokens(text: string): string[];
  /** What `decode` puts between tokens. */
  protected abstract readonly separator: string;

  idOf(token: string): number {
    return this.ids.get(token) ?? this.unkId;
  }

  encode(text: string, { bos = true }: EncodeOptions = {}): Uint32Array {
    const tokens = this.tokens(text);
    const out = new Uint32Array(tokens.length + (bos ? 1 : 0));
    if (bos) out[0] = this.bosId;
    tokens.forEach((token, i) => (out[i + (bos ? 1 : 0)] = this.idOf(token)));
    return out;
  }

  /** The tokens of `ids` joined (words by spaces, characters by nothing), markers written as such ("<bos> i don't <eos>"). */
  decode(ids: ArrayLike<number>): string {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocab.length)) throw new Error(`${this.kind} tokenizer decode: ids[${i}] is ${id}, not an id of this vocabulary (0..${this.vocab.length - 1})`);
    }
    return Array.from(ids, (id) => this.vocab[id]!).join(this.separator);
  }

  toJSON(): TokenizerJSON {
    return { kind: this.kind, vocab: this.vocab.slice() };
  }
}

/** Word-level tokenizer with a fixed vocabulary; see the top of this file for what a word is. */
export class WordTokenizer extends VocabularyTokenizer {
  readonly kind = 'word' as const;
  readonly eosId = 2;
  readonly numId = 3;
  readonly markerIds: readonly number[] = [0, 1, 2, 3];
  protected readonly separator = ' ';

  /** The markers and the most frequent words of `texts` (see VocabularyOptions). */
  static fit(texts: readonly string[], options: VocabularyOptions = {}): WordTokenizer {
    const counts = new Map<string, number>();
    for (const text of texts) for (const token of keyboardWords(text)) counts.set(token, (counts.get(token) ?? 0) + 1);
    return new WordTokenizer(buildVocab(WORD_MARKERS, counts, options, 'WordTokenizer.fit'));
  }

  static fromJSON(json: unknown): WordTokenizer {
    return new WordTokenizer(checkVocab(json, 'word', WORD_MARKERS));
  }

  protected tokens(text: string): string[] {
    return keyboardWords(text);
  }
}

/**
 * Normalises text for the character tokenizer as the word tokenizer does its words (compatibility
 * forms, lower case, straight apostrophes and quotes) and collapses whitespace to one space, so
 * the characters are those a keyboard types, punctuation included.
 */
export function normaliseChars(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/[’‘]/g, "'").replace(/[“”]/g, '"').replace(/\s+/g, ' ');
}

/** Character-level tokenizer: `<unk>`, `<bos>` and the most frequent characters (code points) of the normalised text. */
export class CharTokenizer extends VocabularyTokenizer {
  readonly kind = 'char' as const;
  readonly markerIds: readonly number[] = [0, 1];
  protected readonly separator = '';

  static fit(texts: readonly string[], options: VocabularyOptions = {}): CharTokenizer {
    const counts = new Map<string, number>();
    for (const text of texts) for (const c of normaliseChars(text)) counts.set(c, (counts.get(c) ?? 0) + 1);
    return new CharTokenizer(buildVocab(CHAR_MARKERS, counts, options, 'CharTokenizer.fit'));
  }

  static fromJSON(json: unknown): CharTokenizer {
    const vocab = checkVocab(json, 'char', CHAR_MARKERS);
    vocab.forEach((t, i) => {
      if (i >= CHAR_MARKERS.length && [...t].length !== 1) throw new Error(`char tokenizer JSON: vocab[${i}] ${JSON.stringify(t)} is not one character`);
    });
    return new CharTokenizer(vocab);
  }

  protected tokens(text: string): string[] {
    return [...normaliseChars(text)];
  }
}

/** A tokenizer from its JSON, of the kind the JSON names. */
export function tokenizerFromJSON(json: unknown): WordTokenizer | CharTokenizer {
  const kind = (json as { kind?: unknown } | null)?.kind;
  if (kind === 'word') return WordTokenizer.fromJSON(json);
  if (kind === 'char') return CharTokenizer.fromJSON(json);
  throw new Error(`tokenizer JSON: kind must be "word" or "char", got ${JSON.stringify(kind)}`);
}
