// A seeded generator (mulberry32) so property tests are reproducible.
export function random(seed: number) {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** An integer in [0, n). */
    int: (n: number): number => Math.floor(next() * n),
    /** A bigint in [0, n). */
    bigint: (n: bigint): bigint => {
      let value = 0n;
      for (let i = 0; i < 4; i++) value = (value << 32n) | BigInt(Math.floor(next() * 2 ** 32));
      return value % n;
    },
  };
}
