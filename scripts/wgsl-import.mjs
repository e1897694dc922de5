// The build-time WGSL linker: a line `#import "lib/name.wgsl"` (a path relative to src/shaders)
// is replaced by that file's text, recursively, before anything else (the bundle, wgsl_reflect,
// the GPU compiler) sees the shader. Each file goes into a shader once: a later import of a file
// already included is dropped, so two libraries may both import a third. Every place that loads
// .wgsl as text uses this module: esbuild.config.mjs, vitest.config.ts, tests/node/dawn.test.ts.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where import paths start: src/shaders of this repository. */
export const SHADER_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../src/shaders');

const IMPORT = /^\s*#import\s+"([^"]+)"\s*(?:\/\/.*)?$/;

/**
 * The text of the .wgsl file at `file` with its imports resolved, and every file it is made of
 * (itself first), for watchers. Throws on an import cycle (naming the chain), an import of a
 * missing file (naming the importing file and line) and a malformed `#import` line.
 * @param {string} file
 * @param {{ root?: string }} [options] root: where import paths start (default SHADER_ROOT)
 * @returns {{ code: string, files: string[] }}
 */
export function linkWgsl(file, options = {}) {
  const root = resolve(options.root ?? SHADER_ROOT);
  const name = (path) => {
    const rel = relative(root, path);
    return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
  };
  const included = new Set();
  const files = [];

  const expand = (path, chain) => {
    included.add(path);
    files.push(path);
    const lines = readFileSync(path, 'utf8').split(/\r?\n/);
    const out = [];
    lines.forEach((line, i) => {
      if (!line.trimStart().startsWith('#import')) {
        out.push(line);
        return;
      }
      const at = `${name(path)}:${i + 1}`;
      const match = IMPORT.exec(line);
      if (!match) throw new Error(`${at}: malformed import \`${line.trim()}\`; expected #import "lib/name.wgsl" (a path relative to ${root})`);
      const target = resolve(root, match[1]);
      if (chain.includes(target)) {
        const cycle = [...chain.slice(chain.indexOf(target)), target].map(name).join(' -> ');
        throw new Error(`${at}: WGSL import cycle: ${cycle}`);
      }
      if (included.has(target)) return;
      if (!existsSync(target)) throw new Error(`${at}: #import "${match[1]}": no such file (${target})`);
      out.push(expand(target, [...chain, target]).replace(/\n$/, ''));
    });
    return out.join('\n');
  };

  const start = resolve(file);
  return { code: expand(start, [start]), files };
}

/**
 * An esbuild plugin that loads .wgsl files as linked text (what the `text` loader gives, with the
 * imports resolved), and rebuilds in watch mode when an imported file changes.
 * @param {{ root?: string }} [options]
 */
export function wgslPlugin(options = {}) {
  return {
    name: 'wgsl-import',
    setup(build) {
      build.onLoad({ filter: /\.wgsl$/ }, (args) => {
        const { code, files } = linkWgsl(args.path, options);
        return { contents: code, loader: 'text', watchFiles: files };
      });
    },
  };
}
