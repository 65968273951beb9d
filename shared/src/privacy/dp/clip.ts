/**
 * L2 clipping of a client's whole update (DP-FedAvg, McMahan, Ramage, Talwar, Zhang 2018):
 * bounding every contribution by C is what gives the noisy sum its sensitivity C, so the
 * bound must hold exactly for the values that leave the machine, float rounding included.
 */
import { PrivacyError } from './errors.ts';

export interface ClipResult {
  /** L2 norm of the update before clipping (float64 accumulation). */
  norm: number;
  /** The factor every element was multiplied by: 1 when the update was already within C. */
  scale: number;
}

/**
 * Scales `update` in place so that its L2 norm is at most `clipNorm`. Several arrays are
 * clipped jointly, as one vector (the tensors of one model update). A NaN or infinite
 * element is an error: its norm compares false against C and would slip through unclipped.
 */
export function clipToNorm(
  update: Float32Array | readonly Float32Array[],
  clipNorm: number,
): ClipResult {
  if (!(clipNorm > 0) || clipNorm === Infinity) {
    throw new PrivacyError('INVALID_ARGUMENT', `clip norm must be finite and > 0, got ${clipNorm}`);
  }
  const parts = update instanceof Float32Array ? [update] : update;
  const norm = l2Norm(parts);
  if (!Number.isFinite(norm)) {
    throw new PrivacyError('INVALID_ARGUMENT', 'the update holds a NaN or infinite value');
  }
  if (norm <= clipNorm) return { norm, scale: 1 };
  let scale = clipNorm / norm;
  scaleAll(parts, scale);
  // Rounding each product to float32 can leave the norm a few ulps above C; shrink by a hair
  // until it is not, so the sensitivity bound is exact rather than approximately so.
  let factor = 1 - 2 ** -23;
  while (l2Norm(parts) > clipNorm) {
    scaleAll(parts, factor);
    scale *= factor;
    factor = 1 - 2 * (1 - factor);
  }
  return { norm, scale };
}

/** Global L2 norm, accumulated in float64 so a large update's sum of squares keeps precision. */
export function l2Norm(parts: readonly Float32Array[]): number {
  let sumOfSquares = 0;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) {
      const v = part[i]!;
      sumOfSquares += v * v;
    }
  }
  return Math.sqrt(sumOfSquares);
}

function scaleAll(parts: readonly Float32Array[], factor: number): void {
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) part[i] = part[i]! * factor;
  }
}
