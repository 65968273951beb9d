import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { BpeTokenizer, TokenizerError } from '../src/model/tokenizer.ts';

const CORPUS = readFileSync(new URL('../../../shared/data/tinyshakespeare.txt', import.meta.url), {
  encoding: 'utf8',
});
// Training on a slice keeps the suite fast; the held-out text after it measures compression.
const TRAIN_TEXT = CORPUS.slice(0, 200_000);
const HELD_OUT = CORPUS.slice(200_000, 300_000);

/** Small deterministic PRNG (mulberry32) so random cases are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function expectTokenizerError(fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TokenizerError);
    expect((error as TokenizerError).code).toBe(code);
    expect((error as TokenizerError).message).toMatch(message);
    return;
  }
  throw new Error('expected a TokenizerError');
}

let tok: BpeTokenizer;
beforeAll(() => {
  tok = BpeTokenizer.train(TRAIN_TEXT, 512);
});

const ROUND_TRIP_CASES: [string, string][] = [
  ['empty string', ''],
  ['plain English', 'First Citizen:\nBefore we proceed any further, hear me speak.'],
  ['emoji (surrogate pairs, ZWJ sequence, flags)', 'hi 😀👩‍👩‍👧 🇫🇷🇯🇵 ok'],
  ['CJK', '日本語のテキストと中文文本，还有한국어.'],
  ['combining marks', 'e\u0301 a\u0308\u0323 Z̤͔ͧ̑̓ä͖̭̈̇'],
  ['RTL with bidi controls', 'שלום עולם \u202Bمرحبا بالعالم\u202C 123'],
  ['control characters', '\u0000\u0001\u0007\b\t\v\f\r\u001b[0m\u007f\u0085'],
  ['lone newlines and whitespace runs', '\n\n\n  \n\r\n \t \n   x   \n'],
  ['leading byte-order mark', '\uFEFFtext after a BOM'],
  ['long run with no spaces', 'あ'.repeat(1000) + 'a'.repeat(1000) + '!'.repeat(1000)],
  ['the last code point', '\u{10FFFF}\uFFFF\uFFFE'],
];

describe('round trip', () => {
  it.each(ROUND_TRIP_CASES)('%s', (_name, text) => {
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('encodes the empty string to no tokens', () => {
    expect(tok.encode('')).toEqual([]);
    expect(tok.decode([])).toBe('');
    expect(tok.decodeBytes([])).toEqual(new Uint8Array(0));
  });

  it('round-trips random strings of any code point', () => {
    const random = rng(1);
    for (let n = 0; n < 200; n++) {
      const codePoints = Array.from({ length: Math.floor(random() * 40) }, () => {
        // Mostly ASCII so merges apply, plus anything else that is not a surrogate.
        if (random() < 0.6) return Math.floor(random() * 128);
        const cp = Math.floor(random() * 0x110000);
        return cp >= 0xd800 && cp <= 0xdfff ? 0x20 : cp;
      });
      const text = String.fromCodePoint(...codePoints);
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('round-trips arbitrary bytes, invalid UTF-8 included', () => {
    const random = rng(2);
    for (let n = 0; n < 200; n++) {
      const bytes = Uint8Array.from({ length: Math.floor(random() * 300) }, () =>
        Math.floor(random() * 256),
      );
      expect(tok.decodeBytes(tok.encodeBytes(bytes))).toEqual(bytes);
    }
    const everyByte = Uint8Array.from({ length: 256 }, (_, b) => b);
    expect(tok.decodeBytes(tok.encodeBytes(everyByte))).toEqual(everyByte);
  });

  it('round-trips the held-out corpus', () => {
    expect(tok.decode(tok.encode(HELD_OUT))).toBe(HELD_OUT);
  });

  it('replaces a lone surrogate with U+FFFD, as TextEncoder does', () => {
    expect(tok.decode(tok.encode('a\uD800b'))).toBe('a\uFFFDb');
  });

  it('works with zero merges: one token per byte', () => {
    const bytesOnly = BpeTokenizer.train(TRAIN_TEXT, 256);
    expect(bytesOnly.vocabSize).toBe(256);
    expect(bytesOnly.encode('aé')).toEqual([0x61, 0xc3, 0xa9]);
    expect(bytesOnly.decode(bytesOnly.encode('naïve 😀'))).toBe('naïve 😀');
  });
});

describe('training', () => {
  it('learns exactly vocabSize - 256 merges', () => {
    expect(tok.vocabSize).toBe(512);
    expect(tok.toJSON().merges).toHaveLength(256);
  });

  it('is deterministic', () => {
    expect(BpeTokenizer.train(TRAIN_TEXT, 512).toJSON()).toEqual(tok.toJSON());
  });

  it('breaks count ties by the lowest pair ids', () => {
    // "ab" and "cd" each occur once (one chunk, so "bc" also once): (a, b) wins.
    expect(BpeTokenizer.train('abcd', 257).toJSON().merges).toEqual([[0x61, 0x62]]);
  });

  it('compresses: clearly fewer tokens than bytes on held-out text', () => {
    const bytes = new TextEncoder().encode(HELD_OUT).length;
    // Measured 0.53 tokens per byte (0.51 for vocab 512 trained on the whole corpus).
    expect(tok.encode(HELD_OUT).length / bytes).toBeLessThan(0.6);
  });

  it('does not merge across word boundaries', () => {
    // Chunks are " word", "word" or whitespace runs, so a space inside a learnt token
    // can only be its first byte, unless the token is all whitespace.
    const isSpace = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);
    for (let id = 256; id < tok.vocabSize; id++) {
      const bytes = Array.from(tok.tokenBytes(id));
      if (bytes.every(isSpace)) continue;
      expect(bytes.slice(1).some(isSpace), `token ${id}`).toBe(false);
    }
  });

  it('stops early when the text runs out of pairs', () => {
    expect(BpeTokenizer.train('aaaa', 300).vocabSize).toBe(258); // "aa", then "aaaa"
    expect(BpeTokenizer.train('', 300).vocabSize).toBe(256);
  });

  it.each([255, 65_537, 300.5, Number.NaN])('rejects vocabSize %s', (size) => {
    expectTokenizerError(
      () => BpeTokenizer.train('abc', size),
      'invalid_vocab_size',
      /vocabSize must be an integer from 256 to 65536/,
    );
  });
});

describe('JSON form', () => {
  it('round-trips through JSON text and encodes identically', () => {
    const copy = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
    expect(copy.toJSON()).toEqual(tok.toJSON());
    expect(copy.encode(HELD_OUT)).toEqual(tok.encode(HELD_OUT));
  });

  it('carries a format marker and the vocabulary size', () => {
    const json = tok.toJSON();
    expect(json.format).toBe('commons-bpe-v1');
    expect(json.vocabSize).toBe(512);
  });

  const valid = () => ({
    format: 'commons-bpe-v1',
    vocabSize: 258,
    merges: [
      [104, 105],
      [32, 256],
    ],
  });
  const MALFORMED: [string, unknown, RegExp][] = [
    ['not an object', 'commons-bpe-v1', /\(root\): .*expected object/],
    ['a wrong format marker', { ...valid(), format: 'gpt2' }, /format: .*commons-bpe-v1/],
    ['a missing merge list', { ...valid(), merges: undefined }, /merges: /],
    ['a vocabSize that disagrees', { ...valid(), vocabSize: 300 }, /vocabSize: is 300 but/],
    ['a pair that is not a pair', { ...valid(), merges: [[104], [32, 256]] }, /merges\.0: /],
    [
      'a fractional id',
      {
        ...valid(),
        merges: [
          [104, 105.5],
          [32, 256],
        ],
      },
      /merges\.0\.1: /,
    ],
    [
      'a negative id',
      {
        ...valid(),
        merges: [
          [-1, 105],
          [32, 256],
        ],
      },
      /merges\.0\.0: /,
    ],
    [
      'a merge using a later token',
      {
        ...valid(),
        merges: [
          [257, 105],
          [32, 256],
        ],
      },
      /merges\.0: defines token 256 from token 257, which is not defined before it/,
    ],
    [
      'a repeated merge',
      {
        ...valid(),
        merges: [
          [104, 105],
          [104, 105],
        ],
      },
      /merges\.1: repeats merges\[0\]/,
    ],
  ];
  it.each(MALFORMED)('rejects %s, naming the problem', (_name, json, message) => {
    expectTokenizerError(() => BpeTokenizer.fromJSON(json), 'invalid_json', message);
  });

  it('accepts the hand-written example and applies its merges within chunks', () => {
    const small = BpeTokenizer.fromJSON(valid());
    expect(small.encode('hi! hi')).toEqual([256, 33, 257]); // "hi" "!" " hi"
  });
});

describe('decoding', () => {
  it.each([512, -1, 1.5, Number.NaN])('rejects token id %s', (id) => {
    expectTokenizerError(
      () => tok.decode([65, id]),
      'unknown_token',
      new RegExp(`token id ${id} at position 1 is not in the vocabulary \\(0\\.\\.511\\)`),
    );
    expectTokenizerError(() => tok.tokenBytes(id), 'unknown_token', /not in the vocabulary/);
    expectTokenizerError(
      () => tok.createStreamDecoder().push(id),
      'unknown_token',
      /not in the vocabulary/,
    );
  });

  it('returns a copy from tokenBytes', () => {
    tok.tokenBytes(65)[0] = 0;
    expect(tok.tokenBytes(65)).toEqual(Uint8Array.of(65));
  });

  it('decodes invalid UTF-8 from arbitrary ids to U+FFFD', () => {
    expect(tok.decode([0xff, 65])).toBe('\uFFFDA');
  });
});

describe('stream decoder', () => {
  // "€" is E2 82 AC; merging E2 82 gives a token that ends inside the character.
  const euro = () =>
    BpeTokenizer.fromJSON({ format: 'commons-bpe-v1', vocabSize: 257, merges: [[0xe2, 0x82]] });

  it('holds back a character split across tokens until it is complete', () => {
    const t = euro();
    expect(t.encode('a€')).toEqual([0x61, 256, 0xac]);
    const stream = t.createStreamDecoder();
    expect(stream.push(0x61)).toBe('a');
    expect(stream.push(256)).toBe('');
    expect(stream.push(0xac)).toBe('€');
    expect(stream.flush()).toBe('');
  });

  it('flushes an unfinished character as U+FFFD and starts afresh', () => {
    const stream = euro().createStreamDecoder();
    expect(stream.push(256)).toBe('');
    expect(stream.flush()).toBe('\uFFFD');
    expect(stream.push(0x61)).toBe('a');
  });

  it('yields the same text as decode, for any id sequence', () => {
    const random = rng(3);
    const text = '😀 日本語 naïve ' + HELD_OUT.slice(0, 2000);
    const sequences = [
      tok.encode(text),
      Array.from({ length: 500 }, () => Math.floor(random() * tok.vocabSize)),
    ];
    for (const ids of sequences) {
      const stream = tok.createStreamDecoder();
      const streamed = ids.map((id) => stream.push(id)).join('') + stream.flush();
      expect(streamed).toBe(tok.decode(ids));
    }
  });
});
