import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { dequantizeRowsInt8, quantizeRowsInt8 } from '../src/decoder/int8.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { Decoder, type TensorSource } from '../src/decoder/model.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { openHfFolder, writeHfFolder } from '../src/formats/hf-folder.ts';
import { estimateMemory } from '../src/library/open.ts';
import { REAL_SHAPES } from '../src/decoder/shapes.ts';
import * as ref from './fixtures/decoder-reference.ts';

const scratch = ref.scratchDir('commons-decoder-int8-');

describe('int8 quantisation per row', () => {
  it('round-trips every element within half its row scale', () => {
    const rows = 5;
    const cols = 7;
    const data = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (i % 3));
    data.fill(0, 14, 21); // an all-zero row has scale 0 and dequantises to zeros
    const q = quantizeRowsInt8(data, rows, cols);
    const back = dequantizeRowsInt8(q);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const x = data[r * cols + c]!;
        expect(Math.abs(back[r * cols + c]! - x)).toBeLessThanOrEqual(q.scales[r]! / 2 + 1e-7);
      }
    }
    expect([...back.subarray(14, 21)]).toEqual(new Array(7).fill(0));
    expect([...dequantizeRowsInt8(q, 3, 2)]).toEqual([...back.subarray(21)]);
  });
});

describe('decoder with int8 weights', () => {
  for (const tiny of ref.TINY_DECODERS) {
    it(`${tiny.name}: the rounded float32 model up to activation rounding, and near PyTorch`, async () => {
      const folder = path.join(scratch(), tiny.name);
      await ref.writeTinyDecoder(folder, tiny);
      const { decoder: int8, config } = await loadDecoderFolder(folder, { weights: 'int8' });
      const files = await openHfFolder(folder);
      const rounded = await Decoder.load(
        config,
        roundedSource((name) => files.read(name)),
      );
      await files.close();
      const expected = ref.fixtures[tiny.name]!;
      try {
        const got = await promptAndGreedy(int8);
        const same = await promptAndGreedy(rounded);
        // Up to KERNEL_MAX_POSITIONS positions the SIMD kernel also rounds the activations to
        // int8 blocks of 32 (llama.cpp's Q8_0 scheme), so int8 mode is the rounded model only up
        // to that: measured worst |Δ| / max |logit| 0.059, 0.038, 0 (no matrix of whole blocks
        // of 32 there), 0.031.
        const scale = Math.max(...same.logits.flat().map(Math.abs));
        expect(maxDiff(got.logits, same.logits)).toBeLessThan(0.08 * scale);
        // A longer prompt goes through the same kernel where the engine has relaxed SIMD (it
        // reads each weight once per chunk of 64 positions), so it too rounds activations.
        const long = Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % config.vocabSize);
        const longRounded = await logitsOf(rounded, long);
        const longScale = Math.max(...longRounded.flat().map(Math.abs));
        // Measured worst |Δ| / max |logit| over 20 positions: 0.053, 0.115, 0, 0.065.
        expect(maxDiff(await logitsOf(int8, long), longRounded)).toBeLessThan(0.15 * longScale);

        // Against the unrounded weights these random models amplify rounding layer by layer
        // (their blocks are N(0, 4/fan_in), see random.ts), so 2e-2 absolute is out of reach.
        // Measured worst |Δ| / max |logit|: 0.044, 0.062, 0.042, 0.099 (with float32
        // activations it was 0.035, 0.074, 0.042, 0.090), and greedy decoding first leaves
        // PyTorch's tokens at step 5, 25, 9 and 20 of 32.
        const torchScale = Math.max(...expected.logits.flat().map(Math.abs));
        expect(maxDiff(got.logits, expected.logits)).toBeLessThan(0.12 * torchScale);
        expect(got.greedy.slice(0, 5)).toEqual(expected.greedy.slice(0, 5));
      } finally {
        int8.dispose();
        rounded.dispose();
      }
    });
  }

  it('decodes on the host (int8 products, the store attention, no tfjs op) as the tensor path does, across a second prompt and a rewind', async () => {
    const tiny = ref.TINY_DECODERS[1]!; // GQA 4, tied, every product's input whole blocks of 32
    const folder = path.join(scratch(), 'host-decode');
    await ref.writeTinyDecoder(folder, tiny);
    const { decoder, config } = await loadDecoderFolder(folder, { weights: 'int8' });
    try {
      expect(decoder.runsOnHost).toBe(true);
      const run = (where: 'wasm' | 'tfjs') => {
        decoder.decodeAttention = where;
        const cache = decoder.newCache();
        const rows: number[][] = [];
        const step = (tokens: number[]) => {
          const before = tf.memory().numTensors;
          const out = decoder.forward(tokens, cache, true);
          rows.push([...(out.dataSync() as Float32Array)]);
          out.dispose();
          if (tokens.length === 1 && where === 'wasm') {
            expect(tf.memory().numTensors).toBe(before); // nothing left behind on the host path
          }
        };
        step([5, 9, 2, 7]);
        for (let t = 0; t < 30; t++) step([(t * 13 + 1) % config.vocabSize]);
        step([3, 4, 6]);
        for (let t = 0; t < 3; t++) step([(t * 7 + 2) % config.vocabSize]);
        cache.truncate(20);
        for (let t = 0; t < 3; t++) step([(t * 5 + 4) % config.vocabSize]);
        cache.dispose();
        return rows;
      };
      const onHost = run('wasm');
      expect(decoder.runsOnHost).toBe(true);
      const viaTensors = run('tfjs');
      expect(decoder.runsOnHost).toBe(false);
      const scale = Math.max(...viaTensors.flat().map(Math.abs));
      // The prompt runs the tensor path either way. After it, the paths' float32 roundings
      // differ (attention sums in another order), and where an activation sits at a rounding
      // boundary of its int8 block the two round it differently: one step of one block, which
      // then carries through the cache (measured: 0 for the first 3 decoded tokens, then
      // 0.04–0.18 on logits up to 6.5). A wrong norm, rotation or residual is off by the
      // logits' own size.
      expect(maxDiff(onHost.slice(0, 1), viaTensors.slice(0, 1))).toBeLessThan(1e-4 * scale);
      expect(maxDiff(onHost, viaTensors)).toBeLessThan(0.05 * scale);
    } finally {
      decoder.decodeAttention = 'wasm';
      decoder.dispose();
    }
  });

  it('runs a long prompt through the float32 kernel under the SIMD128 int8 kernel: the rounded model with float32 activations', async () => {
    const base = ref.TINY_DECODERS[1]!; // every product's input whole blocks of 32
    const tiny = { ...base, config: { ...base.config, max_position_embeddings: 256 } };
    const folder = path.join(scratch(), 'staged-prompt');
    await ref.writeTinyDecoder(folder, tiny);
    const files = await openHfFolder(folder);
    const config = parseDecoderConfig(tiny.config);
    const source: TensorSource = (name) => files.read(name);
    const staged = await Decoder.load(config, source, 'int8', { int8Kernel: 'simd128' });
    const relaxed = await Decoder.load(config, source, 'int8', { int8Kernel: 'relaxed' });
    const rounded = await Decoder.load(config, roundedSource(source));
    await files.close();
    try {
      expect(staged.runsOnHost && relaxed.runsOnHost && rounded.runsOnHost).toBe(true);
      // 140 positions: past STAGED_MIN_POSITIONS (128), so the blocks' products are staged.
      const long = Array.from({ length: 140 }, (_, i) => (i * 29 + 3) % config.vocabSize);
      const want = await logitsOf(rounded, long);
      const scale = Math.max(...want.flat().map(Math.abs));
      // Staged: the float32 kernel over the same dequantised weights; only the head (int8,
      // every position's logits here) still rounds activations. Measured 0.0070 of the logit
      // scale. Through the relaxed int8 kernel every block's activations are rounded to int8
      // blocks too: measured 0.067.
      const stagedDiff = maxDiff(await logitsOf(staged, long), want) / scale;
      const relaxedDiff = maxDiff(await logitsOf(relaxed, long), want) / scale;
      expect(stagedDiff).toBeLessThan(0.02);
      expect(relaxedDiff).toBeGreaterThan(3 * stagedDiff);
    } finally {
      staged.dispose();
      relaxed.dispose();
      rounded.dispose();
    }
  });

  it('splits a tied head over a vocabulary larger than one chunk, leaking no tensors', async () => {
    const hf = {
      model_type: 'llama',
      vocab_size: 9000,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      max_position_embeddings: 32,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: true,
    };
    const config = parseDecoderConfig(hf);
    const tensors = randomDecoderWeights(config, 3);
    const folder = path.join(scratch(), 'wide-vocab');
    await writeHfFolder(folder, { config: hf, tensors });
    const int8 = (await loadDecoderFolder(folder, { weights: 'int8' })).decoder;
    const rounded = await Decoder.load(
      config,
      roundedSource(async (name) => tensors.get(name)!),
    );
    const lastLogits = async (decoder: Decoder) => {
      const cache = decoder.newCache();
      decoder.forward([1, 8500], cache).dispose();
      const before = tf.memory().numTensors;
      const out = decoder.forward([8999], cache, true);
      const row = (await out.array()) as number[][];
      out.dispose();
      expect(tf.memory().numTensors).toBe(before);
      cache.dispose();
      return row;
    };
    const got = await lastLogits(int8);
    expect(got[0]!.length).toBe(9000);
    // down_proj's 32 inputs are one kernel block (activations rounded to int8); the rest, and
    // the head, are dequantised. Measured: 0.036 on logits up to 4.5.
    expect(maxDiff(got, await lastLogits(rounded))).toBeLessThan(0.05 * 4.5);
    int8.dispose();
    rounded.dispose();
  });
});

describe('memory estimate with int8 weights', () => {
  // SmolLM2-360M's shape (decoder/shapes.ts, as the bench loads it) with a 4096-token context.
  const config = parseDecoderConfig(REAL_SHAPES['smollm2-360m']);

  it('counts a byte per matrix element, a scale per row, and one float32 matrix in flight', () => {
    const f32 = estimateMemory(config, 4096, 4e9);
    const int8 = estimateMemory(config, 4096, 4e9, 'int8');
    expect(f32.weights).toBe('f32');
    expect(int8.parameters).toBe(f32.parameters);
    // Norms are 1-D: (2·32 + 1)·960 float32 values, the rest int8 plus a scale per row.
    const norms = 65 * 960;
    const rows = 49152 + 32 * (960 + 320 + 320 + 960 + 2560 + 2560 + 960);
    expect(int8.weightBytes).toBe(f32.parameters - norms + 4 * rows + 4 * norms);
    expect(int8.totalBytes - int8.weightBytes - int8.kvCacheBytes).toBeCloseTo(
      256e6 + 0.1 * int8.weightBytes + 4 * 49152 * 960,
    );
  });
});

/** The float32 decoder's source with each matrix already rounded to int8 and back: what int8
 * mode must compute, up to float32 summation order. */
function roundedSource(source: TensorSource): TensorSource {
  return async (name, shape) => {
    const t = await source(name, shape);
    if (t.shape.length !== 2) return t;
    const [rows, cols] = t.shape as [number, number];
    return { shape: t.shape, data: dequantizeRowsInt8(quantizeRowsInt8(t.data, rows, cols)) };
  };
}

async function logitsOf(decoder: Decoder, tokens: number[]): Promise<number[][]> {
  const cache = decoder.newCache();
  const out = decoder.forward(tokens, cache);
  const logits = (await out.array()) as number[][];
  out.dispose();
  cache.dispose();
  return logits;
}

/** The prompt's logits, then 32 greedy tokens decoded one at a time through the cache. */
async function promptAndGreedy(
  decoder: Decoder,
): Promise<{ logits: number[][]; greedy: number[] }> {
  const cache = decoder.newCache();
  const out = decoder.forward(ref.REFERENCE_PROMPT, cache);
  const logits = (await out.array()) as number[][];
  out.dispose();
  const greedy = [argmax(logits.at(-1)!)];
  while (greedy.length < ref.REFERENCE_NEW_TOKENS) {
    const step = decoder.forward([greedy.at(-1)!], cache, true);
    greedy.push(argmax((await step.array())[0]!));
    step.dispose();
  }
  cache.dispose();
  return { logits, greedy };
}

function maxDiff(a: readonly number[][], b: readonly number[][]): number {
  let worst = 0;
  a.forEach((row, t) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[t]![i]!)))));
  return worst;
}

function argmax(row: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}
