// The coordinator's durable state in one SQLite file (Node only, better-sqlite3): the state at the
// end of the last committed round (global weights, the strategy's state: the server optimizer's
// vectors, its scalars and any privacy accountant), the enrolled clients and a log of every round.
//
// Crash safety. commitRound writes everything a round changes in one transaction, so a process
// killed at any moment reopens at the end of the previous round or of the new one, never between
// (tests/node/coordinator-store.test.ts SIGKILLs a child process while it commits). The journal
// is a write-ahead log (readers never block the writer, and a commit appends to one file) with
// synchronous = FULL: every commit is fsynced before commitRound returns. NORMAL would be as safe
// against a killed process (the WAL sits in the OS's page cache), but after a power loss or an OS
// crash it may roll back the last commits; clients may already hold that round's model, and the
// coordinator would then hand out another model under the same version. One fsync per round is
// nothing next to a round of training.
//
// Authentication. enrol issues a random token (32 bytes, base64url) and returns it once; only its
// SHA-256 is stored. authenticate compares hashes with timingSafeEqual, and hashes and compares
// even for an unknown client, so the three failures (unknown client, wrong token, revoked) take
// the same time; they differ only in the reason returned for the coordinator's log.
//
// Schema. PRAGMA application_id marks the file as a coordinator store and PRAGMA user_version is
// its schema version; MIGRATIONS[v] brings a store from version v to v + 1 in one transaction.
// A file of another application, or of a newer schema than this code knows, is refused at open.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { endianness } from 'node:os';
import Database from 'better-sqlite3';
import type { PayloadLayout } from '../../src/index.js';

/** PRAGMA application_id of a coordinator store: "WGTF". */
const APPLICATION_ID = 0x57475446;

/** MIGRATIONS[v] takes a store from schema version v to v + 1. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE state (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     round INTEGER NOT NULL,
     model_version INTEGER NOT NULL,
     strategy TEXT NOT NULL,
     layout TEXT NOT NULL,          -- PayloadLayout as JSON
     weights BLOB NOT NULL,         -- f32 little-endian, layout.length values
     strategy_state TEXT,           -- the strategy's scalars and accountant as JSON, or NULL
     committed_at INTEGER NOT NULL  -- ms since the epoch
   ) STRICT;
   CREATE TABLE optimizer_state (
     name TEXT PRIMARY KEY,
     data BLOB NOT NULL             -- f32 little-endian
   ) STRICT;
   CREATE TABLE clients (
     client_id TEXT PRIMARY KEY,
     token_hash BLOB NOT NULL,      -- SHA-256 of the token
     enrolled_at INTEGER NOT NULL,
     last_seen INTEGER,
     rounds_participated INTEGER NOT NULL DEFAULT 0,
     status TEXT NOT NULL CHECK (status IN ('active', 'revoked'))
   ) STRICT;
   CREATE TABLE round_log (
     round INTEGER PRIMARY KEY,
     sampled TEXT NOT NULL,         -- JSON lists of client ids
     reported TEXT NOT NULL,
     dropped TEXT NOT NULL,
     rejected TEXT NOT NULL,        -- JSON [{ clientId, reason }]
     bytes_down INTEGER NOT NULL,
     bytes_up INTEGER NOT NULL,
     seconds REAL NOT NULL,
     committed_at INTEGER NOT NULL
   ) STRICT;`,
];

/** The schema version this code writes. */
export const STORE_SCHEMA_VERSION = MIGRATIONS.length;

/** Everything the coordinator needs to go on after the end of a round. */
export interface CoordinatorState {
  /** The last round completed (its end is what is stored). */
  readonly round: number;
  /** The version of the global weights. */
  readonly modelVersion: number;
  /** The aggregation strategy's name, so that a restart can refuse to resume with another. */
  readonly strategy: string;
  readonly layout: PayloadLayout;
  /** [layout.length]: the global trainable weights, gaps included. */
  readonly weights: Float32Array;
  /** The server optimizer's state vectors by name (FedAdam's moments...); empty for stateless strategies. */
  readonly optimizerState: ReadonlyMap<string, Float32Array>;
  /** The strategy's other state (its round, scalars, privacy accountant) as JSON, or null when it has none. */
  readonly strategyState: string | null;
}

/** What happened in one round, as the coordinator logs it. */
export interface RoundLogEntry {
  readonly round: number;
  readonly sampled: readonly string[];
  /** Clients that sent an update, accepted or rejected. */
  readonly reported: readonly string[];
  /** Sampled clients that sent nothing. */
  readonly dropped: readonly string[];
  readonly rejected: readonly { readonly clientId: string; readonly reason: string }[];
  readonly bytesDown: number;
  readonly bytesUp: number;
  readonly seconds: number;
}

export interface ClientRecord {
  readonly clientId: string;
  /** ms since the epoch */
  readonly enrolledAt: number;
  readonly lastSeen: number | null;
  /** Rounds in which the client's update was aggregated (reported and not rejected). */
  readonly roundsParticipated: number;
  readonly status: 'active' | 'revoked';
}

/** Why authentication failed: for the coordinator's log only; the client is told the same in every case. */
export type AuthFailure = 'unknown client' | 'wrong token' | 'revoked';
export type AuthResult = { readonly ok: true } | { readonly ok: false; readonly reason: AuthFailure };

interface StateRow {
  round: number;
  model_version: number;
  strategy: string;
  layout: string;
  weights: Buffer;
  strategy_state: string | null;
}

interface ClientRow {
  client_id: string;
  token_hash: Buffer;
  enrolled_at: number;
  last_seen: number | null;
  rounds_participated: number;
  status: 'active' | 'revoked';
}

interface RoundLogRow {
  round: number;
  sampled: string;
  reported: string;
  dropped: string;
  rejected: string;
  bytes_down: number;
  bytes_up: number;
  seconds: number;
}

function sha256(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** The f32 values' bytes, as stored (little-endian: the host's, checked at open). */
function blob(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** A copy of stored f32 bytes as an aligned Float32Array. */
function floats(what: string, bytes: Buffer): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`CoordinatorStore: ${what} holds ${bytes.byteLength} bytes, not whole f32 values (the store is damaged)`);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

function checkCount(op: string, what: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`${op}: ${what} ${String(value)} must be an integer >= 0`);
}

function checkClientId(op: string, clientId: unknown): void {
  if (typeof clientId !== 'string' || clientId === '') throw new Error(`${op}: client id ${JSON.stringify(clientId)} must be a non-empty string`);
}

function checkIds(op: string, what: string, ids: unknown): void {
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) throw new Error(`${op}: ${what} must be an array of client ids`);
}

/** The store's schema version, after refusing files that are not coordinator stores or are newer than this code. */
function schemaVersion(db: Database.Database, path: string): number {
  const op = 'CoordinatorStore.open';
  let applicationId: number;
  try {
    applicationId = db.pragma('application_id', { simple: true }) as number;
  } catch (e) {
    throw new Error(`${op}: ${path} is not a coordinator store (${(e as Error).message})`);
  }
  const version = db.pragma('user_version', { simple: true }) as number;
  const objects = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM sqlite_schema').get()!.n;
  if (applicationId !== APPLICATION_ID && (applicationId !== 0 || version !== 0 || objects !== 0)) {
    throw new Error(`${op}: ${path} is not a coordinator store (application_id ${applicationId}, user_version ${version}, ${objects} schema objects)`);
  }
  if (version > STORE_SCHEMA_VERSION) {
    throw new Error(`${op}: ${path} has schema version ${version}; this coordinator knows versions up to ${STORE_SCHEMA_VERSION} (a newer coordinator wrote it)`);
  }
  return version;
}

export class CoordinatorStore {
  private readonly db: Database.Database;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /** Opens (creating or migrating) the store at `path`. */
  static open(path: string): CoordinatorStore {
    if (endianness() !== 'LE') throw new Error('CoordinatorStore.open: f32 blobs are stored little-endian, and this host is big-endian');
    const db = new Database(path);
    try {
      const version = schemaVersion(db, path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      for (let v = version; v < STORE_SCHEMA_VERSION; v++) {
        db.transaction(() => {
          db.exec(MIGRATIONS[v]!);
          db.pragma(`application_id = ${APPLICATION_ID}`);
          db.pragma(`user_version = ${v + 1}`);
        }).immediate();
      }
    } catch (e) {
      db.close();
      throw e;
    }
    return new CoordinatorStore(db);
  }

  close(): void {
    this.db.close();
  }

  /** The state of the last committed round, or null before the first. */
  load(): CoordinatorState | null {
    // One read transaction: the state row and the optimizer rows of the same commit.
    return this.db.transaction(() => {
      const row = this.db.prepare<[], StateRow>('SELECT round, model_version, strategy, layout, weights, strategy_state FROM state WHERE id = 1').get();
      if (row === undefined) return null;
      const layout = JSON.parse(row.layout) as PayloadLayout;
      const weights = floats('the weights', row.weights);
      if (weights.length !== layout.length) throw new Error(`CoordinatorStore.load: the weights hold ${weights.length} values; their layout has ${layout.length} (the store is damaged)`);
      const optimizerState = new Map<string, Float32Array>();
      for (const { name, data } of this.db.prepare<[], { name: string; data: Buffer }>('SELECT name, data FROM optimizer_state ORDER BY rowid').all()) {
        optimizerState.set(name, floats(`optimizer state ${name}`, data));
      }
      return { round: row.round, modelVersion: row.model_version, strategy: row.strategy, layout, weights, optimizerState, strategyState: row.strategy_state };
    })();
  }

  /**
   * Records the end of a round in one transaction: the new state (replacing the previous one), its
   * log entry and the participation of the clients whose updates were aggregated. `state.round`
   * must be the log's round and later than the stored one.
   */
  commitRound(state: CoordinatorState, log: RoundLogEntry): void {
    const op = 'CoordinatorStore.commitRound';
    checkCount(op, 'round', state.round);
    checkCount(op, 'modelVersion', state.modelVersion);
    if (typeof state.strategy !== 'string' || state.strategy === '') throw new Error(`${op}: strategy must be a non-empty name`);
    if (!(state.weights instanceof Float32Array) || state.weights.length !== state.layout.length) {
      throw new Error(`${op}: weights must be a Float32Array of layout.length = ${state.layout.length} values`);
    }
    for (const [name, values] of state.optimizerState) {
      if (!(values instanceof Float32Array)) throw new Error(`${op}: optimizer state ${name} is not a Float32Array`);
    }
    if (state.strategyState !== null) {
      try {
        JSON.parse(state.strategyState);
      } catch {
        throw new Error(`${op}: the strategy's state is not valid JSON`);
      }
    }
    if (log.round !== state.round) throw new Error(`${op}: the log is of round ${log.round}; the state of round ${state.round}`);
    for (const what of ['sampled', 'reported', 'dropped'] as const) checkIds(op, what, log[what]);
    if (!log.rejected.every((r) => typeof r.clientId === 'string' && typeof r.reason === 'string')) throw new Error(`${op}: rejected must list { clientId, reason }`);
    checkCount(op, 'bytesDown', log.bytesDown);
    checkCount(op, 'bytesUp', log.bytesUp);
    if (!(log.seconds >= 0)) throw new Error(`${op}: seconds ${log.seconds} must be >= 0`);

    const now = Date.now();
    const rejected = new Set(log.rejected.map((r) => r.clientId));
    this.db.transaction(() => {
      const previous = this.db.prepare<[], { round: number }>('SELECT round FROM state WHERE id = 1').get();
      if (previous !== undefined && state.round <= previous.round) throw new Error(`${op}: round ${state.round} is not after the stored round ${previous.round}`);
      this.db
        .prepare('INSERT OR REPLACE INTO state (id, round, model_version, strategy, layout, weights, strategy_state, committed_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?)')
        .run(state.round, state.modelVersion, state.strategy, JSON.stringify(state.layout), blob(state.weights), state.strategyState, now);
      this.db.prepare('DELETE FROM optimizer_state').run();
      const insertState = this.db.prepare('INSERT INTO optimizer_state (name, data) VALUES (?, ?)');
      for (const [name, values] of state.optimizerState) insertState.run(name, blob(values));
      this.db
        .prepare('INSERT INTO round_log (round, sampled, reported, dropped, rejected, bytes_down, bytes_up, seconds, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(log.round, JSON.stringify(log.sampled), JSON.stringify(log.reported), JSON.stringify(log.dropped), JSON.stringify(log.rejected), log.bytesDown, log.bytesUp, log.seconds, now);
      const participated = this.db.prepare('UPDATE clients SET rounds_participated = rounds_participated + 1 WHERE client_id = ?');
      for (const id of log.reported) if (!rejected.has(id)) participated.run(id);
    }).immediate();
  }

  /** Every committed round's log entry, in round order. */
  roundLog(): RoundLogEntry[] {
    return this.db
      .prepare<[], RoundLogRow>('SELECT round, sampled, reported, dropped, rejected, bytes_down, bytes_up, seconds FROM round_log ORDER BY round')
      .all()
      .map((r) => ({
        round: r.round,
        sampled: JSON.parse(r.sampled) as string[],
        reported: JSON.parse(r.reported) as string[],
        dropped: JSON.parse(r.dropped) as string[],
        rejected: JSON.parse(r.rejected) as { clientId: string; reason: string }[],
        bytesDown: r.bytes_down,
        bytesUp: r.bytes_up,
        seconds: r.seconds,
      }));
  }

  /** Enrols a new client and returns its token: shown this once, only its hash is kept. */
  enrol(clientId: string): string {
    const op = 'CoordinatorStore.enrol';
    checkClientId(op, clientId);
    const token = randomBytes(32).toString('base64url');
    const inserted = this.db
      .prepare("INSERT INTO clients (client_id, token_hash, enrolled_at, status) VALUES (?, ?, ?, 'active') ON CONFLICT (client_id) DO NOTHING")
      .run(clientId, sha256(token), Date.now());
    if (inserted.changes === 0) throw new Error(`${op}: client ${clientId} is already enrolled`);
    return token;
  }

  /** Checks a client's token; on success records when it was last seen. */
  authenticate(clientId: string, token: string): AuthResult {
    const row = this.db.prepare<[string], ClientRow>('SELECT * FROM clients WHERE client_id = ?').get(clientId);
    // Hash and compare in every case, against zeros for an unknown client, so every failure takes as long.
    const matches = timingSafeEqual(sha256(token), row?.token_hash ?? Buffer.alloc(32));
    if (row === undefined) return { ok: false, reason: 'unknown client' };
    if (row.status === 'revoked') return { ok: false, reason: 'revoked' };
    if (!matches) return { ok: false, reason: 'wrong token' };
    this.db.prepare('UPDATE clients SET last_seen = ? WHERE client_id = ?').run(Date.now(), clientId);
    return { ok: true };
  }

  /** Revokes a client's token for good (enrolment under the same id is refused afterwards). */
  revoke(clientId: string): void {
    const changed = this.db.prepare("UPDATE clients SET status = 'revoked' WHERE client_id = ?").run(clientId).changes;
    if (changed === 0) throw new Error(`CoordinatorStore.revoke: client ${clientId} is not enrolled`);
  }

  /** The client's record (never its token's hash), or null when it is not enrolled. */
  client(clientId: string): ClientRecord | null {
    const row = this.db.prepare<[string], ClientRow>('SELECT * FROM clients WHERE client_id = ?').get(clientId);
    return row === undefined ? null : clientRecord(row);
  }

  /** Every enrolled client, in enrolment order. */
  clients(): ClientRecord[] {
    return this.db.prepare<[], ClientRow>('SELECT * FROM clients ORDER BY rowid').all().map(clientRecord);
  }
}

function clientRecord(row: ClientRow): ClientRecord {
  return { clientId: row.client_id, enrolledAt: row.enrolled_at, lastSeen: row.last_seen, roundsParticipated: row.rounds_participated, status: row.status };
}
