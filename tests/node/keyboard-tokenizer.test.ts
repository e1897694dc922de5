import { describe, expect, it } from 'vitest';
import { CharTokenizer, keyboardWords, tokenizerFromJSON, WordTokenizer } from '../../src/paradigms/keyboard/tokenizer.js';

describe('keyboardWords', () => {
  it('splits keyboard-like text into lower-case words, <num> and <eos>', () => {
    expect(keyboardWords("Don't worry, it's a WELL-BEING thing! See you at 5:30 p.m. OK?")).toEqual([
      "don't", 'worry', "it's", 'a', 'well-being', 'thing', '<eos>', 'see', 'you', 'at', '<num>', 'p.m.', 'ok', '<eos>',
    ]);
  });

  it('reads curly apostrophes, drops other punctuation and collapses sentence ends', () => {
    expect(keyboardWords('“We’re here”... (really) -- $1,000; 3.5% of the 1990s?!')).toEqual([
      "we're", 'here', '<eos>', 'really', '<num>', '<num>', 'of', 'the', '<num>', '<eos>',
    ]);
  });

  it('does not end a sentence at a title abbreviation, an initial or a dotted acronym', () => {
    expect(keyboardWords('Mr. Lincoln met John F. Kennedy in Washington, D.C. and St. Louis. Then home.')).toEqual([
      'mr', 'lincoln', 'met', 'john', 'f', 'kennedy', 'in', 'washington', 'd.c.', 'and', 'st', 'louis', '<eos>', 'then', 'home', '<eos>',
    ]);
  });

  it('gives no <eos> before the first word and drops trailing hyphens and quotes', () => {
    expect(keyboardWords('. ! Offices- "quoted\' end')).toEqual(['offices', 'quoted', 'end']);
  });
});

describe('WordTokenizer', () => {
  const texts = ['The cat sat. The cat ran!', 'the dog sat? A cat.'];

  it('keeps the markers first, then words by count (ties alphabetical), with maxSize and minCount', () => {
    const all = WordTokenizer.fit(texts);
    // counts: cat 3, the 3, sat 2, a 1, dog 1, ran 1 (<eos> 4 is a marker)
    expect(all.vocab).toEqual(['<unk>', '<bos>', '<eos>', '<num>', 'cat', 'the', 'sat', 'a', 'dog', 'ran']);
    expect(WordTokenizer.fit(texts, { maxSize: 6 }).vocab).toEqual(['<unk>', '<bos>', '<eos>', '<num>', 'cat', 'the']);
    expect(WordTokenizer.fit(texts, { minCount: 2 }).vocab).toEqual(['<unk>', '<bos>', '<eos>', '<num>', 'cat', 'the', 'sat']);
  });

  it('encodes with <bos>, maps unknown words to <unk>, decodes and looks ids up', () => {
    const tok = WordTokenizer.fit(texts, { minCount: 2 });
    expect(Array.from(tok.encode('The bird sat in 2020.'))).toEqual([1, 5, 0, 6, 0, 3, 2]);
    expect(Array.from(tok.encode('cat', { bos: false }))).toEqual([4]);
    expect(tok.decode(tok.encode('The CAT sat.'))).toBe('<bos> the cat sat <eos>');
    expect(tok.idOf('sat')).toBe(6);
    expect(tok.idOf('zebra')).toBe(tok.unkId);
    expect(tok.idOf('<eos>')).toBe(tok.eosId);
    expect(tok.markerIds).toEqual([0, 1, 2, 3]);
  });

  it('round-trips through JSON and names what is wrong in a bad one', () => {
    const tok = WordTokenizer.fit(texts);
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back).toBeInstanceOf(WordTokenizer);
    expect(back.vocab).toEqual(tok.vocab);
    expect(Array.from(back.encode('the dog ran'))).toEqual(Array.from(tok.encode('the dog ran')));
    expect(() => WordTokenizer.fromJSON({ kind: 'char', vocab: tok.vocab })).toThrow(/kind is "char", expected "word"/);
    expect(() => WordTokenizer.fromJSON({ kind: 'word', vocab: ['<unk>', '<eos>', '<bos>', '<num>'] })).toThrow(/vocab\[1\] must be the marker <bos>/);
    expect(() => WordTokenizer.fromJSON({ kind: 'word', vocab: ['<unk>', '<bos>', '<eos>', '<num>', 'a', 'a'] })).toThrow(/vocab\[5\] "a" appears twice/);
    expect(() => tokenizerFromJSON({ kind: 'bpe' })).toThrow(/kind must be "word" or "char", got "bpe"/);
  });

  it('names bad options and bad ids', () => {
    expect(() => WordTokenizer.fit(texts, { maxSize: 4 })).toThrow(/maxSize must be an integer above the 4 markers/);
    expect(() => WordTokenizer.fit(texts, { minCount: 0 })).toThrow(/minCount must be a positive integer, got 0/);
    expect(() => WordTokenizer.fit(texts).decode([1, 99])).toThrow(/word tokenizer decode: ids\[1\] is 99, not an id of this vocabulary \(0\.\.9\)/);
  });
});

describe('CharTokenizer', () => {
  it('keeps the characters a keyboard types, lower-cased, whitespace collapsed', () => {
    const tok = CharTokenizer.fit(['Aa b\n\nb’s.']);
    // normalised: "aa b b's." -> a 2, b 2, ' ' 2, "'" 1, s 1, . 1
    expect(tok.vocab).toEqual(['<unk>', '<bos>', ' ', 'a', 'b', "'", '.', 's']);
    expect(Array.from(tok.encode('Ab!'))).toEqual([1, 3, 4, 0]);
    expect(tok.decode(tok.encode('ab.', { bos: false }))).toBe('ab.');
    const back = tokenizerFromJSON(tok.toJSON());
    expect(back).toBeInstanceOf(CharTokenizer);
    expect(back.vocab).toEqual(tok.vocab);
    expect(() => CharTokenizer.fromJSON({ kind: 'char', vocab: ['<unk>', '<bos>', 'ab'] })).toThrow(/vocab\[2\] "ab" is not one character/);
  });
});
