// A tiny static server for the demos, bound to 127.0.0.1 (a secure context, so navigator.gpu
// exists). /data/fashion-mnist/<file> comes from the full dataset that Debian's
// dataset-fashion-mnist installs when it is there, else from the committed subset in
// tests/data/fashion-mnist (FASHION_MNIST_DIR overrides both). /data/mnist/<file> comes from the
// digits that scripts/make-mnist.mjs writes into data/mnist (npm run setup) when they are there,
// else from the committed subset in tests/data/mnist (MNIST_DIR overrides both). /data/sotu/<file>
// likewise: the addresses scripts/make-sotu.mjs writes into data/sotu, else the committed subset in
// tests/data/sotu (SOTU_DIR overrides both). /models/<file> serves the committed pretrained bases
// (scripts/pretrain.ts).
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SYSTEM_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
  '.gz': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

/** Where /data/fashion-mnist/ is served from. */
export function fashionMnistDir() {
  if (process.env.FASHION_MNIST_DIR) return resolve(process.env.FASHION_MNIST_DIR);
  if (existsSync(SYSTEM_FASHION_MNIST)) return SYSTEM_FASHION_MNIST;
  return join(repo, 'tests/data/fashion-mnist');
}

/** Where /data/mnist/ is served from. */
export function mnistDir() {
  if (process.env.MNIST_DIR) return resolve(process.env.MNIST_DIR);
  const generated = join(repo, 'data/mnist');
  if (existsSync(join(generated, 'mnist-images-idx3-ubyte.gz'))) return generated;
  return join(repo, 'tests/data/mnist');
}

/** Where /data/sotu/ is served from. */
export function sotuDir() {
  if (process.env.SOTU_DIR) return resolve(process.env.SOTU_DIR);
  const generated = join(repo, 'data/sotu');
  if (existsSync(join(generated, 'index.json'))) return generated;
  return join(repo, 'tests/data/sotu');
}

/** Resolves `rel` under `base`, or null when it would escape it. */
function inside(base, rel) {
  const p = normalize(join(base, rel));
  return p === base || p.startsWith(base.endsWith(sep) ? base : base + sep) ? p : null;
}

/** Starts the server; port 0 picks a free one. Resolves to { url, port, close() }; rejects naming a busy port. */
export function startServer({ port = 8080, root = join(repo, 'demos-dist') } = {}) {
  const base = resolve(root);
  const dataDir = fashionMnistDir();
  const digitsDir = mnistDir();
  const speechesDir = sotuDir();
  // URL prefix -> folder, for the data sets; everything else comes from `root`.
  const dataRoutes = [
    ['/data/fashion-mnist/', dataDir],
    ['/data/mnist/', digitsDir],
    ['/data/sotu/', speechesDir],
    ['/models/', join(repo, 'models')],
  ];
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const route = dataRoutes.find(([prefix]) => path.startsWith(prefix));
    let file = route ? inside(route[1], path.slice(route[0].length)) : inside(base, path);
    if (file && existsSync(file) && statSync(file).isDirectory()) {
      if (!path.endsWith('/')) {
        res.writeHead(301, { location: path + '/' }).end();
        return;
      }
      file = join(file, 'index.html');
    }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${path}\n`);
      return;
    }
    const type = TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, { 'content-type': type, 'content-length': statSync(file).size, 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', (e) => {
      if (e.code !== 'EADDRINUSE') reject(e);
      else reject(new Error(`127.0.0.1:${port} is already in use (another \`npm start\`?); stop what listens there or choose another port: PORT=${port + 1} npm start`));
    });
    server.listen(port, '127.0.0.1', () => {
      const actual = server.address().port;
      resolvePromise({
        url: `http://127.0.0.1:${actual}/`,
        port: actual,
        dataDir,
        mnistDir: digitsDir,
        sotuDir: speechesDir,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { url, dataDir, mnistDir: digitsDir, sotuDir: speechesDir } = await startServer({ port: Number(process.env.PORT ?? 8080), root: process.argv[2] ?? join(repo, 'demos-dist') }).catch((e) => {
    console.error(`serve: ${e.message}`);
    process.exit(1);
  });
  console.log(`serving at ${url} (fashion-mnist from ${dataDir}, mnist from ${digitsDir}, sotu from ${speechesDir})`);
}
