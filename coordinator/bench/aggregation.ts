/**
 * Streaming FedAvg aggregation against numpy's np.average (what Flower runs), side by side.
 *
 * Each configuration runs in a fresh child process, so its peak RSS is its own:
 *   node:  `node bench/aggregation.ts --child --updates N --params P --encoding E` folds N
 *          update frames into a WeightedMeanAggregator and takes the result.
 *   numpy: `/usr/bin/python3 bench/numpy_average.py --updates N --params P` times
 *          np.average over a pre-built (N, P) float32 stack with float32 weights.
 * Inputs are built before the clock starts on both sides; each side reports its best of
 * `repeats` runs. GB/s = N × P × 4 bytes / seconds on both sides, whatever the encoding, so
 * an int8 row reads "fp32-equivalent" GB/s.
 *
 * The node side folds frames from a pool of min(N, 16) distinct frames (64 MB of fp32, twice
 * the L3 cache, so every fold reads from DRAM), as a coordinator folds each upload as it
 * lands and drops it: its memory is the pool plus the aggregator, flat in N. numpy has to
 * hold the whole stack (N × 4 MB at 1M parameters) and allocates an (N, P) product besides.
 */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NamedTensors, encodeTensors, type UpdateEncoding } from '@commons/shared/engine';
import { layoutOf } from '../src/aggregation/layout.ts';
import { WeightedMeanAggregator } from '../src/aggregation/weighted-mean.ts';
import { textTable } from './table.ts';

const here = dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';
const NUMPY_SCRIPT = resolve(here, 'numpy_average.py');
const POOL = 16;

export interface AggregationOptions {
  /** Update counts, each measured in its own processes (default 10, 100, 1000). */
  updates?: number[];
  /** Parameters per update (default 1,000,000). */
  params?: number;
  /** Frame encodings folded; only fp32 rows are compared with numpy (default fp32, fp16, int8). */
  encodings?: UpdateEncoding[];
  /** Runs per configuration, best kept (default 3). */
  repeats?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface AggregationRow {
  updates: number;
  params: number;
  encoding: UpdateEncoding;
  /** Streaming fold + result, fp32-equivalent GB/s. */
  gbPerSec: number;
  /** np.average on the same N and P; null for non-fp32 rows or when numpy is unavailable. */
  numpyGbPerSec: number | null;
  ratio: number | null;
  peakRssMb: number;
  numpyPeakRssMb: number | null;
  /** What the aggregator itself holds (its float64 sum and scratch). */
  aggregatorMb: number;
}

interface NodeRun {
  seconds: number;
  gbPerSec: number;
  peakRssMb: number;
  aggregatorMb: number;
}

interface NumpyRun {
  seconds: number;
  gbPerSec: number;
  peakRssMb: number;
  numpy: string;
}

export async function benchAggregation(
  options: AggregationOptions = {},
): Promise<AggregationRow[]> {
  const {
    updates = [10, 100, 1000],
    params = 1_000_000,
    encodings = ['fp32', 'fp16', 'int8'],
    repeats = 3,
    log = () => undefined,
  } = options;
  const rows: AggregationRow[] = [];
  for (const encoding of encodings) {
    for (const n of updates) {
      const args = [
        '--updates',
        String(n),
        '--params',
        String(params),
        '--repeats',
        String(repeats),
      ];
      log(`  node  ${encoding} N=${n} …`);
      const node = JSON.parse(
        await output(process.execPath, [
          fileURLToPath(import.meta.url),
          '--child',
          ...args,
          '--encoding',
          encoding,
        ]),
      ) as NodeRun;
      let numpy: NumpyRun | null = null;
      if (encoding === 'fp32') {
        log(`  numpy fp32 N=${n} …`);
        try {
          numpy = JSON.parse(await output(PYTHON, [NUMPY_SCRIPT, ...args])) as NumpyRun;
        } catch (error) {
          log(`  numpy skipped: ${(error as Error).message}`);
        }
      }
      rows.push({
        updates: n,
        params,
        encoding,
        gbPerSec: round(node.gbPerSec),
        numpyGbPerSec: numpy === null ? null : round(numpy.gbPerSec),
        ratio: numpy === null ? null : round(node.gbPerSec / numpy.gbPerSec),
        peakRssMb: Math.round(node.peakRssMb),
        numpyPeakRssMb: numpy === null ? null : Math.round(numpy.peakRssMb),
        aggregatorMb: round(node.aggregatorMb),
      });
    }
  }
  return rows;
}

/** The rows as an aligned text table. */
export function formatAggregation(rows: readonly AggregationRow[]): string {
  const header = [
    'updates',
    'params',
    'enc',
    'GB/s',
    'numpy GB/s',
    'ratio',
    'RSS MB',
    'numpy RSS MB',
    'agg MB',
  ];
  const cells = rows.map((r) => [
    String(r.updates),
    String(r.params),
    r.encoding,
    r.gbPerSec.toFixed(2),
    r.numpyGbPerSec?.toFixed(2) ?? '—',
    r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`,
    String(r.peakRssMb),
    r.numpyPeakRssMb === null ? '—' : String(r.numpyPeakRssMb),
    r.aggregatorMb.toFixed(1),
  ]);
  return textTable(header, cells);
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** stdout of a child process; rejects with its stderr when it fails. */
function output(command: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`${command} exited with ${code}: ${stderr.trim().slice(-500)}`));
    });
  });
}

// ------------------------------------------------------------------ child: one configuration

/** A model-like layout of `params` values: [256, 256] weights and [256] biases, then the rest. */
function benchShapes(params: number): { name: string; shape: number[] }[] {
  const shapes: { name: string; shape: number[] }[] = [];
  let left = params;
  for (let layer = 0; left > 0; layer++) {
    if (left >= 256 * 256 + 256) {
      shapes.push({ name: `blocks.${layer}.weight`, shape: [256, 256] });
      shapes.push({ name: `blocks.${layer}.bias`, shape: [256] });
      left -= 256 * 256 + 256;
    } else {
      shapes.push({ name: 'tail', shape: [left] });
      left = 0;
    }
  }
  return shapes;
}

function runChild(argv: string[]): void {
  const arg = (name: string) => {
    const at = argv.indexOf(`--${name}`);
    if (at < 0 || argv[at + 1] === undefined) throw new Error(`missing --${name}`);
    return argv[at + 1]!;
  };
  const updates = Number(arg('updates'));
  const params = Number(arg('params'));
  const repeats = Number(arg('repeats'));
  const encoding = arg('encoding') as UpdateEncoding;

  // Inputs, outside the clock: a pool of distinct frames and an example count per update.
  const layout = layoutOf(benchShapes(params));
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296;
  };
  const pool: Uint8Array[] = [];
  for (let k = 0; k < Math.min(updates, POOL); k++) {
    const tensors: NamedTensors = new Map();
    for (const { name, shape, size } of layout.entries) {
      const data = new Float32Array(size);
      for (let i = 0; i < size; i++) data[i] = (random() - 0.5) * 0.02;
      tensors.set(name, { shape, data });
    }
    pool.push(encodeTensors(tensors, encoding));
  }
  const weights = Array.from({ length: updates }, () => 1 + Math.floor(random() * 999));

  // Warm-up: let V8 tier the kernels and the frame walk up to optimised code.
  const warm = new WeightedMeanAggregator(layout);
  for (let i = 0; i < 2 * POOL; i++) warm.add(pool[i % pool.length]!, 1);
  warm.result();

  let best = Infinity;
  let aggregatorBytes = 0;
  for (let r = 0; r < repeats; r++) {
    const aggregator = new WeightedMeanAggregator(layout);
    const start = performance.now();
    for (let n = 0; n < updates; n++) aggregator.add(pool[n % pool.length]!, weights[n]!);
    const mean = aggregator.result();
    const seconds = (performance.now() - start) / 1000;
    if (mean === null || mean.length !== params) throw new Error('no aggregate');
    best = Math.min(best, seconds);
    aggregatorBytes = aggregator.memoryBytes();
  }
  const run: NodeRun = {
    seconds: best,
    gbPerSec: (updates * params * 4) / best / 1e9,
    // maxRSS is in KiB.
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    aggregatorMb: aggregatorBytes / 2 ** 20,
  };
  process.stdout.write(JSON.stringify(run) + '\n');
}

if (import.meta.main && process.argv.includes('--child')) runChild(process.argv.slice(2));
