import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';
import reference from '../reference/decoder_reference.json' with { type: 'json' };
import {
  REFERENCE_NEW_TOKENS,
  REFERENCE_PROMPT,
  TINY_DECODERS,
} from '../reference/tiny-decoders.ts';

const fixtures = reference as Record<string, { logits: number[][]; greedy: number[] }>;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-decoder-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Llama-family decoder against the plain-PyTorch reference', () => {
  for (const tiny of TINY_DECODERS) {
    it(`${tiny.name}: prompt logits within 1e-4, and the same 32 greedy tokens through the KV cache`, async () => {
      const folder = path.join(dir, tiny.name);
      const tensors = randomDecoderWeights(parseDecoderConfig(tiny.config), tiny.seed);
      await writeHfFolder(folder, { config: tiny.config, tensors, dtype: tiny.dtype });
      const { decoder } = await loadDecoderFolder(folder);
      const expected = fixtures[tiny.name]!;
      try {
        const cache = decoder.newCache();
        const logits = decoder.forward(REFERENCE_PROMPT, cache);
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
        for (let i = 0; i < REFERENCE_NEW_TOKENS; i++) {
          greedy.push(next);
          if (i === REFERENCE_NEW_TOKENS - 1) break;
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

  it('leaks no tensors: a forward pass leaves only the cache behind', async () => {
    const tiny = TINY_DECODERS[2]!;
    const config = parseDecoderConfig(tiny.config);
    const folder = path.join(dir, 'leak');
    await writeHfFolder(folder, { config: tiny.config, tensors: randomDecoderWeights(config, 1) });
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
    const tiny = TINY_DECODERS[0]!;
    const config = parseDecoderConfig(tiny.config);
    const folder = path.join(dir, 'limits');
    await writeHfFolder(folder, { config: tiny.config, tensors: randomDecoderWeights(config, 1) });
    const { decoder } = await loadDecoderFolder(folder);
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
