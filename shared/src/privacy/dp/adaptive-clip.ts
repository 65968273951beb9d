/**
 * Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private
 * Learning with Adaptive Clipping"): instead of a fixed C, the clip norm tracks a target
 * quantile γ of the clients' update norms, privately.
 *
 * Each round every client reports one bit b = [‖Δ‖ ≤ C] beside its update. The server sums
 * the centred bits b − ½ (sensitivity ½ instead of 1), adds N(0, σ_b²), and estimates the
 * fraction below C as b̄ = noisy sum / m + ½ for m the expected clients. The geometric step
 *   C ← C · exp(−η_C · (b̄ − γ))
 * is online gradient descent on the quantile (pinball) loss in log C: C grows while fewer
 * than γ of the updates fit under it and shrinks while more do.
 *
 * The bit costs privacy too. Releasing the update sum with noise z_Δ·C and the bit sum with
 * noise σ_b is, by Gaussian composition, one Gaussian mechanism with
 *   z⁻² = z_Δ⁻² + (2σ_b)⁻²,
 * so to keep the policy's total z the update noise is z_Δ = (z⁻² − (2σ_b)⁻²)^(−½)
 * (`splitNoiseMultiplier`); the accountant and the member's ledger are given z, the total.
 */
import { z as zod } from 'zod';
import { PrivacyError } from './errors.ts';
import { GaussianSampler } from './gaussian.ts';
import type { RandomSource } from './random.ts';
import { parseVersionedState } from './versioned-state.ts';

export interface AdaptiveClippingConfig {
  /** C₀ > 0: the clip norm of the first round. */
  initialClipNorm: number;
  /** γ ∈ (0, 1): the fraction of updates the clip norm should let through unclipped. */
  targetQuantile: number;
  /** η_C > 0: the log clip norm moves by at most η_C per round (the paper uses 0.2). */
  learningRate: number;
  /** σ_b ≥ 0: stddev of the noise on the sum of centred bits (the paper suggests m/20). */
  bitNoiseStddev: number;
  /** m ≥ 1: expected clients per round, the fixed denominator of the noisy fraction. */
  expectedClients: number;
}

const FORMAT = 'commons-adaptive-clipping';
const VERSION = 1;

const stateSchema = zod.strictObject({
  format: zod.literal(FORMAT),
  version: zod.literal(VERSION),
  clipNorm: zod.number().positive(),
  targetQuantile: zod.number().gt(0).lt(1),
  learningRate: zod.number().positive(),
  bitNoiseStddev: zod.number().nonnegative(),
  expectedClients: zod.number().int().positive(),
  rounds: zod.number().int().nonnegative(),
});

export type AdaptiveClippingState = zod.infer<typeof stateSchema>;

export interface ClipUpdate {
  /** The new clip norm, for the next round. */
  clipNorm: number;
  /** b̄: the noisy fraction of updates that were within the old clip norm, clamped to [0, 1]. */
  noisyFraction: number;
}

export class AdaptiveClipper {
  private state: AdaptiveClippingState;

  constructor(config: AdaptiveClippingConfig) {
    this.state = validate('INVALID_ARGUMENT', {
      format: FORMAT,
      version: VERSION,
      clipNorm: config.initialClipNorm,
      targetQuantile: config.targetQuantile,
      learningRate: config.learningRate,
      bitNoiseStddev: config.bitNoiseStddev,
      expectedClients: config.expectedClients,
      rounds: 0,
    });
  }

  /** The clip norm to announce for the current round. */
  get clipNorm(): number {
    return this.state.clipNorm;
  }

  get rounds(): number {
    return this.state.rounds;
  }

  /** A client's bit: 1 when its update (norm before clipping) fits under the round's C. */
  static clientBit(updateNorm: number, clipNorm: number): 0 | 1 {
    if (!(updateNorm >= 0)) {
      throw new PrivacyError('INVALID_ARGUMENT', `update norm must be ≥ 0, got ${updateNorm}`);
    }
    return updateNorm <= clipNorm ? 1 : 0;
  }

  /**
   * Server side, once per round: from the sum of the survivors' bits (securely aggregated
   * beside the updates), computes the noisy fraction and takes the geometric step.
   * `source` is for tests only; the bit noise must be unpredictable in production.
   */
  update(result: { bitSum: number; survivors: number; source?: RandomSource }): ClipUpdate {
    const { bitSum, survivors, source } = result;
    if (!Number.isInteger(survivors) || survivors < 0) {
      throw new PrivacyError(
        'INVALID_ARGUMENT',
        `survivors must be an integer ≥ 0, got ${survivors}`,
      );
    }
    if (!Number.isInteger(bitSum) || bitSum < 0 || bitSum > survivors) {
      throw new PrivacyError(
        'INVALID_ARGUMENT',
        `the bit sum must be an integer in [0, ${survivors}] (the survivors), got ${bitSum}`,
      );
    }
    const { targetQuantile, learningRate, bitNoiseStddev, expectedClients } = this.state;
    const centred = bitSum - survivors / 2;
    const noise = bitNoiseStddev === 0 ? 0 : bitNoiseStddev * new GaussianSampler(source).next();
    const noisyFraction = Math.min(1, Math.max(0, (centred + noise) / expectedClients + 0.5));
    const clipNorm =
      this.state.clipNorm * Math.exp(-learningRate * (noisyFraction - targetQuantile));
    this.state = { ...this.state, clipNorm, rounds: this.state.rounds + 1 };
    return { clipNorm, noisyFraction };
  }

  exportState(): AdaptiveClippingState {
    return { ...this.state };
  }

  static importState(state: unknown): AdaptiveClipper {
    const parsed = validate('CORRUPT_STATE', state);
    const clipper = new AdaptiveClipper({
      initialClipNorm: parsed.clipNorm,
      targetQuantile: parsed.targetQuantile,
      learningRate: parsed.learningRate,
      bitNoiseStddev: parsed.bitNoiseStddev,
      expectedClients: parsed.expectedClients,
    });
    clipper.state = parsed;
    return clipper;
  }
}

/**
 * z_Δ, the noise multiplier left for the update sum when the clip bits also get noise σ_b,
 * so that the two releases together are exactly as private as one with multiplier z.
 */
export function splitNoiseMultiplier(options: {
  noiseMultiplier: number;
  bitNoiseStddev: number;
}): number {
  const { noiseMultiplier: z, bitNoiseStddev: sigmaB } = options;
  if (!(z > 0) || z === Infinity) {
    throw new PrivacyError('INVALID_ARGUMENT', `noise multiplier must be finite and > 0, got ${z}`);
  }
  if (!(sigmaB >= 0)) {
    throw new PrivacyError('INVALID_ARGUMENT', `bit noise stddev must be ≥ 0, got ${sigmaB}`);
  }
  if (sigmaB === Infinity) return z;
  const remaining = z ** -2 - (2 * sigmaB) ** -2;
  if (!(remaining > 0)) {
    throw new PrivacyError(
      'INVALID_ARGUMENT',
      `bit noise stddev ${sigmaB} is too small for noise multiplier ${z}: the clip bits alone ` +
        `would use the whole budget (σ_b must exceed z/2 = ${z / 2})`,
    );
  }
  return remaining ** -0.5;
}

/** `code` says whose fault a schema violation is: the caller's config, or a stored state. */
function validate(
  code: 'INVALID_ARGUMENT' | 'CORRUPT_STATE',
  value: unknown,
): AdaptiveClippingState {
  return parseVersionedState(
    value,
    { format: FORMAT, version: VERSION },
    stateSchema,
    code,
    'adaptive clipping',
  );
}
