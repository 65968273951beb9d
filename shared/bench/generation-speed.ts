import { performance } from 'node:perf_hooks';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import type { Decoder } from '../src/decoder/model.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { Trainer } from '../src/model/trainer.ts';
import { Transformer } from '../src/model/transformer.ts';

/**
 * The measurements the real-shape benches share (real-model-child.ts, real-model-lora-child.ts,
 * gpu-check.ts), so every engine and machine is timed the same way.
 */

export interface GenerationSpeed {
  prefillTokensPerSec: number;
  decodeTokensPerSec: number;
  timeToFirstTokenMs: number;
}

/**
 * Prefills `promptTokens` fixed token ids, then decodes `newTokens` greedily one at a time
 * through the KV cache, after a short warm-up (wasm compiles each shape once).
 */
export async function generationSpeed(
  decoder: Decoder,
  vocabSize: number,
  promptTokens: number,
  newTokens: number,
): Promise<GenerationSpeed> {
  const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % vocabSize);
  const warm = decoder.newCache();
  decoder.forward(prompt.slice(0, 8), warm, true).dispose();
  decoder.forward([1], warm, true).dispose();
  warm.dispose();

  const cache = decoder.newCache();
  const p0 = performance.now();
  const logits = decoder.forward(prompt, cache, true);
  let row = (await logits.data()) as Float32Array;
  logits.dispose();
  const prefillMs = performance.now() - p0;
  let next = argmax(row);
  const ttftMs = performance.now() - p0;
  const d0 = performance.now();
  for (let i = 0; i < newTokens; i++) {
    const out = decoder.forward([next], cache, true);
    row = (await out.data()) as Float32Array;
    out.dispose();
    next = argmax(row);
  }
  const decodeMs = performance.now() - d0;
  cache.dispose();
  return {
    prefillTokensPerSec: promptTokens / (prefillMs / 1000),
    decodeTokensPerSec: newTokens / (decodeMs / 1000),
    timeToFirstTokenMs: ttftMs,
  };
}

/**
 * LoRA training tokens/s: the trainable Transformer from `tensors` (float32), a rank-r adapter
 * on q_proj and v_proj (α = 2r), AdamW on the adapter alone, batch 1 of config.blockSize
 * tokens. One warm-up step, then `steps` timed.
 */
export async function loraTrainSpeed(
  config: ModelConfig,
  tensors: NamedTensors,
  steps: number,
  rank: number,
): Promise<number> {
  const seq = config.blockSize;
  const model = Transformer.fromTensors(config, tensors);
  const adapter = LoraAdapter.create(
    config,
    { rank, alpha: 2 * rank, targets: ['q_proj', 'v_proj'] },
    1,
  );
  model.adapter = adapter;
  const tokens = Int32Array.from({ length: 4 * seq + 1 }, (_, i) => (i * 7919) % config.vocabSize);
  const train = (n: number) =>
    new Trainer(
      model,
      {
        steps: n,
        batchSize: 1,
        gradAccum: 1,
        warmupSteps: 0,
        weightDecay: 0,
        evalEvery: 0,
        seed: 1,
      },
      adapter,
    );
  try {
    const warm = train(1);
    await warm.run({ tokens, chars: tokens.length });
    warm.dispose();
    const timed = train(steps);
    const t0 = performance.now();
    await timed.run({ tokens, chars: tokens.length });
    const seconds = (performance.now() - t0) / 1000;
    timed.dispose();
    return (steps * seq) / seconds;
  } finally {
    model.dispose();
    adapter.dispose();
  }
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
