import { describe, expect, it } from 'vitest';
import {
  FIELD_PRIME,
  ShamirError,
  bytesToField,
  combineShares,
  fieldToBytes,
  randomFieldSecret,
  reconstructVerified,
  splitSecret,
  type Share,
} from '../src/privacy/secagg/shamir.ts';

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

/** Miller–Rabin with fixed bases: a composite passes each base with probability ≤ 1/4. */
function isProbablePrime(n: bigint): boolean {
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  for (const a of [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n, 41n, 43n, 47n, 53n]) {
    let x = modPow(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    let composite = true;
    for (let i = 1; i < s && composite; i++) {
      x = (x * x) % n;
      if (x === n - 1n) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

function subsets<T>(items: readonly T[], size: number): T[][] {
  if (size === 0) return [[]];
  return items.flatMap((item, i) =>
    subsets(items.slice(i + 1), size - 1).map((rest) => [item, ...rest]),
  );
}

describe('Shamir over GF(2^256 − 189)', () => {
  it('uses a prime modulus, and the next candidates below it are composite', () => {
    expect(isProbablePrime(FIELD_PRIME)).toBe(true);
    // 2^256 − 187 and − 191 are odd but composite: the check can fail.
    expect(isProbablePrime(2n ** 256n - 187n)).toBe(false);
    expect(isProbablePrime(2n ** 256n - 191n)).toBe(false);
  });

  it('reconstructs the secret from every threshold-subset of shares', () => {
    const secret = randomFieldSecret();
    const shares = splitSecret(secret, [3, 7, 8, 12, 20], 3);
    for (const subset of subsets(shares, 3)) expect(combineShares(subset, 3)).toEqual(secret);
    expect(combineShares(shares, 3)).toEqual(secret);
  });

  it('evaluates the dealt polynomial at each holder x (threshold 1: every share is the secret)', () => {
    const secret = fieldToBytes(123456789n);
    for (const share of splitSecret(secret, [1, 2, 9], 1)) expect(share.y).toEqual(secret);
    // threshold 2: the points lie on one line through (0, secret).
    const [a, b] = splitSecret(secret, [1, 2], 2) as [Share, Share];
    const slope = (bytesToField(b.y) - bytesToField(a.y) + FIELD_PRIME) % FIELD_PRIME;
    expect((bytesToField(a.y) - slope + FIELD_PRIME) % FIELD_PRIME).toBe(123456789n);
  });

  it('gives a different value from fewer than threshold shares', () => {
    const secret = randomFieldSecret();
    const shares = splitSecret(secret, [1, 2, 3, 4], 3);
    expect(combineShares(shares.slice(0, 2), 2)).not.toEqual(secret);
    expect(() => combineShares(shares.slice(0, 2), 3)).toThrow(
      /2 shares cannot reconstruct a 3-of-n/,
    );
  });

  it('names the holder whose extra share disagrees with the polynomial', () => {
    const shares = splitSecret(randomFieldSecret(), [1, 2, 3, 4, 5], 3);
    const bad = shares.map((s) =>
      s.x === 5 ? { x: 5, y: fieldToBytes(bytesToField(s.y) ^ 1n) } : s,
    );
    expect(() => combineShares(bad, 3)).toThrow(ShamirError);
    try {
      combineShares(bad, 3);
    } catch (err) {
      expect((err as ShamirError).badXs).toEqual([5]);
    }
  });

  it('finds the secret matching the commitment and names the lying holders, even among the first t', () => {
    const secret = randomFieldSecret();
    const shares = splitSecret(secret, [1, 2, 3, 4, 5, 6, 7], 4);
    const corrupt = (s: Share) => ({
      x: s.x,
      y: fieldToBytes((bytesToField(s.y) + 1n) % FIELD_PRIME),
    });
    const bad = shares.map((s) => (s.x === 1 || s.x === 6 ? corrupt(s) : s));
    const out = reconstructVerified(bad, 4, (v) => v.every((b, i) => b === secret[i]));
    expect(out.secret).toEqual(secret);
    expect(out.badXs.sort()).toEqual([1, 6]);
  });

  it('refuses when no threshold-subset reconstructs the committed secret', () => {
    const shares = splitSecret(randomFieldSecret(), [1, 2, 3, 4], 3);
    expect(() => reconstructVerified(shares, 3, () => false)).toThrow(
      /do not|no 3 of the 4 shares/,
    );
  });

  it('refuses malformed input with a message naming the problem', () => {
    const secret = randomFieldSecret();
    expect(() => splitSecret(secret, [1, 1, 2], 2)).toThrow(/x-coordinate 1 appears twice/);
    expect(() => splitSecret(secret, [0, 1], 2)).toThrow(/integers in \[1, 2\^32\)/);
    expect(() => splitSecret(secret, [1, 2], 3)).toThrow(/threshold must be in \[1, 2\]/);
    expect(() => splitSecret(new Uint8Array(31), [1, 2], 2)).toThrow(/32 bytes, got 31/);
    expect(() => bytesToField(new Uint8Array(32).fill(0xff))).toThrow(/not below the field prime/);
  });
});
