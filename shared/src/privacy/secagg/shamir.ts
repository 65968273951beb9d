// Shamir secret sharing of 32-byte secrets over GF(p), p = 2^256 − 189 (the largest prime
// below 2^256), written here with bigint. Why our own: the audited JavaScript packages
// (privy-io's `shamir-secret-sharing`, and the unmaintained `secrets.js`) share byte-wise over
// GF(2^8) with random x-coordinates, at most 255 shares, and no way to tie a share to the
// node id that holds it or to check extra shares against the polynomial. SecAgg needs exactly
// those: x = the holder's node id, and a reconstruction that names the holder whose share is
// off the dealer's polynomial. The arithmetic is a few lines and is tested against known
// polynomials, every t-subset, and a primality check of p.
import { randomBytes } from '@noble/hashes/utils.js';

/** The field modulus: prime, and above every 255-bit value, so secrets are sampled below it. */
export const FIELD_PRIME = 2n ** 256n - 189n;
export const SECRET_BYTES = 32;

/** One share: the polynomial's value y at the holder's x (its node id, ≥ 1). */
export interface Share {
  x: number;
  y: Uint8Array;
}

export class ShamirError extends Error {
  /** The x-coordinates (holders) of shares that disagree with the reconstructed polynomial. */
  readonly badXs: readonly number[];

  constructor(message: string, badXs: readonly number[] = []) {
    super(message);
    this.name = 'ShamirError';
    this.badXs = badXs;
  }
}

function mod(a: bigint): bigint {
  const r = a % FIELD_PRIME;
  return r < 0n ? r + FIELD_PRIME : r;
}

/** Inverse by the extended Euclidean algorithm (a must be non-zero mod p). */
function invert(a: bigint): bigint {
  let [r0, r1] = [mod(a), FIELD_PRIME];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new ShamirError('no inverse: a multiple of p');
  return mod(s0);
}

export function bytesToField(bytes: Uint8Array): bigint {
  if (bytes.length !== SECRET_BYTES) {
    throw new ShamirError(`a field element is ${SECRET_BYTES} bytes, got ${bytes.length}`);
  }
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  if (v >= FIELD_PRIME) throw new ShamirError('the value is not below the field prime');
  return v;
}

export function fieldToBytes(v: bigint): Uint8Array {
  const out = new Uint8Array(SECRET_BYTES);
  for (let i = SECRET_BYTES - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** 32 uniformly random bytes below p (rejection sampling; a retry has odds 189 / 2^256). */
export function randomFieldSecret(): Uint8Array {
  for (;;) {
    const bytes = randomBytes(SECRET_BYTES);
    let v = 0n;
    for (const b of bytes) v = (v << 8n) | BigInt(b);
    if (v < FIELD_PRIME) return bytes;
  }
}

function checkXs(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isInteger(x) || x < 1 || x > 0xffffffff) {
      throw new ShamirError(`share x-coordinates must be integers in [1, 2^32), got ${x}`);
    }
    if (seen.has(x)) throw new ShamirError(`share x-coordinate ${x} appears twice`);
    seen.add(x);
  }
}

/** Splits a secret into one share per x: any `threshold` of them reconstruct it, fewer say nothing. */
export function splitSecret(secret: Uint8Array, xs: readonly number[], threshold: number): Share[] {
  checkXs(xs);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new ShamirError(
      `threshold must be in [1, ${xs.length}] for ${xs.length} shares, got ${threshold}`,
    );
  }
  // f(X) = secret + a_1 X + … + a_{t−1} X^{t−1}, coefficients uniform in GF(p).
  const coefficients = [bytesToField(secret)];
  for (let i = 1; i < threshold; i++) coefficients.push(bytesToField(randomFieldSecret()));
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i--) y = mod(y * bx + (coefficients[i] ?? 0n));
    return { x, y: fieldToBytes(y) };
  });
}

interface Point {
  x: bigint;
  y: bigint;
}

/** The inverses of non-zero field elements with one inversion (Montgomery's trick). */
function batchInvert(values: readonly bigint[]): bigint[] {
  const prefix: bigint[] = [];
  let acc = 1n;
  for (const v of values) {
    prefix.push(acc);
    acc = mod(acc * v);
  }
  let inv = invert(acc);
  const out = new Array<bigint>(values.length);
  for (let i = values.length - 1; i >= 0; i--) {
    out[i] = mod(inv * (prefix[i] as bigint));
    inv = mod(inv * (values[i] as bigint));
  }
  return out;
}

/**
 * The unique polynomial of degree < points.length through the points, as a function of z, in
 * barycentric form: f(z) = ℓ(z) · Σ w_i y_i / (z − x_i), ℓ(z) = Π (z − x_j), with the weights
 * w_i = 1 / Π_{j≠i} (x_i − x_j) computed once. Why: the server checks every share beyond the
 * threshold against the polynomial, so it evaluates one polynomial at up to k points; the
 * textbook Lagrange form made that t inversions per evaluation (about 300 per secret at
 * k = 35, 8 ms, and a server unmasks n secrets). Here it is one per evaluation.
 */
function interpolator(points: readonly Point[]): (z: bigint) => bigint {
  const weights = batchInvert(
    points.map((pi, i) => {
      let den = 1n;
      for (let j = 0; j < points.length; j++) {
        if (j !== i) den = mod(den * (pi.x - (points[j] as Point).x));
      }
      return den;
    }),
  );
  return (z) => {
    const diffs = points.map((p) => mod(z - p.x));
    const at = diffs.indexOf(0n);
    if (at >= 0) return (points[at] as Point).y;
    const inverses = batchInvert(diffs);
    let sum = 0n;
    let ell = 1n;
    for (let i = 0; i < points.length; i++) {
      sum = mod(sum + (weights[i] as bigint) * (points[i] as Point).y * (inverses[i] as bigint));
      ell = mod(ell * (diffs[i] as bigint));
    }
    return mod(ell * sum);
  };
}

function toPoints(shares: readonly Share[]): Point[] {
  checkXs(shares.map((s) => s.x));
  return shares.map((s) => ({ x: BigInt(s.x), y: bytesToField(s.y) }));
}

/** The holders (x) among `others` whose share is off the polynomial `f`. */
function disagreeing(f: (z: bigint) => bigint, others: readonly Point[]): number[] {
  return others.filter((p) => f(p.x) !== p.y).map((p) => Number(p.x));
}

/**
 * Reconstructs the secret from at least `threshold` shares. Shares beyond the first
 * `threshold` are checked against the same polynomial; any disagreement throws, naming them
 * (which side is wrong needs a commitment: see {@link reconstructVerified}).
 */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  if (shares.length < threshold) {
    throw new ShamirError(`${shares.length} shares cannot reconstruct a ${threshold}-of-n secret`);
  }
  const points = toPoints(shares);
  const f = interpolator(points.slice(0, threshold));
  const bad = disagreeing(f, points.slice(threshold));
  if (bad.length > 0) {
    throw new ShamirError(`shares from x = ${bad.join(', ')} disagree with the others`, bad);
  }
  return fieldToBytes(f(0n));
}

function* subsetsOfSize(n: number, size: number, start = 0): Generator<number[]> {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = start; i <= n - size; i++) {
    for (const rest of subsetsOfSize(n, size - 1, i + 1)) yield [i, ...rest];
  }
}

/**
 * Reconstructs a secret that can be checked against a commitment (`verify`), naming the
 * holders whose shares are wrong. It first trusts all shares; if the result fails `verify` or
 * the shares disagree, it leaves out one, then two shares at a time, and accepts the first
 * secret that verifies with every remaining share on its polynomial. More than two wrong
 * shares, or fewer than `threshold` right ones, throw: nothing trustworthy can be returned.
 */
export function reconstructVerified(
  shares: readonly Share[],
  threshold: number,
  verify: (secret: Uint8Array) => boolean,
): { secret: Uint8Array; badXs: number[] } {
  if (shares.length < threshold) {
    throw new ShamirError(`${shares.length} shares cannot reconstruct a ${threshold}-of-n secret`);
  }
  const points = toPoints(shares);
  const maxLeftOut = Math.min(2, points.length - threshold);
  for (let leftOut = 0; leftOut <= maxLeftOut; leftOut++) {
    for (const excluded of subsetsOfSize(points.length, leftOut)) {
      const kept = points.filter((_, i) => !excluded.includes(i));
      const f = interpolator(kept.slice(0, threshold));
      if (disagreeing(f, kept.slice(threshold)).length > 0) continue;
      const secret = fieldToBytes(f(0n));
      if (!verify(secret)) continue;
      return { secret, badXs: excluded.map((i) => Number((points[i] as Point).x)) };
    }
  }
  throw new ShamirError(
    `no ${threshold} of the ${points.length} shares (x = ${shares.map((s) => s.x).join(', ')}) ` +
      'reconstruct a secret matching its commitment',
    shares.map((s) => s.x),
  );
}
