import type { SamplingOptions } from './sampling.ts';
import { DEFAULT_SAMPLING, sampleToken, validateSampling } from './sampling.ts';
import { TextStream } from '../chat/text-stream.ts';
import { Rng } from './rng.ts';
import type { ChatTokenizer } from '../chat/tokenizer.ts';
import type { Transformer } from './transformer.ts';

/**
 * Streaming text generation: an async iterator that yields text as each token is made,
 * using the model's KV cache (each new token costs one position, not the whole context).
 * When the context reaches the model's blockSize, the cache is rebuilt from the last half
 * of the context (the model was never trained past blockSize positions, so the window
 * restarts at position 0 rather than sliding on).
 */
export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  /** Generation stops when the text ends with any of these; the stop text is not yielded. */
  stop: string[];
  seed: number;
  /** false recomputes the whole context per token (benchmarks compare the two). */
  useCache: boolean;
  signal?: AbortSignal;
}

export const DEFAULT_GENERATE: GenerateOptions = {
  ...DEFAULT_SAMPLING,
  maxTokens: 256,
  stop: [],
  seed: 0,
  useCache: true,
};

export interface GeneratedChunk {
  /** New complete text (may be empty while a multi-byte character is unfinished). */
  text: string;
  tokenId: number;
  /** Tokens generated so far. */
  index: number;
}

export type FinishReason = 'length' | 'stop' | 'cancelled';

export async function* generate(
  model: Transformer,
  tokenizer: ChatTokenizer,
  prompt: string,
  options: Partial<GenerateOptions> = {},
): AsyncGenerator<GeneratedChunk, FinishReason> {
  const o: GenerateOptions = { ...DEFAULT_GENERATE, ...options };
  validateSampling(o);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) {
    throw new Error(`maxTokens must be an integer ≥ 0, got ${o.maxTokens}`);
  }
  const rng = new Rng(o.seed);
  const { blockSize } = model.config;
  const context = tokenizer.encode(prompt);
  // An empty prompt starts from a newline, the corpus's most common separator.
  if (context.length === 0) context.push(...tokenizer.encode('\n'));
  const decoder = new TextStream((ids) => tokenizer.decode(ids));
  const cache = model.newCache();
  // Text not yet yielded: its tail could still grow into a stop sequence.
  let buffer = '';
  const hold = Math.max(0, ...o.stop.map((s) => s.length - 1));

  try {
    let logits = prefill(model, context, cache, blockSize, o.useCache);
    for (let index = 0; index < o.maxTokens; index++) {
      if (o.signal?.aborted) return 'cancelled';
      const id = sampleToken(logits, context, o, rng);
      context.push(id);
      buffer += decoder.push(id);
      const stopAt = firstStop(buffer, o.stop);
      if (stopAt >= 0) {
        if (stopAt > 0) yield { text: buffer.slice(0, stopAt), tokenId: id, index };
        return 'stop';
      }
      const release = buffer.slice(0, Math.max(0, buffer.length - hold));
      buffer = buffer.slice(release.length);
      yield { text: release, tokenId: id, index };
      if (index + 1 < o.maxTokens) {
        logits =
          o.useCache && cache.length < blockSize
            ? model.decode([id], cache)
            : prefill(model, context, cache, blockSize, o.useCache);
      }
      // Let a stop button (AbortSignal) and the UI get a turn between tokens.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const tail = buffer + decoder.flush();
    if (tail) yield { text: tail, tokenId: context[context.length - 1]!, index: o.maxTokens };
    return 'length';
  } finally {
    model.disposeCache(cache);
  }
}

function firstStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    if (s.length === 0) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Start (or restart) the cache from the context's tail: all of it, or the last half when full. */
function prefill(
  model: Transformer,
  context: number[],
  cache: ReturnType<Transformer['newCache']>,
  blockSize: number,
  useCache: boolean,
): Float32Array {
  model.disposeCache(cache);
  // Uncached: the whole window every token. Cached: the whole context while it fits, else
  // the last half, leaving room for the next blockSize/2 tokens before another rebuild.
  const keep = !useCache
    ? Math.min(context.length, blockSize)
    : context.length < blockSize
      ? context.length
      : Math.max(1, Math.floor(blockSize / 2));
  return model.decode(context.slice(-keep), cache);
}
