import { z } from 'zod';

/**
 * Byte-level BPE (GPT-2 / minbpe style). Ids 0..255 are the raw bytes, so any byte
 * sequence (and therefore any UTF-8 text) encodes and decodes exactly; id 256 + i is the
 * concatenation of the two tokens in `merges[i]`. The merge list is the whole model: it
 * is what `toJSON()` writes into the checkpoint manifest.
 *
 * Before merging, input is split into word-ish chunks and merges never cross a chunk
 * boundary (see `splitChunks`). The split works on bytes with ASCII classes only, so it
 * gives the same answer on every engine and Unicode version.
 */

const BYTE_TOKENS = 256;
/** Ids must fit the model's embedding table (`modelConfigSchema.vocabSize` max). */
const MAX_VOCAB_SIZE = 65_536;
/**
 * Longest chunk in bytes. Without a cap, a 1 MB run with no spaces (CJK text, binary
 * data) would be one chunk, and applying merges to it is quadratic in its length.
 */
const MAX_CHUNK_BYTES = 64;
/** Encoded chunks kept for reuse; the cache is dropped whole when it grows past this. */
const MAX_CACHE_ENTRIES = 100_000;

export const TOKENIZER_FORMAT = 'commons-bpe-v1';

export type TokenizerErrorCode = 'invalid_vocab_size' | 'invalid_json' | 'unknown_token';

export class TokenizerError extends Error {
  readonly code: TokenizerErrorCode;

  constructor(code: TokenizerErrorCode, message: string) {
    super(message);
    this.name = 'TokenizerError';
    this.code = code;
  }
}

const tokenIdSchema = z
  .number()
  .int()
  .min(0)
  .max(MAX_VOCAB_SIZE - 1);

/** The JSON form, as embedded in the checkpoint manifest. */
export const tokenizerJsonSchema = z
  .object({
    format: z.literal(TOKENIZER_FORMAT),
    /** Redundant with `merges.length`, written so a manifest reader needs no arithmetic. */
    vocabSize: z.number().int().min(BYTE_TOKENS).max(MAX_VOCAB_SIZE),
    /** `merges[i] = [left, right]` defines token 256 + i. */
    merges: z.array(z.tuple([tokenIdSchema, tokenIdSchema])),
  })
  .superRefine((t, ctx) => {
    const derived = BYTE_TOKENS + t.merges.length;
    if (t.vocabSize !== derived) {
      ctx.addIssue({
        code: 'custom',
        path: ['vocabSize'],
        message: `is ${t.vocabSize} but 256 byte tokens + ${t.merges.length} merges make ${derived}`,
      });
    }
    const firstSeen = new Map<number, number>();
    t.merges.forEach(([left, right], i) => {
      const id = BYTE_TOKENS + i;
      if (left >= id || right >= id) {
        ctx.addIssue({
          code: 'custom',
          path: ['merges', i],
          message: `defines token ${id} from token ${Math.max(left, right)}, which is not defined before it`,
        });
      }
      const key = pairKey(left, right);
      const earlier = firstSeen.get(key);
      if (earlier !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['merges', i],
          message: `repeats merges[${earlier}] (${left}, ${right}); a repeated merge can never apply`,
        });
      } else {
        firstSeen.set(key, i);
      }
    });
  });
export type TokenizerJSON = z.infer<typeof tokenizerJsonSchema>;

/** Turns token ids into text as a model emits them, one id at a time. */
export interface TokenStreamDecoder {
  /** Text completed by this token; bytes of a character not yet finished are held back. */
  push(id: number): string;
  /** Whatever is still held back (an unfinished character decodes as U+FFFD) and reset. */
  flush(): string;
}

const utf8Encoder = new TextEncoder();

export class BpeTokenizer {
  readonly #merges: readonly (readonly [number, number])[];
  /** pairKey(left, right) -> merged id; a lower id was learnt earlier and applies first. */
  readonly #mergeIds = new Map<number, number>();
  /** Bytes of every token, indexed by id. */
  readonly #tokenBytes: Uint8Array[] = [];
  /** Latin-1 key of a chunk's bytes -> its ids. */
  #cache = new Map<string, readonly number[]>();

  private constructor(merges: readonly (readonly [number, number])[]) {
    this.#merges = merges;
    for (let b = 0; b < BYTE_TOKENS; b++) this.#tokenBytes.push(Uint8Array.of(b));
    merges.forEach(([left, right], i) => {
      const id = BYTE_TOKENS + i;
      this.#mergeIds.set(pairKey(left, right), id);
      const l = this.#tokenBytes[left]!;
      const r = this.#tokenBytes[right]!;
      const bytes = new Uint8Array(l.length + r.length);
      bytes.set(l);
      bytes.set(r, l.length);
      this.#tokenBytes.push(bytes);
    });
  }

  /**
   * Learns `vocabSize - 256` merges from `text`, each time merging the most frequent
   * adjacent pair (ties: the lowest left id, then the lowest right id). Stops early, with
   * a smaller vocabulary, if the text runs out of pairs.
   */
  static train(text: string, vocabSize: number): BpeTokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize < BYTE_TOKENS || vocabSize > MAX_VOCAB_SIZE) {
      throw new TokenizerError(
        'invalid_vocab_size',
        `vocabSize must be an integer from ${BYTE_TOKENS} to ${MAX_VOCAB_SIZE}, got ${vocabSize}`,
      );
    }
    return new BpeTokenizer(learnMerges(text, vocabSize - BYTE_TOKENS));
  }

  /** Validates the JSON form; throws a TokenizerError naming every problem found. */
  static fromJSON(json: unknown): BpeTokenizer {
    const parsed = tokenizerJsonSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`,
      );
      const shown = problems.slice(0, 5).join('; ');
      const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
      throw new TokenizerError('invalid_json', `invalid tokenizer JSON: ${shown}${more}`);
    }
    return new BpeTokenizer(parsed.data.merges);
  }

  toJSON(): TokenizerJSON {
    return {
      format: TOKENIZER_FORMAT,
      vocabSize: this.vocabSize,
      merges: this.#merges.map(([left, right]) => [left, right]),
    };
  }

  get vocabSize(): number {
    return this.#tokenBytes.length;
  }

  /**
   * Encodes the UTF-8 bytes of `text`. Lone surrogates (not valid Unicode) become U+FFFD,
   * as with TextEncoder; every well-formed string round-trips through `decode` exactly.
   */
  encode(text: string): number[] {
    return this.encodeBytes(utf8Encoder.encode(text));
  }

  encodeBytes(bytes: Uint8Array): number[] {
    const ids: number[] = [];
    forEachChunk(bytes, (start, end) => {
      const key = latin1Key(bytes, start, end);
      let chunkIds = this.#cache.get(key);
      if (chunkIds === undefined) {
        chunkIds = this.#applyMerges(bytes.subarray(start, end));
        if (this.#cache.size >= MAX_CACHE_ENTRIES) this.#cache = new Map();
        this.#cache.set(key, chunkIds);
      }
      for (const id of chunkIds) ids.push(id);
    });
    return ids;
  }

  /**
   * Decodes to text. Ids that do not form valid UTF-8 (possible for arbitrary ids, never
   * for the output of `encode`) decode to U+FFFD, as TextDecoder does.
   */
  decode(ids: readonly number[]): string {
    return newUtf8Decoder().decode(this.decodeBytes(ids));
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    let length = 0;
    ids.forEach((id, position) => {
      length += this.#bytesOf(id, position).length;
    });
    const out = new Uint8Array(length);
    let offset = 0;
    for (const id of ids) {
      const bytes = this.#tokenBytes[id]!;
      out.set(bytes, offset);
      offset += bytes.length;
    }
    return out;
  }

  /** The bytes of one token (a copy). */
  tokenBytes(id: number): Uint8Array {
    return this.#bytesOf(id).slice();
  }

  /**
   * For generation: a token can end in the middle of a multi-byte character, so the
   * decoder keeps those bytes until the character is complete.
   */
  createStreamDecoder(): TokenStreamDecoder {
    let decoder = newUtf8Decoder();
    return {
      push: (id) => decoder.decode(this.#bytesOf(id), { stream: true }),
      flush: () => {
        const rest = decoder.decode();
        decoder = newUtf8Decoder();
        return rest;
      },
    };
  }

  #bytesOf(id: number, position?: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.#tokenBytes[id] : undefined;
    if (bytes === undefined) {
      const where = position === undefined ? '' : ` at position ${position}`;
      throw new TokenizerError(
        'unknown_token',
        `token id ${id}${where} is not in the vocabulary (0..${this.vocabSize - 1})`,
      );
    }
    return bytes;
  }

  /** minbpe's encode loop: merge the earliest-learnt pair present until none applies. */
  #applyMerges(chunk: Uint8Array): number[] {
    let ids = Array.from(chunk);
    while (ids.length >= 2) {
      let best = Infinity;
      for (let i = 0; i + 1 < ids.length; i++) {
        const id = this.#mergeIds.get(pairKey(ids[i]!, ids[i + 1]!));
        if (id !== undefined && id < best) best = id;
      }
      if (best === Infinity) break;
      const [left, right] = this.#merges[best - BYTE_TOKENS]!;
      ids = mergePair(ids, left, right, best);
    }
    return ids;
  }
}

function newUtf8Decoder(): TextDecoder {
  // ignoreBOM: a leading U+FEFF is text the user wrote and must survive the round trip.
  return new TextDecoder('utf-8', { ignoreBOM: true });
}

/** Unique number for a pair of ids below 65536. */
function pairKey(left: number, right: number): number {
  return left * MAX_VOCAB_SIZE + right;
}

/** Replaces every non-overlapping (left, right), scanning left to right, with `merged`. */
function mergePair(ids: readonly number[], left: number, right: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === left && i + 1 < ids.length && ids[i + 1] === right) {
      out.push(merged);
      i++;
    } else {
      out.push(ids[i]!);
    }
  }
  return out;
}

function latin1Key(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
}

// ---------------------------------------------------------------------------------------
// Pre-tokenisation. GPT-2 splits on ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
// this is the same idea on bytes: every byte >= 0x80 counts as a letter, so a word in
// any script stays one chunk, and UTF-8 text and raw bytes split the same way.

const WHITESPACE = 0;
const LETTER = 1;
const DIGIT = 2;
const OTHER = 3;
const SPACE = 0x20;

const BYTE_CLASS = new Uint8Array(256).map((_, b) => {
  if (b === SPACE || (b >= 0x09 && b <= 0x0d)) return WHITESPACE;
  if (b >= 0x30 && b <= 0x39) return DIGIT;
  if ((b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b >= 0x80) return LETTER;
  return OTHER;
});

/**
 * Calls `visit(start, end)` for each chunk, in order; the chunks tile `bytes` exactly.
 * A chunk is a run of one class, optionally led by one space (" the", " 42", " --"), or a
 * run of whitespace; a whitespace run leaves its last space to lead the following word.
 */
function forEachChunk(bytes: Uint8Array, visit: (start: number, end: number) => void): void {
  const n = bytes.length;
  let start = 0;
  while (start < n) {
    let runStart = start;
    if (bytes[start] === SPACE && start + 1 < n && BYTE_CLASS[bytes[start + 1]!] !== WHITESPACE) {
      runStart = start + 1;
    }
    const cls = BYTE_CLASS[bytes[runStart]!]!;
    let end = runStart + 1;
    while (end < n && BYTE_CLASS[bytes[end]!] === cls) end++;
    if (cls === WHITESPACE && end < n && end - start > 1 && bytes[end - 1] === SPACE) end--;
    if (end - start > MAX_CHUNK_BYTES) end = cutPoint(bytes, start + MAX_CHUNK_BYTES);
    visit(start, end);
    start = end;
  }
}

/** Moves a cut back (at most 3 bytes) so it does not split a UTF-8 character. */
function cutPoint(bytes: Uint8Array, at: number): number {
  const isContinuation = (i: number) => (bytes[i]! & 0xc0) === 0x80;
  for (let cut = at; cut > at - 4; cut--) {
    if (!isContinuation(cut)) return cut;
  }
  return at;
}

// ---------------------------------------------------------------------------------------
// Training: count each distinct chunk once (with its frequency), keep pair counts and
// the chunks each pair occurs in, and after each merge update only the chunks that held
// the merged pair. The best pair comes from a max-heap whose stale entries are skipped.

function learnMerges(text: string, numMerges: number): [number, number][] {
  const bytes = utf8Encoder.encode(text);
  const chunkFreq = new Map<string, number>();
  forEachChunk(bytes, (start, end) => {
    const key = latin1Key(bytes, start, end);
    chunkFreq.set(key, (chunkFreq.get(key) ?? 0) + 1);
  });
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [key, freq] of chunkFreq) {
    words.push(Array.from(key, (ch) => ch.charCodeAt(0)));
    freqs.push(freq);
  }

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const touched = new Set<number>();
  const countPairs = (w: number, sign: 1 | -1) => {
    const ids = words[w]!;
    const delta = sign * freqs[w]!;
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = pairKey(ids[i]!, ids[i + 1]!);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + delta);
      touched.add(key);
      if (sign === 1) {
        let holders = pairWords.get(key);
        if (holders === undefined) pairWords.set(key, (holders = new Set()));
        // A word that later loses this pair stays listed; the merge loop skips it.
        holders.add(w);
      }
    }
  };
  words.forEach((_, w) => countPairs(w, 1));

  const heap = new PairHeap();
  const pushTouched = () => {
    for (const key of touched) {
      const count = pairCounts.get(key)!;
      if (count > 0) heap.push(count, key);
      else pairCounts.delete(key);
    }
    touched.clear();
  };
  pushTouched();

  const merges: [number, number][] = [];
  while (merges.length < numMerges) {
    const best = heap.popBest(pairCounts);
    if (best === undefined) break;
    const left = Math.floor(best / MAX_VOCAB_SIZE);
    const right = best % MAX_VOCAB_SIZE;
    const newId = BYTE_TOKENS + merges.length;
    merges.push([left, right]);
    // No merge can recreate (left, right), so its holder set is no longer needed.
    for (const w of pairWords.get(best)!) {
      const ids = words[w]!;
      const mergedIds = mergePair(ids, left, right, newId);
      if (mergedIds.length === ids.length) continue;
      countPairs(w, -1);
      words[w] = mergedIds;
      countPairs(w, 1);
    }
    pairWords.delete(best);
    pushTouched();
  }
  return merges;
}

/** Max-heap of (count, pair key): larger count first, then the smaller key. */
class PairHeap {
  readonly #counts: number[] = [];
  readonly #keys: number[] = [];

  push(count: number, key: number): void {
    this.#counts.push(count);
    this.#keys.push(key);
    let i = this.#keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  /** Pops until an entry matches the current count; returns its key. */
  popBest(current: ReadonlyMap<number, number>): number | undefined {
    while (this.#keys.length > 0) {
      const count = this.#counts[0]!;
      const key = this.#keys[0]!;
      this.#removeTop();
      if (current.get(key) === count) return key;
    }
    return undefined;
  }

  #removeTop(): void {
    const lastCount = this.#counts.pop()!;
    const lastKey = this.#keys.pop()!;
    const n = this.#keys.length;
    if (n === 0) return;
    this.#counts[0] = lastCount;
    this.#keys[0] = lastKey;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let top = i;
      if (l < n && this.#before(l, top)) top = l;
      if (r < n && this.#before(r, top)) top = r;
      if (top === i) return;
      this.#swap(i, top);
      i = top;
    }
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
}
