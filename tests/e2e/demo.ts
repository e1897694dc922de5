// Runs a demo through scripts/headless.mjs (built, served, in headless Chromium) and checks its
// screenshot: what the end-to-end tests share.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

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

/**
 * Runs `npm run headless -- <demo> <args>` and returns the JSON of its last line, after checking
 * that it succeeded, printed progress and saved reports/<demo>.png. `context` (the whole output)
 * is for assertion messages.
 */
export async function runDemo(demo: string, args: string[]): Promise<{ result: Record<string, unknown>; context: string }> {
  const shot = join(repo, 'reports', `${demo}.png`);
  rmSync(shot, { force: true });
  const { code, stdout, stderr } = await run(['scripts/headless.mjs', demo, ...args]);
  const context = `exit ${code}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
  expect(code, context).toBe(0);
  expect(stdout, context).toContain('[progress]');
  const lines = stdout.trim().split('\n');
  const result = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
  expect(result.error, context).toBeUndefined();
  expect(existsSync(shot)).toBe(true);
  expect(statSync(shot).size).toBeGreaterThan(10_000);
  expect([...readFileSync(shot).subarray(0, 8)]).toEqual(PNG_MAGIC);
  return { result, context };
}
