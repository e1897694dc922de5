// End-to-end: a person types a passage in a distinctive style into the keyboard page (Playwright
// key presses). The page's personal model, fine-tuned on what was typed, must suggest the
// person's words more often than the global model over the second half of the passage, and no
// request the page makes while the person types may carry the text. A partial word narrows the
// suggestion strip to words that begin with it, and tapping a suggestion completes the word.
import { expect, test } from 'vitest';
import { runPage } from '../../scripts/page-runner.mjs';

// Common words (in any president's vocabulary) in an order no address uses, said again and again.
const PHRASE = 'peace and work for every family in this great nation and every child in this good land.';
const PASSAGE = Array.from({ length: 7 }, () => PHRASE).join(' ') + ' ';

test('the personal model learns the typist\'s style and nothing typed leaves the page', async () => {
  const requests: string[] = [];
  const { ok, outcome, extra } = await runPage({
    demo: 'typing',
    query: { users: '3', trainTokens: '3000', epochs: '1' },
    timeoutMs: 600_000,
    label: 'e2e',
    after: async (page) => {
      page.on('request', (r) => requests.push(`${r.method()} ${r.url()} ${r.postData() ?? ''}`));
      await page.click('#text');
      await page.keyboard.type(PASSAGE, { delay: 5 });
      await page.waitForFunction(() => window.__typing !== undefined && window.__typing.queued === 0 && window.__typing.words.length > 0, undefined, { timeout: 600_000, polling: 250 });
      const words = await page.evaluate(() => window.__typing!.words);
      // A partial word narrows the strip to words that begin with it; tapping one completes the word.
      await page.keyboard.type('fam');
      const strip = await page.evaluate(() => ['s0', 's1', 's2'].map((id) => document.getElementById(id)!.textContent ?? ''));
      await page.click('#s0');
      const text = await page.inputValue('#text');
      return { words, strip, text };
    },
  });
  expect(ok, JSON.stringify(outcome)).toBe(true);
  const { words, strip, text } = extra!;
  expect(strip[0]).toMatch(/^fam/);
  for (const s of strip) expect(s === '' || s.startsWith('fam'), `strip ${JSON.stringify(strip)}`).toBe(true);
  expect(text.endsWith(` ${strip[0]} `), text.slice(-30)).toBe(true);
  expect(words.length).toBeGreaterThan(80);
  const half = words.slice(Math.floor(words.length / 2));
  const top3 = (key: 'global' | 'personal') => half.filter((w) => w[key] >= 0 && w[key] < 3).length / half.length;
  console.log(`typing: ${words.length} words scored; second half top-3 recall: global ${top3('global').toFixed(3)}, personal ${top3('personal').toFixed(3)}`);
  expect(top3('personal')).toBeGreaterThan(top3('global') + 0.2);
  // No request at all while typing (the page loads everything before it reports ready); none could carry the text.
  const leaked = requests.filter((r) => ['peace', 'family', 'nation', 'child'].some((w) => r.includes(w)));
  expect(leaked).toEqual([]);
  expect(requests).toEqual([]);
});
