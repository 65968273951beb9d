import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { ModelLibrary } from '../src/library/library.ts';
import {
  estimateMemory,
  ModelTooLargeError,
  openChatModel,
  resolveModel,
  type ModelRef,
} from '../src/library/open.ts';
import * as ref from './fixtures/decoder-reference.ts';

// openChatModel chooses float32 or int8 weights from the memory it is told is available
// (its availableBytes option, as a member's machine would report it).
const tiny = ref.TINY_DECODERS[2]!;
const config = parseDecoderConfig(tiny.config);
const scratch = ref.scratchDir('commons-open-model-');
let model: ModelRef;
beforeAll(async () => {
  const folder = path.join(scratch(), 'tiny');
  await ref.writeTinyDecoder(folder, tiny);
  const tokenizer = {
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', vocab: {}, merges: [] },
  };
  await writeFile(path.join(folder, 'tokenizer.json'), JSON.stringify(tokenizer));
  await writeFile(path.join(folder, 'tokenizer_config.json'), '{}');
  model = await resolveModel(folder, new ModelLibrary(path.join(scratch(), 'library')));
});

const context = 64;
const f32 = estimateMemory(config, context, 0);
const int8 = estimateMemory(config, context, 0, 'int8');

describe('openChatModel with too little memory for float32', () => {
  it('opens the model with int8 weights and says so', async () => {
    expect(int8.totalBytes).toBeLessThan(f32.totalBytes);
    const between = (f32.totalBytes + int8.totalBytes) / 2;
    const opened = await openChatModel(model, { context, availableBytes: between });
    try {
      expect(opened.estimate.weights).toBe('int8');
      expect(opened.estimate.fits).toBe(true);
      expect(opened.notice).toMatch(/held as int8 with a scale per row/);
      expect(opened.notice).toMatch(/replies are slower and a little less exact/);
      const cache = opened.decoder.newCache();
      const logits = opened.decoder.forward([1, 2, 3], cache, true);
      expect(logits.shape).toEqual([1, config.vocabSize]);
      logits.dispose();
      cache.dispose();
    } finally {
      opened.decoder.dispose();
    }
  });

  it('opens it with float32 weights, saying nothing, where those fit', async () => {
    const opened = await openChatModel(model, { context, availableBytes: f32.totalBytes });
    opened.decoder.dispose();
    expect(opened.estimate.weights).toBe('f32');
    expect(opened.notice).toBeNull();
  });

  it('refuses with ModelTooLargeError and a plain message where even int8 does not fit', async () => {
    const attempt = openChatModel(model, { context, availableBytes: int8.totalBytes - 1 });
    await expect(attempt).rejects.toThrow(ModelTooLargeError);
    const error = (await attempt.catch((e: unknown) => e)) as ModelTooLargeError;
    expect(error.estimate.weights).toBe('int8');
    expect(error.message).toMatch(
      /^tiny needs about \d+ MB of memory here \(\d+ MB of weights even as int8, \d+ MB for a 64-token context\), and this machine has \d+ MB available\. Close other programs, choose a smaller model, or shorten the context with --context\.$/,
    );
  });
});
