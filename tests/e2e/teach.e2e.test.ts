// End-to-end: a person teaches the page three made-up classes by drawing on its canvas with
// Playwright's mouse (real pointer events): circles, horizontal zigzags and crosses, each drawn
// at its own seeded position, size and jitter. After training, new drawings of each class must be
// classified well above chance (1/3) (features cut after flatten, the page's default). Cut after
// relu3 with the fine-tuning switch, fc1 trains too; the downloaded head (with fc1), loaded back,
// must give the same probabilities and restore the class names, the cut and the switch. The page's refusals of bad states (a class without
// drawings, a sixth class, a head for another base) are checked on the way.
import type { Page } from 'playwright';
import { expect, test } from 'vitest';
import { runPage } from '../../scripts/page-runner.mjs';
import { decodeSafetensors, encodeSafetensors } from '../../src/engine/io/safetensors.js';
import { generator } from '../reference.js';

type Point = [number, number];
type Strokes = Point[][];

// Each family's strokes in the 280x280 canvas, varied by `r`: centre, size, aspect and jitter.
const FAMILIES: Record<string, (r: () => number) => Strokes> = {
  circle: (r) => {
    const [cx, cy, rx, ry] = [140 + (r() - 0.5) * 60, 140 + (r() - 0.5) * 60, 50 + r() * 40, 50 + r() * 40];
    const start = r() * Math.PI * 2;
    return [Array.from({ length: 26 }, (_, i): Point => [cx + rx * Math.cos(start + (i * Math.PI * 2) / 24) + (r() - 0.5) * 6, cy + ry * Math.sin(start + (i * Math.PI * 2) / 24) + (r() - 0.5) * 6])];
  },
  zigzag: (r) => {
    const teeth = 3 + Math.floor(r() * 3);
    const [width, height, y] = [150 + r() * 60, 30 + r() * 25, 140 + (r() - 0.5) * 60];
    const x0 = 140 - width / 2;
    return [Array.from({ length: 2 * teeth + 1 }, (_, i): Point => [x0 + (i * width) / (2 * teeth) + (r() - 0.5) * 8, y + (i % 2 ? height : -height) / 2 + (r() - 0.5) * 8])];
  },
  cross: (r) => {
    const [cx, cy, half] = [140 + (r() - 0.5) * 60, 140 + (r() - 0.5) * 60, 45 + r() * 35];
    const j = () => (r() - 0.5) * 12;
    return [
      [[cx - half + j(), cy - half + j()], [cx + half + j(), cy + half + j()]],
      [[cx + half + j(), cy - half + j()], [cx - half + j(), cy + half + j()]],
    ];
  },
};
const NAMES = Object.keys(FAMILIES);
const TRAIN_PER_CLASS = 5;
const TEST_PER_CLASS = 4;

/** Draws `strokes` on the page's canvas with the mouse (pointer down, moves in small steps, up). */
async function draw(page: Page, strokes: Strokes): Promise<void> {
  const box = (await page.locator('#pad').boundingBox())!;
  const scale = box.width / 280;
  for (const stroke of strokes) {
    const [first, ...rest] = stroke;
    await page.mouse.move(box.x + first![0] * scale, box.y + first![1] * scale);
    await page.mouse.down();
    for (const [x, y] of rest) await page.mouse.move(box.x + x * scale, box.y + y * scale, { steps: 3 });
    await page.mouse.up();
  }
}

/** Waits until the page is idle and has predicted its current drawing. */
async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() => !window.__teach!.busy && window.__teach!.predicted === window.__teach!.drawn, undefined, { timeout: 120_000, polling: 50 });
}

const notice = (page: Page) => page.evaluate(() => window.__teach!.notice);

test('three drawn classes are learnt from five drawings each, and the head survives download and reload', async () => {
  const { ok, outcome, extra } = await runPage({
    demo: 'teach',
    timeoutMs: 300_000,
    label: 'e2e',
    after: async (page) => {
      const r = generator(14);
      for (const [i, name] of NAMES.entries()) await page.fill(`[data-name="${i}"]`, name);
      // Refusals: a class without drawings, and a sixth class.
      await draw(page, FAMILIES.circle!(r));
      await page.click('[data-add="0"]');
      await page.click('#train');
      await settled(page);
      const noExamples = await notice(page);
      await page.click('#addClass');
      await page.click('#addClass');
      await page.click('#addClass');
      const sixth = await notice(page);
      const five = await page.evaluate(() => window.__teach!.classes.length);
      for (let i = 0; i < 2; i++) await page.locator('.class button', { hasText: 'Remove class' }).last().click();

      for (const [i, name] of NAMES.entries()) {
        for (let n = i === 0 ? 1 : 0; n < TRAIN_PER_CLASS; n++) {
          await draw(page, FAMILIES[name]!(r));
          await page.click(`[data-add="${i}"]`);
        }
      }
      await page.click('#train');
      await page.waitForFunction(() => window.__teach!.trained && !window.__teach!.busy, undefined, { timeout: 120_000, polling: 100 });
      const trained = await page.evaluate(() => ({ seconds: window.__teach!.trainSeconds, featureSeconds: window.__teach!.featureSeconds, steps: window.__teach!.steps, notice: window.__teach!.notice }));

      const tests: { label: number; probabilities: number[]; input: number[] }[] = [];
      for (const [label, name] of NAMES.entries()) {
        for (let n = 0; n < TEST_PER_CLASS; n++) {
          await draw(page, FAMILIES[name]!(r));
          await settled(page);
          const { probabilities, input } = await page.evaluate(() => ({ probabilities: window.__teach!.probabilities!, input: window.__teach!.input()! }));
          tests.push({ label, probabilities, input });
          await page.click('#clear');
        }
      }

      // Cut after relu3 with the fine-tuning switch: the head and fc1 train through the base.
      await page.selectOption('#cut', 'relu3');
      await page.setChecked('#finetune', true);
      await page.click('#train');
      await page.waitForFunction(() => window.__teach!.trained && !window.__teach!.busy, undefined, { timeout: 120_000, polling: 100 });
      const finetuned = await page.evaluate(async (inputs) => ({ seconds: window.__teach!.trainSeconds, notice: window.__teach!.notice, probabilities: await window.__teach!.predict(inputs) }), tests.map((t) => t.input));

      // Download the head (with fc1), rename the classes in the page, load the head back.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const bytes = await download.createReadStream().then(async (s) => Buffer.concat(await s.toArray()));
      const { tensors, metadata } = decodeSafetensors(bytes);
      // The same head claiming another base is refused, naming both.
      const info = JSON.parse(metadata['webgpu-train.teach-head']!) as { base: string };
      const otherBase = encodeSafetensors(tensors, { 'webgpu-train.teach-head': JSON.stringify({ ...info, base: 'fashion-mnist-cnn' }) });
      await page.setInputFiles('#load', { name: 'other-base.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(otherBase) });
      await page.waitForFunction(() => !window.__teach!.busy && window.__teach!.notice !== '', undefined, { timeout: 60_000, polling: 100 });
      const otherBaseNotice = await notice(page);
      for (const i of NAMES.keys()) await page.fill(`[data-name="${i}"]`, `renamed ${i}`);
      await page.setChecked('#finetune', false);
      await page.selectOption('#cut', 'flatten');
      await page.setInputFiles('#load', { name: download.suggestedFilename(), mimeType: 'application/octet-stream', buffer: bytes });
      await page.waitForFunction(() => window.__teach!.trained && !window.__teach!.busy && window.__teach!.classes[0]!.name === 'circle', undefined, { timeout: 120_000, polling: 100 });
      const reloaded = await page.evaluate((inputs) => window.__teach!.predict(inputs), tests.map((t) => t.input));
      const names = await page.evaluate(() => window.__teach!.classes.map((c) => c.name));
      const loadNotice = await notice(page);
      const finetuneRestored = (await page.isChecked('#finetune')) && (await page.inputValue('#cut')) === 'relu3';
      const fileTensors = [...tensors.keys()].sort();
      return { noExamples, sixth, five, trained, tests, finetuned, fileTensors, otherBaseNotice, reloaded, names, loadNotice, finetuneRestored };
    },
  });
  expect(ok, JSON.stringify(outcome)).toBe(true);
  const { noExamples, sixth, five, trained, tests, finetuned, fileTensors, otherBaseNotice, reloaded, names, loadNotice, finetuneRestored } = extra!;
  expect(noExamples).toMatch(/classes "zigzag", "cross" have no drawings/);
  expect(sixth).toMatch(/at most 5 classes/);
  expect(five).toBe(5);

  expect(trained.notice).toBe('');
  const predicted = tests.map((t) => t.probabilities.indexOf(Math.max(...t.probabilities)));
  const perClass = NAMES.map((_, c) => tests.filter((t, i) => t.label === c && predicted[i] === c).length / TEST_PER_CLASS);
  const overall = tests.filter((t, i) => predicted[i] === t.label).length / tests.length;
  console.log(`teach: ${trained.steps} steps in ${trained.seconds.toFixed(2)} s (features ${trained.featureSeconds.toFixed(2)} s); accuracy on new drawings ${overall.toFixed(3)}, per class ${NAMES.map((n, c) => `${n} ${perClass[c]!.toFixed(2)}`).join(', ')}`);
  // Chance is 1/3: overall at least 0.8, and every class at least 0.5.
  expect(overall).toBeGreaterThanOrEqual(0.8);
  for (const p of perClass) expect(p).toBeGreaterThanOrEqual(0.5);

  // Fine-tuned: still well above chance on the same new drawings, and the file holds fc1.
  const finetunedCorrect = tests.filter((t, i) => finetuned.probabilities[i]!.indexOf(Math.max(...finetuned.probabilities[i]!)) === t.label).length / tests.length;
  console.log(`teach, fine-tuning fc1 through the base: ${finetuned.seconds.toFixed(2)} s; accuracy on the new drawings ${finetunedCorrect.toFixed(3)}`);
  expect(finetuned.notice).toBe('');
  expect(finetunedCorrect).toBeGreaterThanOrEqual(0.8);
  expect(fileTensors).toEqual(['fc1.bias', 'fc1.weight', 'head.bias', 'head.weight']);

  // Loaded back: the same probabilities, the class names, the cut and the switch restored.
  expect(otherBaseNotice).toBe('other-base.safetensors is a head for the base fashion-mnist-cnn, but the page uses mnist-cnn: choose fashion-mnist-cnn as the base, then load the head again');
  expect(loadNotice).toBe('');
  expect(names).toEqual(NAMES);
  expect(finetuneRestored).toBe(true);
  for (const [i, p] of finetuned.probabilities.entries()) for (const [c, v] of p.entries()) expect(reloaded[i]![c]).toBeCloseTo(v, 6);
});
