import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChatTokenizer, type ChatMessage } from '../src/chat/tokenizer.ts';
import { readCorpus } from '../src/model/corpus.ts';
import {
  BYTE_TO_UNICODE,
  FIRST_MERGE_ID,
  SPECIAL_TOKENS,
  createBpeEncoder,
  trainTokenizer,
  type TrainedTokenizer,
} from '../src/model/tokenizer-training.ts';

const corpus = readCorpus();
// Train on the first 200 kB; test on text from further in, which training never saw.
const trainText = corpus.slice(0, 200_000);
const heldOut = corpus.slice(600_000, 660_000);
const VOCAB = 512;

const multilingual = [
  'Hello, world!',
  'Grüße aus Köln — naïve café, œuvre.',
  'Здравствуй, мир! Как дела?',
  '你好，世界。我们今天学习分词。',
  'こんにちは、世界！カタカナとひらがな。',
  'مرحبا بالعالم',
  'नमस्ते दुनिया',
  'Emoji: 👋🏽 🇯🇵 👨‍👩‍👧‍👦 ❤️ 🤖',
  'tabs\tand\r\nwindows newlines\n\n\n   trailing spaces   ',
  "don't we'll I'm you're they've he'd it's 12345 3.14159 x=y+z",
  '\u0000\u0001\u007f control bytes and a lone \u00ad soft hyphen',
];

let trained: TrainedTokenizer;
let chat: ChatTokenizer;

beforeAll(() => {
  trained = trainTokenizer(trainText, VOCAB);
  chat = new ChatTokenizer(trained.tokenizerJson, trained.tokenizerConfig);
});

describe('trainTokenizer', () => {
  it('lays out bytes, then the special tokens, then one token per merge', () => {
    const { vocab, merges } = trained.tokenizerJson.model;
    expect(trained.vocabSize).toBe(VOCAB);
    expect(Object.keys(vocab)).toHaveLength(VOCAB);
    expect(new Set(Object.values(vocab)).size).toBe(VOCAB);
    for (let b = 0; b < 256; b++) expect(vocab[BYTE_TO_UNICODE[b]!]).toBe(b);
    expect(vocab['Ġ']).toBe(32);
    expect(vocab['Ċ']).toBe(10);
    expect(merges).toHaveLength(VOCAB - FIRST_MERGE_ID);
    merges.forEach((m, i) => {
      const parts = m.split(' ');
      expect(parts).toHaveLength(2);
      expect(vocab[parts.join('')]).toBe(FIRST_MERGE_ID + i);
    });
    expect(merges[0]).toBe('Ġ t'); // " t": the commonest pair in English text
    expect(trained.tokenizerJson.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual([
      [256, '<|endoftext|>', true],
      [257, '<|im_start|>', true],
      [258, '<|im_end|>', true],
    ]);
    for (const s of Object.values(SPECIAL_TOKENS)) {
      expect(vocab[s.content]).toBe(s.id);
      expect(chat.tokenId(s.content)).toBe(s.id);
    }
    expect([...chat.specialIds].sort()).toEqual([256, 257, 258]);
  });

  it('round-trips Shakespeare it never saw, multilingual text and emoji', () => {
    for (const text of [heldOut, trainText.slice(0, 5000), ...multilingual]) {
      const ids = chat.encode(text);
      expect(ids.every((id) => id >= 0 && id < VOCAB)).toBe(true);
      expect(chat.decode(ids)).toBe(text);
    }
  });

  it('compresses: fewer tokens than bytes', () => {
    const bytes = Buffer.byteLength(heldOut, 'utf8');
    const tokens = chat.encode(heldOut).length;
    console.log(`vocab ${VOCAB}: ${(tokens / bytes).toFixed(3)} tokens per byte on held-out text`);
    expect(tokens).toBeLessThan(0.65 * bytes);
    // Text unlike the corpus still encodes, at about a token per byte at worst.
    const cjk = multilingual[3]!;
    expect(chat.encode(cjk).length).toBeLessThanOrEqual(Buffer.byteLength(cjk, 'utf8'));
  });

  it('encodes special tokens to their single ids and never splits them', () => {
    expect(chat.encode('<|endoftext|>')).toEqual([256]);
    expect(chat.encode('<|im_start|>')).toEqual([257]);
    expect(chat.encode('<|im_end|>')).toEqual([258]);
    const ids = chat.encode('the end<|im_end|>\n<|endoftext|>Be<|im_start|>user');
    expect(ids.filter((id) => id >= 256 && id <= 258)).toEqual([258, 256, 257]);
    expect(chat.decode(ids, false)).toBe('the end<|im_end|>\n<|endoftext|>Be<|im_start|>user');
    expect(chat.decode(ids)).toBe('the end\nBeuser');
    // Their parts alone are ordinary text.
    expect(chat.encode('<|im_end').some((id) => id >= 256 && id <= 258)).toBe(false);
    // A merge can never rebuild one: the split regex keeps "<|", "im", "_" and "end" apart.
    expect(chat.encode('x <|im_start|> y')).toContain(257);
  });

  it('renders a ChatML conversation with a system prompt exactly', () => {
    const conversation: ChatMessage[] = [
      { role: 'system', content: 'You are a poet of Verona.' },
      { role: 'user', content: 'Who is there?' },
      { role: 'assistant', content: 'Nay, answer me: stand, and unfold yourself.' },
      { role: 'user', content: 'Long live the king!' },
    ];
    const expected =
      '<|im_start|>system\nYou are a poet of Verona.<|im_end|>\n' +
      '<|im_start|>user\nWho is there?<|im_end|>\n' +
      '<|im_start|>assistant\nNay, answer me: stand, and unfold yourself.<|im_end|>\n' +
      '<|im_start|>user\nLong live the king!<|im_end|>\n';
    expect(chat.hasChatTemplate).toBe(true);
    expect(chat.render(conversation, { addGenerationPrompt: false })).toBe(expected);
    const prompt = chat.render(conversation);
    expect(prompt).toBe(expected + '<|im_start|>assistant\n');
    const ids = chat.encodeChat(conversation);
    expect(ids.filter((id) => id === 257)).toHaveLength(5);
    expect(ids.filter((id) => id === 258)).toHaveLength(4);
    expect(ids[0]).toBe(257);
    expect(chat.decode(ids, false)).toBe(prompt);
    expect(chat.bosToken).toBe('<|endoftext|>');
    expect(chat.eosToken).toBe('<|im_end|>');
  });

  it('is deterministic, and a larger vocabulary extends a smaller one', () => {
    const again = trainTokenizer(trainText, VOCAB);
    expect(JSON.stringify(again)).toBe(JSON.stringify(trained));
    const bigger = trainTokenizer(trainText, 1024);
    expect(bigger.tokenizerJson.model.merges.slice(0, VOCAB - FIRST_MERGE_ID)).toEqual(
      trained.tokenizerJson.model.merges,
    );
  });

  it('loads from a model folder written as JSON files', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'commons-tokenizer-'));
    try {
      await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(trained.tokenizerJson));
      await writeFile(
        path.join(dir, 'tokenizer_config.json'),
        JSON.stringify(trained.tokenizerConfig),
      );
      const fromFolder = await ChatTokenizer.fromFolder(dir);
      for (const text of [heldOut.slice(0, 3000), ...multilingual]) {
        expect(fromFolder.encode(text)).toEqual(chat.encode(text));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops early when the text has no pair left to merge', () => {
    const tiny = trainTokenizer('abab abab', 1000);
    expect(tiny.vocabSize).toBeLessThan(1000);
    expect(Object.keys(tiny.tokenizerJson.model.vocab)).toHaveLength(tiny.vocabSize);
    expect(() => trainTokenizer('x', 258)).toThrow(/vocabSize/);
  });
});

describe('createBpeEncoder', () => {
  it('gives the ids @huggingface/tokenizers gives', () => {
    const hf = new Tokenizer(trained.tokenizerJson, trained.tokenizerConfig);
    const fast = createBpeEncoder(trained.tokenizerJson);
    const texts = [
      trainText,
      heldOut,
      ...multilingual,
      '<|im_start|>user\nWhat light<|im_end|>\n<|endoftext|><|endoftext|>',
    ];
    for (const text of texts) {
      expect(fast(text)).toEqual(hf.encode(text, { add_special_tokens: false }).ids);
    }
    // [left, right] pair merges, the newer layout, read the same in both.
    const pairLayout = {
      ...trained.tokenizerJson,
      model: {
        ...trained.tokenizerJson.model,
        merges: trained.tokenizerJson.model.merges.map((m) => m.split(' ') as [string, string]),
      },
    };
    const hfPairs = new Tokenizer(pairLayout, trained.tokenizerConfig);
    expect(createBpeEncoder(pairLayout)(heldOut)).toEqual(fast(heldOut));
    expect(hfPairs.encode(heldOut, { add_special_tokens: false }).ids).toEqual(fast(heldOut));
  });

  it('encodes the whole corpus with a 512-token vocabulary (timings printed)', () => {
    let t0 = performance.now();
    const whole = trainTokenizer(corpus, 512);
    const trainMs = performance.now() - t0;
    t0 = performance.now();
    const hf = new Tokenizer(whole.tokenizerJson, whole.tokenizerConfig);
    const hfIds = hf.encode(corpus, { add_special_tokens: false }).ids;
    const hfMs = performance.now() - t0;
    t0 = performance.now();
    const fastIds = createBpeEncoder(whole.tokenizerJson)(corpus);
    const fastMs = performance.now() - t0;
    console.log(
      `whole corpus (${corpus.length} chars), vocab 512: train ${trainMs.toFixed(0)} ms; ` +
        `@huggingface/tokenizers encode ${hfMs.toFixed(0)} ms; createBpeEncoder ${fastMs.toFixed(0)} ms; ` +
        `${hfIds.length} tokens (${(hfIds.length / Buffer.byteLength(corpus, 'utf8')).toFixed(3)} per byte)`,
    );
    expect(fastIds).toEqual(hfIds);
    expect(hf.decode(hfIds, { skip_special_tokens: false })).toBe(corpus);
  });
});
