import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorStore, STORE_SCHEMA_VERSION, type CoordinatorState } from '../../server/federated/store.js';
import { bundleNodeScript } from './bundle.js';
import { layoutOf, roundLog, roundState } from './coordinator-rounds.js';

const dir = mkdtempSync(join(tmpdir(), 'coordinator-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `store-${files++}.sqlite`);

const bytesOf = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Every value of `got` is bit for bit the one of `expected`. */
function expectSameState(got: CoordinatorState | null, expected: CoordinatorState): void {
  expect(got).not.toBeNull();
  const { weights, optimizerState, ...scalars } = got!;
  const { weights: w, optimizerState: o, ...expectedScalars } = expected;
  expect(scalars).toEqual(expectedScalars);
  expect(weights).toBeInstanceOf(Float32Array);
  expect(bytesOf(weights).equals(bytesOf(w)), `weights of round ${got!.round}`).toBe(true);
  expect([...optimizerState.keys()]).toEqual([...o.keys()]);
  for (const [name, values] of o) expect(bytesOf(optimizerState.get(name)!).equals(bytesOf(values)), `optimizer state ${name}`).toBe(true);
}

describe('CoordinatorStore: rounds', () => {
  const layout = layoutOf(3);

  it('loads null before the first round, and after reopening the last committed state bit-exactly', () => {
    const path = freshPath();
    const store = CoordinatorStore.open(path);
    expect(store.load()).toBeNull();
    expect(store.roundLog()).toEqual([]);
    store.commitRound(roundState(1, layout), roundLog(1));
    const second = { ...roundState(2, layout), strategyState: null, optimizerState: new Map() };
    // NaN payloads, -0 and infinities survive.
    second.weights.set([NaN, -0, Infinity, -Infinity, 1.401298464324817e-45]);
    new Uint32Array(second.weights.buffer)[5] = 0x7fc01234;
    store.commitRound(second, roundLog(2));
    store.close();

    const reopened = CoordinatorStore.open(path);
    expectSameState(reopened.load(), second);
    expect(reopened.roundLog()).toEqual([roundLog(1), roundLog(2)]);
    reopened.commitRound(roundState(3, layout), roundLog(3));
    expectSameState(reopened.load(), roundState(3, layout));
    reopened.close();
  });

  it('refuses a commit that is not after the stored round, or whose parts disagree, and writes nothing of it', () => {
    const store = CoordinatorStore.open(freshPath());
    store.commitRound(roundState(5, layout), roundLog(5));
    const refuse = (state: CoordinatorState, log = roundLog(state.round)) => expect(() => store.commitRound(state, log));
    refuse(roundState(5, layout)).toThrow(/commitRound: round 5 is not after the stored round 5/);
    refuse(roundState(4, layout)).toThrow(/round 4 is not after the stored round 5/);
    refuse(roundState(6, layout), roundLog(7)).toThrow(/the log is of round 7; the state of round 6/);
    refuse({ ...roundState(6, layout), weights: new Float32Array(10) }).toThrow(/weights must be a Float32Array of layout\.length = \d+ values/);
    refuse({ ...roundState(6, layout), strategyState: '{rdp' }).toThrow(/the strategy's state is not valid JSON/);
    refuse({ ...roundState(6, layout), modelVersion: 1.5 }).toThrow(/modelVersion 1\.5 must be an integer >= 0/);
    refuse({ ...roundState(6, layout), strategy: '' }).toThrow(/strategy must be a non-empty name/);
    refuse({ ...roundState(6, layout), optimizerState: new Map([['m', [1, 2] as never]]) }).toThrow(/optimizer state m is not a Float32Array/);
    refuse(roundState(6, layout), { ...roundLog(6), sampled: [1] as never }).toThrow(/sampled must be an array of client ids/);
    refuse(roundState(6, layout), { ...roundLog(6), seconds: NaN }).toThrow(/seconds NaN must be >= 0/);
    expectSameState(store.load(), roundState(5, layout));
    expect(store.roundLog()).toEqual([roundLog(5)]);
    store.close();
  });

  it('counts a round for the clients whose updates were aggregated', () => {
    const store = CoordinatorStore.open(freshPath());
    for (const id of ['c0', 'c1', 'c2', 'c3']) store.enrol(id);
    store.commitRound(roundState(1, layout), roundLog(1)); // c0 and c1 aggregated, c2 dropped, c3 rejected
    store.commitRound(roundState(2, layout), { ...roundLog(2), reported: ['c0', 'c2', 'unenrolled'], rejected: [] });
    expect(Object.fromEntries(store.clients().map((c) => [c.clientId, c.roundsParticipated]))).toEqual({ c0: 2, c1: 1, c2: 1, c3: 0 });
    store.close();
  });
});

describe('CoordinatorStore: a process killed while it commits', () => {
  let child: string;
  beforeAll(async () => {
    child = await bundleNodeScript('coordinator-store-child');
  });

  /** Runs the child until it has committed `commits` rounds, then SIGKILLs it at a random moment of its next commit. */
  function commitThenKill(path: string, rows: number, commits: number, fraction: number): Promise<{ begun: number; committed: number }> {
    return new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, [child, path, String(rows)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let seen = 0;
      let killing = false;
      proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const lines = out.split('\n').slice(0, -1);
        seen = lines.filter((l) => l.startsWith('committed')).length;
        const last = lines.at(-1) ?? '';
        if (!killing && seen >= commits && last.startsWith('begin')) {
          killing = true;
          // A commit takes about as long as the last one did: kill somewhere inside it.
          const ms = Number(lines.filter((l) => l.startsWith('committed')).at(-1)!.split(' ')[2]);
          setTimeout(() => proc.kill('SIGKILL'), fraction * ms);
        }
      });
      proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
      // 'close' comes after the child's pipes are drained: every line it wrote has been read.
      proc.on('close', (code, signal) => {
        if (signal !== 'SIGKILL') return reject(new Error(`the child exited (${code}, ${signal}): ${err}`));
        const rounds = (what: string) => Math.max(0, ...out.split('\n').filter((l) => l.startsWith(what)).map((l) => Number(l.split(' ')[1])));
        resolve({ begun: rounds('begin'), committed: rounds('committed') });
      });
    });
  }

  it('reopens at the previous or the new round, consistent in every table, and goes on from there', async () => {
    const path = freshPath();
    const rows = 1000; // 4 MB of weights and 8 MB of optimizer state per commit
    let interrupted = 0;
    let previous = 0;
    for (let kill = 0; kill < 6; kill++) {
      const { begun, committed } = await commitThenKill(path, rows, 1 + (kill % 3), (kill + 0.5) / 6);
      if (begun > committed) interrupted++;

      const store = CoordinatorStore.open(path);
      const state = store.load()!;
      expect([committed, begun]).toContain(state.round);
      expect(state.round).toBeGreaterThan(previous);
      expectSameState(state, roundState(state.round, layoutOf(rows)));
      expect(store.roundLog().map((r) => r.round)).toEqual(Array.from({ length: state.round }, (_, i) => i + 1));
      expect(store.roundLog().at(-1)).toEqual(roundLog(state.round));
      store.close();
      const db = new Database(path, { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      db.close();
      previous = state.round;
    }
    // Most kills land inside a commit (between "begin" and "committed").
    expect(interrupted).toBeGreaterThan(0);
  });
});

describe('CoordinatorStore: clients', () => {
  it('enrols a client with a one-time token whose hash alone is stored', () => {
    const path = freshPath();
    const store = CoordinatorStore.open(path);
    const before = Date.now();
    const token = store.enrol('phone-1');
    const other = store.enrol('phone-2');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes, base64url without padding
    expect(other).not.toBe(token);
    expect(store.client('phone-1')).toEqual({ clientId: 'phone-1', enrolledAt: expect.any(Number), lastSeen: null, roundsParticipated: 0, status: 'active' });
    expect(store.client('phone-1')!.enrolledAt).toBeGreaterThanOrEqual(before);
    expect(store.client('nobody')).toBeNull();
    expect(() => store.enrol('phone-1')).toThrow(/enrol: client phone-1 is already enrolled/);
    expect(() => store.enrol('')).toThrow(/enrol: client id "" must be a non-empty string/);
    store.close();

    const db = new Database(path, { readonly: true });
    const row = db.prepare<[string], { token_hash: Buffer }>('SELECT token_hash FROM clients WHERE client_id = ?').get('phone-1')!;
    expect(row.token_hash.equals(createHash('sha256').update(token).digest())).toBe(true);
    db.close();
    for (const file of [path, `${path}-wal`]) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch {
        continue; // no WAL left after a clean close
      }
      expect(bytes.includes(token), file).toBe(false);
    }
  });

  it('authenticates the right token, and tells unknown clients, wrong tokens and revoked clients apart for the log', () => {
    const store = CoordinatorStore.open(freshPath());
    const token = store.enrol('c1');
    const before = Date.now();
    expect(store.authenticate('c1', token)).toEqual({ ok: true });
    expect(store.client('c1')!.lastSeen).toBeGreaterThanOrEqual(before);
    expect(store.authenticate('c1', `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`)).toEqual({ ok: false, reason: 'wrong token' });
    expect(store.authenticate('c1', '')).toEqual({ ok: false, reason: 'wrong token' });
    expect(store.authenticate('c2', token)).toEqual({ ok: false, reason: 'unknown client' });
    store.revoke('c1');
    expect(store.authenticate('c1', token)).toEqual({ ok: false, reason: 'revoked' });
    expect(store.client('c1')!.status).toBe('revoked');
    expect(() => store.revoke('c2')).toThrow(/revoke: client c2 is not enrolled/);
    expect(() => store.enrol('c1')).toThrow(/already enrolled/);
    store.close();
  });
});

describe('CoordinatorStore: schema', () => {
  it('creates the schema with its version and application id, and refuses newer schemas and other files', () => {
    const path = freshPath();
    CoordinatorStore.open(path).close();
    const db = new Database(path);
    expect(db.pragma('user_version', { simple: true })).toBe(STORE_SCHEMA_VERSION);
    expect(db.pragma('application_id', { simple: true })).toBe(0x57475446);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.pragma(`user_version = ${STORE_SCHEMA_VERSION + 98}`);
    db.close();
    expect(() => CoordinatorStore.open(path)).toThrow(new RegExp(`has schema version ${STORE_SCHEMA_VERSION + 98}; this coordinator knows versions up to ${STORE_SCHEMA_VERSION} \\(a newer coordinator wrote it\\)`));

    const other = freshPath();
    const foreign = new Database(other);
    foreign.exec('CREATE TABLE notes (text TEXT)');
    foreign.close();
    expect(() => CoordinatorStore.open(other)).toThrow(/is not a coordinator store \(application_id 0, user_version 0, 1 schema objects\)/);
    // Refused before anything was changed: the file is still in its own journal mode.
    const check = new Database(other, { readonly: true });
    expect(check.pragma('journal_mode', { simple: true })).toBe('delete');
    check.close();

    const text = freshPath();
    writeFileSync(text, 'not a database at all, but long enough to have a header of 100 bytes. '.repeat(3));
    expect(() => CoordinatorStore.open(text)).toThrow(/is not a coordinator store \(file is not a database\)/);
  });
});
