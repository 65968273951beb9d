import { Rng } from '../model/rng.ts';
import { sampleToken, validateSampling, type SamplingOptions } from '../model/sampling.ts';
import type { Decoder, KvCache } from '../decoder/model.ts';
import { fitConversation } from './context.ts';
import { TextStream } from './text-stream.ts';
import type { ChatMessage, ChatTokenizer, RenderOptions } from './tokenizer.ts';

/**
 * Multi-turn chat with a decoder: renders the conversation through the model's chat
 * template, fits it to the context window, and streams the reply until an EOS id (any of
 * generation_config's) or the token limit. The KV cache is kept between turns, and a new
 * prompt that extends the previous one (the usual case: the same history plus one turn)
 * only runs its new tokens.
 */
export interface ReplyOptions {
  sampling: SamplingOptions;
  maxTokens: number;
  seed: number;
  signal?: AbortSignal;
  render?: RenderOptions;
}

export type ReplyEvent =
  | { type: 'context'; promptTokens: number; droppedMessages: number }
  | { type: 'text'; text: string }
  | { type: 'done'; tokens: number; reason: 'eos' | 'length' | 'aborted' | 'context' };

export class ChatSession {
  readonly #decoder: Decoder;
  readonly #tokenizer: ChatTokenizer;
  readonly #eos: ReadonlySet<number>;
  #cache: KvCache;
  /** The token ids whose keys and values the cache holds. */
  #cached: number[] = [];

  constructor(decoder: Decoder, tokenizer: ChatTokenizer, eosTokenIds: readonly number[]) {
    this.#decoder = decoder;
    this.#tokenizer = tokenizer;
    const eos = new Set(eosTokenIds);
    // Chat models end a turn with the template's end-of-turn token too (<|eot_id|>, <|im_end|>).
    const eosText = tokenizer.eosToken === null ? undefined : tokenizer.tokenId(tokenizer.eosToken);
    if (eosText !== undefined) eos.add(eosText);
    this.#eos = eos;
    this.#cache = decoder.newCache();
  }

  async *reply(
    messages: readonly ChatMessage[],
    options: ReplyOptions,
  ): AsyncGenerator<ReplyEvent> {
    validateSampling(options.sampling);
    const window = this.#decoder.config.maxPositions;
    const reserve = Math.min(options.maxTokens, Math.floor(window / 2));
    const fitted = fitConversation(
      messages,
      (m) => this.#tokenizer.encodeChat(m, options.render),
      window,
      reserve,
    );
    yield {
      type: 'context',
      promptTokens: fitted.tokens.length,
      droppedMessages: fitted.droppedMessages,
    };
    const rng = new Rng(options.seed);
    const context = [...fitted.tokens];
    const stream = new TextStream((ids) => this.#tokenizer.decode(ids));
    let logits = this.#prefill(fitted.tokens);
    let produced = 0;
    let reason: 'eos' | 'length' | 'aborted' | 'context' = 'length';
    while (produced < options.maxTokens) {
      if (options.signal?.aborted) {
        reason = 'aborted';
        break;
      }
      const next = sampleToken(logits, context, options.sampling, rng);
      if (this.#eos.has(next)) {
        reason = 'eos';
        break;
      }
      produced++;
      context.push(next);
      const text = stream.push(next);
      if (text) yield { type: 'text', text };
      if (context.length >= window) {
        reason = 'context';
        break;
      }
      logits = await this.#step(next);
    }
    const rest = stream.flush();
    if (rest) yield { type: 'text', text: rest };
    yield { type: 'done', tokens: produced, reason };
  }

  /** Runs the prompt past what the cache already holds; the last position's logits. */
  #prefill(tokens: readonly number[]): Float32Array {
    let common = 0;
    while (
      common < this.#cached.length &&
      common < tokens.length - 1 &&
      this.#cached[common] === tokens[common]
    ) {
      common++;
    }
    if (common < this.#cache.length) {
      this.#cache.truncate(common);
      this.#cached.length = common;
    }
    const fresh = tokens.slice(common);
    const out = this.#decoder.forward(fresh, this.#cache, true);
    this.#cached.push(...fresh);
    const row = out.dataSync() as Float32Array;
    out.dispose();
    return row;
  }

  async #step(token: number): Promise<Float32Array> {
    const out = this.#decoder.forward([token], this.#cache, true);
    this.#cached.push(token);
    const row = (await out.data()) as Float32Array;
    out.dispose();
    return row;
  }

  dispose(): void {
    this.#cache.dispose();
    this.#cached = [];
  }
}
