/**
 * llama.cpp's figures for one GGUF file, in a fresh process so peak RSS is its own: the
 * speed reference members compare us with (it is what Ollama, LM Studio and Jan run).
 * Loads the file through node-llama-cpp on the CPU with the given thread count, prefills
 * the same prompt token ids as real-model-child.ts and decodes new tokens greedily one at a
 * time through its KV cache. Prints one JSON line. Run by real-models.ts:
 *   node bench/llama-cpp-child.ts <file.gguf> <prompt tokens> <new tokens> <threads> <vocab>
 */
import { performance } from 'node:perf_hooks';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const [file, promptArg, newArg, threadsArg, vocabArg] = process.argv.slice(2);
const promptTokens = Number(promptArg);
const newTokens = Number(newArg);
const threads = Number(threadsArg);

// The prebuilt CPU binary only: never build from source or download, never probe a GPU
// (the comparison is with our CPU engine on the same cores).
const llama = await getLlama({
  gpu: false,
  build: 'never',
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.error,
});
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: file!, gpuLayers: 0 });
const loadSeconds = (performance.now() - t0) / 1000;
const loadPeakRssMb = process.resourceUsage().maxRSS / 1024;
const context = await model.createContext({
  contextSize: promptTokens + newTokens + 16,
  batchSize: promptTokens,
  threads,
  sequences: 1,
});
const vocab = Number(vocabArg);
const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % vocab);

/** Prefills `tokens`, then takes `count` greedy tokens; the time to the first and the rest. */
async function generate(tokens: number[], count: number) {
  const sequence = context.getSequence();
  try {
    const p0 = performance.now();
    let firstMs = 0;
    let taken = 0;
    // temperature 0 is greedy; the generator evaluates each token it yields before the next.
    for await (const _token of sequence.evaluate(tokens as never, { temperature: 0 })) {
      if (taken === 0) firstMs = performance.now() - p0;
      if (++taken > count) break;
    }
    return { firstMs, restMs: performance.now() - p0 - firstMs };
  } finally {
    sequence.dispose();
  }
}

// Warm up the way real-model-child.ts does (a short prompt, one token).
await generate(prompt.slice(0, 8), 1);
const run = await generate(prompt, newTokens);
await context.dispose();
await model.dispose();
await llama.dispose();
console.log(
  JSON.stringify({
    engine: 'llama.cpp',
    version: llama.llamaCppRelease.release,
    threads,
    loadSeconds,
    loadPeakRssMb,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    prefillTokensPerSec: promptTokens / (run.firstMs / 1000),
    decodeTokensPerSec: newTokens / (run.restMs / 1000),
    timeToFirstTokenMs: run.firstMs,
  }),
);
