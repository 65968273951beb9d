/**
 * Trains the genesis model's own tokenizer and writes it in the Hugging Face folder form:
 * a `tokenizer.json` that `@huggingface/tokenizers` (and the Rust `tokenizers` library)
 * load as a GPT-2 / SmolLM2-style byte-level BPE, and a `tokenizer_config.json` with a
 * ChatML `chat_template`.
 *
 * The tokenizer, as @huggingface/tokenizers runs it:
 * - added tokens (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`) are cut out of the text
 *   first, each becoming its one id, never split;
 * - no normalizer;
 * - pre-tokenizer ByteLevel (add_prefix_space false, use_regex true): the GPT-2 split
 *   regex {@link GPT2_SPLIT_PATTERN} cuts the text into chunks, and each chunk's UTF-8
 *   bytes are written as the GPT-2 `bytes_to_unicode` characters ({@link BYTE_TO_UNICODE});
 * - model BPE: within each chunk, repeatedly merge the adjacent pair with the lowest merge
 *   rank (leftmost first on a tie). Every byte is in the vocabulary, so any text encodes
 *   with no unknown token;
 * - post-processor ByteLevel, which only concerns offsets: nothing is added around the
 *   ids (no BOS/EOS auto-insert; the chat template and the training pipeline write the
 *   special tokens they want explicitly);
 * - decoder ByteLevel: concatenated token strings mapped back to bytes, read as UTF-8.
 *
 * Id layout (fixed whatever the vocabulary size, like the raw-byte ids of commons-bpe-v1):
 * - 0..255: the single bytes, id = byte value (the vocab string is the byte's
 *   bytes_to_unicode character, e.g. id 32 is "Ġ");
 * - 256 `<|endoftext|>`, 257 `<|im_start|>`, 258 `<|im_end|>` ({@link SPECIAL_TOKENS});
 * - 259 + i: the token made by `merges[i]`.
 *
 * Training is word-frequency BPE as Hugging Face's BpeTrainer does it: count the
 * pre-tokenized chunks, then merge greedily the most frequent adjacent pair (ties: the
 * pair with the smaller left id, then smaller right id), updating pair counts
 * incrementally from the words that held the merged pair. One deliberate difference from
 * BpeTrainer: a pair whose concatenation is already a token is never merged (BpeTrainer
 * would add a second merge producing the same string). Without such duplicate merges,
 * applying the merges by rank (what the encoder does) reproduces exactly the segmentation
 * training saw, every merge adds one vocabulary entry, and token 259 + i is `merges[i]`.
 */

/** GPT-2's pre-tokenizer split, as @huggingface/tokenizers' ByteLevel pre-tokenizer runs it. */
export const GPT2_SPLIT_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Ids and text of the special tokens; ids follow the 256 byte tokens. */
export const SPECIAL_TOKENS = {
  endOfText: { id: 256, content: '<|endoftext|>' },
  imStart: { id: 257, content: '<|im_start|>' },
  imEnd: { id: 258, content: '<|im_end|>' },
} as const;

const BYTE_TOKENS = 256;
const SPECIALS = [SPECIAL_TOKENS.endOfText, SPECIAL_TOKENS.imStart, SPECIAL_TOKENS.imEnd];
/** First id a merge produces. */
export const FIRST_MERGE_ID = BYTE_TOKENS + SPECIALS.length;
/** Pair keys pack two ids as left * 2^16 + right. */
const MAX_VOCAB_SIZE = 65_536;
const PAIR_BASE = 65_536;

/**
 * ChatML as SmolLM2-Instruct writes it (without its default system prompt): every turn is
 * `<|im_start|>role\ncontent<|im_end|>\n`, and add_generation_prompt opens the assistant's.
 */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** GPT-2's bytes_to_unicode: the printable character each byte is written as. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    out.push(String.fromCharCode(printable(b) ? b : 256 + n++));
  }
  return out;
})();

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

interface ByteLevelJson {
  type: 'ByteLevel';
  add_prefix_space: boolean;
  trim_offsets: boolean;
  use_regex: boolean;
}

/** The `tokenizer.json` this module writes (a subset of what the library accepts). */
export interface ByteLevelBpeTokenizerJson {
  version: '1.0';
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null;
  pre_tokenizer: ByteLevelJson;
  post_processor: ByteLevelJson;
  decoder: ByteLevelJson;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    /**
     * `"left right"`: the form every version of the Rust library and of
     * @huggingface/tokenizers reads (SmolLM2's and GPT-2's files use it; the `[left, right]`
     * form needs tokenizers >= 0.20). Unambiguous, as no byte-level token holds a space.
     */
    merges: string[];
  };
}

export interface TokenizerConfigJson {
  add_bos_token: false;
  add_eos_token: false;
  add_prefix_space: false;
  added_tokens_decoder: Record<string, Omit<AddedTokenJson, 'id'>>;
  additional_special_tokens: string[];
  bos_token: string;
  eos_token: string;
  pad_token: string;
  unk_token: null;
  chat_template: string;
  clean_up_tokenization_spaces: false;
  model_max_length: number;
  tokenizer_class: 'GPT2Tokenizer';
  [key: string]: unknown;
}

export interface TrainTokenizerOptions {
  /** A pair seen fewer times than this is never merged (default 2). */
  minFrequency?: number;
  /** `model_max_length` in tokenizer_config.json: the model's context (default 2048). */
  modelMaxLength?: number;
}

export interface TrainedTokenizer {
  tokenizerJson: ByteLevelBpeTokenizerJson;
  tokenizerConfig: TokenizerConfigJson;
  /**
   * Ids in the vocabulary: 259 + merges. Equals the requested size unless the text ran out
   * of pairs seen at least minFrequency times first.
   */
  vocabSize: number;
}

export class TokenizerTrainingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerTrainingError';
  }
}

/**
 * Trains a byte-level BPE of (at most) `vocabSize` ids, special tokens included, on `text`.
 * The same text, size and options always give the same JSON.
 */
export function trainTokenizer(
  text: string,
  vocabSize: number,
  opts: TrainTokenizerOptions = {},
): TrainedTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGE_ID || vocabSize > MAX_VOCAB_SIZE) {
    throw new TokenizerTrainingError(
      `vocabSize must be an integer from ${FIRST_MERGE_ID} (256 bytes + ${SPECIALS.length} special tokens) to ${MAX_VOCAB_SIZE}, got ${vocabSize}`,
    );
  }
  const minFrequency = opts.minFrequency ?? 2;
  const modelMaxLength = opts.modelMaxLength ?? 2048;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new TokenizerTrainingError(
      `minFrequency must be a positive integer, got ${minFrequency}`,
    );
  }
  if (!Number.isInteger(modelMaxLength) || modelMaxLength < 1) {
    throw new TokenizerTrainingError(
      `modelMaxLength must be a positive integer, got ${modelMaxLength}`,
    );
  }

  const tokenText: string[] = [...BYTE_TO_UNICODE, ...SPECIALS.map((s) => s.content)];
  const tokenIds = new Map<string, number>(tokenText.map((t, id) => [t, id]));
  const merges: string[] = [];
  learnMerges(countChunks(text), vocabSize, minFrequency, tokenText, tokenIds, merges);

  const vocab: Record<string, number> = {};
  tokenText.forEach((t, id) => (vocab[t] = id));
  const addedTokens: AddedTokenJson[] = SPECIALS.map((s) => ({
    id: s.id,
    content: s.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean): ByteLevelJson => ({
    type: 'ByteLevel',
    add_prefix_space: addPrefixSpace,
    trim_offsets: trimOffsets,
    use_regex: true,
  });
  const tokenizerJson: ByteLevelBpeTokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    // The same three blocks GPT-2's and SmolLM2's tokenizer.json carry.
    pre_tokenizer: byteLevel(false, true),
    post_processor: byteLevel(true, false),
    decoder: byteLevel(true, true),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig: TokenizerConfigJson = {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [`${id}`, rest])),
    additional_special_tokens: [SPECIAL_TOKENS.imStart.content, SPECIAL_TOKENS.imEnd.content],
    bos_token: SPECIAL_TOKENS.endOfText.content,
    // A chat reply ends at <|im_end|>; generation_config.json should list 256 as well.
    eos_token: SPECIAL_TOKENS.imEnd.content,
    pad_token: SPECIAL_TOKENS.endOfText.content,
    unk_token: null,
    chat_template: CHAT_TEMPLATE,
    // The library's default (true) would turn " ." into "." when decoding.
    clean_up_tokenization_spaces: false,
    model_max_length: modelMaxLength,
    tokenizer_class: 'GPT2Tokenizer',
  };
  return { tokenizerJson, tokenizerConfig, vocabSize: tokenText.length };
}

/** The text between special tokens, cut by the GPT-2 regex, each chunk with its count. */
function countChunks(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  const split = new RegExp(GPT2_SPLIT_PATTERN, 'gu');
  for (const section of splitOnSpecials(text, specialsPattern(SPECIALS.map((s) => s.content)))) {
    if (section.special) continue;
    for (const [chunk] of section.text.matchAll(split)) {
      counts.set(chunk, (counts.get(chunk) ?? 0) + 1);
    }
  }
  return counts;
}

function learnMerges(
  chunkCounts: Map<string, number>,
  vocabSize: number,
  minFrequency: number,
  tokenText: string[],
  tokenIds: Map<string, number>,
  merges: string[],
): void {
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [chunk, count] of chunkCounts) {
    const bytes = encoder.encode(chunk);
    if (bytes.length < 2) continue; // a single byte never merges
    words.push(Array.from(bytes));
    freqs.push(count);
  }

  const pairCount = new Map<number, number>();
  /** Words that held the pair at some point (they may no longer: checked on use). */
  const pairWords = new Map<number, Set<number>>();
  const note = (key: number, w: number) => {
    let set = pairWords.get(key);
    if (set === undefined) pairWords.set(key, (set = new Set()));
    set.add(w);
  };
  words.forEach((sym, w) => {
    const f = freqs[w]!;
    for (let i = 0; i + 1 < sym.length; i++) {
      const key = sym[i]! * PAIR_BASE + sym[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      note(key, w);
    }
  });
  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  /** Pairs never to merge (again): merged already, or their result is already a token. */
  const done = new Set<number>();
  while (tokenText.length < vocabSize && heap.size > 0) {
    const { count, key } = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== count) {
      // A stale entry. A count that rose was pushed again when it rose; one that fell was not.
      if (current > 0 && current < count) heap.push(current, key);
      continue;
    }
    if (count < minFrequency) break;
    if (done.has(key)) continue;
    done.add(key);
    const left = Math.floor(key / PAIR_BASE);
    const right = key % PAIR_BASE;
    const merged = tokenText[left]! + tokenText[right]!;
    if (tokenIds.has(merged)) continue;
    const id = tokenText.length;
    tokenText.push(merged);
    tokenIds.set(merged, id);
    merges.push(`${tokenText[left]!} ${tokenText[right]!}`);

    const delta = new Map<number, number>();
    const add = (k: number, d: number) => delta.set(k, (delta.get(k) ?? 0) + d);
    for (const w of pairWords.get(key) ?? []) {
      const sym = words[w]!;
      const f = freqs[w]!;
      let found = false;
      for (let i = 0; i + 1 < sym.length; i++) {
        if (sym[i] === left && sym[i + 1] === right) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      for (let i = 0; i + 1 < sym.length; i++) add(sym[i]! * PAIR_BASE + sym[i + 1]!, -f);
      const next: number[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (i + 1 < sym.length && sym[i] === left && sym[i + 1] === right) {
          next.push(id);
          i++;
        } else {
          next.push(sym[i]!);
        }
      }
      words[w] = next;
      for (let i = 0; i + 1 < next.length; i++) {
        const k = next[i]! * PAIR_BASE + next[i + 1]!;
        add(k, f);
        note(k, w);
      }
    }
    pairWords.delete(key);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (pairCount.get(k) ?? 0) + d;
      if (c > 0) pairCount.set(k, c);
      else pairCount.delete(k);
      if (d > 0) heap.push(c, k);
    }
  }
}

/**
 * Max-heap of (count, pair key): the highest count first, then the smaller key (smaller
 * left id, then smaller right id). A total order, so the pops never depend on push order.
 */
class PairHeap {
  readonly #counts: number[] = [];
  readonly #keys: number[] = [];

  get size(): number {
    return this.#counts.length;
  }

  #before(i: number, j: number): boolean {
    const ci = this.#counts[i]!;
    const cj = this.#counts[j]!;
    return ci > cj || (ci === cj && this.#keys[i]! < this.#keys[j]!);
  }

  #swap(i: number, j: number): void {
    const c = this.#counts[i]!;
    this.#counts[i] = this.#counts[j]!;
    this.#counts[j] = c;
    const k = this.#keys[i]!;
    this.#keys[i] = this.#keys[j]!;
    this.#keys[j] = k;
  }

  push(count: number, key: number): void {
    this.#counts.push(count);
    this.#keys.push(key);
    let i = this.#counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: number } {
    const top = { count: this.#counts[0]!, key: this.#keys[0]! };
    const lastCount = this.#counts.pop()!;
    const lastKey = this.#keys.pop()!;
    const n = this.#counts.length;
    if (n > 0) {
      this.#counts[0] = lastCount;
      this.#keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.#before(l, best)) best = l;
        if (r < n && this.#before(r, best)) best = r;
        if (best === i) break;
        this.#swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Longest special token first, so the alternation finds the longest match at a position. */
function specialsPattern(contents: readonly string[]): RegExp | null {
  if (contents.length === 0) return null;
  const sorted = [...contents].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  return new RegExp(sorted.map(escapeRegExp).join('|'), 'g');
}

/**
 * Cuts out the special tokens as @huggingface/tokenizers' added-token splitter does
 * (left to right, the longest token at each position).
 */
function* splitOnSpecials(
  text: string,
  pattern: RegExp | null,
): Generator<{ text: string; special: boolean }> {
  if (pattern === null) {
    if (text.length > 0) yield { text, special: false };
    return;
  }
  let start = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > start) yield { text: text.slice(start, m.index), special: false };
    yield { text: m[0], special: true };
    start = m.index + m[0].length;
  }
  if (start < text.length) yield { text: text.slice(start), special: false };
}

/** What createBpeEncoder reads of a tokenizer.json. */
export interface BpeTokenizerJsonLike {
  added_tokens: readonly { id: number; content: string }[];
  normalizer: unknown;
  pre_tokenizer: { type: string; add_prefix_space?: boolean; use_regex?: boolean } | null;
  model: {
    type: string;
    vocab: Record<string, number>;
    /** `"left right"` or `[left, right]`; both forms are read. */
    merges: readonly (string | readonly [string, string])[];
    ignore_merges?: boolean;
  };
}

/** Chunks cached by the fast encoder before the cache is dropped whole. */
const MAX_CACHE_ENTRIES = 200_000;

/**
 * Encodes text with a byte-level BPE `tokenizer.json` (the ones this module writes, or any
 * with the same shape: ByteLevel pre-tokenizer with use_regex, no normalizer, BPE model)
 * giving the ids @huggingface/tokenizers gives, many times faster on a large corpus: merges
 * are looked up by id pairs, and each distinct chunk is merged once. Special tokens in the
 * text are parsed as such, as `encode(text, { add_special_tokens: false })` does.
 */
export function createBpeEncoder(tokenizerJson: BpeTokenizerJsonLike): (text: string) => number[] {
  if (
    tokenizerJson.normalizer !== null ||
    tokenizerJson.pre_tokenizer?.type !== 'ByteLevel' ||
    tokenizerJson.pre_tokenizer.use_regex === false ||
    tokenizerJson.pre_tokenizer.add_prefix_space ||
    tokenizerJson.model?.type !== 'BPE'
  ) {
    throw new TokenizerTrainingError(
      'the fast encoder handles a byte-level BPE with no normalizer and the GPT-2 split only',
    );
  }
  const { vocab, merges, ignore_merges: ignoreMerges } = tokenizerJson.model;
  const ids = new Map<string, number>(Object.entries(vocab));
  const added = new Map<string, number>();
  for (const t of tokenizerJson.added_tokens) {
    ids.set(t.content, t.id);
    added.set(t.content, t.id);
  }
  const byteIds = BYTE_TO_UNICODE.map((ch, b) => {
    const id = ids.get(ch);
    if (id === undefined) {
      throw new TokenizerTrainingError(`the vocabulary lacks byte ${b} (${JSON.stringify(ch)})`);
    }
    return id;
  });
  /** By the (left id, right id) key: the merge's rank, and the id it makes. */
  const rankOf = new Map<number, number>();
  const resultOf = new Map<number, number>();
  // Pair keys are left * base + right, exact in a double for any real vocabulary.
  let base = 1;
  for (const id of ids.values()) base = Math.max(base, id + 1);
  merges.forEach((m, rank) => {
    const [a, b] = typeof m === 'string' ? (m.split(' ', 2) as [string, string]) : m;
    if (a === undefined || b === undefined) {
      throw new TokenizerTrainingError(`merges[${rank}] is not a pair: ${JSON.stringify(m)}`);
    }
    const l = ids.get(a);
    const r = ids.get(b);
    const out = ids.get(a + b);
    if (l === undefined || r === undefined || out === undefined) {
      throw new TokenizerTrainingError(
        `merges[${rank}] (${a} ${b}) names a token not in the vocab`,
      );
    }
    const key = l * base + r;
    // A repeated pair: a Map built from the list keeps the last rank, as the library does.
    rankOf.set(key, rank);
    resultOf.set(key, out);
  });

  const split = new RegExp(GPT2_SPLIT_PATTERN, 'gu');
  const pattern = specialsPattern([...added.keys()]);
  const encoder = new TextEncoder();
  let cache = new Map<string, number[]>();

  const bpe = (chunk: string): number[] => {
    const bytes = encoder.encode(chunk);
    if (ignoreMerges) {
      let whole = '';
      for (const b of bytes) whole += BYTE_TO_UNICODE[b]!;
      const id = ids.get(whole);
      if (id !== undefined) return [id];
    }
    const sym = Array.from(bytes, (b) => byteIds[b]!);
    for (;;) {
      let bestRank = Infinity;
      let at = -1;
      for (let i = 0; i + 1 < sym.length; i++) {
        const rank = rankOf.get(sym[i]! * base + sym[i + 1]!);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          at = i;
        }
      }
      if (at < 0) return sym;
      sym.splice(at, 2, resultOf.get(sym[at]! * base + sym[at + 1]!)!);
    }
  };

  return (text: string): number[] => {
    const out: number[] = [];
    for (const section of splitOnSpecials(text, pattern)) {
      if (section.special) {
        out.push(added.get(section.text)!);
        continue;
      }
      for (const [chunk] of section.text.matchAll(split)) {
        let piece = cache.get(chunk);
        if (piece === undefined) {
          piece = bpe(chunk);
          if (cache.size >= MAX_CACHE_ENTRIES) cache = new Map();
          cache.set(chunk, piece);
        }
        for (const id of piece) out.push(id);
      }
    }
    return out;
  };
}
