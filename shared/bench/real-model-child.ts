/**
 * One real-shape measurement in a fresh process, so peak RSS is the model's own: load a
 * Hugging Face folder, prefill a prompt, decode new tokens one at a time through the KV
 * cache. Prints one JSON line. Run by real-models.ts:
 *   node bench/real-model-child.ts <folder> <prompt tokens> <new tokens> [f32|int8]
 */
import { performance } from 'node:perf_hooks';
import { selectBackend } from '../src/backend/select.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
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
const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % config.vocabSize);

// Warm the kernels on a short prompt first (wasm compiles each shape once).
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
const argmax = (r: Float32Array) => r.reduce((best, v, i) => (v > r[best]! ? i : best), 0);
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
decoder.dispose();
console.log(
  JSON.stringify({
    backend,
    weights,
    loadSeconds,
    loadPeakRssMb,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    prefillTokensPerSec: promptTokens / (prefillMs / 1000),
    decodeTokensPerSec: newTokens / (decodeMs / 1000),
    timeToFirstTokenMs: ttftMs,
  }),
);
