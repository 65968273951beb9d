/**
 * The real-model section of `npm run bench -w shared`: the decoder at the shapes members
 * run (SmolLM2-135M, SmolLM2-360M, Qwen2.5-0.5B), with random weights since none can be
 * downloaded here, stored as BF16 safetensors as the hub ships them. Each shape is loaded
 * in a fresh process (load seconds, peak RSS), prefills a 512-token prompt and decodes 128
 * tokens, once with float32 weights and once with int8 ones (decoder/int8.ts); the
 * plain-PyTorch reference prefills the same weights with the same thread count in the same
 * run. Prints a table and adds `realModels` to bench/results/latest.json.
 *   node bench/real-models.ts [--json] [--only smollm2-135m,...] [--weights f32|int8]
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import type { WeightsMode } from '../src/decoder/model.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const json = process.argv.includes('--json');
const log = (line: string) => (json ? process.stderr.write(`${line}\n`) : console.log(line));
const PROMPT = 512;
const NEW = 128;

/** The shapes, from each model's config.json on the hub. */
export const REAL_SHAPES: Record<string, Record<string, unknown>> = {
  'smollm2-135m': {
    model_type: 'llama',
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    max_position_embeddings: 8192,
    tie_word_embeddings: true,
  },
  'smollm2-360m': {
    model_type: 'llama',
    vocab_size: 49152,
    hidden_size: 960,
    intermediate_size: 2560,
    num_hidden_layers: 32,
    num_attention_heads: 15,
    num_key_value_heads: 5,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    max_position_embeddings: 8192,
    tie_word_embeddings: true,
  },
  'qwen2.5-0.5b': {
    model_type: 'qwen2',
    vocab_size: 151936,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    max_position_embeddings: 32768,
    tie_word_embeddings: true,
  },
};

export interface RealModelRow {
  shape: string;
  parameters: number;
  backend: string;
  weights: WeightsMode;
  loadSeconds: number;
  peakRssMb: number;
  prefillTokensPerSec: number;
  decodeTokensPerSec: number;
  timeToFirstTokenMs: number;
  pytorchPrefillTokensPerSec: number | null;
  pytorchThreads: number;
}

const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? new Set(process.argv[onlyAt + 1]!.split(',')) : null;
const weightsAt = process.argv.indexOf('--weights');
const modes = (weightsAt > 0 ? [process.argv[weightsAt + 1]] : ['f32', 'int8']) as WeightsMode[];
const threads = Math.min(2, availableParallelism());
const rows: RealModelRow[] = [];
const dir = await mkdtemp(path.join(tmpdir(), 'commons-real-models-'));
try {
  for (const [shape, hf] of Object.entries(REAL_SHAPES)) {
    if (only && !only.has(shape)) continue;
    const config = parseDecoderConfig(hf);
    const folder = path.join(dir, shape);
    log(`${shape}: writing random BF16 weights …`);
    let tensors: ReturnType<typeof randomDecoderWeights> | null = randomDecoderWeights(config, 1);
    const parameters = [...tensors.values()].reduce((n, t) => n + t.data.length, 0);
    await writeHfFolder(folder, { config: hf, tensors, dtype: 'BF16' });
    tensors = null;
    log(
      `${shape}: ${(parameters / 1e6).toFixed(0)}M parameters; engine: load, prefill ${PROMPT}, decode ${NEW} …`,
    );
    const engines = [];
    for (const weights of modes) {
      log(`${shape}: ${weights} weights …`);
      const child = await run(
        process.execPath,
        [path.join(here, 'real-model-child.ts'), folder, String(PROMPT), String(NEW), weights],
        { maxBuffer: 1 << 20, timeout: 1_800_000 },
      );
      engines.push(
        JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Omit<
          RealModelRow,
          'shape' | 'parameters' | 'pytorchPrefillTokensPerSec' | 'pytorchThreads'
        >,
      );
    }
    let pytorch: number | null = null;
    if (existsSync('/usr/bin/python3')) {
      log(`${shape}: PyTorch reference prefill (${threads} threads) …`);
      try {
        const ref = await run(
          '/usr/bin/python3',
          [
            path.join(here, '../reference/llama_reference.py'),
            '--bench',
            folder,
            String(PROMPT),
            String(threads),
          ],
          { maxBuffer: 1 << 20, timeout: 1_800_000 },
        );
        pytorch = (JSON.parse(ref.stdout) as { prefillTokensPerSec: number }).prefillTokensPerSec;
      } catch (error) {
        log(`  PyTorch skipped: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    for (const engine of engines) {
      rows.push({
        shape,
        parameters,
        ...engine,
        pytorchPrefillTokensPerSec: pytorch,
        pytorchThreads: threads,
      });
    }
    await rm(folder, { recursive: true, force: true });
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const resultsDir = path.join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const latest = path.join(resultsDir, 'latest.json');
const previous = existsSync(latest) ? (JSON.parse(readFileSync(latest, 'utf8')) as object) : {};
writeFileSync(latest, `${JSON.stringify({ ...previous, realModels: rows }, null, 2)}\n`);
if (json) {
  console.log(JSON.stringify({ realModels: rows }, null, 2));
} else {
  const f = (x: number | null, d = 1) => (x === null ? '—' : x.toFixed(d));
  console.log('');
  console.log(
    'shape          params  backend  weights  load s  peak RSS MB  prefill tok/s  PyTorch prefill  ratio  decode tok/s  TTFT ms',
  );
  for (const r of rows) {
    const ratio = r.pytorchPrefillTokensPerSec
      ? r.prefillTokensPerSec / r.pytorchPrefillTokensPerSec
      : null;
    console.log(
      `${r.shape.padEnd(14)} ${`${(r.parameters / 1e6).toFixed(0)}M`.padStart(6)}  ${r.backend.padEnd(7)}  ${r.weights.padEnd(7)}  ${f(r.loadSeconds).padStart(6)}  ${f(r.peakRssMb, 0).padStart(11)}  ${f(r.prefillTokensPerSec).padStart(13)}  ${f(r.pytorchPrefillTokensPerSec).padStart(15)}  ${f(ratio, 2).padStart(5)}  ${f(r.decodeTokensPerSec, 2).padStart(12)}  ${f(r.timeToFirstTokenMs, 0).padStart(7)}`,
    );
  }
  console.log(`JSON: ${path.join('bench', 'results', 'latest.json')} (realModels)`);
}
