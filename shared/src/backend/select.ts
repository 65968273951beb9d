import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { BACKEND_ORDER, BACKEND_PREFERENCES, type BackendName } from './preferences.ts';

export {
  BACKEND_ORDER,
  BACKEND_PREFERENCES,
  type BackendName,
  type BackendPreference,
} from './preferences.ts';

/*
 * Picks the fastest tfjs backend this machine can run, in BACKEND_ORDER (preferences.ts):
 * tfjs-node-gpu with a visible CUDA device → tfjs-node → WebGPU (where the runtime offers
 * `navigator.gpu`) → wasm → cpu. The native packages are optional dependencies (their
 * install downloads libtensorflow, which fails offline), so each candidate is tried and
 * the reason it was passed over is kept: `commons doctor` prints it.
 */

export interface GpuInfo {
  name: string;
  memoryMiB: number | null;
}

export interface BackendReport {
  /** Our name for the backend in use. */
  backend: BackendName;
  /** tfjs's own registry name (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  tfjsBackend: string;
  tfjsVersion: string;
  /** wasm only: SIMD and thread count (multithreading is disabled by tfjs under Node). */
  simd: boolean | null;
  threads: number;
  gpu: GpuInfo | null;
  /** Why each faster backend was not used. */
  skipped: { backend: BackendName; reason: string }[];
}

export interface SelectOptions {
  /** Force one backend (e.g. from settings or `COMMONS_BACKEND`); fails if unavailable. */
  force?: BackendName;
}

let current: BackendReport | null = null;

/** The report of the backend chosen by the last `selectBackend`, or null before. */
export function currentBackend(): BackendReport | null {
  return current;
}

export async function selectBackend(options: SelectOptions = {}): Promise<BackendReport> {
  const force = options.force ?? parseBackendEnv(process.env.COMMONS_BACKEND);
  const candidates = force ? [force] : BACKEND_ORDER;
  const skipped: BackendReport['skipped'] = [];
  for (const name of candidates) {
    const outcome = await tryBackend(name);
    if (outcome.ok) {
      current = {
        backend: name,
        tfjsBackend: tf.getBackend(),
        tfjsVersion: tf.version.tfjs,
        ...outcome.details,
        skipped,
      };
      return current;
    }
    skipped.push({ backend: name, reason: outcome.reason });
  }
  const why = skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ');
  throw new Error(`no tfjs backend could start (${why})`);
}

export function parseBackendEnv(value: string | undefined): BackendName | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(
    `COMMONS_BACKEND=${value} is not a backend; use one of: ${BACKEND_PREFERENCES.join(', ')}`,
  );
}

type Outcome =
  | { ok: true; details: Pick<BackendReport, 'simd' | 'threads' | 'gpu'> }
  | { ok: false; reason: string };

async function tryBackend(name: BackendName): Promise<Outcome> {
  switch (name) {
    case 'tensorflow-gpu': {
      const gpu = nvidiaGpu();
      if (!gpu) return { ok: false, reason: 'no CUDA device visible (nvidia-smi found none)' };
      const loaded = await importOptional('@tensorflow/tfjs-node-gpu');
      if (loaded) return { ok: false, reason: loaded };
      return (await activate('tensorflow'))
        ? { ok: true, details: { simd: null, threads: 0, gpu } }
        : { ok: false, reason: 'tfjs-node-gpu loaded but its backend did not initialise' };
    }
    case 'tensorflow': {
      const loaded = await importOptional('@tensorflow/tfjs-node');
      if (loaded) return { ok: false, reason: loaded };
      return (await activate('tensorflow'))
        ? { ok: true, details: { simd: null, threads: 0, gpu: null } }
        : { ok: false, reason: 'tfjs-node loaded but its backend did not initialise' };
    }
    case 'webgpu': {
      const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
      if (!nav?.gpu) return { ok: false, reason: 'this runtime has no navigator.gpu' };
      const loaded = await importOptional('@tensorflow/tfjs-backend-webgpu');
      if (loaded) return { ok: false, reason: loaded };
      return (await activate('webgpu'))
        ? { ok: true, details: { simd: null, threads: 0, gpu: null } }
        : { ok: false, reason: 'navigator.gpu offered no adapter' };
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      if (!(await activate('wasm'))) return { ok: false, reason: 'the wasm module did not load' };
      return {
        ok: true,
        details: {
          simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
          threads: wasm.getThreadsCount(),
          gpu: null,
        },
      };
    }
    case 'cpu':
      return (await activate('cpu'))
        ? { ok: true, details: { simd: false, threads: 1, gpu: null } }
        : { ok: false, reason: 'the cpu backend did not initialise' };
  }
}

/** Imports an optional package; returns why it is unavailable, or null when loaded. */
async function importOptional(pkg: string): Promise<string | null> {
  try {
    await import(pkg);
    return null;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      return `${pkg} is not installed (optional dependency; its install downloads libtensorflow)`;
    }
    return `${pkg} failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
}

async function activate(name: string): Promise<boolean> {
  try {
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}

function nvidiaGpu(): GpuInfo | null {
  try {
    const out = execFileSync(
      'nvidia-smi',
      ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 },
    );
    const first = out.trim().split('\n')[0];
    if (!first) return null;
    const [name, mem] = first.split(',').map((s) => s.trim());
    return { name: name ?? 'unknown', memoryMiB: mem ? Number(mem) : null };
  } catch {
    return null;
  }
}
