/**
 * Where DP noise gets its randomness. Production noise must come from the operating system's
 * cryptographically secure generator: anyone who can predict the noise can subtract it, and
 * then the "private" sum is the plain sum. A seeded generator exists for tests and
 * reproducible demos only — seeded noise gives no privacy at all.
 */
import { Rng } from '../../model/rng.ts';

/** A source of uniform 32-bit words. The model's seeded `Rng` is one. */
export interface RandomSource {
  nextU32(): number;
}

/** Words from `crypto.getRandomValues`, fetched in blocks to amortise the call. */
export class CryptoRandomSource implements RandomSource {
  // getRandomValues fills at most 65 536 bytes per call.
  private readonly buffer = new Uint32Array(16_384);
  private index = this.buffer.length;

  nextU32(): number {
    if (this.index === this.buffer.length) {
      globalThis.crypto.getRandomValues(this.buffer);
      this.index = 0;
    }
    return this.buffer[this.index++]!;
  }
}

/**
 * A deterministic source (xoshiro128**) for tests and reproducible demos ONLY. Its output is
 * a function of the seed, so noise drawn from it protects nothing.
 */
export function seededRandomSource(seed: number): RandomSource {
  return new Rng(seed);
}

/** Uniform on [0, 1) with the full 53 bits of a double (27 + 26 bits from two words). */
export function uniform53(source: RandomSource): number {
  const high = source.nextU32() >>> 5;
  const low = source.nextU32() >>> 6;
  return (high * 67_108_864 + low) / 9_007_199_254_740_992;
}
