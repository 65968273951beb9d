import { describe, expect, it } from 'vitest';
import {
  AdaptiveClipper,
  PrivacyError,
  seededRandomSource,
  splitNoiseMultiplier,
  uniform53,
} from '../src/privacy/dp/index.ts';

describe('AdaptiveClipper', () => {
  // Clients' update norms uniform on [0, 10]: the γ-quantile is 10γ. m = 100 clients a round,
  // σ_b = m/20 and η_C = 0.2 as Andrew et al. recommend. The noisy fraction then has
  // standard deviation ≈ 0.07, so log C takes steps of ≈ 0.014 around the fixed point and
  // relaxes at rate η_C·γ (slowest for γ = 0.2: its log C wanders ≈ 0.05). The geometric
  // mean of C over rounds 300–999 is then within ≈ 0.01 of 10γ; the 8% bound is ≥ 6 of
  // those (measured over six seeds: worst 2.6%, at γ = 0.2).
  function run(targetQuantile: number, initialClipNorm: number, seed: number): number {
    const clients = 100;
    const clipper = new AdaptiveClipper({
      initialClipNorm,
      targetQuantile,
      learningRate: 0.2,
      bitNoiseStddev: clients / 20,
      expectedClients: clients,
    });
    const norms = seededRandomSource(seed);
    const noise = seededRandomSource(seed + 1);
    let logSum = 0;
    for (let round = 0; round < 1000; round++) {
      let bitSum = 0;
      for (let i = 0; i < clients; i++) {
        bitSum += AdaptiveClipper.clientBit(10 * uniform53(norms), clipper.clipNorm);
      }
      clipper.update({ bitSum, survivors: clients, source: noise });
      if (round >= 300) logSum += Math.log(clipper.clipNorm);
    }
    return Math.exp(logSum / 700);
  }

  it('converges to the target quantile of the update norms, from below and from above', () => {
    for (const [gamma, start] of [
      [0.5, 0.1],
      [0.5, 100],
      [0.8, 0.5],
      [0.2, 30],
    ] as const) {
      const settled = run(gamma, start, 17);
      expect(Math.abs(settled / (10 * gamma) - 1), `γ=${gamma} C₀=${start}`).toBeLessThan(0.08);
    }
  });

  it('takes the exact geometric step without noise', () => {
    const clipper = new AdaptiveClipper({
      initialClipNorm: 2,
      targetQuantile: 0.5,
      learningRate: 0.2,
      bitNoiseStddev: 0,
      expectedClients: 10,
    });
    // All 10 within C: b̄ = 1, so C shrinks by exp(−0.2·0.5).
    expect(clipper.update({ bitSum: 10, survivors: 10 })).toEqual({
      clipNorm: 2 * Math.exp(-0.1),
      noisyFraction: 1,
    });
    // None within: b̄ = 0, C grows back by exp(0.1).
    expect(clipper.update({ bitSum: 0, survivors: 10 }).clipNorm).toBeCloseTo(2, 14);
    expect(clipper.rounds).toBe(2);
  });

  it('exports and imports its state, and refuses a damaged one', () => {
    const clipper = new AdaptiveClipper({
      initialClipNorm: 1,
      targetQuantile: 0.7,
      learningRate: 0.2,
      bitNoiseStddev: 1,
      expectedClients: 20,
    });
    clipper.update({ bitSum: 3, survivors: 18, source: seededRandomSource(1) });
    const state = JSON.parse(JSON.stringify(clipper.exportState())) as unknown;
    const restored = AdaptiveClipper.importState(state);
    expect(restored.exportState()).toEqual(clipper.exportState());
    expect(() => AdaptiveClipper.importState({ ...clipper.exportState(), clipNorm: -1 })).toThrow(
      /CORRUPT_STATE/,
    );
    expect(() => AdaptiveClipper.importState({ ...clipper.exportState(), version: 9 })).toThrow(
      /UNSUPPORTED_VERSION/,
    );
  });

  it('refuses impossible inputs', () => {
    expect(
      () =>
        new AdaptiveClipper({
          initialClipNorm: 1,
          targetQuantile: 1.5,
          learningRate: 0.2,
          bitNoiseStddev: 1,
          expectedClients: 10,
        }),
    ).toThrow(/targetQuantile/);
    const clipper = new AdaptiveClipper({
      initialClipNorm: 1,
      targetQuantile: 0.5,
      learningRate: 0.2,
      bitNoiseStddev: 1,
      expectedClients: 10,
    });
    expect(() => clipper.update({ bitSum: 11, survivors: 10 })).toThrow(/bit sum/);
    expect(() => AdaptiveClipper.clientBit(NaN, 1)).toThrow(PrivacyError);
    expect(AdaptiveClipper.clientBit(1, 1)).toBe(1);
    expect(AdaptiveClipper.clientBit(1.0001, 1)).toBe(0);
  });
});

describe('splitNoiseMultiplier', () => {
  it('leaves z_Δ such that z_Δ⁻² + (2σ_b)⁻² = z⁻²', () => {
    for (const [z, sigmaB] of [
      [1, 5],
      [1.1, 0.6],
      [0.7, 2],
    ] as const) {
      const zDelta = splitNoiseMultiplier({ noiseMultiplier: z, bitNoiseStddev: sigmaB });
      expect(zDelta).toBeGreaterThan(z);
      expect(zDelta ** -2 + (2 * sigmaB) ** -2).toBeCloseTo(z ** -2, 12);
    }
    // Andrew et al.'s example scale: m = 100, σ_b = m/20 = 5, z = 1 → z_Δ = (1 − 1/100)^−½.
    expect(splitNoiseMultiplier({ noiseMultiplier: 1, bitNoiseStddev: 5 })).toBeCloseTo(
      1 / Math.sqrt(0.99),
      14,
    );
  });

  it('refuses bit noise too small to leave any budget for the update', () => {
    expect(() => splitNoiseMultiplier({ noiseMultiplier: 1, bitNoiseStddev: 0.5 })).toThrow(
      /σ_b must exceed z\/2 = 0.5/,
    );
  });
});
