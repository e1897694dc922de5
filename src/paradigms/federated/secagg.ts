// Secure aggregation: the server learns the sum of the clients' updates and nothing else about any
// one of them, and the sum survives clients dropping out mid-way. Bonawitz et al. 2017, "Practical
// Secure Aggregation for Privacy-Preserving Machine Learning" (CCS'17), the semi-honest protocol of
// its Figure 4 with the rounds named as there:
//
//   Round 0 AdvertiseKeys:          u makes ECDH key pairs c_u (share encryption) and s_u (masks)
//                                   and sends both public keys; the server forwards the list U1.
//   Round 1 ShareKeys:              u draws a self-mask seed b_u, Shamir-shares b_u and s_u's
//                                   private scalar t-of-|U1|, and sends v its two shares encrypted
//                                   under a key agreed from c_u and c_v; U2 = the clients that did.
//   Round 2 MaskedInputCollection:  u sends y_u = x_u + PRG(b_u) + sum_{v in U2\u} ±PRG(s_uv)
//                                   (mod 2^32; + when u precedes v in U1's order, - after), where
//                                   s_uv is agreed from s_u and s_v; U3 = the clients whose y_u came.
//   Round 3 ConsistencyCheck:       omitted: it only guards against a server that lies about U3
//                                   (the active-adversary variant); here the server is semi-honest,
//                                   as in the paper's main protocol.
//   Round 4 Unmasking:              the server names U3 and U2\U3; each client returns its shares of
//                                   b_v for v in U3 and of s_v for v in U2\U3 (never both for one v),
//                                   the server rebuilds them from t shares, removes PRG(b_v) for
//                                   the survivors and the pairwise masks of the dropped clients
//                                   towards the survivors, and is left with sum_{U3} x_u.
//
// Pairwise masks cancel in the sum; self masks keep y_u hidden even when a client that sent y_u is
// wrongly believed dropped and its s_u is rebuilt. A client reveals one kind of share per v, so the
// server can rebuild both secrets of one client only with t answers of each kind: t > n/2 makes
// that impossible (the threshold check).
//
// Arithmetic is in Z_{2^32} on Uint32Array: a store wraps mod 2^32, so additions and subtractions
// of whole masks need no BigInt. Updates are fixed-point: each coordinate clipped to [-range,
// range] and rounded to one of 2^bits levels, bits <= 32 - ceil(log2 n), so the sum of n clients'
// levels is below 2^32 and the unmasked sum is exact. One more word carries the client's weight
// (FedAvg's example count n_u, an integer up to maxWeight): the client quantises (n_u / maxWeight) x_u,
// the server reads sum n_u x_u and sum n_u for the survivors and the weighted mean is their ratio,
// with no count revealed alone.
//
// Messages are plain objects of strings, numbers and Uint8Array (interfaces below), so a transport
// serialises them as they are. Key agreement, encryption and the mask generator are WebCrypto
// (ECDH P-256, HKDF-SHA-256, AES-GCM, AES-CTR), so this file runs unchanged in browsers and Node.
import { expandSeed, randomSeed, randomWords } from './prg.js';
import { recoverSecret, shareSecret, SHARE_BYTES, type Share } from './shamir.js';

/** A client's name: a non-empty string or a finite number (1 and '1' are different clients). */
export type ClientId = string | number;

/** The protocol's rounds, named as in the paper. */
export type SecAggRound = 'AdvertiseKeys' | 'ShareKeys' | 'MaskedInputCollection' | 'Unmasking';

const ROUNDS: readonly SecAggRound[] = ['AdvertiseKeys', 'ShareKeys', 'MaskedInputCollection', 'Unmasking'];

/** What the server and every client of one aggregation agree on beforehand. */
export interface SecAggConfig {
  /** Names this aggregation (e.g. 'round-7'): checked on every message and bound into every derived key. */
  readonly session: string;
  /** n: the most clients that take part. */
  readonly clients: number;
  /** P: the length of every update. */
  readonly length: number;
  /** Each coordinate is clipped to [-range, range] before quantisation. */
  readonly range: number;
  /** t: the shares that rebuild a secret, and the fewest clients every round must keep (default n - floor(n / 3); must exceed n / 2). */
  readonly threshold?: number;
  /** Bits per coordinate, at most 32 - ceil(log2 n) so the sum cannot wrap (default that maximum). */
  readonly bits?: number;
  /** The largest client weight (FedAvg's example count), an integer with n maxWeight < 2^32 (default 1: a plain sum). */
  readonly maxWeight?: number;
  /** 'stochastic' (default, unbiased: each client's error below one step) or 'nearest' (error at most half a step). */
  readonly rounding?: 'stochastic' | 'nearest';
}

/** A SecAggConfig checked, with its defaults filled in and the quantisation step. */
export interface SecAggSettings extends Required<SecAggConfig> {
  /** The quantisation step 2 range / (2^bits - 1). */
  readonly step: number;
}

/** A client's two public keys: raw uncompressed P-256 points (65 bytes: 0x04, x, y). */
export interface PublicKeys {
  /** c_u^PK: agrees the keys that encrypt the client's shares. */
  readonly encryptionKey: Uint8Array;
  /** s_u^PK: agrees the seeds of the client's pairwise masks. */
  readonly maskingKey: Uint8Array;
}

/** Round 0, client to server. */
export interface AdvertiseKeysMessage extends PublicKeys {
  readonly round: 'AdvertiseKeys';
  readonly session: string;
  readonly from: ClientId;
}

/** Round 0, server to every client of U1: the advertised keys. */
export interface KeyListMessage {
  readonly round: 'AdvertiseKeys';
  readonly session: string;
  /** U1 sorted by id; the position fixes each client's Shamir x (position + 1) and the mask signs. */
  readonly clients: readonly (PublicKeys & { readonly id: ClientId })[];
}

/** Round 1, client to server: u's shares for every other client of U1, each encrypted for its holder. */
export interface ShareKeysMessage {
  readonly round: 'ShareKeys';
  readonly session: string;
  readonly from: ClientId;
  /** ciphertext: a 12-byte AES-GCM nonce, then the shares of b_u and s_u (SHARE_BYTES each) encrypted with a 16-byte tag. */
  readonly shares: readonly { readonly to: ClientId; readonly ciphertext: Uint8Array }[];
}

/** Round 1, server to each client of U2: the ciphertexts the other clients of U2 addressed to it. */
export interface SharesForClientMessage {
  readonly round: 'ShareKeys';
  readonly session: string;
  readonly to: ClientId;
  readonly shares: readonly { readonly from: ClientId; readonly ciphertext: Uint8Array }[];
}

/** Round 2, client to server. */
export interface MaskedInputMessage {
  readonly round: 'MaskedInputCollection';
  readonly session: string;
  readonly from: ClientId;
  /** y_u: P + 1 little-endian uint32 words, the quantised update then the weight, masked. */
  readonly maskedInput: Uint8Array;
}

/** Round 4, server to every client of U3. */
export interface UnmaskingRequest {
  readonly round: 'Unmasking';
  readonly session: string;
  /** U3: the clients whose masked input is in the sum. */
  readonly survivors: readonly ClientId[];
  /** U2 \ U3: the clients that shared keys but sent no masked input. */
  readonly dropped: readonly ClientId[];
}

/** One share of client `of`'s secret, held by the sender. */
export interface HeldShare {
  readonly of: ClientId;
  readonly share: Uint8Array;
}

/** Round 4, client to server. */
export interface UnmaskingMessage {
  readonly round: 'Unmasking';
  readonly session: string;
  readonly from: ClientId;
  /** The sender's share of b_v for every survivor v (itself included). */
  readonly selfMaskShares: readonly HeldShare[];
  /** The sender's share of s_v's private scalar for every dropped v. */
  readonly maskingKeyShares: readonly HeldShare[];
}

/** Everything a client sends the server. */
export type SecAggClientMessage = AdvertiseKeysMessage | ShareKeysMessage | MaskedInputMessage | UnmaskingMessage;

/** What the server learns. */
export interface SecAggResult {
  /** sum over U3 of n_u x_u (clipped, quantised, with any noise the clients added); the plain sum with the default weights. */
  readonly sum: Float32Array;
  /** sum over U3 of n_u: sum / weightTotal is FedAvg's weighted mean. */
  readonly weightTotal: number;
  /** U3. */
  readonly survivors: readonly ClientId[];
  /** U2 \ U3, whose pairwise masks were removed through their rebuilt keys. */
  readonly dropped: readonly ClientId[];
}

/** Traffic and time of one round, from one side's point of view. */
export interface RoundCost {
  bytesSent: number;
  bytesReceived: number;
  milliseconds: number;
}

export type SecAggCosts = Record<SecAggRound, RoundCost>;

/** How much secure aggregation costs one client beyond sending its update as f32. */
export interface SecAggOverhead {
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** The plain update: 4 bytes per value. */
  readonly plainBytes: number;
  /** bytesSent + bytesReceived - plainBytes: a demo's secagg_overhead_bytes. */
  readonly overheadBytes: number;
  /** All rounds' time: a demo's secagg_overhead_time. */
  readonly milliseconds: number;
}

/** A client's treatment of its update before masking (Round 2). */
export interface MaskInputOptions {
  /** n_u: FedAvg's example count, an integer in [0, maxWeight] (default 1). */
  weight?: number;
  /** Scale the update to at most this L2 norm first (bounds a client's contribution for DP). */
  clipNorm?: number;
  /**
   * Std of the Gaussian noise added to each coordinate after clipping and weighting, before
   * quantisation (distributed DP: see distributedNoiseStddev); a noised value beyond the range
   * saturates, so leave the range a few noise stds of room. Box-Muller over 32-bit uniforms, not
   * hardened against floating-point attacks on the Gaussian mechanism (Mironov 2012).
   */
  noiseStddev?: number;
}

const ECDH: EcKeyImportParams = { name: 'ECDH', namedCurve: 'P-256' };
const POINT_BYTES = 65;
const SCALAR_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const CIPHERTEXT_BYTES = NONCE_BYTES + 2 * SHARE_BYTES + TAG_BYTES;
const TEXT = new TextEncoder();

/**
 * The config checked, defaults filled in: t = n - floor(n / 3) (the sum survives a third of the
 * clients dropping), bits = 32 - ceil(log2 n).
 */
export function secAggSettings(config: SecAggConfig): SecAggSettings {
  const op = 'secAggSettings';
  const { session, clients: n, length, range } = config;
  if (typeof session !== 'string' || session === '') throw new Error(`${op}: session must be a non-empty string`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${op}: clients ${n} must be an integer >= 1`);
  if (!Number.isInteger(length) || length < 1) throw new Error(`${op}: length ${length} must be an integer >= 1`);
  if (!(range > 0) || !Number.isFinite(range)) throw new Error(`${op}: range ${range} must be a positive finite number`);
  const threshold = config.threshold ?? n - Math.floor(n / 3);
  if (!Number.isInteger(threshold) || threshold > n || 2 * threshold <= n) {
    throw new Error(`${op}: threshold ${threshold} must be an integer in (n/2, n] = (${n / 2}, ${n}]: at t <= n/2 the server could gather t shares of both secrets of one client`);
  }
  const maxBits = 32 - Math.ceil(Math.log2(n));
  const bits = config.bits ?? maxBits;
  if (!Number.isInteger(bits) || bits < 1 || bits > maxBits) throw new Error(`${op}: bits ${bits} must be an integer in [1, ${maxBits}] (32 - ceil(log2 ${n})) so that ${n} clients' sum cannot wrap mod 2^32`);
  const maxWeight = config.maxWeight ?? 1;
  if (!Number.isInteger(maxWeight) || maxWeight < 1 || n * maxWeight >= 2 ** 32) throw new Error(`${op}: maxWeight ${maxWeight} must be an integer >= 1 with ${n} maxWeight < 2^32`);
  const rounding = config.rounding ?? 'stochastic';
  if (rounding !== 'stochastic' && rounding !== 'nearest') throw new Error(`${op}: rounding '${rounding}' must be 'stochastic' or 'nearest'`);
  return { session, clients: n, length, range, threshold, bits, maxWeight, rounding, step: (2 * range) / (2 ** bits - 1) };
}

/** The per-client noise std that gives the sum of `clients` noised updates std sumStddev (with fewer survivors the sum carries less). */
export function distributedNoiseStddev(sumStddev: number, clients: number): number {
  if (!(sumStddev >= 0) || !Number.isFinite(sumStddev)) throw new Error(`distributedNoiseStddev: sumStddev ${sumStddev} must be a finite number >= 0`);
  if (!Number.isInteger(clients) || clients < 1) throw new Error(`distributedNoiseStddev: clients ${clients} must be an integer >= 1`);
  return sumStddev / Math.sqrt(clients);
}

/** Payload bytes of a message: its byte arrays, its strings as UTF-8 and 8 per number, before any wire framing. */
export function messageBytes(message: unknown): number {
  if (message instanceof Uint8Array) return message.byteLength;
  if (typeof message === 'string') return TEXT.encode(message).length;
  if (typeof message === 'number') return 8;
  if (Array.isArray(message)) return message.reduce((sum: number, item) => sum + messageBytes(item), 0);
  if (message !== null && typeof message === 'object') return Object.values(message).reduce((sum: number, value) => sum + messageBytes(value), 0);
  return 0;
}

/** A client's secure-aggregation costs against sending its P-value update as f32. */
export function secAggOverhead(costs: SecAggCosts, length: number): SecAggOverhead {
  const rounds = ROUNDS.map((round) => costs[round]);
  const bytesSent = rounds.reduce((sum, cost) => sum + cost.bytesSent, 0);
  const bytesReceived = rounds.reduce((sum, cost) => sum + cost.bytesReceived, 0);
  const plainBytes = 4 * length;
  const milliseconds = rounds.reduce((sum, cost) => sum + cost.milliseconds, 0);
  return { bytesSent, bytesReceived, plainBytes, overheadBytes: bytesSent + bytesReceived - plainBytes, milliseconds };
}

function emptyCosts(): SecAggCosts {
  const costs = {} as SecAggCosts;
  for (const round of ROUNDS) costs[round] = { bytesSent: 0, bytesReceived: 0, milliseconds: 0 };
  return costs;
}

/** An id as errors print it: JSON, so that 1 and "1" read differently. */
function named(id: ClientId): string {
  return JSON.stringify(id);
}

function checkId(where: string, id: unknown): asserts id is ClientId {
  if (!((typeof id === 'string' && id !== '') || (typeof id === 'number' && Number.isFinite(id)))) {
    throw new Error(`${where}: client id ${String(id)} must be a non-empty string or a finite number`);
  }
}

/** Numbers first, in numeric order, then strings in code-unit order. */
function compareIds(a: ClientId, b: ClientId): number {
  if (typeof a !== typeof b) return typeof a === 'number' ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Checks a message's round and session against what `where` expects. */
function checkMessage(where: string, message: { round: string; session: string }, round: SecAggRound, session: string): void {
  if (message.round !== round) throw new Error(`${where}: got a message of round ${message.round}, expected one of round ${round}`);
  if (message.session !== session) throw new Error(`${where}: the message is for session '${message.session}', this is session '${session}'`);
}

/** A copy with an ArrayBuffer of its own, as WebCrypto takes. */
function ownBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** A client's advertised public key for ECDH; one that is not a point of P-256 is refused, naming it. */
async function importPublicKey(where: string, id: ClientId, keys: PublicKeys, which: keyof PublicKeys): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey('raw', ownBytes(keys[which]), ECDH, true, []);
  } catch {
    throw new Error(`${where}: client ${named(id)}'s ${which} is not a point of P-256`);
  }
}

/** Client id's masking key s_v from its rebuilt scalar d and the public point it advertised (WebCrypto refuses a d that does not give the point). */
async function importPrivateKey(where: string, id: ClientId, scalar: Uint8Array, publicKey: Uint8Array): Promise<CryptoKey> {
  const jwk: JsonWebKey = { kty: 'EC', crv: 'P-256', d: base64url(scalar), x: base64url(publicKey.subarray(1, 33)), y: base64url(publicKey.subarray(33)) };
  try {
    return await crypto.subtle.importKey('jwk', jwk, ECDH, false, ['deriveBits']);
  } catch {
    throw new Error(`${where}: client ${named(id)}'s rebuilt masking key is not a P-256 private key for the point it advertised`);
  }
}

/** 32 bytes from HKDF-SHA-256 over the ECDH secret of the two keys; `info` binds the purpose, session and pair. */
async function agree(privateKey: CryptoKey, publicKey: CryptoKey, info: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: publicKey }, privateKey, 256);
  const material = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(), info }, material, 256));
}

/** AES-GCM's additional data for the shares u sends v: a ciphertext opens only as from u, to v, in this session. */
function sharesLabel(session: string, from: ClientId, to: ClientId): Uint8Array<ArrayBuffer> {
  return TEXT.encode(JSON.stringify(['secagg shares', session, from, to]));
}

/** U1 as every party sees it: the order fixes Shamir x and mask signs. */
class Roster {
  readonly ids: readonly ClientId[];
  private readonly positions = new Map<ClientId, number>();
  private readonly keys = new Map<ClientId, PublicKeys>();

  constructor(where: string, clients: KeyListMessage['clients']) {
    this.ids = clients.map((c) => c.id);
    clients.forEach((client, k) => {
      checkId(where, client.id);
      if (this.positions.has(client.id)) throw new Error(`${where}: client ${named(client.id)} is listed twice`);
      checkPoint(where, client.id, client.encryptionKey, 'encryption');
      checkPoint(where, client.id, client.maskingKey, 'masking');
      this.positions.set(client.id, k);
      this.keys.set(client.id, { encryptionKey: client.encryptionKey, maskingKey: client.maskingKey });
    });
  }

  has(id: ClientId): boolean {
    return this.positions.has(id);
  }

  /** The client's Shamir x: its position + 1. */
  x(id: ClientId): number {
    return this.positions.get(id)! + 1;
  }

  publicKeys(id: ClientId): PublicKeys {
    return this.keys.get(id)!;
  }

  /** The seed of u and v's pairwise mask, from one's private masking key and the other's public one; the same for both. */
  async maskSeed(session: string, privateKey: CryptoKey, publicKey: CryptoKey, u: ClientId, v: ClientId): Promise<Uint8Array<ArrayBuffer>> {
    const pair = this.precedes(u, v) ? [u, v] : [v, u];
    return agree(privateKey, publicKey, TEXT.encode(JSON.stringify(['secagg mask', session, ...pair])));
  }

  /** Whether u comes before v, so that u adds PRG(s_uv) and v subtracts it. */
  precedes(u: ClientId, v: ClientId): boolean {
    return this.positions.get(u)! < this.positions.get(v)!;
  }

  /** The AES-GCM key under which u and v encrypt shares for each other. */
  async sharesKey(session: string, privateKey: CryptoKey, publicKey: CryptoKey, u: ClientId, v: ClientId): Promise<CryptoKey> {
    const pair = this.precedes(u, v) ? [u, v] : [v, u];
    const raw = await agree(privateKey, publicKey, TEXT.encode(JSON.stringify(['secagg share key', session, ...pair])));
    return crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  }
}

function checkPoint(where: string, id: ClientId, key: unknown, which: string): void {
  if (!(key instanceof Uint8Array) || key.length !== POINT_BYTES || key[0] !== 4) {
    throw new Error(`${where}: client ${named(id)}'s ${which} key must be a raw uncompressed P-256 point (${POINT_BYTES} bytes starting 0x04)`);
  }
}

/** Refuses a list of ids holding one twice. */
function checkDistinct(where: string, ids: readonly ClientId[], what: string): void {
  const seen = new Set<ClientId>();
  for (const id of ids) {
    if (seen.has(id)) throw new Error(`${where}: client ${named(id)} appears twice in ${what}`);
    seen.add(id);
  }
}

/** Refuses a list that is not exactly `expected` (in any order), naming what is extra or missing. */
function checkSameClients(where: string, got: readonly ClientId[], expected: readonly ClientId[], what: string): void {
  checkDistinct(where, got, what);
  const want = new Set(expected);
  const extra = got.filter((id) => !want.has(id));
  if (extra.length > 0) throw new Error(`${where}: ${what} names ${extra.map(named).join(', ')}, not expected there`);
  const have = new Set(got);
  const missing = expected.filter((id) => !have.has(id));
  if (missing.length > 0) throw new Error(`${where}: ${what} lacks ${missing.map(named).join(', ')}`);
}

function checkThreshold(where: string, count: number, threshold: number, what: string): void {
  if (count < threshold) throw new Error(`${where}: only ${count} ${what}, fewer than the threshold t = ${threshold}`);
}

/** masked += sign * PRG(seed) mod 2^32 over all P + 1 words. */
/** Masks regenerated at once when unmasking: each holds its P words while it is added, so unbounded they would hold dropped x survivors of them (1.9 GB at n = 150, P = 54k). */
const MASKS_IN_FLIGHT = 8;

/** Runs the jobs with at most `limit` of them in flight. */
async function inParallel(jobs: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
}

async function addMask(masked: Uint32Array, seed: Uint8Array<ArrayBuffer>, sign: 1 | -1): Promise<void> {
  const mask = await expandSeed(seed, masked.length);
  if (sign > 0) for (let i = 0; i < masked.length; i++) masked[i]! += mask[i]!;
  else for (let i = 0; i < masked.length; i++) masked[i]! -= mask[i]!;
}

/**
 * The client's fixed-point input: x scaled to norm clipNorm, each coordinate clipped to [-range,
 * range], scaled by weight / maxWeight, noised and clipped again, as levels (v + range) / step
 * rounded into [0, 2^bits - 1]; the weight last.
 */
async function quantiseInput(where: string, update: Float32Array, settings: SecAggSettings, options: MaskInputOptions): Promise<Uint32Array<ArrayBuffer>> {
  const { length, range, step, bits, maxWeight, rounding } = settings;
  const { weight = 1, clipNorm, noiseStddev = 0 } = options;
  if (!Number.isInteger(weight) || weight < 0 || weight > maxWeight) throw new Error(`${where}: weight ${weight} must be an integer in [0, maxWeight = ${maxWeight}]`);
  if (clipNorm !== undefined && !(clipNorm > 0)) throw new Error(`${where}: clipNorm ${clipNorm} must be positive`);
  if (!(noiseStddev >= 0) || !Number.isFinite(noiseStddev)) throw new Error(`${where}: noiseStddev ${noiseStddev} must be a finite number >= 0`);
  let squares = 0;
  for (let i = 0; i < length; i++) {
    if (!Number.isFinite(update[i]!)) throw new Error(`${where}: the update holds ${update[i]} at ${i}`);
    squares += update[i]! ** 2;
  }
  const norm = Math.sqrt(squares);
  const normScale = clipNorm !== undefined && norm > clipNorm ? clipNorm / norm : 1;
  const clip = (value: number) => Math.min(range, Math.max(-range, value));
  const roundingWords = rounding === 'stochastic' ? await randomWords(length) : null;
  // Box-Muller turns each pair of words into two normals: an even count covers an odd length.
  const noiseWords = noiseStddev > 0 ? await randomWords(2 * Math.ceil(length / 2)) : null;
  const top = 2 ** bits - 1;
  const levels = new Uint32Array(length + 1);
  for (let i = 0; i < length; i++) {
    let value = (clip(update[i]! * normScale) * weight) / maxWeight;
    if (noiseWords) {
      const pair = i & ~1;
      const radius = noiseStddev * Math.sqrt(-2 * Math.log((noiseWords[pair]! + 1) / 2 ** 32));
      const angle = (2 * Math.PI * noiseWords[pair + 1]!) / 2 ** 32;
      value += radius * (i & 1 ? Math.sin(angle) : Math.cos(angle));
    }
    // Noise pushed beyond the range saturates: leave it room.
    const level = (clip(value) + range) / step;
    levels[i] = Math.min(top, roundingWords ? Math.floor(level + roundingWords[i]! / 2 ** 32) : Math.round(level));
  }
  levels[length] = weight;
  return levels;
}

/** One client of an aggregation: call its rounds in order, passing on what the server sends. */
export class SecAggClient {
  readonly id: ClientId;
  readonly settings: SecAggSettings;
  /** This client's traffic and time per round. */
  readonly costs: SecAggCosts = emptyCosts();
  /** The round whose method may run next; null while one runs. */
  private next: SecAggRound | 'finished' | null = 'AdvertiseKeys';
  private encryptionKeys: CryptoKeyPair | null = null;
  private maskingKeys: CryptoKeyPair | null = null;
  private ownKeys: PublicKeys | null = null;
  private roster: Roster | null = null;
  private selfMaskSeed: Uint8Array<ArrayBuffer> | null = null;
  /** This client's share of its own b_u (what it answers for itself in Unmasking). */
  private ownSelfMaskShare: Uint8Array | null = null;
  private readonly sharesKeys = new Map<ClientId, CryptoKey>();
  /** U2 \ {u} and the ciphertext each addressed to this client, kept from MaskedInputCollection to Unmasking. */
  private ciphertexts = new Map<ClientId, Uint8Array>();

  constructor(id: ClientId, config: SecAggConfig) {
    checkId('SecAggClient', id);
    this.id = id;
    this.settings = secAggSettings(config);
  }

  private where(round: SecAggRound): string {
    return `SecAggClient ${named(this.id)} ${round}`;
  }

  /**
   * Runs one round's work: refuses it out of turn (or while another round's work is under way),
   * times it, counts the message it sends and moves to the next round; a round that throws may be
   * tried again.
   */
  private async step<M extends SecAggClientMessage>(round: SecAggRound, work: (where: string) => Promise<M>): Promise<M> {
    const where = this.where(round);
    if (this.next !== round) throw new Error(`${where}: out of order, the client is ${this.next === null ? 'busy with another round' : `at ${this.next}`}`);
    this.next = null;
    const start = performance.now();
    let message: M;
    try {
      message = await work(where);
    } catch (error) {
      this.next = round;
      throw error;
    }
    const cost = this.costs[round];
    cost.bytesSent += messageBytes(message);
    cost.milliseconds += performance.now() - start;
    this.next = ROUNDS[ROUNDS.indexOf(round) + 1] ?? 'finished';
    return message;
  }

  /** Counts a server message against the round it belongs to. */
  private received(message: KeyListMessage | SharesForClientMessage | UnmaskingRequest): void {
    this.costs[message.round].bytesReceived += messageBytes(message);
  }

  /** Round 0: fresh key pairs c_u and s_u (s_u extractable: its scalar is shared next round). */
  advertiseKeys(): Promise<AdvertiseKeysMessage> {
    return this.step('AdvertiseKeys', async () => {
      this.encryptionKeys = (await crypto.subtle.generateKey(ECDH, false, ['deriveBits'])) as CryptoKeyPair;
      this.maskingKeys = (await crypto.subtle.generateKey(ECDH, true, ['deriveBits'])) as CryptoKeyPair;
      const [encryptionKey, maskingKey] = await Promise.all([this.encryptionKeys, this.maskingKeys].map(async (pair) => new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey))));
      this.ownKeys = { encryptionKey: encryptionKey!, maskingKey: maskingKey! };
      return { round: 'AdvertiseKeys', session: this.settings.session, from: this.id, ...this.ownKeys };
    });
  }

  /** Round 1: shares of b_u and of s_u's scalar for every client of U1, each encrypted for its holder. */
  shareKeys(keyList: KeyListMessage): Promise<ShareKeysMessage> {
    return this.step('ShareKeys', async (where) => {
      const { session, clients: n, threshold } = this.settings;
      checkMessage(where, keyList, 'AdvertiseKeys', session);
      const roster = new Roster(where, keyList.clients);
      if (!roster.has(this.id)) throw new Error(`${where}: the key list leaves this client out`);
      const listed = roster.publicKeys(this.id);
      if (!equalBytes(listed.encryptionKey, this.ownKeys!.encryptionKey) || !equalBytes(listed.maskingKey, this.ownKeys!.maskingKey)) {
        throw new Error(`${where}: the key list gives this client other keys than it advertised`);
      }
      if (roster.ids.length > n) throw new Error(`${where}: the key list holds ${roster.ids.length} clients, more than n = ${n}`);
      checkThreshold(where, roster.ids.length, threshold, 'clients advertised keys');
      this.roster = roster;

      this.selfMaskSeed = randomSeed();
      const jwk = await crypto.subtle.exportKey('jwk', this.maskingKeys!.privateKey);
      const scalar = fromBase64url(jwk.d!);
      if (scalar.length !== SCALAR_BYTES) throw new Error(`${where}: the masking key's scalar has ${scalar.length} bytes, ${SCALAR_BYTES} expected`);
      const selfMaskShares = shareSecret(this.selfMaskSeed, roster.ids.length, threshold);
      const maskingKeyShares = shareSecret(scalar, roster.ids.length, threshold);
      const shareOf = (shares: Share[], id: ClientId) => shares[roster.x(id) - 1]!.y;
      this.ownSelfMaskShare = shareOf(selfMaskShares, this.id);

      const others = roster.ids.filter((id) => id !== this.id);
      const shares = await Promise.all(
        others.map(async (to) => {
          const peer = await importPublicKey(where, to, roster.publicKeys(to), 'encryptionKey');
          const key = await roster.sharesKey(session, this.encryptionKeys!.privateKey, peer, this.id, to);
          this.sharesKeys.set(to, key);
          const plaintext = new Uint8Array(2 * SHARE_BYTES);
          plaintext.set(shareOf(selfMaskShares, to), 0);
          plaintext.set(shareOf(maskingKeyShares, to), SHARE_BYTES);
          const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
          const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: sharesLabel(session, this.id, to) }, key, plaintext);
          const ciphertext = new Uint8Array(CIPHERTEXT_BYTES);
          ciphertext.set(nonce, 0);
          ciphertext.set(new Uint8Array(sealed), NONCE_BYTES);
          return { to, ciphertext };
        }),
      );
      this.received(keyList);
      return { round: 'ShareKeys', session, from: this.id, shares };
    });
  }

  /**
   * Round 2: y_u = quantised update (and weight) + PRG(b_u) + sum over v in U2 \ {u} of
   * ±PRG(s_uv), mod 2^32; U2 is this client and the senders of the ciphertexts it received.
   */
  maskInput(shares: SharesForClientMessage, update: Float32Array, options: MaskInputOptions = {}): Promise<MaskedInputMessage> {
    return this.step('MaskedInputCollection', async (where) => {
      const { session, length, threshold } = this.settings;
      const roster = this.roster!;
      checkMessage(where, shares, 'ShareKeys', session);
      if (shares.to !== this.id) throw new Error(`${where}: got the shares addressed to client ${named(shares.to)}`);
      const senders = shares.shares.map((s) => s.from);
      checkDistinct(where, senders, 'the received shares');
      for (const { from, ciphertext } of shares.shares) {
        if (from === this.id || !roster.has(from)) throw new Error(`${where}: received shares from client ${named(from)}, not another client of the key list`);
        if (!(ciphertext instanceof Uint8Array) || ciphertext.length !== CIPHERTEXT_BYTES) throw new Error(`${where}: the ciphertext from client ${named(from)} has ${ciphertext?.length} bytes, ${CIPHERTEXT_BYTES} expected`);
      }
      checkThreshold(where, senders.length + 1, threshold, 'clients shared keys');
      if (update.length !== length) throw new Error(`${where}: the update has ${update.length} values, the session's length is ${length}`);
      this.ciphertexts = new Map(shares.shares.map((s) => [s.from, s.ciphertext]));

      const masked = await quantiseInput(where, update, this.settings, options);
      const masks = [addMask(masked, this.selfMaskSeed!, 1)];
      for (const v of senders) {
        masks.push(
          importPublicKey(where, v, roster.publicKeys(v), 'maskingKey')
            .then((peer) => roster.maskSeed(session, this.maskingKeys!.privateKey, peer, this.id, v))
            .then((seed) => addMask(masked, seed, roster.precedes(this.id, v) ? 1 : -1)),
        );
      }
      await Promise.all(masks);
      // b_u must not outlive its use: only its shares may ever reach the server.
      this.selfMaskSeed = null;
      this.received(shares);
      return { round: 'MaskedInputCollection', session, from: this.id, maskedInput: new Uint8Array(masked.buffer) };
    });
  }

  /**
   * Round 4: this client's shares of b_v for the survivors and of s_v for the dropped. Refuses a
   * request that names a client as both (that would give the server both secrets of v), that
   * declares this client dropped, or that does not split U2 exactly.
   */
  unmask(request: UnmaskingRequest): Promise<UnmaskingMessage> {
    return this.step('Unmasking', async (where) => {
      const { session, threshold } = this.settings;
      checkMessage(where, request, 'Unmasking', session);
      const survivors = new Set(request.survivors);
      const both = request.dropped.filter((id) => survivors.has(id));
      if (both.length > 0) throw new Error(`${where}: asked for both the self-mask and the masking-key shares of client ${both.map(named).join(', ')}; refused (the two together unmask its input)`);
      if (request.dropped.includes(this.id)) throw new Error(`${where}: the request lists this client as dropped, though it sent its masked input; refused`);
      const u2 = [this.id, ...this.ciphertexts.keys()];
      checkSameClients(where, [...request.survivors, ...request.dropped], u2, 'survivors and dropped together (U2)');
      checkThreshold(where, request.survivors.length, threshold, 'survivors');

      const plaintexts = new Map<ClientId, Uint8Array>();
      await Promise.all(
        [...this.ciphertexts].map(async ([from, ciphertext]) => {
          const key = this.sharesKeys.get(from)!;
          const iv = ownBytes(ciphertext.subarray(0, NONCE_BYTES));
          let opened: ArrayBuffer;
          try {
            opened = await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: sharesLabel(session, from, this.id) }, key, ownBytes(ciphertext.subarray(NONCE_BYTES)));
          } catch {
            throw new Error(`${where}: the shares from client ${named(from)} fail to decrypt (altered, or not encrypted for this client in this session)`);
          }
          plaintexts.set(from, new Uint8Array(opened));
        }),
      );
      const selfMaskShare = (v: ClientId) => (v === this.id ? this.ownSelfMaskShare! : plaintexts.get(v)!.subarray(0, SHARE_BYTES));
      this.received(request);
      return {
        round: 'Unmasking',
        session,
        from: this.id,
        selfMaskShares: request.survivors.map((of) => ({ of, share: selfMaskShare(of) })),
        maskingKeyShares: request.dropped.map((of) => ({ of, share: plaintexts.get(of)!.subarray(SHARE_BYTES) })),
      };
    });
  }
}

/**
 * The server of one aggregation: `receive` each client message as it arrives, and end each round
 * with its `end...` method, which decides who is in (U1, U2, U3) and returns what to send on.
 */
export class SecAggServer {
  readonly settings: SecAggSettings;
  /** The server's traffic and time per round. */
  readonly costs: SecAggCosts = emptyCosts();
  private current: SecAggRound | 'finished' = 'AdvertiseKeys';
  private readonly advertised = new Map<ClientId, PublicKeys>();
  private roster: Roster | null = null;
  private readonly shareMessages = new Map<ClientId, ShareKeysMessage>();
  /** U2 in roster order. */
  private keySharers: ClientId[] = [];
  private readonly maskedInputs = new Map<ClientId, Uint32Array>();
  private request: UnmaskingRequest | null = null;
  private readonly unmaskings = new Map<ClientId, UnmaskingMessage>();

  constructor(config: SecAggConfig) {
    this.settings = secAggSettings(config);
  }

  /** The round now collecting messages. */
  get round(): SecAggRound | 'finished' {
    return this.current;
  }

  private where(round: SecAggRound): string {
    return `SecAggServer ${round}`;
  }

  private begin(round: SecAggRound): string {
    const where = this.where(round);
    if (this.current !== round) throw new Error(`${where}: out of order, the server is at ${this.current}`);
    return where;
  }

  /** Counts the time since `start` against `round` and moves to the next round. */
  private advance(round: SecAggRound, start: number): void {
    this.costs[round].milliseconds += performance.now() - start;
    this.current = ROUNDS[ROUNDS.indexOf(round) + 1] ?? 'finished';
  }

  /** Counts `copies` sends of a message against the round it belongs to. */
  private sent(message: KeyListMessage | SharesForClientMessage | UnmaskingRequest, copies = 1): void {
    this.costs[message.round].bytesSent += copies * messageBytes(message);
  }

  /** Takes one client message of the current round; refuses any that does not belong there. */
  receive(message: SecAggClientMessage): void {
    const start = performance.now();
    const round = this.current;
    if (round === 'finished') throw new Error(`SecAggServer: a ${message.round} message from client ${named(message.from)} after the aggregation finished`);
    const where = `${this.where(round)}: client ${named(message.from)}`;
    checkId(this.where(round), message.from);
    checkMessage(where, message, round, this.settings.session);
    switch (message.round) {
      case 'AdvertiseKeys':
        this.receiveKeys(where, message);
        break;
      case 'ShareKeys':
        this.receiveShares(where, message);
        break;
      case 'MaskedInputCollection':
        this.receiveMaskedInput(where, message);
        break;
      case 'Unmasking':
        this.receiveUnmasking(where, message);
        break;
    }
    const cost = this.costs[round];
    cost.bytesReceived += messageBytes(message);
    cost.milliseconds += performance.now() - start;
  }

  private receiveKeys(where: string, message: AdvertiseKeysMessage): void {
    if (this.advertised.has(message.from)) throw new Error(`${where}: a second AdvertiseKeys message`);
    if (this.advertised.size === this.settings.clients) throw new Error(`${where}: already ${this.settings.clients} clients (n) advertised keys`);
    checkPoint(where, message.from, message.encryptionKey, 'encryption');
    checkPoint(where, message.from, message.maskingKey, 'masking');
    this.advertised.set(message.from, { encryptionKey: message.encryptionKey, maskingKey: message.maskingKey });
  }

  private receiveShares(where: string, message: ShareKeysMessage): void {
    const roster = this.roster!;
    if (!roster.has(message.from)) throw new Error(`${where}: not in the key list (U1)`);
    if (this.shareMessages.has(message.from)) throw new Error(`${where}: a second ShareKeys message`);
    const others = roster.ids.filter((id) => id !== message.from);
    checkSameClients(where, message.shares.map((s) => s.to), others, 'the shares\' recipients');
    for (const { to, ciphertext } of message.shares) {
      if (!(ciphertext instanceof Uint8Array) || ciphertext.length !== CIPHERTEXT_BYTES) throw new Error(`${where}: the ciphertext for client ${named(to)} has ${ciphertext?.length} bytes, ${CIPHERTEXT_BYTES} expected`);
    }
    this.shareMessages.set(message.from, message);
  }

  private receiveMaskedInput(where: string, message: MaskedInputMessage): void {
    if (!this.keySharers.includes(message.from)) throw new Error(`${where}: did not share keys in ShareKeys (U2), so its masks could not be removed`);
    if (this.maskedInputs.has(message.from)) throw new Error(`${where}: a second masked input`);
    const words = this.settings.length + 1;
    if (!(message.maskedInput instanceof Uint8Array) || message.maskedInput.length !== 4 * words) {
      throw new Error(`${where}: a masked input of ${message.maskedInput?.length} bytes, ${4 * words} expected (${words} uint32 words: length + 1)`);
    }
    // A copy: aligned for the Uint32Array view whatever the transport handed over.
    this.maskedInputs.set(message.from, new Uint32Array(ownBytes(message.maskedInput).buffer));
  }

  private receiveUnmasking(where: string, message: UnmaskingMessage): void {
    const { survivors, dropped } = this.request!;
    if (!survivors.includes(message.from)) throw new Error(`${where}: not a survivor (U3); only survivors are asked to unmask`);
    if (this.unmaskings.has(message.from)) throw new Error(`${where}: a second Unmasking message`);
    checkSameClients(where, message.selfMaskShares.map((s) => s.of), survivors, 'the self-mask shares');
    checkSameClients(where, message.maskingKeyShares.map((s) => s.of), dropped, 'the masking-key shares');
    for (const { of, share } of [...message.selfMaskShares, ...message.maskingKeyShares]) {
      if (!(share instanceof Uint8Array) || share.length !== SHARE_BYTES) throw new Error(`${where}: the share of client ${named(of)} has ${share?.length} bytes, ${SHARE_BYTES} expected`);
    }
    this.unmaskings.set(message.from, message);
  }

  /** Ends Round 0: U1 = the clients that advertised keys (at least t), sorted by id; send the list to each. */
  endAdvertiseKeys(): KeyListMessage {
    const where = this.begin('AdvertiseKeys');
    const start = performance.now();
    checkThreshold(where, this.advertised.size, this.settings.threshold, 'clients advertised keys');
    const ids = [...this.advertised.keys()].sort(compareIds);
    const message: KeyListMessage = { round: 'AdvertiseKeys', session: this.settings.session, clients: ids.map((id) => ({ id, ...this.advertised.get(id)! })) };
    this.roster = new Roster(where, message.clients);
    this.sent(message, ids.length);
    this.advance('AdvertiseKeys', start);
    return message;
  }

  /** Ends Round 1: U2 = the clients that sent shares (at least t); one message per client of U2 with the ciphertexts addressed to it. */
  endShareKeys(): SharesForClientMessage[] {
    const where = this.begin('ShareKeys');
    const start = performance.now();
    checkThreshold(where, this.shareMessages.size, this.settings.threshold, 'clients shared keys');
    this.keySharers = this.roster!.ids.filter((id) => this.shareMessages.has(id));
    const messages = this.keySharers.map((to): SharesForClientMessage => ({
      round: 'ShareKeys',
      session: this.settings.session,
      to,
      shares: this.keySharers.filter((from) => from !== to).map((from) => ({ from, ciphertext: this.shareMessages.get(from)!.shares.find((s) => s.to === to)!.ciphertext })),
    }));
    this.shareMessages.clear();
    for (const message of messages) this.sent(message);
    this.advance('ShareKeys', start);
    return messages;
  }

  /** Ends Round 2: U3 = the clients whose masked input came (at least t); send the request to each survivor. */
  endMaskedInputCollection(): UnmaskingRequest {
    const where = this.begin('MaskedInputCollection');
    const start = performance.now();
    checkThreshold(where, this.maskedInputs.size, this.settings.threshold, 'clients sent masked input');
    const survivors = this.keySharers.filter((id) => this.maskedInputs.has(id));
    const dropped = this.keySharers.filter((id) => !this.maskedInputs.has(id));
    this.request = { round: 'Unmasking', session: this.settings.session, survivors, dropped };
    this.sent(this.request, survivors.length);
    this.advance('MaskedInputCollection', start);
    return this.request;
  }

  /**
   * Ends Round 4 (at least t survivors answered): sums the masked inputs, rebuilds each survivor's
   * b_v and removes PRG(b_v), rebuilds each dropped client's s_v and removes the pairwise masks
   * the survivors added towards it, and dequantises.
   */
  async endUnmasking(): Promise<SecAggResult> {
    const where = this.begin('Unmasking');
    const start = performance.now();
    const { session, length, threshold, range, step, maxWeight } = this.settings;
    const roster = this.roster!;
    const { survivors, dropped } = this.request!;
    checkThreshold(where, this.unmaskings.size, threshold, `of the ${survivors.length} survivors answered`);
    const answers = [...this.unmaskings.values()];
    const sharesOf = (v: ClientId, kind: 'selfMaskShares' | 'maskingKeyShares'): Share[] =>
      answers.map((answer) => ({ x: roster.x(answer.from), y: answer[kind].find((s) => s.of === v)!.share }));
    const rebuild = (v: ClientId, kind: 'selfMaskShares' | 'maskingKeyShares', what: string): Uint8Array<ArrayBuffer> => {
      try {
        return ownBytes(recoverSecret(sharesOf(v, kind), threshold, SCALAR_BYTES));
      } catch (error) {
        throw new Error(`${where}: rebuilding client ${named(v)}'s ${what}: ${(error as Error).message}`);
      }
    };

    const sum = new Uint32Array(length + 1);
    for (const u of survivors) {
      const masked = this.maskedInputs.get(u)!;
      for (let i = 0; i < sum.length; i++) sum[i]! += masked[i]!;
    }
    // Every secret and key first, so that a failure leaves no mask removal running.
    const selfMaskSeeds = survivors.map((v) => rebuild(v, 'selfMaskShares', 'self-mask seed'));
    const maskingScalars = dropped.map((v) => rebuild(v, 'maskingKeyShares', 'masking key'));
    const survivorKeys = await Promise.all(survivors.map((u) => importPublicKey(where, u, roster.publicKeys(u), 'maskingKey')));
    const droppedKeys = await Promise.all(dropped.map((v, k) => importPrivateKey(where, v, maskingScalars[k]!, roster.publicKeys(v).maskingKey)));
    const removals: (() => Promise<void>)[] = selfMaskSeeds.map((seed) => () => addMask(sum, seed, -1));
    dropped.forEach((v, k) => {
      survivors.forEach((u, j) => {
        // u added +PRG(s_uv) if it precedes v, -PRG(s_uv) otherwise: take back the same.
        removals.push(() => roster.maskSeed(session, droppedKeys[k]!, survivorKeys[j]!, u, v).then((seed) => addMask(sum, seed, roster.precedes(u, v) ? -1 : 1)));
      });
    });
    await inParallel(removals, MASKS_IN_FLIGHT);

    const weightTotal = sum[length]!;
    if (weightTotal > survivors.length * maxWeight) {
      throw new Error(`${where}: the unmasked weight total ${weightTotal} exceeds ${survivors.length} survivors x maxWeight ${maxWeight}: a mask was not removed (a client masked with keys other than those it advertised?)`);
    }
    // Each survivor's levels encode (v + range) / step, with v its input scaled by n_u / maxWeight.
    const values = new Float32Array(length);
    const offset = survivors.length * range;
    for (let i = 0; i < length; i++) values[i] = (sum[i]! * step - offset) * maxWeight;
    this.advance('Unmasking', start);
    return { sum: values, weightTotal, survivors, dropped };
  }
}
