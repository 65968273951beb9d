import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import '@tensorflow/tfjs-backend-wasm';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';
import * as ref from './fixtures/decoder-reference.ts';

const scratch = ref.scratchDir('commons-decoder-');
// Importing the wasm backend makes it tfjs's first choice; the reference checks run on cpu
// unless a test asks for wasm.
beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('Llama-family decoder against the plain-PyTorch reference', () => {
  for (const tiny of ref.TINY_DECODERS) {
    it(`${tiny.name}: prompt logits within 1e-4, and the same 32 greedy tokens through the KV cache`, async () => {
      const folder = path.join(scratch(), tiny.name);
      await ref.writeTinyDecoder(folder, tiny);
      const { decoder } = await loadDecoderFolder(folder);
      const expected = ref.fixtures[tiny.name]!;
      try {
        const cache = decoder.newCache();
        const logits = decoder.forward(ref.REFERENCE_PROMPT, cache);
        const rows = (await logits.array()) as number[][];
        logits.dispose();
        let worst = 0;
        rows.forEach((row, t) =>
          row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected.logits[t]![i]!)))),
        );
        expect(worst).toBeLessThan(1e-4);

        // Decode one token at a time from the cache, as chat does.
        const greedy: number[] = [];
        let next = argmax(rows.at(-1)!);
        for (let i = 0; i < ref.REFERENCE_NEW_TOKENS; i++) {
          greedy.push(next);
          if (i === ref.REFERENCE_NEW_TOKENS - 1) break;
          const step = decoder.forward([next], cache, true);
          next = argmax((await step.array())[0]!);
          step.dispose();
        }
        expect(greedy).toEqual(expected.greedy);
        cache.dispose();
      } finally {
        decoder.dispose();
      }
    });
  }

  it('on wasm, a long prompt in one pass (per-head products) gives the logits of feeding it a token at a time', async () => {
    const previous = tf.getBackend();
    await tf.setBackend('wasm');
    const folder = path.join(scratch(), 'wasm-long');
    await ref.writeTinyDecoder(folder, ref.TINY_DECODERS[2]!); // 2 KV heads of 3 queries, tied
    const { decoder, config } = await loadDecoderFolder(folder);
    try {
      const prompt = Array.from({ length: 40 }, (_, i) => (i * 37 + 3) % config.vocabSize);
      const whole = decoder.newCache();
      const all = decoder.forward(prompt, whole);
      const rows = (await all.array()) as number[][];
      all.dispose();
      const stepwise = decoder.newCache();
      let worst = 0;
      for (const [t, token] of prompt.entries()) {
        const one = decoder.forward([token], stepwise, true);
        const row = ((await one.array()) as number[][])[0]!;
        one.dispose();
        row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - rows[t]![i]!))));
      }
      expect(worst).toBeLessThan(1e-4);
      whole.dispose();
      stepwise.dispose();
    } finally {
      decoder.dispose();
      await tf.setBackend(previous);
    }
  });

  it('decoded tokens attend in WebAssembly memory as they do through tfjs, across a second prompt, and a rewind', async () => {
    const folder = path.join(scratch(), 'store');
    await ref.writeTinyDecoder(folder, ref.TINY_DECODERS[3]!); // GQA 2, head_dim 12, biases
    const { decoder, config } = await loadDecoderFolder(folder);
    try {
      const run = (where: 'wasm' | 'tfjs') => {
        decoder.decodeAttention = where;
        const cache = decoder.newCache();
        const rows: number[][] = [];
        const step = (tokens: number[]) => {
          const out = decoder.forward(tokens, cache, true);
          rows.push([...(out.dataSync() as Float32Array)]);
          out.dispose();
        };
        step([5, 9, 2, 7]);
        for (let t = 0; t < 40; t++) step([(t * 13 + 1) % config.vocabSize]);
        step([3, 4, 6]); // a prompt after decoding: the tensors catch up from the store
        for (let t = 0; t < 3; t++) step([(t * 7 + 2) % config.vocabSize]);
        cache.truncate(30); // rewind both copies
        for (let t = 0; t < 3; t++) step([(t * 5 + 4) % config.vocabSize]);
        const used = cache.store !== null;
        cache.dispose();
        return { rows, used };
      };
      const viaStore = run('wasm');
      const viaTensors = run('tfjs');
      expect(viaStore.used).toBe(true);
      expect(viaTensors.used).toBe(false);
      let worst = 0;
      viaStore.rows.forEach((row, r) =>
        row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - viaTensors.rows[r]![i]!)))),
      );
      expect(worst).toBeLessThan(1e-4);
    } finally {
      decoder.decodeAttention = 'wasm';
      decoder.dispose();
    }
  });

  it('a prompt runs on the host as it does through tfjs, every position, across the store growing mid-prompt and a prompt after a rewind', async () => {
    // Qwen2-shaped (GQA 2, q/k/v biases), with a context long enough for the store to grow,
    // and an MLP wide enough (300 × 256 values) for the host's SwiGLU to take tfjs's sigmoid.
    const hf = {
      model_type: 'qwen2',
      vocab_size: 50,
      hidden_size: 32,
      intermediate_size: 256,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: true,
    };
    const folder = path.join(scratch(), 'host-prompt');
    await writeHfFolder(folder, {
      config: hf,
      tensors: randomDecoderWeights(parseDecoderConfig(hf), 4),
    });
    const { decoder, config } = await loadDecoderFolder(folder);
    try {
      expect(decoder.runsOnHost).toBe(true);
      const prompt = (n: number, seed: number) =>
        Array.from({ length: n }, (_, i) => (i * 31 + seed) % config.vocabSize);
      const run = (where: 'wasm' | 'tfjs') => {
        decoder.decodeAttention = where;
        const cache = decoder.newCache();
        const all: number[][] = [];
        for (const [n, seed] of [
          [300, 3], // past the store's first 256 positions within one prompt
          [20, 5],
        ] as const) {
          const out = decoder.forward(prompt(n, seed), cache); // every position's logits
          all.push([...(out.dataSync() as Float32Array)]);
          out.dispose();
          if (n === 300) cache.truncate(290);
        }
        const length = cache.length;
        cache.dispose();
        return { all, length };
      };
      const onHost = run('wasm');
      const viaTensors = run('tfjs');
      expect(onHost.length).toBe(310);
      expect(viaTensors.length).toBe(310);
      expect(onHost.all[0]!.length).toBe(300 * config.vocabSize);
      let worst = 0;
      onHost.all.forEach((row, r) =>
        row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - viaTensors.all[r]![i]!)))),
      );
      expect(worst).toBeLessThan(1e-4);
    } finally {
      decoder.decodeAttention = 'wasm';
      decoder.dispose();
    }
  });

  it('leaks no tensors: a forward pass leaves only the cache behind', async () => {
    const folder = path.join(scratch(), 'leak');
    await ref.writeTinyDecoder(folder, ref.TINY_DECODERS[2]!);
    const { decoder } = await loadDecoderFolder(folder);
    const cache = decoder.newCache();
    decoder.forward([1, 2, 3], cache).dispose();
    const before = tf.memory().numTensors;
    decoder.forward([4], cache, true).dispose();
    expect(tf.memory().numTensors).toBe(before);
    cache.dispose();
    decoder.dispose();
  });

  it('refuses positions past the context window and ids outside the vocabulary', async () => {
    const folder = path.join(scratch(), 'limits');
    await ref.writeTinyDecoder(folder, ref.TINY_DECODERS[0]!);
    const { decoder, config } = await loadDecoderFolder(folder);
    const cache = decoder.newCache();
    expect(() => decoder.forward([config.vocabSize], cache)).toThrow(/outside the vocabulary/);
    expect(() => decoder.forward(new Array(config.maxPositions + 1).fill(1), cache)).toThrow(
      /exceed the model's context of 64/,
    );
    cache.dispose();
    decoder.dispose();
  });
});

function argmax(row: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
