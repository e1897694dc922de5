// Runs the library's TypeScript in Node on WebGPU through Dawn (the `webgpu` package): bundles an
// entry file with esbuild (WGSL linked as text) and gives the environment a Node process needs for
// Dawn's SwiftShader Vulkan driver (Chromium's), which the Vulkan loader reads only when a process
// starts. WEBGPU_ADAPTER=gpu keeps the machine's own Vulkan driver instead.
//   node scripts/node-program.mjs <entry.ts> [args...]    bundles and runs it with that environment
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { wgslPlugin } from './wgsl-import.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM_LIB = '/usr/lib/chromium';
export const SWIFTSHADER_ICD = join(CHROMIUM_LIB, 'vk_swiftshader_icd.json');

/** Bundles `entry` (a path from the repository root) into one ESM file and returns its path. */
export async function bundleNodeProgram(entry) {
  // Inside node_modules so that the bundle's imports of native packages resolve to the installed ones.
  const name = basename(entry).replace(/\.[cm]?ts$/, '');
  const outDir = join(ROOT, 'node_modules/.cache', `${basename(dirname(entry))}-${name}`);
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${name}.mjs`);
  await build({
    entryPoints: [resolve(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['webgpu', 'better-sqlite3', 'ws'],
    plugins: [wgslPlugin()],
    logLevel: 'silent',
  });
  return outfile;
}

/** The environment of a Node process that uses Dawn: SwiftShader unless WEBGPU_ADAPTER=gpu. */
export function dawnEnv(base = process.env) {
  if (base.WEBGPU_ADAPTER === 'gpu') return { ...base };
  return { ...base, VK_ICD_FILENAMES: SWIFTSHADER_ICD, LD_LIBRARY_PATH: [CHROMIUM_LIB, base.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [entry, ...args] = process.argv.slice(2);
  if (!entry) {
    console.error('usage: node scripts/node-program.mjs <entry.ts> [args...]');
    process.exit(2);
  }
  const outfile = await bundleNodeProgram(entry);
  const child = spawn(process.execPath, [outfile, ...args], { cwd: ROOT, env: dawnEnv(), stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
