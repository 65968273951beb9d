import type { Batch } from './transformer.ts';
import type { Rng } from './rng.ts';

/**
 * Token streams for training and evaluation. A split holds the tokens of a text and the
 * number of characters they encode, so losses can be reported per character — comparable
 * across tokenizers, unlike per-token loss.
 */
export interface TokenSplit {
  tokens: Int32Array;
  /** Characters (Unicode code points) of the text these tokens encode. */
  chars: number;
}

/** The last `fraction` of a text is held out for validation (the genesis split: 10%). */
export function splitText(text: string, holdout = 0.1): { train: string; val: string } {
  const cut = Math.floor(text.length * (1 - holdout));
  return { train: text.slice(0, cut), val: text.slice(cut) };
}

export function countChars(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** B random windows of T+1 tokens: inputs are the first T, targets the last T. */
export function sampleBatch(
  tokens: Int32Array,
  B: number,
  T: number,
  rng: Rng,
): { batch: Batch; targets: Int32Array } {
  if (tokens.length < T + 1) {
    throw new Error(
      `need at least ${T + 1} tokens to train with context ${T}, have ${tokens.length}`,
    );
  }
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = rng.int(tokens.length - T);
    ids.set(tokens.subarray(start, start + T), b * T);
    targets.set(tokens.subarray(start + 1, start + T + 1), b * T);
  }
  return { batch: { ids, B, T }, targets };
}

/**
 * Consecutive, non-overlapping windows covering `tokens` so that every token but the first
 * is predicted exactly once (evaluation). The last window may be shorter.
 */
export function* evaluationWindows(
  tokens: Int32Array,
  T: number,
  B: number,
): Generator<{ batch: Batch; targets: Int32Array }> {
  const starts: number[] = [];
  for (let s = 0; s + 1 < tokens.length; s += T) starts.push(s);
  for (let i = 0; i < starts.length; i += B) {
    const group = starts.slice(i, i + B);
    // Full windows go together; a short tail window goes alone (its T differs).
    const full = group.filter((s) => s + T + 1 <= tokens.length);
    if (full.length > 0) {
      const ids = new Int32Array(full.length * T);
      const targets = new Int32Array(full.length * T);
      full.forEach((s, b) => {
        ids.set(tokens.subarray(s, s + T), b * T);
        targets.set(tokens.subarray(s + 1, s + T + 1), b * T);
      });
      yield { batch: { ids, B: full.length, T }, targets };
    }
    for (const s of group.filter((s) => s + T + 1 > tokens.length)) {
      const t = tokens.length - 1 - s;
      yield {
        batch: { ids: tokens.slice(s, s + t), B: 1, T: t },
        targets: tokens.slice(s + 1, s + 1 + t),
      };
    }
  }
}
