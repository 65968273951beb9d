/**
 * Gaussian noise for DP-FedAvg: the noise that makes a clipped sum differentially private.
 *
 * Sampling: Box–Muller in float64 on 53-bit uniforms, both outputs of each pair used. The
 * radius √(−2 ln u) with u ≥ 2⁻⁵³ truncates the Gaussian at 8.57σ; the missing mass (~1e−17)
 * adds at most that to δ, far below any δ a policy allows.
 *
 * Floating point: Mironov (2012, "On significance of the least significant bits for
 * differential privacy") showed that textbook floating-point Laplace samplers leak the
 * unnoised value through which doubles the noisy output can and cannot be; Jin et al. (2022)
 * showed the same for floating-point Gaussian samplers, Box–Muller included. We do NOT claim
 * immunity. What limits the attack here: the noisy values are rounded to float32 and, under
 * secure aggregation, to the fixed-point ring — grids far coarser than the noise's own
 * float64 lattice, which is the remedy's direction (Mironov's snapping rounds to a grid). The
 * sound fix is the discrete Gaussian on the secure-aggregation ring (Canonne, Kamath, Steinke
 * 2020; Kairouz, Liu, Steinke 2021), left for when quantised updates carry the noise.
 */
import { PrivacyError } from './errors.ts';
import type { RandomSource } from './random.ts';
import { CryptoRandomSource, uniform53 } from './random.ts';

/** Standard normal draws from a random source, two per Box–Muller pair. */
export class GaussianSampler {
  private readonly source: RandomSource;
  private spare = NaN;

  constructor(source: RandomSource = new CryptoRandomSource()) {
    this.source = source;
  }

  next(): number {
    if (!Number.isNaN(this.spare)) {
      const value = this.spare;
      this.spare = NaN;
      return value;
    }
    const u = 1 - uniform53(this.source); // (0, 1]: never log(0)
    const theta = 2 * Math.PI * uniform53(this.source);
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spare = radius * Math.sin(theta);
    return radius * Math.cos(theta);
  }
}

/**
 * Adds N(0, stddev²) independently to every element, in place. Without `source` the noise is
 * cryptographically secure; pass `seededRandomSource(seed)` only for tests and demos.
 */
export function addGaussianNoise(
  values: Float32Array | Float64Array,
  stddev: number,
  source?: RandomSource,
): void {
  if (!(stddev >= 0) || stddev === Infinity) {
    throw new PrivacyError(
      'INVALID_ARGUMENT',
      `noise stddev must be finite and ≥ 0, got ${stddev}`,
    );
  }
  if (stddev === 0) return;
  const sampler = new GaussianSampler(source);
  for (let i = 0; i < values.length; i++) values[i] = values[i]! + stddev * sampler.next();
}
