// Client-level DP-FedAvg on the server (McMahan, Ramage, Talwar, Zhang 2018), the way Flower's
// DifferentialPrivacyServerSideFixedClipping wraps a strategy: every accepted update is already
// clipped to the policy's norm C (the client clips; the upload validator refuses any update above
// C, so the server never needs to clip again), the updates are averaged with equal weight, and
// Gaussian noise of standard deviation σ·C is added to their sum — σ·C/n to their mean.
//
// Equal weights, not example counts: a weight is a second channel through which one member's
// data moves the aggregate, and it would change the sensitivity the noise is calibrated to (a
// client reporting 10⁶ examples would dominate). The example counts still travel in the signed
// commitment; they are just not used when the round is private.
//
// Only rules that average can be made private this way. The order-statistic rules (median,
// trimmed mean, Krum) have a different sensitivity and no calibrated noise here: a round that
// asks for noise with one of them fails with that reason rather than publishing a model whose
// privacy claim would be false.
import { addGaussianNoise, type RandomSource } from '@commons/shared/privacy';
import type { Aggregator } from '../aggregation/aggregator.ts';

export interface NoisyMeanOptions {
  clipNorm: number;
  noiseMultiplier: number;
  /** Noise source; the default is cryptographically secure. Seeded sources are for demos only. */
  random?: RandomSource;
}

export class NoisyMeanAggregator implements Aggregator {
  private readonly inner: Aggregator;
  private readonly options: NoisyMeanOptions;
  /** The standard deviation of the noise the last result() carried on the mean (0 before). */
  meanNoiseStddev = 0;

  constructor(inner: Aggregator, options: NoisyMeanOptions) {
    if (!(options.clipNorm > 0) || !(options.noiseMultiplier >= 0)) {
      throw new Error(
        `DP needs clipNorm > 0 and noiseMultiplier ≥ 0, got ${options.clipNorm} and ${options.noiseMultiplier}`,
      );
    }
    this.inner = inner;
    this.options = options;
  }

  add(frame: Uint8Array, _numExamples: number): void {
    this.inner.add(frame, 1);
  }

  get count(): number {
    return this.inner.count;
  }

  memoryBytes(): number {
    return this.inner.memoryBytes();
  }

  result(): Float32Array | null {
    const mean = this.inner.result();
    if (mean === null || this.inner.count === 0) return null;
    const { clipNorm, noiseMultiplier, random } = this.options;
    this.meanNoiseStddev = (noiseMultiplier * clipNorm) / this.inner.count;
    addGaussianNoise(mean, this.meanNoiseStddev, random);
    return mean;
  }
}
