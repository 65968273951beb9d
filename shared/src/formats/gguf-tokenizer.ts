import { ModelFormatError } from './errors.ts';

/**
 * A byte-level BPE tokenizer (Llama 3, Qwen2, SmolLM2: GGUF's `gpt2` tokenizer model) moved
 * between its two homes: the `tokenizer.ggml.*` keys of a GGUF file and a Hugging Face
 * `tokenizer.json` + `tokenizer_config.json`. The vocabulary and merges carry over as they
 * are; the pre-tokenizer, which GGUF only names (`tokenizer.ggml.pre`, as llama.cpp's
 * converter identifies it), is restored from the definitions below.
 */

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface PreTokenizerSpec {
  preTokenizer: object;
  normalizer: object | null;
  decoder: object;
  ignoreMerges: boolean;
}

const split = (regex: string) => ({
  type: 'Split',
  pattern: { Regex: regex },
  behavior: 'Isolated',
  invert: false,
});
const byteLevel = (useRegex: boolean, trimOffsets = true) => ({
  type: 'ByteLevel',
  add_prefix_space: false,
  trim_offsets: trimOffsets,
  use_regex: useRegex,
});

/** llama.cpp's pre-tokenizer names, with the tokenizer.json pieces each stands for. */
export const PRE_TOKENIZERS: Record<string, PreTokenizerSpec> = {
  'llama-bpe': {
    preTokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_SPLIT), byteLevel(false)] },
    normalizer: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    ignoreMerges: true,
  },
  qwen2: {
    preTokenizer: {
      type: 'Sequence',
      pretokenizers: [split(QWEN2_SPLIT), byteLevel(false, false)],
    },
    normalizer: { type: 'NFC' },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ignoreMerges: false,
  },
  smollm: {
    preTokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)],
    },
    normalizer: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    ignoreMerges: false,
  },
  // llama.cpp's name is hyphenated (llama-vocab.cpp); "gpt2" is the tokenizer model's name.
  'gpt-2': {
    preTokenizer: byteLevel(true),
    normalizer: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    ignoreMerges: false,
  },
};

/** GGUF token types (llama.cpp's llama_token_type). */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;

export interface HfTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

/** Rebuilds tokenizer.json and tokenizer_config.json from a GGUF file's metadata. */
export function tokenizerFromGguf(
  metadata: Record<string, unknown>,
  source: string,
): HfTokenizerFiles {
  const bad = (message: string): never => {
    throw new ModelFormatError('BAD_CONFIG', `${source}: ${message}`);
  };
  const model = metadata['tokenizer.ggml.model'];
  if (model !== 'gpt2') {
    bad(
      `tokenizer.ggml.model "${String(model)}" is not the byte-level BPE (gpt2) this engine reads`,
    );
  }
  const pre = String(metadata['tokenizer.ggml.pre'] ?? 'gpt-2');
  const spec =
    PRE_TOKENIZERS[pre] ??
    bad(
      `tokenizer.ggml.pre "${pre}" is not a pre-tokenizer this engine knows; import the model's Hugging Face folder instead`,
    );
  const tokens = metadata['tokenizer.ggml.tokens'];
  const merges = metadata['tokenizer.ggml.merges'];
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string'))
    bad('tokenizer.ggml.tokens is missing');
  if (!Array.isArray(merges) || !merges.every((m) => typeof m === 'string'))
    bad('tokenizer.ggml.merges is missing');
  const types = (metadata['tokenizer.ggml.token_type'] as unknown[] | undefined) ?? [];
  const vocab: Record<string, number> = {};
  const added: object[] = [];
  (tokens as string[]).forEach((content, id) => {
    const type = Number(types[id] ?? NORMAL);
    if (type === CONTROL || type === USER_DEFINED) {
      added.push({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: type === CONTROL,
      });
    } else if (type !== UNUSED) {
      vocab[content] = id;
    }
  });
  const text = (key: string): string | null => {
    const id = metadata[key];
    return typeof id === 'number' || typeof id === 'bigint'
      ? ((tokens as string[])[Number(id)] ?? null)
      : null;
  };
  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: spec.normalizer,
      pre_tokenizer: spec.preTokenizer,
      post_processor: null,
      decoder: spec.decoder,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: spec.ignoreMerges,
        vocab,
        merges,
      },
    },
    tokenizerConfig: {
      bos_token: text('tokenizer.ggml.bos_token_id'),
      eos_token: text('tokenizer.ggml.eos_token_id'),
      add_bos_token: metadata['tokenizer.ggml.add_bos_token'] === true,
      chat_template: metadata['tokenizer.chat_template'] ?? null,
      clean_up_tokenization_spaces: false,
    },
  };
}

/** The `tokenizer.*` GGUF keys for a Hugging Face tokenizer (what export writes). */
export function ggufTokenizerMetadata(
  files: HfTokenizerFiles,
  ids: { bos: number | null; eos: number | null },
  /** The model's embedding rows: the token list is padded to it (Qwen2.5's config has 151,936
   * rows for 151,665 tokens) since llama.cpp sizes the embedding by the token list. */
  vocabSize = 0,
): Record<string, unknown> {
  const json = files.tokenizerJson as {
    model?: { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[] };
    added_tokens?: { id: number; content: string; special: boolean }[];
    pre_tokenizer?: unknown;
  };
  if (json.model?.type !== 'BPE' || json.model.vocab === undefined) {
    throw new ModelFormatError(
      'BAD_CONFIG',
      'only byte-level BPE tokenizers can be written to GGUF',
    );
  }
  const pre = Object.entries(PRE_TOKENIZERS).find(
    ([, spec]) => canonical(spec.preTokenizer) === canonical(json.pre_tokenizer),
  )?.[0];
  if (pre === undefined) {
    throw new ModelFormatError(
      'BAD_CONFIG',
      `the tokenizer's pre-tokenizer is none llama.cpp knows by name (${Object.keys(PRE_TOKENIZERS).join(', ')})`,
    );
  }
  const entries: [string, number, number][] = Object.entries(json.model.vocab).map(([t, id]) => [
    t,
    id,
    NORMAL,
  ]);
  for (const a of json.added_tokens ?? [])
    entries.push([a.content, a.id, a.special ? CONTROL : USER_DEFINED]);
  const size = Math.max(vocabSize, entries.reduce((max, [, id]) => Math.max(max, id), -1) + 1);
  // GGUF's token list is dense: ids no token claims become unused padding, as llama.cpp's
  // converter writes them (convert_hf_to_gguf.py, get_vocab_base).
  const tokens = Array.from({ length: size }, (_, id) => `[PAD${id}]`);
  const types = new Array<number>(size).fill(UNUSED);
  for (const [text, id, type] of entries) {
    tokens[id] = text;
    types[id] = type;
  }
  const merges = (json.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const config = files.tokenizerConfig;
  const meta: Record<string, unknown> = {
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': pre,
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': types,
    'tokenizer.ggml.merges': merges,
    'tokenizer.ggml.add_bos_token': config.add_bos_token === true,
  };
  if (ids.bos !== null) meta['tokenizer.ggml.bos_token_id'] = ids.bos;
  if (ids.eos !== null) meta['tokenizer.ggml.eos_token_id'] = ids.eos;
  if (typeof config.chat_template === 'string')
    meta['tokenizer.chat_template'] = config.chat_template;
  return meta;
}

/** JSON with the keys that do not change tokenization left out, for comparing pre-tokenizers. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (key, v: unknown) => (key === 'trim_offsets' ? undefined : v));
}
