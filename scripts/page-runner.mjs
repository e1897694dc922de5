// Runs one demo page in headless Chromium (WebGPU on SwiftShader unless WEBGPU_ADAPTER=gpu) and
// waits for its result. Shared by scripts/headless.mjs, scripts/bench.mjs and scripts/profile.mjs.
// The page reports through window.__result (success) or window.__error (failure) and prints
// `[progress] ...` console lines, which are echoed to stdout.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { buildDemos, demoNames } from '../esbuild.config.mjs';
import { launchOptions } from './chromium.mjs';
import { startServer } from './serve.mjs';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Builds the demos, serves them on a free port and opens `<demo>/?<query>`.
 * Resolves to { ok, outcome, extra, seconds }: `outcome` is window.__result (or { error }),
 * `extra` whatever `after(page)` returned (called once the page has finished, before closing).
 * Saves a screenshot to reports/<screenshotName ?? demo>.png. Never throws for page failures.
 */
export async function runPage({ demo, query = {}, timeoutMs = 30 * 60 * 1000, label = 'headless', screenshotName, after }) {
  if (!demoNames().includes(demo)) throw new Error(`${label}: unknown demo "${demo}"; demos: ${demoNames().join(', ')}`);
  const params = new URLSearchParams({ headless: '1', ...query });
  const root = await buildDemos();
  const server = await startServer({ port: 0, root });
  const url = `${server.url}${demo}/?${params}`;
  console.log(`[${label}] ${url} (fashion-mnist from ${server.dataDir})`);

  let browser;
  let page;
  const shot = join(repo, 'reports', `${screenshotName ?? demo}.png`);
  const screenshot = async () => {
    mkdirSync(join(repo, 'reports'), { recursive: true });
    await page?.screenshot({ path: shot, fullPage: true });
  };
  const started = Date.now();
  try {
    browser = await chromium.launch({ headless: true, ...launchOptions() });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on('console', (msg) => {
      const text = msg.text();
      if (text.startsWith('[progress]')) console.log(text);
      else if (msg.type() === 'error') console.error(`[console.error] ${text}`);
    });
    page.on('pageerror', (e) => console.error(`[pageerror] ${e.message}`));
    await page.goto(url);
    const handle = await page.waitForFunction(() => window.__result ?? (window.__error !== undefined ? { error: window.__error } : undefined), undefined, {
      timeout: timeoutMs,
      polling: 500,
    });
    const outcome = await handle.jsonValue();
    const seconds = (Date.now() - started) / 1000;
    await screenshot();
    console.log(`[${label}] screenshot ${shot} (${seconds.toFixed(1)} s in the page)`);
    const failed = outcome && typeof outcome === 'object' && 'error' in outcome;
    if (failed) console.error(`[${label}] ${demo} failed: ${outcome.error}`);
    const extra = !failed && after ? await after(page) : undefined;
    return { ok: !failed, outcome: failed ? { error: String(outcome.error) } : outcome, extra, seconds };
  } catch (e) {
    console.error(`[${label}] ${e instanceof Error ? e.message : String(e)}`);
    await screenshot().catch(() => {});
    return { ok: false, outcome: { error: e instanceof Error ? e.message.split('\n')[0] : String(e) }, extra: undefined, seconds: (Date.now() - started) / 1000 };
  } finally {
    await browser?.close().catch(() => {});
    await server.close();
  }
}
