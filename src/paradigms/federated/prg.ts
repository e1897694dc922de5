// The pseudorandom generator of secure aggregation (secagg.ts): AES-256 in counter mode, keyed by a
// 32-byte seed, from a zero counter block, encrypting zeros; the key stream read as little-endian
// uint32 words is the mask. Each seed keys one expansion only (a self-mask seed is drawn afresh
// per aggregation, and pairwise seeds come from key pairs made per aggregation), so the fixed
// counter block never repeats under one key. WebCrypto's AES runs in native code (AES-NI in Node's
// OpenSSL and in Chromium's BoringSSL): a million words take a few milliseconds.

/** Bytes of a seed: an AES-256 key. */
export const SEED_BYTES = 32;

/** `words` uint32 words of the AES-CTR key stream under seed. */
export async function expandSeed(seed: Uint8Array<ArrayBuffer>, words: number): Promise<Uint32Array<ArrayBuffer>> {
  if (seed.length !== SEED_BYTES) throw new Error(`expandSeed: a seed of ${seed.length} bytes; AES-256 takes ${SEED_BYTES}`);
  if (!Number.isSafeInteger(words) || words < 0) throw new Error(`expandSeed: ${words} words must be a non-negative integer`);
  const key = await crypto.subtle.importKey('raw', seed, 'AES-CTR', false, ['encrypt']);
  // The low 64 bits of the block count: 2^64 blocks before the counter could wrap.
  const stream = await crypto.subtle.encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 64 }, key, new Uint8Array(4 * words));
  return new Uint32Array(stream);
}

/** A fresh seed from the platform's cryptographic generator. */
export function randomSeed(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(SEED_BYTES));
}

/**
 * `words` cryptographically random uint32 words: the expansion of a fresh seed (getRandomValues
 * itself gives at most 65,536 bytes a call).
 */
export function randomWords(words: number): Promise<Uint32Array<ArrayBuffer>> {
  return expandSeed(randomSeed(), words);
}
