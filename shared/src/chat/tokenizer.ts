import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { ModelFormatError } from '../formats/errors.ts';
import type { BpeTokenizerJsonLike, TrainTokenizerOptions } from '../model/tokenizer-training.ts';
import { createBpeEncoder, trainTokenizer } from '../model/tokenizer-training.ts';

/**
 * A model's own tokenizer and chat template, from the `tokenizer.json` and
 * `tokenizer_config.json` it ships: @huggingface/tokenizers runs the tokenizer exactly as
 * the Rust library defines it (no hand-written BPE), and @huggingface/jinja renders the
 * template as transformers' apply_chat_template does.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface RenderOptions {
  /** End with the header that asks the assistant to speak (apply_chat_template's flag). */
  addGenerationPrompt?: boolean;
  /** Templates that print today's date (Llama 3.1+) read it from here, so output repeats. */
  dateString?: string;
}

/** How a tokenizer travels inside a Commons checkpoint manifest: the two files, verbatim. */
export const TOKENIZER_FORMAT = 'huggingface-tokenizers';
const tokenizerRecordSchema = z.object({
  format: z.literal(TOKENIZER_FORMAT),
  tokenizer: z.record(z.string(), z.unknown()),
  config: z.record(z.string(), z.unknown()),
});
export type TokenizerRecord = z.infer<typeof tokenizerRecordSchema>;

export class ChatTokenizer {
  readonly #tokenizer: Tokenizer;
  readonly #json: Record<string, unknown>;
  readonly #config: Record<string, unknown>;
  /** The fast encoder for long texts, where the tokenizer is a plain byte-level BPE. */
  #fastEncode: ((text: string) => number[]) | null | undefined;
  #vocabSize: number | undefined;
  readonly #template: Template | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** Ids of every special (added) token, which streamed text never shows. */
  readonly specialIds: ReadonlySet<number>;

  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown>) {
    this.#json = tokenizerJson as Record<string, unknown>;
    this.#config = tokenizerConfig;
    try {
      this.#tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new ModelFormatError(
        'BAD_CONFIG',
        `tokenizer.json does not load: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.bosToken = tokenText(tokenizerConfig.bos_token);
    this.eosToken = tokenText(tokenizerConfig.eos_token);
    const template = chatTemplate(tokenizerConfig.chat_template);
    try {
      this.#template = template === null ? null : new Template(template);
    } catch (error) {
      throw new ModelFormatError(
        'BAD_CONFIG',
        `the chat_template does not parse: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    this.specialIds = new Set(
      [...this.#tokenizer.get_added_tokens_decoder()]
        .filter(([, token]) => token.special)
        .map(([id]) => id),
    );
  }

  /** Reads tokenizer.json and tokenizer_config.json from a model folder. */
  static async fromFolder(dir: string): Promise<ChatTokenizer> {
    const read = async (name: string): Promise<Record<string, unknown>> => {
      const file = path.join(dir, name);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        throw new ModelFormatError('BAD_CONFIG', `${dir} has no readable ${name}`, {
          cause: error,
        });
      }
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch (error) {
        throw new ModelFormatError('BAD_CONFIG', `${file} is not JSON`, { cause: error });
      }
    };
    return new ChatTokenizer(await read('tokenizer.json'), await read('tokenizer_config.json'));
  }

  /**
   * Trains a byte-level BPE of `vocabSize` ids (bytes, <|endoftext|>, <|im_start|>,
   * <|im_end|>, then merges) with a ChatML template, as Commons' own models use.
   */
  static train(
    text: string,
    vocabSize: number,
    options: TrainTokenizerOptions = {},
  ): ChatTokenizer {
    const trained = trainTokenizer(text, vocabSize, options);
    return new ChatTokenizer(
      trained.tokenizerJson,
      trained.tokenizerConfig as unknown as Record<string, unknown>,
    );
  }

  /** The tokenizer as a checkpoint manifest carries it. */
  toJSON(): TokenizerRecord {
    return { format: TOKENIZER_FORMAT, tokenizer: this.#json, config: this.#config };
  }

  static fromJSON(json: unknown): ChatTokenizer {
    const parsed = tokenizerRecordSchema.safeParse(json);
    if (!parsed.success) {
      throw new ModelFormatError(
        'BAD_CONFIG',
        `the checkpoint's tokenizer is not a ${TOKENIZER_FORMAT} record: ${parsed.error.issues[0]!.message}`,
      );
    }
    return new ChatTokenizer(parsed.data.tokenizer, parsed.data.config);
  }

  /** The files a Hugging Face folder holds for this tokenizer. */
  get files(): {
    tokenizerJson: Record<string, unknown>;
    tokenizerConfig: Record<string, unknown>;
  } {
    return { tokenizerJson: this.#json, tokenizerConfig: this.#config };
  }

  /** Ids in the vocabulary, added tokens included (the model's embedding rows). */
  get vocabSize(): number {
    // Counted once per tokenizer: building the vocabulary map of a 150k-token tokenizer is
    // not free, and loads, verifications and each local update ask for it.
    if (this.#vocabSize === undefined) {
      let size = 0;
      for (const id of this.#tokenizer.get_vocab(true).values()) size = Math.max(size, id + 1);
      this.#vocabSize = size;
    }
    return this.#vocabSize;
  }

  get hasChatTemplate(): boolean {
    return this.#template !== null;
  }

  /** Token ids of `text`; special tokens written in the text are parsed as such. */
  encode(text: string, addSpecialTokens = false): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  /**
   * encode() for a long text such as a training corpus: the same ids, many times faster
   * where the tokenizer is a plain byte-level BPE (Commons' own), else encode() itself.
   */
  encodeText(text: string): number[] {
    if (this.#fastEncode === undefined) {
      try {
        this.#fastEncode = createBpeEncoder(this.#json as unknown as BpeTokenizerJsonLike);
      } catch {
        this.#fastEncode = null;
      }
    }
    return this.#fastEncode ? this.#fastEncode(text) : this.encode(text);
  }

  decode(ids: readonly number[], skipSpecialTokens = true): string {
    return this.#tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  tokenId(token: string): number | undefined {
    return this.#tokenizer.token_to_id(token);
  }

  /** The conversation as the model was trained to read it. */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    if (this.#template === null) {
      throw new ModelFormatError(
        'BAD_CONFIG',
        'this model has no chat_template in tokenizer_config.json',
      );
    }
    return this.#template.render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
      date_string: options.dateString ?? today(),
    });
  }

  /** render() then encode(), without adding special tokens twice (the template writes them). */
  encodeChat(messages: readonly ChatMessage[], options: RenderOptions = {}): number[] {
    return this.encode(this.render(messages, options), false);
  }
}

/** tokenizer_config writes special tokens as text or as an AddedToken object. */
function tokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return null;
}

/** A template is a string, or a list of named ones of which "default" is the chat one. */
function chatTemplate(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    return typeof chosen?.template === 'string' ? chosen.template : null;
  }
  return null;
}

/** "05 Dec 2026", the form Llama 3.1's template expects in date_string. */
function today(): string {
  return new Date().toLocaleDateString('en-GB', {
    day: '2-digit',
    month: 'short',
    year: 'numeric',
    timeZone: 'UTC',
  });
}
