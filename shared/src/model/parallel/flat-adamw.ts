import type { AdamWConfig } from '../optimizer.ts';
import type { FlatLayout } from './layout.ts';

/**
 * AdamW and global-norm clipping over one flat buffer, in plain JavaScript: the same
 * maths as `optimizer.ts` (decoupled decay on matrices only, bias-corrected moments,
 * clip to `maxNorm` when the L2 norm exceeds it), in one pass per buffer instead of a
 * dozen tensor ops per parameter. Plain JS arithmetic is IEEE-exact and the loops run in
 * a fixed order, so every worker that applies the same gradients to the same weights gets
 * bit-identical results.
 */
export class FlatAdamW {
  readonly config: AdamWConfig;
  /** Steps taken so far (for bias correction). */
  step = 0;
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** 1 − lr·wd is applied only where this is 1 (decayed parameters). */
  private readonly decayMask: Uint8Array;

  constructor(
    layout: FlatLayout,
    config: AdamWConfig,
    moments?: { m: Float32Array; v: Float32Array },
  ) {
    this.config = config;
    this.m = moments?.m ?? new Float32Array(layout.total);
    this.v = moments?.v ?? new Float32Array(layout.total);
    this.decayMask = new Uint8Array(layout.total);
    for (const s of layout.slots)
      if (s.decayed) this.decayMask.fill(1, s.offset, s.offset + s.size);
  }

  /**
   * One update of `params` in place from gradient `g`, scaled by `gradScale` first (the
   * clipping factor; 1 for none).
   */
  apply(params: Float32Array, g: Float32Array, lr: number, gradScale = 1): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    const decay = 1 - lr * weightDecay;
    const { m, v, decayMask } = this;
    // Float32 rounding at every step where optimizer.ts has a float32 tensor.
    const f = Math.fround;
    const b1 = f(beta1);
    const b2 = f(beta2);
    const c1 = f(1 - beta1);
    const c2 = f(1 - beta2);
    for (let i = 0; i < params.length; i++) {
      const gi = f(g[i]! * gradScale);
      const mi = f(f(m[i]! * b1) + f(gi * c1));
      const vi = f(f(v[i]! * b2) + f(f(gi * gi) * c2));
      m[i] = mi;
      v[i] = vi;
      const update = f(f(mi / bc1) / f(f(Math.sqrt(f(vi / bc2))) + eps));
      const p = decayMask[i] === 1 ? f(params[i]! * decay) : params[i]!;
      params[i] = p - f(update * lr);
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
