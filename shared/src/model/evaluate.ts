import * as tf from '@tensorflow/tfjs';
import type { ChatTokenizer } from '../chat/tokenizer.ts';
import type { TokenSplit } from './dataset.ts';
import { countChars, evaluationWindows } from './dataset.ts';
import type { Transformer } from './transformer.ts';

export interface Evaluation {
  /** Mean next-token cross-entropy, nats per token. */
  loss: number;
  /** Total nats / (characters predicted · ln 2): comparable across tokenizers. */
  bitsPerChar: number;
  /** Tokens predicted. */
  tokens: number;
}

/** Tokenise a text for evaluation and count the characters its predicted tokens encode. */
export function evaluationSplit(tokenizer: ChatTokenizer, text: string): TokenSplit {
  const ids = tokenizer.encodeText(text);
  // The first token is context only; its characters are not predicted.
  const first = ids.length > 0 ? countChars(tokenizer.decode([ids[0]!])) : 0;
  return { tokens: Int32Array.from(ids), chars: countChars(text) - first };
}

/** Loss and bits per character of `model` over a whole split (no dropout, no gradients). */
export function evaluate(model: Transformer, split: TokenSplit, batchSize = 16): Evaluation {
  if (split.tokens.length < 2) throw new Error('evaluation needs at least 2 tokens');
  let nats = 0;
  let count = 0;
  for (const { batch, targets } of evaluationWindows(
    split.tokens,
    model.config.blockSize,
    batchSize,
  )) {
    const l = tf.tidy(() => model.loss(batch, targets));
    nats += l.dataSync()[0]! * targets.length;
    l.dispose();
    count += targets.length;
  }
  return {
    loss: nats / count,
    bitsPerChar: nats / Math.max(1, split.chars) / Math.LN2,
    tokens: count,
  };
}
