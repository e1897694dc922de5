// fl:server reads every setting before it opens anything: a bad one is refused by name, and no
// database file, token file or GPU device is made for a run that cannot start.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from './bundle.js';

test.each([
  [['--vocab', 'many'], '--vocab many is not a number'],
  [['--strategy', 'fedsgd'], '--strategy fedsgd: expected fedavg or fedadam'],
  [['--deadlines', '5'], 'unknown setting --deadlines'],
])('fl:server %j is refused before the database or the token file exists', (args, message) => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-server-'));
  try {
    const db = join(dir, 'db', 'coordinator.sqlite');
    const tokens = join(dir, 'tokens.json');
    const r = spawnSync(process.execPath, ['scripts/node-program.mjs', 'server/federated/main.ts', '--db', db, '--enrol', 'alice', '--tokens', tokens, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toContain(message);
    expect(r.status).toBe(1);
    expect(existsSync(db)).toBe(false);
    expect(existsSync(tokens)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
