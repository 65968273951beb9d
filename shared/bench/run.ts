/**
 * `npm run bench -w shared [-- --json]`: training and generation speed of the reference
 * model on every available tfjs backend, side by side with the PyTorch reference in the
 * same run. Prints a table (or one JSON object with --json) and always writes the JSON to
 * bench/results/latest.json. Targets (issue 2): tfjs/PyTorch ≥ 0.5, KV cache ≥ 10×,
 * time to first token ≤ 50 ms.
 */
import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendName } from '../src/backend/select.ts';
import { selectBackend } from '../src/backend/select.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { REFERENCE_CONFIG } from '../src/model/config.ts';
import type { TokenSplit } from '../src/model/dataset.ts';
import { generate } from '../src/model/generate.ts';
import { MAX_DEFAULT_WORKERS, ParallelTrainer } from '../src/model/parallel/parallel-trainer.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import type { TrainConfig } from '../src/model/training-loop.ts';
import { Trainer } from '../src/model/trainer.ts';
import { Transformer } from '../src/model/transformer.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const dataPath =
  process.env.COMMONS_DATA ?? resolve(repoRoot, '../shared/data/tinyshakespeare.txt');
// The same architecture in PyTorch (a Llama decoder of the reference shape), in this repository.
const torchScript = resolve(here, '../reference/torch_llama_train_bench.py');
const PYTHON = '/usr/bin/python3';
const json = process.argv.includes('--json');
const log = (line: string) => {
  if (!json) console.log(line);
  else process.stderr.write(line + '\n');
};

/** The reference shape's training batch (issue 2). */
const BATCH = 32;
/** Generation: reference width and depth, with room for a 64-token prompt + 256 new tokens. */
const GEN_PROMPT_TOKENS = 64;
const GEN_TOKENS = 256;
const GEN_BLOCK = 512;

interface TrainRow {
  backend: string;
  workers: number;
  batch: number;
  steps: number;
  tokensPerSec: number;
  /** Per measured step, tokens/s: the spread shows how noisy the machine was. */
  perStep: number[];
}

// ---------------------------------------------------------------- data (65 characters)
const text = readFileSync(dataPath, 'utf8');
const chars = [...new Set(text)].sort();
const index = new Map(chars.map((c, i) => [c, i]));
const train: TokenSplit = {
  tokens: Int32Array.from(text, (c) => index.get(c)!),
  chars: text.length,
};
const trainConfig = { ...REFERENCE_CONFIG, vocabSize: chars.length };

// Other work on the machine skews every figure: record how busy it was.
const loadBefore = loadavg()[0]!;

// ---------------------------------------------------------------- PyTorch first, alone
// Both thread counts, best kept: on a busy 2-core machine PyTorch's 2 intra-op threads
// spin against other processes and can run several times slower than 1 thread.
log(`PyTorch reference (${PYTHON} ${torchScript}) …`);
const pytorchRuns = [await runPytorch(2), await runPytorch(1)];
for (const p of pytorchRuns) {
  log(
    p.result
      ? `  ${p.result.threads} threads: ${p.result.trainTokensPerSec.toFixed(0)} tokens/s`
      : `  skipped: ${p.reason}`,
  );
}
const pytorch = pytorchRuns.reduce((a, b) =>
  b.result && (!a.result || b.result.trainTokensPerSec > a.result.trainTokensPerSec) ? b : a,
);

// ---------------------------------------------------------------- tfjs training
const report = await selectBackend({ force: 'wasm' });
const rows: TrainRow[] = [];
rows.push(await measureTraining('wasm', 1, BATCH, 3, 8));
// One worker per core (wasm is single-threaded in Node), at least two to show the split.
const workers = Math.max(2, Math.min(availableParallelism(), MAX_DEFAULT_WORKERS, BATCH));
rows.push(await measureTraining('wasm', workers, BATCH, 3, 8));
// cpu is ~30× slower than wasm: a few rows, two steps, tokens/s barely depends on batch.
rows.push(await measureTraining('cpu', 1, 4, 1, 2));
await selectBackend({ force: 'wasm' });
const best = rows.reduce((a, b) => (b.tokensPerSec > a.tokensPerSec ? b : a));

// ---------------------------------------------------------------- generation
const gen = await measureGeneration();

// ---------------------------------------------------------------- report
const pytorchTps = pytorch.result?.trainTokensPerSec ?? null;
const result = {
  date: new Date().toISOString(),
  node: process.version,
  tfjs: tf.version.tfjs,
  wasmSimd: report.simd,
  cores: availableParallelism(),
  /** 1-minute load average before and after: above 0 means other work shared the cores. */
  loadAverage: [round(loadBefore, 2), round(loadavg()[0]!, 2)],
  config: { ...trainConfig, batch: BATCH },
  trainBackend: label(best),
  trainTokensPerSec: round(best.tokensPerSec),
  train: rows.map((r) => ({
    ...r,
    backend: label(r),
    tokensPerSec: round(r.tokensPerSec),
    perStep: r.perStep.map((x) => round(x)),
  })),
  pytorchTrainTokensPerSec: pytorchTps === null ? null : round(pytorchTps),
  pytorch: pytorch.result ?? { skipped: pytorch.reason },
  pytorchRuns: pytorchRuns.map((p) => p.result ?? { skipped: p.reason }),
  ratioVsPytorch: pytorchTps === null ? null : round(best.tokensPerSec / pytorchTps, 3),
  genConfig: gen.config,
  genPromptTokens: gen.promptTokens,
  genTokens: GEN_TOKENS,
  genTokensPerSecCached: round(gen.cached),
  genTokensPerSecUncached: round(gen.uncached),
  cacheSpeedup: round(gen.cached / gen.uncached, 1),
  ttftMs: round(gen.ttftMs, 1),
  ttftRunsMs: gen.ttftRuns.map((t) => round(t, 1)),
};
const resultsDir = join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify(result, null, 2) + '\n');

if (json) {
  console.log(JSON.stringify(result));
} else {
  printTable();
}

// ================================================================ helpers

function label(r: TrainRow): string {
  return r.workers > 1 ? `${r.backend} ×${r.workers} workers` : r.backend;
}

function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Training tokens/s over `measured` optimiser steps after `warmup` steps (kernel set-up,
 * first allocations): the trainer runs warmup + measured steps and the clock starts at the
 * end of the warmup.
 */
async function measureTraining(
  backend: BackendName,
  nWorkers: number,
  batch: number,
  warmup: number,
  measured: number,
): Promise<TrainRow> {
  log(
    `training: ${backend}${nWorkers > 1 ? ` ×${nWorkers}` : ''}, batch ${batch}, ${warmup}+${measured} steps …`,
  );
  if (nWorkers === 1) await selectBackend({ force: backend });
  const model = Transformer.create(trainConfig, 1);
  const config: Partial<TrainConfig> = {
    steps: warmup + measured,
    batchSize: batch,
    warmupSteps: 2,
    seed: 1,
  };
  const trainer =
    nWorkers > 1
      ? new ParallelTrainer(model, config, { workers: nWorkers, backend })
      : new Trainer(model, config);
  const stamps: number[] = [];
  try {
    await trainer.run(train, { onProgress: () => stamps.push(performance.now()) });
  } finally {
    await trainer.dispose();
    model.dispose();
  }
  const tokensPerStep = batch * trainConfig.blockSize;
  const perStep = stamps
    .slice(warmup)
    .map((t, i) => tokensPerStep / ((t - stamps[warmup - 1 + i]!) / 1000));
  const seconds = (stamps[stamps.length - 1]! - stamps[warmup - 1]!) / 1000;
  const row: TrainRow = {
    backend,
    workers: nWorkers,
    batch,
    steps: measured,
    tokensPerSec: (measured * tokensPerStep) / seconds,
    perStep,
  };
  log(
    `  ${row.tokensPerSec.toFixed(0)} tokens/s (steps: ${perStep.map((x) => x.toFixed(0)).join(' ')})`,
  );
  return row;
}

type PytorchRun =
  | {
      result: { trainTokensPerSec: number; threads: number; [k: string]: unknown };
      reason?: undefined;
    }
  | { result: null; reason: string };

async function runPytorch(threads: number): Promise<PytorchRun> {
  if (!existsSync(torchScript)) return { result: null, reason: `${torchScript} not found` };
  return new Promise((done) => {
    const child = spawn(
      PYTHON,
      [torchScript, '--data', dataPath, '--batch', String(BATCH), '--threads', String(threads)],
      {
        env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ result: null, reason: `${PYTHON} could not start: ${e.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const lastLine = out.trim().split('\n').pop() ?? '';
      try {
        const parsed = JSON.parse(lastLine) as { trainTokensPerSec: number; threads: number };
        if (typeof parsed.trainTokensPerSec !== 'number') throw new Error('no trainTokensPerSec');
        done({ result: parsed });
      } catch {
        const why = err.trim().split('\n').pop() ?? `exit code ${code}`;
        done({ result: null, reason: `PyTorch reference did not run (${why})` });
      }
    });
  });
}

/**
 * Generation speed on a reference-width model whose context holds a 64-token prompt plus
 * 256 new tokens (untrained weights: speed does not depend on what the weights say).
 */
async function measureGeneration(): Promise<{
  config: ModelConfig;
  promptTokens: number;
  cached: number;
  uncached: number;
  ttftMs: number;
  ttftRuns: number[];
}> {
  log('generation: tokenizer …');
  const tokenizer = ChatTokenizer.train(text.slice(0, 100_000), 512);
  const config: ModelConfig = {
    ...REFERENCE_CONFIG,
    vocabSize: tokenizer.vocabSize,
    blockSize: GEN_BLOCK,
  };
  const model = Transformer.create(config, 2);
  // A prompt of exactly 64 tokens: decode 64 ids of the corpus, re-encode, trim.
  let prompt = tokenizer.decode(
    tokenizer.encode(text.slice(200_000, 201_000)).slice(0, GEN_PROMPT_TOKENS),
  );
  while (tokenizer.encode(prompt).length > GEN_PROMPT_TOKENS) prompt = prompt.slice(0, -1);
  const promptTokens = tokenizer.encode(prompt).length;

  const run = async (useCache: boolean, maxTokens: number) => {
    const start = performance.now();
    let first = 0;
    let n = 0;
    for await (const _ of generate(model, tokenizer, prompt, {
      maxTokens,
      useCache,
      seed: 3,
      temperature: 1,
    })) {
      if (n === 0) first = performance.now();
      n++;
    }
    const end = performance.now();
    return { ttft: first - start, tokensPerSec: (maxTokens - 1) / ((end - first) / 1000) };
  };
  try {
    // Warm-up (kernels, operator caches, the JIT): the first full run is ~1.5× slower.
    await run(true, GEN_TOKENS);
    await run(false, 8);
    const ttftRuns: number[] = [];
    for (let i = 0; i < 7; i++) ttftRuns.push((await run(true, 1)).ttft);
    log('generation: cached …');
    const cached = (await run(true, GEN_TOKENS)).tokensPerSec;
    log('generation: uncached …');
    const uncached = (await run(false, GEN_TOKENS)).tokensPerSec;
    return { config, promptTokens, cached, uncached, ttftMs: median(ttftRuns), ttftRuns };
  } finally {
    model.dispose();
  }
}

function printTable(): void {
  const pad = (s: string, n: number) => s.padEnd(n);
  const num = (x: number | null) => (x === null ? 'n/a' : x.toFixed(0).padStart(8));
  console.log('');
  console.log(
    `Reference model: vocab ${trainConfig.vocabSize}, context ${trainConfig.blockSize}, width ${trainConfig.nEmbd}, ` +
      `${trainConfig.nLayer} layers, ${trainConfig.nHead} heads · Node ${process.version}, tfjs ${tf.version.tfjs}, wasm SIMD ${report.simd}`,
  );
  console.log(
    `${result.cores} cores; load average ${result.loadAverage[0]} → ${result.loadAverage[1]} (other work on the machine slows every row)`,
  );
  console.log('');
  console.log(`${pad('Training (fwd+bwd+AdamW)', 30)}${pad('batch', 7)}tokens/s   per-step range`);
  for (const r of rows) {
    const lo = Math.min(...r.perStep);
    const hi = Math.max(...r.perStep);
    console.log(
      `${pad(label(r), 30)}${pad(String(r.batch), 7)}${num(r.tokensPerSec)}   ${lo.toFixed(0)}–${hi.toFixed(0)}`,
    );
  }
  console.log(
    `${pad(`PyTorch ${pytorch.result ? `${String(pytorch.result.runtime ?? '')}, ${pytorch.result.threads} thr` : ''}`, 30)}${pad(String(BATCH), 7)}${num(pytorchTps)}${pytorch.result ? '' : `   (${pytorch.reason})`}`,
  );
  console.log(
    `tfjs/PyTorch (${label(best)}): ${result.ratioVsPytorch === null ? 'n/a' : result.ratioVsPytorch.toFixed(2) + '×'} (goal ≥ 0.5×)`,
  );
  console.log('');
  console.log(
    `Generation (width ${gen.config.nEmbd}, ${gen.config.nLayer} layers, blockSize ${gen.config.blockSize}, vocab ${gen.config.vocabSize}; ${gen.promptTokens}-token prompt, ${GEN_TOKENS} tokens)`,
  );
  console.log(`${pad('  with KV cache', 30)}${num(gen.cached)} tokens/s`);
  console.log(
    `${pad('  without KV cache', 30)}${num(gen.uncached)} tokens/s   (cache ${result.cacheSpeedup}× faster; goal ≥ 10×)`,
  );
  console.log(
    `${pad('  time to first token', 30)}${gen.ttftMs.toFixed(1).padStart(8)} ms         (median of ${gen.ttftRuns.length}; goal ≤ 50 ms)`,
  );
  console.log('');
  console.log(`JSON: ${join('bench', 'results', 'latest.json')}`);
}
