// What Engine.create() says under Node when it cannot get an adapter: run for real in child
// processes (tests/node/adapter-help-probe.ts, bundled), once with no `gpu` option (Node has no
// navigator.gpu) and once with Dawn's entry point but a Vulkan loader that finds no driver.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { bundleNodeScript, ROOT } from './bundle.js';

const SWIFTSHADER_ENV = 'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium';
let probe = '';
let dir = '';

beforeAll(async () => {
  probe = await bundleNodeScript('adapter-help-probe');
  dir = mkdtempSync(join(tmpdir(), 'adapter-help-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function createError(mode: 'dawn' | 'none', env: NodeJS.ProcessEnv): string {
  const child = spawnSync(process.execPath, [probe, mode], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  const context = `exit ${child.status}${child.signal ? ` (${child.signal})` : ''}\nstdout: ${child.stdout}\nstderr: ${child.stderr}`;
  const lastLine = child.stdout.trim().split('\n').at(-1) ?? '';
  let result: { error?: string; adapter?: string };
  try {
    result = JSON.parse(lastLine) as typeof result;
  } catch {
    throw new Error(`the probe printed no JSON result; ${context}`);
  }
  expect(result.adapter, `Engine.create() should have failed; ${context}`).toBeUndefined();
  expect(typeof result.error, context).toBe('string');
  return result.error!;
}

test('without a gpu option, Node is told to pass create() from the webgpu package and keep it alive', () => {
  const message = createError('none', { ...process.env });
  expect(message).toContain('Node has no navigator.gpu');
  expect(message).toContain("pass `gpu: create(['backend=vulkan'])` from the `webgpu` package");
  expect(message).toContain('keep the object create() returns alive');
  expect(message).not.toContain('secure context');
});

test('with Dawn but no Vulkan driver, the message names the loader variables to set before Node starts', () => {
  const missing = join(dir, 'missing_icd.json');
  const message = createError('dawn', { ...process.env, VK_ICD_FILENAMES: missing, LD_LIBRARY_PATH: '/usr/lib/chromium' });
  expect(message).toContain('no GPU adapter was found');
  expect(message).toContain(`set ${SWIFTSHADER_ENV} before Node starts`);
  expect(message).toContain('or install a real Vulkan driver');
  expect(message).toContain(`VK_ICD_FILENAMES is now ${missing}.`);
  // The gpu option was given, so the advice to pass it is left out.
  expect(message).not.toContain('from the `webgpu` package');
});
