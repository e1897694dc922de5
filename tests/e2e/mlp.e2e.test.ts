// End-to-end: the MLP demo, built, served and trained for one epoch on 3000 Fashion-MNIST images
// in headless Chromium by scripts/headless.mjs (the full dataset when Debian's package is
// installed, else the committed subset in tests/data/fashion-mnist).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

test('mlp demo trains in headless Chromium and reports its result', async () => {
  const shot = join(repo, 'reports', 'mlp.png');
  rmSync(shot, { force: true });

  const { code, stdout, stderr } = await run(['scripts/headless.mjs', 'mlp', '--epochs', '1', '--train', '3000', '--timeout', '900']);
  const context = `exit ${code}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
  expect(code, context).toBe(0);
  expect(stdout, context).toContain('[progress]');

  const lines = stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  expect(result.error, context).toBeUndefined();
  expect(typeof result.test_acc).toBe('number');
  expect(result.test_acc as number, context).toBeGreaterThan(0.6);
  expect(result.samples_per_s as number).toBeGreaterThan(0);
  expect(typeof result.adapter).toBe('string');
  expect((result.adapter as string).length).toBeGreaterThan(0);
  expect(result.epochs).toBe(1);
  expect(result.train_images).toBe(3000);
  expect(result.test_images as number).toBeGreaterThan(0);
  expect(Number.isFinite(result.final_loss)).toBe(true);

  expect(existsSync(shot)).toBe(true);
  expect(statSync(shot).size).toBeGreaterThan(10_000);
  expect([...readFileSync(shot).subarray(0, 8)]).toEqual(PNG_MAGIC);
});
