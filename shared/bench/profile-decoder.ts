/**
 * Where a forward pass spends its time: one prefill and a few decoded tokens of a model
 * folder, each under tf.profile, summed by tfjs kernel, plus the weight kernels' share (int8
 * or float32 SIMD, timed around their calls, which tfjs does not see). Prints a table; with --json one object.
 *   node bench/profile-decoder.ts <folder> [--weights f32|int8] [--prompt 512] [--new 8] [--json]
 */
import * as tf from '@tensorflow/tfjs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/backend/select.ts';
import { F32Arena } from '../src/decoder/f32-kernel.ts';
import { Int8Arena } from '../src/decoder/int8-kernel.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import type { WeightsMode } from '../src/decoder/model.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    weights: { type: 'string', default: 'f32' },
    prompt: { type: 'string', default: '512' },
    new: { type: 'string', default: '8' },
    json: { type: 'boolean', default: false },
  },
});
const folder = positionals[0];
if (folder === undefined)
  throw new Error('usage: profile-decoder.ts <model folder> [--weights f32|int8]');
const weights = values.weights as WeightsMode;
const promptTokens = Number(values.prompt);
const newTokens = Number(values.new);
const { backend } = await selectBackend();
const { decoder, config } = await loadDecoderFolder(folder, {
  context: promptTokens + newTokens + 8,
  weights,
});

// The weight kernels run outside tfjs: time their calls by wrapping the arenas' matmul.
let kernelMs = 0;
for (const arena of [Int8Arena, F32Arena] as const) {
  const matmul = arena.prototype.matmul as (...args: unknown[]) => Float32Array;
  arena.prototype.matmul = function (this: unknown, ...args: unknown[]) {
    const t = performance.now();
    try {
      return matmul.apply(this, args);
    } finally {
      kernelMs += performance.now() - t;
    }
  };
}

interface Phase {
  phase: string;
  tokens: number;
  wallMs: number;
  kernels: { name: string; ms: number; calls: number }[];
}
async function profile(phase: string, tokens: number, run: () => tf.Tensor): Promise<Phase> {
  kernelMs = 0;
  const t = performance.now();
  const info = await tf.profile(() => {
    const out = run();
    out.dataSync();
    return out;
  });
  const wallMs = performance.now() - t;
  const byName = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const entry = byName.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    entry.calls += 1;
    byName.set(k.name, entry);
  }
  if (kernelMs > 0) byName.set(`${weights} SIMD products (ours)`, { ms: kernelMs, calls: 0 });
  const kernels = [...byName].map(([name, v]) => ({ name, ...v })).sort((a, b) => b.ms - a.ms);
  (info.result as tf.Tensor).dispose();
  return { phase, tokens, wallMs, kernels };
}

const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919) % config.vocabSize);
const warm = decoder.newCache();
decoder.forward(prompt.slice(0, 8), warm, true).dispose();
warm.dispose();
const cache = decoder.newCache();
const phases: Phase[] = [];
phases.push(await profile('prefill', promptTokens, () => decoder.forward(prompt, cache, true)));
let decodeSum: Phase | null = null;
for (let i = 0; i < newTokens; i++) {
  const p = await profile('decode', 1, () =>
    decoder.forward([(i * 31) % config.vocabSize], cache, true),
  );
  if (decodeSum === null) decodeSum = { ...p, kernels: p.kernels.map((k) => ({ ...k })) };
  else {
    decodeSum.wallMs += p.wallMs;
    decodeSum.tokens += 1;
    for (const k of p.kernels) {
      const into = decodeSum.kernels.find((x) => x.name === k.name);
      if (into) {
        into.ms += k.ms;
        into.calls += k.calls;
      } else decodeSum.kernels.push({ ...k });
    }
  }
}
if (decodeSum) phases.push(decodeSum);
cache.dispose();
decoder.dispose();

// Per token, with what the listed kernels leave out (tfjs op dispatch, JS between ops).
const report = phases.map((p) => {
  const perToken = (ms: number) => ms / p.tokens;
  const kernels = p.kernels.map((k) => ({
    name: k.name,
    msPerToken: perToken(k.ms),
    calls: k.calls,
  }));
  const listed = p.kernels.reduce((n, k) => n + k.ms, 0);
  return {
    phase: p.phase,
    tokens: p.tokens,
    msPerToken: perToken(p.wallMs),
    overheadMsPerToken: perToken(p.wallMs - listed),
    kernels,
  };
});
if (values.json) {
  console.log(JSON.stringify({ backend, weights, folder, profile: report }));
} else {
  for (const p of report) {
    console.log(
      `\n${p.phase}: ${p.tokens} tokens, ${p.msPerToken.toFixed(2)} ms/token (${backend}, ${weights})`,
    );
    console.log('kernel                         ms/token   share  calls');
    for (const k of p.kernels.slice(0, 12)) {
      console.log(
        `${k.name.padEnd(30)} ${k.msPerToken.toFixed(3).padStart(9)}  ${((100 * k.msPerToken) / p.msPerToken).toFixed(1).padStart(5)}%  ${String(k.calls).padStart(5)}`,
      );
    }
    console.log(
      `${'(dispatch, JS between ops)'.padEnd(30)} ${p.overheadMsPerToken.toFixed(3).padStart(9)}  ${((100 * p.overheadMsPerToken) / p.msPerToken).toFixed(1).padStart(5)}%`,
    );
  }
}
