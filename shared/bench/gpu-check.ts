/**
 * The device check for a lent GPU machine: the backend this machine picks (WebGPU through
 * Dawn where a GPU answers, else wasm, and why each faster one was passed over), then at each
 * shape, on random weights made in memory, load time, prefill, decode and LoRA training
 * tokens/s; then the same figures on wasm at the first shape, the comparison the GPU has to
 * win. Prints one JSON object on stdout (progress on stderr). `npm run gpu:bundle` bundles it
 * with Node and Dawn into a folder that runs with no registry (gpu-check.sh).
 *   node gpu-check.ts [--shapes smollm2-135m,...] [--prompt 512] [--new 128] [--lora-seq 128]
 *                     [--backend wasm] [--no-wasm-baseline]
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { parseBackendEnv, selectBackend, type BackendReport } from '../src/backend/select.ts';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { Decoder } from '../src/decoder/model.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { REAL_SHAPES } from '../src/decoder/shapes.ts';
import { modelConfigFromHf } from '../src/model/config.ts';
import { generationSpeed, loraTrainSpeed } from './generation-speed.ts';

/** A shape small enough for this check's own test on a 2-core machine. */
const TINY = {
  model_type: 'llama',
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 1024,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
};
const SHAPES: Record<string, object> = { ...REAL_SHAPES, tiny: TINY };
const DEFAULT_SHAPES = ['smollm2-135m', 'smollm2-360m', 'qwen2.5-0.5b'];

const { values } = parseArgs({
  options: {
    shapes: { type: 'string' },
    prompt: { type: 'string', default: '512' },
    new: { type: 'string', default: '128' },
    'lora-seq': { type: 'string', default: '128' },
    backend: { type: 'string' },
    'no-wasm-baseline': { type: 'boolean', default: false },
  },
});
const shapes = values.shapes?.split(',') ?? DEFAULT_SHAPES;
for (const s of shapes) {
  if (!(s in SHAPES))
    throw new Error(`no shape ${s}; the shapes are ${Object.keys(SHAPES).join(', ')}`);
}
const promptTokens = Number(values.prompt);
const newTokens = Number(values.new);
const loraSeq = Number(values['lora-seq']);
const log = (line: string) => process.stderr.write(`gpu-check: ${line}\n`);

// Bundled (gpu:bundle), tfjs's wasm binaries sit in ./wasm beside this file.
const here = path.dirname(fileURLToPath(import.meta.url));
if (existsSync(path.join(here, 'wasm', 'tfjs-backend-wasm-simd.wasm'))) {
  setWasmPaths(`${path.join(here, 'wasm')}/`);
}

const started = performance.now();
const report = await selectBackend({ force: parseBackendEnv(values.backend) });
log(`backend ${report.backend}${report.gpu ? ` on ${report.gpu.name}` : ''}`);

interface ShapeFigures {
  shape: string;
  parameters: number;
  loadSeconds: number;
  prefillTokensPerSec: number;
  decodeTokensPerSec: number;
  timeToFirstTokenMs: number;
  loraTrainTokensPerSec: number;
  loraSeq: number;
}

async function measure(shape: string): Promise<ShapeFigures> {
  const hf = SHAPES[shape]!;
  const config = { ...parseDecoderConfig(hf), maxPositions: promptTokens + newTokens + 8 };
  log(`${shape}: random weights …`);
  const weights = randomDecoderWeights(config, 1);
  const parameters = [...weights.values()].reduce((n, t) => n + t.data.length, 0);
  const t0 = performance.now();
  const decoder = await Decoder.load(config, async (name) => weights.get(name)!);
  const loadSeconds = (performance.now() - t0) / 1000;
  const speed = await generationSpeed(decoder, config.vocabSize, promptTokens, newTokens);
  decoder.dispose();
  log(
    `${shape}: prefill ${speed.prefillTokensPerSec.toFixed(1)} tok/s, decode ${speed.decodeTokensPerSec.toFixed(1)} tok/s; LoRA …`,
  );
  const lora = await loraTrainSpeed(
    { ...modelConfigFromHf(hf), blockSize: loraSeq },
    weights,
    2,
    8,
  );
  weights.clear();
  return {
    shape,
    parameters,
    loadSeconds,
    ...speed,
    loraTrainTokensPerSec: lora,
    loraSeq,
  };
}

const figures: ShapeFigures[] = [];
for (const shape of shapes) figures.push(await measure(shape));

/** The same check on wasm at the first shape, in a fresh process (one backend per process). */
async function wasmBaseline(): Promise<{ figures: ShapeFigures[] } | null> {
  if (report.backend === 'wasm' || values['no-wasm-baseline']) return null;
  log('wasm baseline …');
  const args = [
    process.argv[1]!,
    '--backend',
    'wasm',
    '--no-wasm-baseline',
    '--shapes',
    shapes[0]!,
    '--prompt',
    String(promptTokens),
    '--new',
    String(newTokens),
    '--lora-seq',
    String(loraSeq),
  ];
  const child = await promisify(execFile)(process.execPath, args, { maxBuffer: 1 << 22 });
  return { figures: (JSON.parse(child.stdout) as { shapes: ShapeFigures[] }).shapes };
}
const wasm = await wasmBaseline();
const onWasm = wasm?.figures[0] ?? (report.backend === 'wasm' ? figures[0] : undefined);
tf.disposeVariables();

const summary = (r: BackendReport) => ({
  backend: r.backend,
  tfjsBackend: r.tfjsBackend,
  gpu: r.gpu,
  skipped: r.skipped,
});
console.log(
  JSON.stringify({
    check: 'commons gpu-check',
    node: process.version,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: availableParallelism(),
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      loadAverage: loadavg()[0],
    },
    ...summary(report),
    promptTokens,
    newTokens,
    shapes: figures,
    wasm: onWasm ?? null,
    trainingOverWasm:
      onWasm && figures[0] ? figures[0].loraTrainTokensPerSec / onWasm.loraTrainTokensPerSec : null,
    seconds: (performance.now() - started) / 1000,
  }),
);
