import type { DecoderConfig } from './config.ts';

/**
 * Rotary position embeddings as transformers computes them for Llama and Qwen2: inverse
 * frequencies θ^(−2i/d) for i < d/2, optionally rescaled by the "llama3" rule, and the
 * rotate_half layout (the first half of a head's dimensions pairs with the second half,
 * not adjacent pairs as in the original RoFormer).
 */

/** The d/2 inverse frequencies of a head, after any rope_scaling rule. */
export function inverseFrequencies(config: DecoderConfig): Float64Array {
  const d = config.headDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / config.ropeTheta ** ((2 * i) / d);
  if (config.ropeFactors !== null) {
    // llama.cpp divides each frequency by its factor (ggml_rope_ext's freq_factors).
    config.ropeFactors.forEach((f, i) => (inv[i] = inv[i]! / f));
    return inv;
  }
  const s = config.ropeScaling;
  if (s === null) return inv;
  // Llama 3.1's rule: long wavelengths (low frequencies) are slowed by `factor`, short ones
  // kept, and the band between interpolated smoothly (transformers' _compute_llama3_parameters).
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) {
      inv[i] = f / s.factor;
      continue;
    }
    const smooth =
      (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    inv[i] = (1 - smooth) * (f / s.factor) + smooth * f;
  }
  return inv;
}

/**
 * cos and sin tables for `count` positions from `start`, each (count, d) row-major with the
 * d/2 angles repeated (transformers' `emb = cat(freqs, freqs)`).
 */
export function rotaryTables(
  inv: Float64Array,
  start: number,
  count: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = inv.length;
  const d = 2 * half;
  const cos = new Float32Array(count * d);
  const sin = new Float32Array(count * d);
  for (let t = 0; t < count; t++) {
    const position = start + t;
    for (let i = 0; i < half; i++) {
      // Math.fround of the frequency first: the reference multiplies in float32.
      const angle = Math.fround(position * Math.fround(inv[i]!));
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * d + i] = c;
      cos[t * d + half + i] = c;
      sin[t * d + i] = s;
      sin[t * d + half + i] = s;
    }
  }
  return { cos, sin };
}
