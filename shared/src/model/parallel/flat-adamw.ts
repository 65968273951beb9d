import type { AdamWConfig } from '../optimizer.ts';
import type { FlatLayout } from './layout.ts';

/**
 * AdamW and global-norm clipping over one flat buffer, in plain JavaScript: the same
 * maths as `optimizer.ts` (decoupled decay on matrices only, bias-corrected moments,
 * clip to `maxNorm` when the L2 norm exceeds it), in one pass instead of a dozen tensor
 * ops per parameter. Intermediates are float64 (stored as float32), so results agree with
 * `optimizer.ts` to float32 rounding, not bit for bit. Plain JS arithmetic is IEEE-exact
 * and the loops run in a fixed order, so every worker that applies the same gradients to
 * the same weights gets bit-identical results.
 */
export class FlatAdamW {
  readonly config: AdamWConfig;
  /** Steps taken so far (for bias correction). */
  step = 0;
  readonly m: Float32Array;
  readonly v: Float32Array;
  private readonly slots: FlatLayout['slots'];

  constructor(
    layout: FlatLayout,
    config: AdamWConfig,
    moments?: { m: Float32Array; v: Float32Array },
  ) {
    this.config = config;
    this.m = moments?.m ?? new Float32Array(layout.total);
    this.v = moments?.v ?? new Float32Array(layout.total);
    this.slots = layout.slots;
  }

  /**
   * One update of `params` in place from gradient `g`, scaled by `gradScale` first (the
   * clipping factor; 1 for none).
   */
  apply(params: Float32Array, g: Float32Array, lr: number, gradScale = 1): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    // Folded constants: m̂ = m/bc1, √v̂ = √v/√bc2; float64 in between, float32 stored.
    const stepSize = lr / (1 - beta1 ** this.step);
    const rootBc2 = Math.sqrt(1 - beta2 ** this.step);
    const { m, v } = this;
    for (const { offset, size, decayed } of this.slots) {
      const decay = decayed ? 1 - lr * weightDecay : 1;
      for (let i = offset, end = offset + size; i < end; i++) {
        const gi = g[i]! * gradScale;
        const mi = beta1 * m[i]! + (1 - beta1) * gi;
        const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / rootBc2 + eps);
      }
    }
  }
}

/**
 * The factor that brings `g` to global L2 norm `maxNorm` (1 when already under, or when
 * clipping is off), and the norm before clipping. A non-finite norm is an error, as in
 * `clipByGlobalNorm`: a NaN step would poison the weights silently.
 */
export function clipScale(g: Float32Array, maxNorm: number): { scale: number; norm: number } {
  let sum = 0;
  for (let i = 0; i < g.length; i++) sum += g[i]! * g[i]!;
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm))
    throw new Error(`gradient norm is ${norm}; refusing to update the weights`);
  if (maxNorm <= 0 || norm <= maxNorm) return { scale: 1, norm };
  return { scale: maxNorm / (norm + 1e-6), norm };
}
