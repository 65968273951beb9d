/**
 * One real-shape measurement in a fresh process, so peak RSS is the model's own: load a
 * Hugging Face folder, prefill a prompt, decode new tokens one at a time through the KV
 * cache. Prints one JSON line. Run by real-models.ts:
 *   node bench/real-model-child.ts <folder> <prompt tokens> <new tokens> [f32|int8]
 */
import { performance } from 'node:perf_hooks';
import { selectBackend } from '../src/backend/select.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { generationSpeed } from './generation-speed.ts';
import type { WeightsMode } from '../src/decoder/model.ts';

const [folder, promptArg, newArg, weightsArg = 'f32'] = process.argv.slice(2);
if (weightsArg !== 'f32' && weightsArg !== 'int8')
  throw new Error(`weights: f32 or int8, not ${weightsArg}`);
const weights: WeightsMode = weightsArg;
const promptTokens = Number(promptArg);
const newTokens = Number(newArg);
const { backend } = await selectBackend();
const t0 = performance.now();
const { decoder, config } = await loadDecoderFolder(folder!, {
  context: promptTokens + newTokens,
  weights,
});
const loadSeconds = (performance.now() - t0) / 1000;
const loadPeakRssMb = process.resourceUsage().maxRSS / 1024;
const speed = await generationSpeed(decoder, config.vocabSize, promptTokens, newTokens);
decoder.dispose();
console.log(
  JSON.stringify({
    backend,
    weights,
    loadSeconds,
    loadPeakRssMb,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    ...speed,
  }),
);
