// The build-time WGSL linker (scripts/wgsl-import.mjs) on fixture trees in a temporary folder,
// then on the real shaders: each links, and reflection of the linked text finds the bindings.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { linkWgsl, SHADER_ROOT } from '../../scripts/wgsl-import.mjs';
import { Kernel } from '../../src/engine/kernel.js';
import { KERNEL_NAMES, kernel } from '../../src/engine/kernels.js';

let root = '';

/** Writes the files (path relative to the root: text) into a fresh temporary root. */
function tree(files: Record<string, string>): string {
  root = mkdtempSync(join(tmpdir(), 'wgsl-import-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const link = (file: string) => linkWgsl(join(root, file), { root }).code;

afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = '';
});

describe('linkWgsl', () => {
  test('replaces an import line by the file, in place, and leaves other lines alone', () => {
    tree({
      'main.wgsl': 'const A: u32 = 1u;\n#import "lib/b.wgsl"\nfn main() {}\n',
      'lib/b.wgsl': 'fn b() -> u32 { return 2u; }\n',
    });
    expect(link('main.wgsl')).toBe('const A: u32 = 1u;\nfn b() -> u32 { return 2u; }\nfn main() {}\n');
  });

  test('resolves nested imports relative to the root, and reports every file it read', () => {
    tree({
      'main.wgsl': '#import "lib/outer.wgsl"  // a trailing comment is allowed\nfn main() {}',
      'lib/outer.wgsl': '#import "lib/deep/inner.wgsl"\nfn outer() {}',
      'lib/deep/inner.wgsl': 'fn inner() {}',
    });
    const { code, files } = linkWgsl(join(root, 'main.wgsl'), { root });
    expect(code).toBe('fn inner() {}\nfn outer() {}\nfn main() {}');
    expect(files).toEqual(['main.wgsl', 'lib/outer.wgsl', 'lib/deep/inner.wgsl'].map((f) => join(root, f)));
  });

  test('includes a file once per shader, however many files import it', () => {
    tree({
      'main.wgsl': '#import "lib/a.wgsl"\n#import "lib/b.wgsl"\n#import "lib/a.wgsl"\nfn main() {}',
      'lib/a.wgsl': '#import "lib/common.wgsl"\nfn a() {}',
      'lib/b.wgsl': '#import "lib/common.wgsl"\nfn b() {}',
      'lib/common.wgsl': 'fn common() {}',
    });
    expect(link('main.wgsl')).toBe('fn common() {}\nfn a() {}\nfn b() {}\nfn main() {}');
    // Per shader: linking another shader includes the library again.
    writeFileSync(join(root, 'other.wgsl'), '#import "lib/common.wgsl"\nfn other() {}');
    expect(link('other.wgsl')).toBe('fn common() {}\nfn other() {}');
  });

  test('a cycle is an error naming the chain', () => {
    tree({
      'main.wgsl': 'fn main() {}\n#import "lib/a.wgsl"',
      'lib/a.wgsl': '#import "lib/b.wgsl"',
      'lib/b.wgsl': '\n#import "lib/a.wgsl"',
      'self.wgsl': '#import "self.wgsl"',
    });
    expect(() => link('main.wgsl')).toThrow('lib/b.wgsl:2: WGSL import cycle: lib/a.wgsl -> lib/b.wgsl -> lib/a.wgsl');
    expect(() => link('self.wgsl')).toThrow('self.wgsl:1: WGSL import cycle: self.wgsl -> self.wgsl');
  });

  test('a missing file is an error naming the importing file and line', () => {
    tree({
      'main.wgsl': '#import "lib/a.wgsl"',
      'lib/a.wgsl': 'fn a() {}\n\n#import "lib/nope.wgsl"',
    });
    expect(() => link('main.wgsl')).toThrow(`lib/a.wgsl:3: #import "lib/nope.wgsl": no such file (${join(root, 'lib/nope.wgsl')})`);
  });

  test('a malformed import line is an error, not a line passed on to the compiler', () => {
    tree({ 'main.wgsl': 'fn main() {}\n#import lib/a.wgsl' });
    expect(() => link('main.wgsl')).toThrow(/main\.wgsl:2: malformed import `#import lib\/a\.wgsl`/);
  });
});

describe('the shaders', () => {
  const shaders = readdirSync(SHADER_ROOT).filter((f) => f.endsWith('.wgsl'));

  test('every kernel file is listed in kernels.ts', () => {
    expect(shaders.map((f) => f.replace(/\.wgsl$/, '')).sort()).toEqual([...KERNEL_NAMES].sort());
  });

  test('each links to text without imports, and the kernels reflect the linked text', () => {
    for (const f of shaders) {
      const { code } = linkWgsl(join(SHADER_ROOT, f));
      expect(code, f).not.toMatch(/^\s*#import/m);
    }
    // kernels.ts imports the .wgsl files through the same linker (the vitest plugin).
    for (const name of KERNEL_NAMES) {
      const k = kernel(name);
      expect(k.source).toBe(linkWgsl(join(SHADER_ROOT, `${name}.wgsl`)).code);
      expect(k.bindings.length, name).toBeGreaterThan(0);
    }
    // A binding that only an imported file declares is still found by reflection.
    tree({ 'main.wgsl': '#import "lib/io.wgsl"\n@compute @workgroup_size(1)\nfn main() { out[0] = 1.0; }', 'lib/io.wgsl': '@group(0) @binding(0) var<storage, read_write> out: array<f32>;' });
    expect(new Kernel('imported_binding', link('main.wgsl')).bindings.map((b) => b.name)).toEqual(['out']);
  });
});
