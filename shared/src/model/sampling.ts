import type { Rng } from './rng.ts';

/**
 * Choosing the next token from a row of logits, on the host (the vocabulary is small, and
 * this keeps sampling identical on every backend). Order, as in Hugging Face's
 * `generate`: repetition penalty → temperature → top-k → top-p → draw.
 */
export interface SamplingOptions {
  /** 0 means greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep the smallest set whose probability reaches p; 1 disables. */
  topP: number;
  /** > 1 discourages tokens already in the context (CTRL's penalty); 1 disables. */
  repetitionPenalty: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  repetitionPenalty: 1.1,
};

export function validateSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0)) throw new Error(`temperature must be ≥ 0, got ${o.temperature}`);
  if (!Number.isInteger(o.topK) || o.topK < 0)
    throw new Error(`topK must be an integer ≥ 0, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`topP must be in (0, 1], got ${o.topP}`);
  if (!(o.repetitionPenalty >= 1)) {
    throw new Error(`repetitionPenalty must be ≥ 1, got ${o.repetitionPenalty}`);
  }
}

export function sampleToken(
  logits: Float32Array,
  context: readonly number[],
  o: SamplingOptions,
  rng: Rng,
): number {
  const l = Float64Array.from(logits);
  if (o.repetitionPenalty !== 1) {
    for (const id of new Set(context)) {
      const v = l[id];
      if (v === undefined) continue;
      l[id] = v > 0 ? v / o.repetitionPenalty : v * o.repetitionPenalty;
    }
  }
  if (o.temperature === 0) return argmax(l);

  // Candidates sorted by logit, most likely first; ties by id for determinism.
  let order = Array.from(l.keys()).sort((a, b) => l[b]! - l[a]! || a - b);
  if (o.topK > 0 && o.topK < order.length) order = order.slice(0, o.topK);

  const max = l[order[0]!]!;
  let probs = order.map((id) => Math.exp((l[id]! - max) / o.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length) {
      cum += probs[keep]! / total;
      keep++;
      if (cum >= o.topP) break;
    }
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * total;
  for (let i = 0; i < order.length; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[order.length - 1]!;
}

function argmax(a: Float64Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
