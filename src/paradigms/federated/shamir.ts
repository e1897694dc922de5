// Shamir's t-of-n secret sharing (Shamir 1979, "How to Share a Secret") over the prime field of
// p = 2^521 - 1, one field element per secret: a secret of up to 65 bytes is the constant term of a
// random polynomial of degree t - 1, share i is its value at x = i, and any t shares give the
// secret back by Lagrange interpolation at 0; t - 1 shares fit every secret equally well, so they
// say nothing about it. Secure aggregation (secagg.ts) shares 32-byte secrets with it: a
// self-mask seed and a P-256 private scalar.
//
// Pure TypeScript on BigInt with the platform's cryptographic generator, for browsers and Node.

/** p = 2^521 - 1, a Mersenne prime above every secret shared here. */
const PRIME = (1n << 521n) - 1n;

/** Bytes of a share's value: 521 bits, big-endian. */
export const SHARE_BYTES = 66;

/** The largest secret: any 65-byte number is below p. */
const MAX_SECRET_BYTES = 65;

/** One share: the polynomial's value y (SHARE_BYTES big-endian) at x, an integer from 1 to the number of shares. */
export interface Share {
  readonly x: number;
  readonly y: Uint8Array;
}

function toBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function toBytes(value: bigint, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

/** A uniform element of the field: 521 random bits, drawn again in the one case (all ones) that equals p. */
function randomElement(): bigint {
  for (;;) {
    const bytes = crypto.getRandomValues(new Uint8Array(SHARE_BYTES));
    bytes[0]! &= 0x01;
    const value = toBigInt(bytes);
    if (value < PRIME) return value;
  }
}

function modulo(a: bigint): bigint {
  const r = a % PRIME;
  return r < 0n ? r + PRIME : r;
}

/** a^-1 mod p by the extended Euclidean algorithm (a is nonzero mod p). */
function inverse(a: bigint): bigint {
  let [r0, r1] = [PRIME, modulo(a)];
  let [s0, s1] = [0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return modulo(s0);
}

function checkThreshold(op: string, threshold: number, shares: number): void {
  if (!Number.isInteger(threshold) || threshold < 1) throw new Error(`${op}: threshold ${threshold} must be an integer >= 1`);
  if (!Number.isInteger(shares) || shares < threshold) throw new Error(`${op}: ${shares} shares cannot reach the threshold ${threshold}`);
}

/**
 * Splits secret into `count` shares (x = 1..count) of which any `threshold` recover it: the secret
 * is f(0) of a polynomial f of degree threshold - 1 whose other coefficients are uniform in the field.
 */
export function shareSecret(secret: Uint8Array, count: number, threshold: number): Share[] {
  const op = 'shareSecret';
  checkThreshold(op, threshold, count);
  if (secret.length < 1 || secret.length > MAX_SECRET_BYTES) throw new Error(`${op}: a secret of ${secret.length} bytes; 1 to ${MAX_SECRET_BYTES} fit the field`);
  const coefficients = [toBigInt(secret)];
  for (let k = 1; k < threshold; k++) coefficients.push(randomElement());
  const shares: Share[] = [];
  for (let x = 1; x <= count; x++) {
    // Horner's rule from the highest coefficient down.
    let y = 0n;
    for (let k = threshold - 1; k >= 0; k--) y = modulo(y * BigInt(x) + coefficients[k]!);
    shares.push({ x, y: toBytes(y, SHARE_BYTES) });
  }
  return shares;
}

/** The value at x of the polynomial through the points (Lagrange: sum_j y_j prod_{m != j} (x - x_m) / (x_j - x_m)). */
function interpolate(points: readonly (readonly [bigint, bigint])[], x: bigint): bigint {
  let value = 0n;
  for (const [xj, yj] of points) {
    let numerator = 1n;
    let denominator = 1n;
    for (const [xm] of points) {
      if (xm === xj) continue;
      numerator = modulo(numerator * (x - xm));
      denominator = modulo(denominator * (xj - xm));
    }
    value = modulo(value + yj * numerator * inverse(denominator));
  }
  return value;
}

/**
 * The secret of `secretBytes` bytes from at least `threshold` shares of distinct x: Lagrange
 * interpolation at 0 through the first `threshold`. A share that is not a field element, a repeated
 * x, or too few shares are refused. Shares that do not lie on one polynomial of degree
 * threshold - 1 (one altered, or two secrets' shares mixed) are refused when there are more than
 * `threshold` of them (every further share must lie on the polynomial through the first ones), or
 * when the value at 0 does not fit in secretBytes; exactly `threshold` altered shares can
 * interpolate to a wrong secret that fits, which no sharing scheme can tell apart.
 */
export function recoverSecret(shares: readonly Share[], threshold: number, secretBytes: number): Uint8Array {
  const op = 'recoverSecret';
  checkThreshold(op, threshold, shares.length);
  const seen = new Set<number>();
  for (const { x, y } of shares) {
    if (!Number.isSafeInteger(x) || x < 1) throw new Error(`${op}: share x ${x} must be a positive integer`);
    if (seen.has(x)) throw new Error(`${op}: two shares at x = ${x}; each share must come from a different holder`);
    seen.add(x);
    if (y.length !== SHARE_BYTES || toBigInt(y) >= PRIME) throw new Error(`${op}: the share at x = ${x} is not a field element (${y.length} bytes, ${SHARE_BYTES} expected, below 2^521 - 1)`);
  }
  const points = shares.map((s) => [BigInt(s.x), toBigInt(s.y)] as const);
  const basis = points.slice(0, threshold);
  const inconsistent = `the ${shares.length} shares do not lie on one polynomial of degree ${threshold - 1}: a share is altered or from another secret`;
  for (const [x, y] of points.slice(threshold)) if (interpolate(basis, x) !== y) throw new Error(`${op}: ${inconsistent}`);
  const secret = interpolate(basis, 0n);
  if (secret >> BigInt(8 * secretBytes) !== 0n) throw new Error(`${op}: ${inconsistent} (the value at 0 does not fit in ${secretBytes} bytes)`);
  return toBytes(secret, secretBytes);
}
