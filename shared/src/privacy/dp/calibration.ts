/**
 * How much Gaussian noise each party adds so that the released sum of clipped updates
 * carries N(0, (zC)²): z the noise multiplier, C the clip norm (the sum's L2 sensitivity
 * when each member contributes one update clipped to C).
 */
import { PrivacyError } from './errors.ts';

export interface NoiseCalibration {
  /** z: noise standard deviation as a multiple of the clip norm. */
  noiseMultiplier: number;
  /** C: the L2 norm every update is clipped to. */
  clipNorm: number;
}

/** Central DP: the server, which sees the sum, adds noise of standard deviation z·C to it. */
export function centralNoiseStddev({ noiseMultiplier, clipNorm }: NoiseCalibration): number {
  checkCalibration(noiseMultiplier, clipNorm);
  return noiseMultiplier * clipNorm;
}

/**
 * Distributed noise under secure aggregation, where no one sees the sum before it is noised.
 * Each invited client adds N(0, (zC)²/m), m the fewest survivors the round accepts. Variances
 * of independent noises add, so any k ≥ m survivors' sum carries k·(zC)²/m ≥ (zC)²: the
 * central guarantee, whoever drops out. The price is extra noise when more than m survive
 * (a factor √(k/m) in standard deviation), which a dropout margin keeps small.
 *
 * What it assumes: the noise that counts is the honest clients'. A client who colludes with
 * the server knows its own share and can subtract it, so against c colluders the guarantee
 * needs k − c ≥ m (see `survivingNoiseMultiplier`): choose m below the expected survivors by
 * both the dropout and the collusion margin. A round with fewer than m survivors must not be
 * released — the coordinator discards it.
 */
export function splitNoiseStddev(
  calibration: NoiseCalibration & {
    /** m: the fewest surviving clients for which the round is still released, ≥ 1. */
    minSurvivors: number;
  },
): number {
  const { noiseMultiplier, clipNorm, minSurvivors } = calibration;
  checkCalibration(noiseMultiplier, clipNorm);
  checkCount('minSurvivors', minSurvivors, 1);
  return (noiseMultiplier * clipNorm) / Math.sqrt(minSurvivors);
}

/**
 * The noise multiplier a split-noise sum actually carries: z·√((k − c)/m) for k survivors of
 * whom c collude with the server. The round is as private as the policy says only when this
 * is ≥ z, i.e. k − c ≥ m; the accountant should be given z, never this (larger) value, so
 * the accounting does not depend on how many happened to survive.
 */
export function survivingNoiseMultiplier(options: {
  noiseMultiplier: number;
  minSurvivors: number;
  survivors: number;
  colluding?: number;
}): number {
  const { noiseMultiplier, minSurvivors, survivors, colluding = 0 } = options;
  checkCalibration(noiseMultiplier, 1);
  checkCount('minSurvivors', minSurvivors, 1);
  checkCount('survivors', survivors, 0);
  checkCount('colluding', colluding, 0);
  const honest = Math.max(0, survivors - colluding);
  return noiseMultiplier * Math.sqrt(honest / minSurvivors);
}

function checkCalibration(noiseMultiplier: number, clipNorm: number): void {
  if (!(noiseMultiplier >= 0) || noiseMultiplier === Infinity) {
    throw new PrivacyError(
      'INVALID_ARGUMENT',
      `noise multiplier must be finite and ≥ 0, got ${noiseMultiplier}`,
    );
  }
  if (!(clipNorm > 0) || clipNorm === Infinity) {
    throw new PrivacyError('INVALID_ARGUMENT', `clip norm must be finite and > 0, got ${clipNorm}`);
  }
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new PrivacyError('INVALID_ARGUMENT', `${name} must be an integer ≥ ${min}, got ${value}`);
  }
}
