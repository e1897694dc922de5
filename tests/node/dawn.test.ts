// The engine on Node through Dawn (the `webgpu` npm package): tests/node/dawn-smoke.ts is
// bundled with esbuild and run in a child process, because the Vulkan loader reads
// VK_ICD_FILENAMES and LD_LIBRARY_PATH (chromium's bundled libvulkan.so.1 and SwiftShader ICD)
// only when the process starts. WEBGPU_ADAPTER=gpu uses the machine's own Vulkan driver instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, test } from 'vitest';
import { SWIFTSHADER_ICD } from '../../scripts/node-program.mjs';
import { bundleNodeScript, dawnEnv, ROOT } from './bundle.js';

const realGpu = process.env.WEBGPU_ADAPTER === 'gpu';
const skip = !realGpu && !existsSync(SWIFTSHADER_ICD);

if (skip) console.warn(`dawn.test.ts: skipped: ${SWIFTSHADER_ICD} (chromium's SwiftShader Vulkan driver) is missing; set WEBGPU_ADAPTER=gpu to use a real GPU`);

interface SmokeResult {
  ok: boolean;
  error?: string;
  adapter: string;
  matmulMaxError: number;
  losses: number[];
  multiTaskLosses: number[];
  dispatches: number;
}

test.skipIf(skip)('the engine runs on Node through Dawn: matmul matches the CPU, an MLP learns, and so does a two-task model with PCGrad', async () => {
  const outfile = await bundleNodeScript('dawn-smoke');

  const child = spawnSync(process.execPath, ['--expose-gc', outfile], { cwd: ROOT, env: dawnEnv(), encoding: 'utf8', timeout: 90_000 });
  const lastLine = child.stdout.trim().split('\n').at(-1) ?? '';
  const context = `exit ${child.status}${child.signal ? ` (${child.signal})` : ''}\nstdout: ${child.stdout}\nstderr: ${child.stderr}`;
  let result: SmokeResult;
  try {
    result = JSON.parse(lastLine) as SmokeResult;
  } catch {
    throw new Error(`the Dawn smoke script printed no JSON result; ${context}`);
  }
  expect(result.error, context).toBeUndefined();
  expect(result.ok, context).toBe(true);
  expect(child.status, context).toBe(0);
  console.log(`dawn: ${result.adapter}, losses ${result.losses[0]!.toFixed(4)} -> ${result.losses.at(-1)!.toFixed(4)}, ${result.dispatches} dispatches`);
  if (!realGpu) expect(result.adapter.toLowerCase()).toContain('swiftshader');
  expect(result.matmulMaxError).toBeLessThan(1e-4);
  expect(result.losses.every(Number.isFinite)).toBe(true);
  expect(result.losses.at(-1)!).toBeLessThan(0.8 * result.losses[0]!);
  // Multi-task training with PCGrad (a step that awaits a readback) learns under Dawn too.
  expect(result.multiTaskLosses.every(Number.isFinite)).toBe(true);
  expect(result.multiTaskLosses.at(-1)!).toBeLessThan(0.8 * result.multiTaskLosses[0]!);
}, 120_000);
