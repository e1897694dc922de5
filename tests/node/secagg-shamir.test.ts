// The two primitives under secure aggregation, alone: Shamir secret sharing
// (src/paradigms/federated/shamir.ts) against a Lagrange interpolation over 2^521 - 1 written
// here, and the AES-CTR mask generator (prg.ts) against Node's own aes-256-ctr.
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { expandSeed, randomSeed } from '../../src/paradigms/federated/prg.js';
import { recoverSecret, shareSecret, SHARE_BYTES, type Share } from '../../src/paradigms/federated/shamir.js';

const P = (1n << 521n) - 1n;
const big = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
const bytesOf = (value: bigint, length: number) => Uint8Array.from(Buffer.from(value.toString(16).padStart(2 * length, '0'), 'hex'));
const mod = (a: bigint) => ((a % P) + P) % P;
const power = (a: bigint, e: bigint): bigint => (e === 0n ? 1n : e % 2n ? mod(a * power(a, e - 1n)) : power(mod(a * a), e / 2n));

/** The value at x of the polynomial through the points (Lagrange, inverses by Fermat). */
function interpolate(points: readonly (readonly [bigint, bigint])[], x: bigint): bigint {
  let value = 0n;
  for (const [xj, yj] of points) {
    let term = yj;
    for (const [xm] of points) if (xm !== xj) term = mod(term * mod(x - xm) * power(mod(xj - xm), P - 2n));
    value = mod(value + term);
  }
  return value;
}

const point = (s: Share) => [BigInt(s.x), big(s.y)] as const;

/** Every k-element subset of items. */
function subsets<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  return items.flatMap((item, i) => subsets(items.slice(i + 1), k - 1).map((rest) => [item, ...rest]));
}

describe('Shamir secret sharing over 2^521 - 1', () => {
  test('any t of n shares recover the secret (every 4 of 7), and so do all n', () => {
    const secret = randomBytes(32);
    const shares = shareSecret(secret, 7, 4);
    expect(shares.map((s) => s.x)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(shares.every((s) => s.y.length === SHARE_BYTES)).toBe(true);
    for (const chosen of subsets(shares, 4)) expect(recoverSecret(chosen, 4, 32)).toEqual(new Uint8Array(secret));
    expect(recoverSecret(shares, 4, 32)).toEqual(new Uint8Array(secret));
    // A 65-byte secret (the largest below p) and a 1-of-1 sharing.
    const wide = randomBytes(65);
    expect(recoverSecret(shareSecret(wide, 5, 3).slice(2), 3, 65)).toEqual(new Uint8Array(wide));
    expect(recoverSecret(shareSecret(secret, 1, 1), 1, 32)).toEqual(new Uint8Array(secret));
  });

  test('the shares lie on one polynomial of degree t - 1 with the secret at 0 (reference interpolation)', () => {
    const secret = randomBytes(32);
    const shares = shareSecret(secret, 9, 5);
    const first = shares.slice(0, 5).map(point);
    expect(interpolate(first, 0n)).toBe(big(secret));
    for (const s of shares.slice(5)) expect(interpolate(first, BigInt(s.x))).toBe(big(s.y));
    // The other coefficients are random: the same secret shared twice gives other shares.
    expect(shareSecret(secret, 9, 5)[0]!.y).not.toEqual(shares[0]!.y);
  });

  test('t - 1 shares fit every secret: completed with any other secret at 0 they form a valid sharing of it', () => {
    const secret = randomBytes(32);
    const t = 4;
    const known = shareSecret(secret, 6, t).slice(0, t - 1);
    expect(() => recoverSecret(known, t, 32)).toThrow('3 shares cannot reach the threshold 4');
    for (const other of [new Uint8Array(32), randomBytes(32)]) {
      const points = [[0n, big(other)] as const, ...known.map(point)];
      const forged: Share = { x: 6, y: bytesOf(interpolate(points, 6n), SHARE_BYTES) };
      expect(recoverSecret([...known, forged], t, 32)).toEqual(new Uint8Array(other));
    }
  });

  test('refuses repeated x, values outside the field, too few shares, and shares of different polynomials', () => {
    const shares = shareSecret(randomBytes(32), 5, 3);
    expect(() => recoverSecret([shares[0]!, shares[1]!, { ...shares[1]! }], 3, 32)).toThrow('two shares at x = 2; each share must come from a different holder');
    expect(() => recoverSecret([shares[0]!, shares[1]!, { x: 3, y: new Uint8Array(SHARE_BYTES).fill(0xff) }], 3, 32)).toThrow('the share at x = 3 is not a field element');
    expect(() => recoverSecret([shares[0]!, shares[1]!, { x: 0, y: shares[2]!.y }], 3, 32)).toThrow('share x 0 must be a positive integer');
    expect(() => recoverSecret(shares.slice(0, 2), 3, 32)).toThrow('2 shares cannot reach the threshold 3');
    // One bit flipped in any of four shares of a 3-of-5 sharing: the four no longer fit one parabola.
    for (let k = 0; k < 4; k++) {
      const altered = shares.slice(0, 4).map((s) => ({ x: s.x, y: s.y.slice() }));
      altered[k]!.y[SHARE_BYTES - 1]! ^= 1;
      expect(() => recoverSecret(altered, 3, 32)).toThrow('the 4 shares do not lie on one polynomial of degree 2: a share is altered or from another secret');
    }
    // With exactly t shares, one from another sharing gives a value at 0 far outside 32 bytes.
    const mixed = [...shares.slice(0, 2), shareSecret(randomBytes(32), 5, 3)[2]!];
    expect(() => recoverSecret(mixed, 3, 32)).toThrow('(the value at 0 does not fit in 32 bytes)');
    expect(() => shareSecret(randomBytes(66), 5, 3)).toThrow('a secret of 66 bytes; 1 to 65 fit the field');
    expect(() => shareSecret(randomBytes(32), 2, 3)).toThrow('2 shares cannot reach the threshold 3');
    expect(() => shareSecret(randomBytes(32), 3, 0)).toThrow('threshold 0 must be an integer >= 1');
  });
});

describe('the AES-CTR mask generator', () => {
  test('is the aes-256-ctr key stream from a zero counter, as little-endian uint32 words', async () => {
    const seed = randomSeed();
    const words = await expandSeed(seed, 1001);
    const cipher = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
    const stream = Buffer.concat([cipher.update(Buffer.alloc(4 * 1001)), cipher.final()]);
    expect(words).toEqual(new Uint32Array(stream.buffer, stream.byteOffset, 1001));
    expect(await expandSeed(seed, 1001)).toEqual(words);
    expect(await expandSeed(randomSeed(), 1001)).not.toEqual(words);
    // A shorter expansion is a prefix of a longer one.
    expect(await expandSeed(seed, 10)).toEqual(words.subarray(0, 10));
  });

  test('refuses seeds that are not AES-256 keys', async () => {
    await expect(expandSeed(new Uint8Array(16), 4)).rejects.toThrow('a seed of 16 bytes; AES-256 takes 32');
  });
});
