// End-to-end: the package as an application gets it. `npm pack` (which builds it through the
// prepack script), a scratch app outside the repository that installs the tarball with npm,
// type-checks against its declarations with a strict tsconfig (skipLibCheck false, no `types`
// setting), is bundled with esbuild, served on localhost and trains a tiny MLP in headless Chromium.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright';
import { afterAll, expect, test } from 'vitest';
// @ts-expect-error plain ESM helper without type declarations
import { launchOptions } from '../../scripts/chromium.mjs';
import { startServer } from '../../scripts/serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// Outside the repository, so that nothing resolves from the repository's node_modules.
const work = mkdtempSync(join(tmpdir(), 'webgpu-train-package-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; context: string }> {
  return new Promise((done, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      done({ code, stdout, context: `${command} ${args.join(' ')}: exit ${code}${signal ? ` (${signal})` : ''}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}` }),
    );
  });
}

/** The module specifiers and type references of every .d.ts under `dir`. */
function declarationSpecifiers(dir: string): { file: string; specifier: string }[] {
  const found: { file: string; specifier: string }[] = [];
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    const text = readFileSync(path, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]|<reference\s+(?:types|path)="([^"]+)"/gm)) {
      found.push({ file: relative(dir, path), specifier: m[1] ?? m[2]! });
    }
  }
  return found;
}

const APP_TS = `import { Adam, backward, Dense, Engine, ReLU, Sequential, softmaxCrossEntropy } from 'webgpu-train';

declare global {
  interface Window {
    losses?: number[];
    trainError?: string;
  }
}

async function train(): Promise<number[]> {
  const engine = await Engine.create();
  const model = new Sequential({
    fc1: new Dense(engine, 8, 16, { seed: 1 }),
    relu1: ReLU(),
    fc2: new Dense(engine, 16, 4, { seed: 2 }),
  });
  const optimizer = new Adam(model.parameters(), { lr: 0.05 });
  // Fixed random inputs (a linear congruential generator) and one class per row.
  let state = 12345;
  const random = (): number => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const inputs = Float32Array.from({ length: 32 * 8 }, random);
  const targets = new Float32Array(32 * 4);
  for (let i = 0; i < 32; i++) targets[i * 4 + (i % 4)] = 1;
  const losses: number[] = [];
  for (let step = 0; step < 15; step++) {
    const loss = await engine.scope(async () => {
      const x = engine.tensor(inputs, [32, 8]);
      const y = engine.tensor(targets, [32, 4]);
      const l = softmaxCrossEntropy(model.forward(x), y);
      backward(l);
      optimizer.step();
      optimizer.zeroGrad();
      return l.item();
    });
    losses.push(loss);
  }
  return losses;
}

train().then(
  (losses) => (window.losses = losses),
  (e: unknown) => (window.trainError = e instanceof Error ? e.message : String(e)),
);
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'Bundler',
    lib: ['ES2022', 'DOM'],
    strict: true,
    skipLibCheck: false,
    noEmit: true,
  },
  files: ['app.ts'],
};

test('the packed package installs, type-checks strictly, bundles and trains in a scratch app', async () => {
  // npm pack runs the prepack script, which builds dist/ from the sources.
  const packDir = join(work, 'pack');
  mkdirSync(packDir);
  const pack = await run('npm', ['pack', '--json', '--pack-destination', packDir], ROOT, 120_000);
  expect(pack.code, pack.context).toBe(0);
  const [packed] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  const files = packed!.files.map((f) => f.path);
  expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/types/index.d.ts']));
  expect(files.filter((f) => !f.startsWith('dist/') && !['package.json', 'README.md', 'LICENSE'].includes(f))).toEqual([]);

  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'webgpu-train-consumer', private: true, type: 'module' }, null, 2));
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(join(app, 'app.ts'), APP_TS);
  writeFileSync(join(app, 'index.html'), '<!doctype html>\n<meta charset="utf-8">\n<title>webgpu-train consumer</title>\n<script type="module" src="./app.js"></script>\n');

  const install = await run('npm', ['install', join(packDir, packed!.filename), '--prefer-offline', '--no-audit', '--no-fund'], app, 120_000);
  expect(install.code, install.context).toBe(0);

  // The declarations reach nothing but themselves and @webgpu/types (a dependency): no
  // devDependency, no *.wgsl module that only the repository declares.
  const outside = declarationSpecifiers(join(app, 'node_modules/webgpu-train/dist/types')).filter((s) => !s.specifier.startsWith('.') || s.specifier.endsWith('.wgsl'));
  expect(outside).toEqual([{ file: 'index.d.ts', specifier: '@webgpu/types' }]);

  const tsc = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', app], app, 60_000);
  expect(tsc.code, tsc.context).toBe(0);

  const bundle = await build({
    absWorkingDir: app,
    entryPoints: ['app.ts'],
    outfile: 'app.js',
    bundle: true,
    format: 'esm',
    target: 'es2022',
    metafile: true,
    logLevel: 'silent',
  });
  // The library's bundle imports nothing at run time: the app's bundle is made of the two files.
  expect(Object.keys(bundle.metafile.inputs).sort()).toEqual(['app.ts', 'node_modules/webgpu-train/dist/index.js']);

  const server = (await startServer({ port: 0, root: app })) as { url: string; close(): Promise<void> };
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ headless: true, ...launchOptions() });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(server.url);
    const handle = await page.waitForFunction(
      () => {
        const w = window as unknown as { losses?: number[]; trainError?: string };
        return w.losses ?? (w.trainError !== undefined ? { error: w.trainError } : undefined);
      },
      undefined,
      { timeout: 60_000, polling: 200 },
    );
    const outcome = (await handle.jsonValue()) as number[] | { error: string };
    expect(Array.isArray(outcome), `${JSON.stringify(outcome)}\npage errors: ${pageErrors.join('\n')}`).toBe(true);
    const losses = outcome as number[];
    console.log(`consumer app losses: ${losses.map((l) => l.toFixed(4)).join(' ')}`);
    expect(losses).toHaveLength(15);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(0.7 * losses[0]!);
  } finally {
    await browser?.close();
    await server.close();
  }
}, 300_000);
