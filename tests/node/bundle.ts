// Bundles a script of tests/node (with the library's sources, WGSL linked as text) into one ESM file for a
// child Node process: the Vulkan loader reads VK_ICD_FILENAMES and LD_LIBRARY_PATH only when a
// process starts, so Dawn's environment can only be chosen for a new process.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { wgslPlugin } from '../../scripts/wgsl-import.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Bundles tests/node/<name>.ts and returns the output file's path. */
export async function bundleNodeScript(name: string): Promise<string> {
  // Inside node_modules so that the bundle's imports of 'webgpu' and 'better-sqlite3' resolve to the installed packages.
  const outDir = join(ROOT, 'node_modules/.cache', name);
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${name}.mjs`);
  await build({
    entryPoints: [join(ROOT, 'tests/node', `${name}.ts`)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['webgpu', 'better-sqlite3'],
    plugins: [wgslPlugin()],
    logLevel: 'silent',
  });
  return outfile;
}
