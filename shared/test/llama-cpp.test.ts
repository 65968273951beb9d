import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaLogLevel, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byteLevelTokenizer } from '../bench/byte-tokenizer.ts';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { exportGguf } from '../src/decoder/gguf.ts';
import { Decoder } from '../src/decoder/model.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';

/**
 * The GGUF files `commons model export --gguf` writes, loaded by llama.cpp itself (the engine
 * inside Ollama, LM Studio and Jan, through node-llama-cpp's prebuilt CPU binary): it must
 * accept them and continue a prompt with the tokens this engine picks from the same weights.
 */
const CONFIGS = {
  'llama (untied head, GQA)': {
    model_type: 'llama',
    vocab_size: 320,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
  },
  'qwen2 (q/k/v biases, tied head)': {
    model_type: 'qwen2',
    vocab_size: 300,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
  },
};
const PROMPT = [1, 17, 42, 5, 88, 23, 9, 61, 30, 2, 77, 14];
const NEW_TOKENS = 8;

let dir: string;
let llama: Llama;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-llama-cpp-'));
  llama = await getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
  });
});
afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('llama.cpp runs the GGUF files this engine exports', () => {
  for (const [name, hf] of Object.entries(CONFIGS)) {
    it(`${name}: loads at f32 and greedily continues a prompt as this engine does`, async () => {
      const config = parseDecoderConfig(hf);
      const tensors = randomDecoderWeights(config, 5);
      const file = path.join(dir, `${hf.model_type}.gguf`);
      await exportGguf({
        out: file,
        name,
        config,
        tokenizer: byteLevelTokenizer(),
        bosTokenId: null,
        eosTokenId: null,
        type: 'f32',
        read: async (n) => tensors.get(n)!,
      });

      const decoder = await Decoder.load(config, async (n) => tensors.get(n)!);
      const ours: number[] = [];
      const cache = decoder.newCache();
      let tokens = PROMPT;
      while (ours.length < NEW_TOKENS) {
        const logits = decoder.forward(tokens, cache, true);
        const row = (await logits.data()) as Float32Array;
        logits.dispose();
        const next = row.indexOf(Math.max(...row));
        ours.push(next);
        tokens = [next];
      }
      cache.dispose();
      decoder.dispose();

      const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
      expect(model.trainContextSize).toBe(256);
      const context = await model.createContext({ contextSize: 64, threads: 1 });
      const sequence = context.getSequence();
      const theirs: number[] = [];
      for await (const token of sequence.evaluate(PROMPT as never, { temperature: 0 })) {
        theirs.push(token as number);
        if (theirs.length === NEW_TOKENS) break;
      }
      sequence.dispose();
      await context.dispose();
      await model.dispose();
      expect(theirs).toEqual(ours);
    });
  }
});
