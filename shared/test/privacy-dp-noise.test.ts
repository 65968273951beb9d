import { describe, expect, it } from 'vitest';
import {
  CryptoRandomSource,
  GaussianSampler,
  PrivacyError,
  addGaussianNoise,
  centralNoiseStddev,
  clipToNorm,
  l2Norm,
  seededRandomSource,
  splitNoiseStddev,
  survivingNoiseMultiplier,
  uniform53,
} from '../src/privacy/dp/index.ts';
import type { RandomSource } from '../src/privacy/dp/index.ts';

function moments(values: ArrayLike<number>): { mean: number; variance: number; fourth: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  const mean = sum / values.length;
  let m2 = 0;
  let m4 = 0;
  for (let i = 0; i < values.length; i++) {
    const d = values[i]! - mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  const variance = m2 / (values.length - 1);
  return { mean, variance, fourth: m4 / values.length / (variance * variance) };
}

describe('clipToNorm', () => {
  it('scales a long update to exactly within C and leaves a short one alone', () => {
    const rng = seededRandomSource(7);
    const update = Float32Array.from({ length: 1000 }, () => uniform53(rng) * 2 - 1);
    const before = l2Norm([update]);
    const { norm, scale } = clipToNorm(update, 1.5);
    expect(norm).toBe(before);
    expect(scale).toBeCloseTo(1.5 / before, 6);
    const after = l2Norm([update]);
    expect(after).toBeLessThanOrEqual(1.5);
    expect(after).toBeGreaterThan(1.5 * (1 - 1e-6));

    const short = Float32Array.of(0.3, -0.4);
    expect(clipToNorm(short, 1)).toEqual({
      norm: Math.hypot(Math.fround(0.3), Math.fround(0.4)),
      scale: 1,
    });
    expect(Array.from(short)).toEqual([Math.fround(0.3), Math.fround(-0.4)]);
    expect(clipToNorm(new Float32Array(5), 1)).toEqual({ norm: 0, scale: 1 });
  });

  it('never leaves a norm above C after float32 rounding, over many sizes and bounds', () => {
    const rng = seededRandomSource(11);
    for (let trial = 0; trial < 200; trial++) {
      const update = Float32Array.from({ length: 1 + (trial % 37) }, () => uniform53(rng) * 8 - 4);
      const clip = 0.01 + uniform53(rng);
      clipToNorm(update, clip);
      expect(l2Norm([update])).toBeLessThanOrEqual(clip);
    }
  });

  it('clips several tensors jointly, as one vector', () => {
    const a = Float32Array.of(3, 0);
    const b = Float32Array.of(0, 4);
    const { norm } = clipToNorm([a, b], 1);
    expect(norm).toBe(5);
    expect(l2Norm([a, b])).toBeLessThanOrEqual(1);
    expect(a[0]).toBeCloseTo(0.6, 6);
    expect(b[1]).toBeCloseTo(0.8, 6);
  });

  it('refuses a non-finite update (NaN would slip past a norm comparison) and a bad C', () => {
    expect(() => clipToNorm(Float32Array.of(1, NaN), 1)).toThrow(/NaN or infinite/);
    expect(() => clipToNorm(Float32Array.of(Infinity), 1)).toThrow(PrivacyError);
    expect(() => clipToNorm(Float32Array.of(1), 0)).toThrow(/clip norm/);
    expect(() => clipToNorm(Float32Array.of(1), NaN)).toThrow(/clip norm/);
  });
});

describe('Gaussian noise', () => {
  const n = 200_000;
  const stddev = 2.5;

  // With n draws: the sample mean has standard error σ/√n, the sample variance relative
  // error √(2/n) = 0.0032, the fraction beyond 2σ (p = 0.0455) error √(p(1−p)/n) = 4.7e-4,
  // and the standardised fourth moment (3 for a Gaussian) error ≈ √(96/n) = 0.022. Each
  // bound below is ≥ 8 standard errors: a correct sampler fails with probability < 1e-14,
  // so the same bounds serve the seeded and the cryptographic source.
  function checkGaussian(source: RandomSource): void {
    const values = new Float64Array(n);
    addGaussianNoise(values, stddev, source);
    const { mean, variance, fourth } = moments(values);
    expect(Math.abs(mean)).toBeLessThan((8 * stddev) / Math.sqrt(n));
    expect(Math.abs(variance / (stddev * stddev) - 1)).toBeLessThan(0.026);
    expect(Math.abs(fourth - 3)).toBeLessThan(0.2);
    let beyond = 0;
    for (const v of values) if (Math.abs(v) > 2 * stddev) beyond++;
    expect(Math.abs(beyond / n - 0.0455)).toBeLessThan(0.0038);
  }

  it('has the right mean, variance, kurtosis and tails from a seeded source', () => {
    checkGaussian(seededRandomSource(2024));
  });

  it('has the right mean, variance, kurtosis and tails from the crypto source', () => {
    checkGaussian(new CryptoRandomSource());
  });

  it('is reproducible from a seed (demos) and differs between seeds', () => {
    const a = new Float32Array(8);
    const b = new Float32Array(8);
    const c = new Float32Array(8);
    addGaussianNoise(a, 1, seededRandomSource(5));
    addGaussianNoise(b, 1, seededRandomSource(5));
    addGaussianNoise(c, 1, seededRandomSource(6));
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('draws uniforms in [0, 1) and never feeds log(0)', () => {
    const zeros: RandomSource = { nextU32: () => 0 };
    expect(uniform53(zeros)).toBe(0);
    expect(Number.isFinite(new GaussianSampler(zeros).next())).toBe(true);
    const ones: RandomSource = { nextU32: () => 0xffffffff };
    expect(uniform53(ones)).toBe(1 - 2 ** -53);
  });

  it('adds nothing at σ = 0 and refuses a negative σ', () => {
    const values = Float32Array.of(1, 2);
    addGaussianNoise(values, 0);
    expect(Array.from(values)).toEqual([1, 2]);
    expect(() => addGaussianNoise(values, -1)).toThrow(/stddev/);
  });
});

describe('noise calibration', () => {
  it('puts z·C on the sum centrally', () => {
    expect(centralNoiseStddev({ noiseMultiplier: 1.1, clipNorm: 0.5 })).toBeCloseTo(0.55, 15);
  });

  it('splits the noise so that any m survivors carry at least (zC)²', () => {
    const noiseMultiplier = 1.1;
    const clipNorm = 1.5;
    const invited = 10;
    const minSurvivors = 7;
    const stddev = splitNoiseStddev({ noiseMultiplier, clipNorm, minSurvivors });
    expect(stddev * stddev * minSurvivors).toBeCloseTo((noiseMultiplier * clipNorm) ** 2, 12);

    // Simulate the clients: each adds its share to a zero update; the server's sum over the
    // first k survivors must have variance k·(zC)²/m. 50 000 coordinates: relative standard
    // error of a variance √(2/50000) = 0.0063; the bound 0.05 is 8 of them.
    const length = 50_000;
    const source = seededRandomSource(99);
    const shares = Array.from({ length: invited }, () => {
      const share = new Float64Array(length);
      addGaussianNoise(share, stddev, source);
      return share;
    });
    for (const survivors of [minSurvivors, invited]) {
      const sum = new Float64Array(length);
      for (const share of shares.slice(0, survivors)) {
        for (let i = 0; i < length; i++) sum[i]! += share[i]!;
      }
      const expected = (survivors * (noiseMultiplier * clipNorm) ** 2) / minSurvivors;
      expect(Math.abs(moments(sum).variance / expected - 1), `k=${survivors}`).toBeLessThan(0.05);
      expect(moments(sum).variance).toBeGreaterThan((noiseMultiplier * clipNorm) ** 2 * 0.95);
    }
  });

  it('reports the multiplier survivors actually carry, colluders discounted', () => {
    const z = 1.2;
    expect(survivingNoiseMultiplier({ noiseMultiplier: z, minSurvivors: 8, survivors: 8 })).toBe(z);
    expect(
      survivingNoiseMultiplier({
        noiseMultiplier: z,
        minSurvivors: 8,
        survivors: 10,
        colluding: 2,
      }),
    ).toBeCloseTo(z, 15);
    expect(
      survivingNoiseMultiplier({ noiseMultiplier: z, minSurvivors: 8, survivors: 6 }),
    ).toBeLessThan(z);
    expect(() => splitNoiseStddev({ noiseMultiplier: 1, clipNorm: 1, minSurvivors: 0 })).toThrow(
      /minSurvivors/,
    );
  });
});
