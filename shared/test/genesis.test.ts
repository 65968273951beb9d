import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { ChatSession } from '../src/chat/session.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { loadModel } from '../src/model/checkpoint.ts';
import { readCorpus } from '../src/model/corpus.ts';
import { splitText } from '../src/model/dataset.ts';
import { evaluate, evaluationSplit } from '../src/model/evaluate.ts';

// The shipped genesis model: a Llama-family Hugging Face folder with its own tokenizer and
// chat template, verified on load, and at least as good on the held-out tail of the corpus
// as the GPT it replaced (2.49 bits per character).
const GENESIS = resolve(import.meta.dirname, '../genesis');

beforeAll(async () => {
  await selectBackend();
});

describe('genesis model', () => {
  it('loads verified and reaches ≤ 2.49 bits/char on the held-out 10%', async () => {
    const { model, tokenizer, manifest, hash } = await loadModel(GENESIS);
    expect(hash).toBe(manifest.hash);
    const recordedHash = JSON.parse(
      await readFile(join(GENESIS, 'commons-checkpoint.json'), 'utf8'),
    ) as { hash: string; provenance: { validation: { bitsPerChar: number } } };
    expect(hash).toBe(recordedHash.hash);
    const { val } = splitText(readCorpus(), 0.1);
    const result = evaluate(model, evaluationSplit(tokenizer, val));
    expect(result.bitsPerChar).toBeLessThanOrEqual(2.49);
    expect(result.bitsPerChar).toBeCloseTo(recordedHash.provenance.validation.bitsPerChar, 3);
    model.dispose();
  });

  it('chats through the inference engine, as any Hugging Face model does', async () => {
    const { decoder, eosTokenIds } = await loadDecoderFolder(GENESIS);
    const tokenizer = await ChatTokenizer.fromFolder(GENESIS);
    expect(tokenizer.hasChatTemplate).toBe(true);
    const session = new ChatSession(decoder, tokenizer, eosTokenIds);
    const messages = [
      { role: 'system' as const, content: 'You are a player.' },
      { role: 'user' as const, content: 'ROMEO:' },
    ];
    let reply = '';
    let prompt = 0;
    for await (const e of session.reply(messages, {
      sampling: { temperature: 0.8, topK: 40, topP: 1, repetitionPenalty: 1 },
      maxTokens: 24,
      seed: 1,
      render: { dateString: '05 Dec 2026' },
    })) {
      if (e.type === 'context') prompt = e.promptTokens;
      if (e.type === 'text') reply += e.text;
    }
    expect(prompt).toBe(tokenizer.encodeChat(messages, { dateString: '05 Dec 2026' }).length);
    expect(reply.length).toBeGreaterThan(0);
    decoder.dispose();
  });

  it('holds its trained weights as int8 within 2% of the float32 logits', async () => {
    // float32 matches the PyTorch reference within 1e-4 (decoder.test.ts). With a scale per
    // row, int8 lands within 2e-2 of it relative to the largest logit (measured: 0.18 absolute
    // on logits up to 16.6, 1.1%), not within 2e-2 absolute.
    const tokenizer = await ChatTokenizer.fromFolder(GENESIS);
    const ids = tokenizer.encode('ROMEO:\nWhat light through yonder window breaks?\n');
    const logits = async (weights: 'f32' | 'int8') => {
      const { decoder } = await loadDecoderFolder(GENESIS, { weights });
      const out = decoder.forward(ids, decoder.newCache());
      const data = out.dataSync() as Float32Array;
      out.dispose();
      decoder.dispose();
      return data;
    };
    const f32 = await logits('f32');
    const int8 = await logits('int8');
    let worst = 0;
    let largest = 0;
    for (let i = 0; i < f32.length; i++) {
      worst = Math.max(worst, Math.abs(f32[i]! - int8[i]!));
      largest = Math.max(largest, Math.abs(f32[i]!));
    }
    expect(worst).toBeLessThan(2e-2 * largest);
  });

  it('refuses a genesis folder whose weights were changed', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'commons-genesis-')), 'genesis');
    await cp(GENESIS, dir, { recursive: true });
    const file = join(dir, 'model.safetensors');
    const bytes = await readFile(file);
    bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 0x01;
    await writeFile(file, bytes);
    await expect(loadModel(dir)).rejects.toThrow(/HASH_MISMATCH/);
  });
});
