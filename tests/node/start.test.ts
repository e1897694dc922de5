// `npm start` on a port that is already taken: one line naming the port and how to pick another,
// exit status 1, instead of an unhandled EADDRINUSE stack.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { expect, test } from 'vitest';
import { ROOT } from './bundle.js';

function npmStart(env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((done, reject) => {
    const child = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('error', reject);
    child.on('close', (code) => done({ code, output }));
  });
}

test('npm start on a busy port names the port and says how to choose another', async () => {
  const blocker = createServer();
  await new Promise<void>((ready) => blocker.listen(0, '127.0.0.1', ready));
  const port = (blocker.address() as AddressInfo).port;
  try {
    // Asynchronous, so that the blocker keeps accepting while npm start tries the port.
    const { code, output } = await npmStart({ ...process.env, PORT: String(port) });
    expect(output).toContain(`npm start: 127.0.0.1:${port} is already in use`);
    expect(output).toContain(`choose another port: PORT=${port + 1} npm start`);
    expect(output).not.toContain('EADDRINUSE');
    expect(output).not.toContain('demos built');
    expect(code, output).toBe(1);
  } finally {
    await new Promise((closed) => blocker.close(closed));
  }
});
