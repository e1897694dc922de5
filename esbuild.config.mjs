// Builds the library (src/index.ts -> dist/index.js) and the demos (demos/<name>/main.ts ->
// demos-dist/<name>/main.js, plus each demo's index.html and a demos/index.html listing them).
//   node esbuild.config.mjs           library + demos
//   node esbuild.config.mjs --serve   demos, then the static server (PORT env, default 8080)
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { wgslPlugin } from './scripts/wgsl-import.mjs';

const root = dirname(fileURLToPath(import.meta.url));
// WGSL files load as text with their #import lines resolved (scripts/wgsl-import.mjs).
const common = { bundle: true, format: 'esm', sourcemap: true, plugins: [wgslPlugin()], logLevel: 'warning' };

export async function buildLibrary() {
  await esbuild.build({ ...common, entryPoints: [join(root, 'src/index.ts')], outfile: join(root, 'dist/index.js'), target: 'es2022' });
}

/** The demo names: folders of demos/ with a main.ts. */
export function demoNames() {
  const dir = join(root, 'demos');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'main.ts')))
    .map((d) => d.name)
    .sort();
}

/** Builds every demo into demos-dist/ and returns that folder. */
export async function buildDemos() {
  const out = join(root, 'demos-dist');
  rmSync(out, { recursive: true, force: true });
  const names = demoNames();
  await esbuild.build({
    ...common,
    entryPoints: names.map((n) => ({ in: join(root, 'demos', n, 'main.ts'), out: `${n}/main` })),
    outdir: out,
    target: 'es2022',
  });
  for (const n of names) {
    const html = join(root, 'demos', n, 'index.html');
    if (existsSync(html)) copyFileSync(html, join(out, n, 'index.html'));
  }
  mkdirSync(join(out, 'common'), { recursive: true });
  copyFileSync(join(root, 'demos', 'common', 'demo.css'), join(out, 'common', 'demo.css'));
  const index = join(root, 'demos', 'index.html');
  if (existsSync(index)) copyFileSync(index, join(out, 'index.html'));
  else {
    const items = names.map((n) => `<li><a href="./${n}/">${n}</a></li>`).join('\n');
    writeFileSync(join(out, 'index.html'), `<!doctype html>\n<meta charset="utf-8"><title>webgpu-train demos</title>\n<h1>webgpu-train demos</h1>\n<ul>\n${items}\n</ul>\n`);
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--serve')) {
    const { startServer } = await import('./scripts/serve.mjs');
    // Listening first reports a busy port (startServer's error names it) before any build work.
    const { url } = await startServer({ port: Number(process.env.PORT ?? 8080), root: join(root, 'demos-dist') }).catch((e) => {
      console.error(`npm start: ${e.message}`);
      process.exit(1);
    });
    const dir = await buildDemos();
    console.log(`demos built; serving ${dir} at ${url}`);
    for (const n of demoNames()) console.log(`  ${url}${n}/`);
  } else {
    await buildLibrary();
    await buildDemos();
    console.log('built dist/index.js and demos-dist/');
  }
}
