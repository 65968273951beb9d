import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { BACKEND_ORDER, BACKEND_PREFERENCES, type BackendName } from './preferences.ts';
import { shareIdentityOnWasm } from './wasm-identity.ts';

export {
  BACKEND_ORDER,
  BACKEND_PREFERENCES,
  type BackendName,
  type BackendPreference,
} from './preferences.ts';

/*
 * Picks the fastest tfjs backend this machine can run, in BACKEND_ORDER (preferences.ts):
 * tfjs-node-gpu with a visible CUDA device → tfjs-node → WebGPU → wasm → cpu. WebGPU is the
 * portable GPU path (any vendor, no CUDA pinning): a browser or Electron renderer offers
 * `navigator.gpu`; under Node the optional `webgpu` package (Dawn over Vulkan) provides it
 * on a machine that shows a GPU device. The native packages are optional dependencies
 * (tfjs-node's install downloads libtensorflow, which fails offline), so each candidate is
 * tried and the reason it was passed over is kept: `commons doctor` prints it.
 */

export interface GpuInfo {
  name: string;
  memoryMiB: number | null;
  /** WebGPU only: the adapter's own description and the limits a model must fit. */
  adapter?: { vendor: string; architecture: string; device: string; description: string };
  /** WebGPU only: the largest buffer, and the largest one a shader may bind, in bytes. */
  maxBufferBytes?: number;
  maxBindingBytes?: number;
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
    const outcome = await tryBackend(name, force);
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

/**
 * Why a model cannot run on the GPU in use, or null (also null off the GPU): a tensor larger
 * than the adapter lets a shader bind, or weights larger than the GPU's memory where known.
 * The caller falls back to the CPU backends with this as the member's message.
 */
export function gpuLimitProblem(
  report: BackendReport | null,
  model: { largestTensor: { name: string; bytes: number }; weightBytes: number },
): string | null {
  const gpu = report?.gpu;
  if (!gpu) return null;
  const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MiB`;
  const { name, bytes } = model.largestTensor;
  const binding = Math.min(gpu.maxBindingBytes ?? Infinity, gpu.maxBufferBytes ?? Infinity);
  if (bytes > binding) {
    return `${name} is ${mib(bytes)}, past the ${mib(binding)} a shader may bind on ${gpu.name}`;
  }
  if (gpu.memoryMiB !== null && model.weightBytes > gpu.memoryMiB * 2 ** 20) {
    return `the weights are ${mib(model.weightBytes)}, more than ${gpu.name}'s ${mib(gpu.memoryMiB * 2 ** 20)}`;
  }
  return null;
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

/** The slice of WebGPU's API this file uses (the full types come with a browser's lib.dom). */
interface GpuAdapterLike {
  info: { vendor: string; architecture: string; device: string; description: string };
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}
interface NavigatorGpu {
  requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapterLike | null>;
}

/**
 * The runtime's navigator.gpu, or why there is none. Under Node the optional `webgpu` package
 * (Dawn) provides it, installed as the global a browser has, so tfjs's webgpu backend finds
 * it; it is loaded only where the machine shows a GPU device node (or WebGPU is asked for by
 * name), since elsewhere it can find nothing and its Vulkan loader warns on stderr.
 */
async function navigatorGpu(asked: boolean): Promise<NavigatorGpu | string> {
  const nav = (globalThis as { navigator?: { gpu?: NavigatorGpu } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (typeof process === 'undefined' || !process.versions?.node) {
    return 'this runtime has no navigator.gpu';
  }
  const device = gpuDeviceNode();
  if (device === null && !asked) {
    return 'no GPU device on this machine (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg)';
  }
  let dawn: { create(flags: string[]): NavigatorGpu; globals: object };
  try {
    dawn = (await import('webgpu' as string)) as typeof dawn;
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
      ? 'the webgpu package (Dawn for Node) is not installed (optional dependency)'
      : `the webgpu package failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
  const gpu = dawn.create([]);
  Object.assign(globalThis, dawn.globals);
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  return gpu;
}

/** The first GPU device node, or null: DRM render nodes (any vendor), NVIDIA's, WSL's. */
function gpuDeviceNode(): string | null {
  try {
    const render = readdirSync('/dev/dri').find((f) => f.startsWith('renderD'));
    if (render !== undefined) return `/dev/dri/${render}`;
  } catch {
    // no DRM devices
  }
  for (const node of ['/dev/nvidia0', '/dev/dxg']) if (existsSync(node)) return node;
  return null;
}

async function tryBackend(name: BackendName, force?: BackendName): Promise<Outcome> {
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
      const gpu = await navigatorGpu(force === 'webgpu');
      if (typeof gpu === 'string') return { ok: false, reason: gpu };
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (adapter === null) {
        return {
          ok: false,
          reason:
            'navigator.gpu offered no adapter (under Node: Dawn found no Vulkan driver for this GPU)',
        };
      }
      // A literal import, so a bundler (npm run gpu:bundle) carries the backend along.
      const loaded = await importOptional(
        '@tensorflow/tfjs-backend-webgpu',
        () => import('@tensorflow/tfjs-backend-webgpu'),
      );
      if (loaded) return { ok: false, reason: loaded };
      if (!(await activate('webgpu'))) {
        return {
          ok: false,
          reason: 'the adapter was found but the tfjs webgpu backend did not start',
        };
      }
      const info = adapter.info;
      return {
        ok: true,
        details: {
          simd: null,
          threads: 0,
          gpu: {
            name: info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim(),
            // WebGPU does not say how much memory the GPU has; nvidia-smi does where present.
            memoryMiB: nvidiaGpu()?.memoryMiB ?? null,
            adapter: {
              vendor: info.vendor,
              architecture: info.architecture,
              device: info.device,
              description: info.description,
            },
            maxBufferBytes: adapter.limits.maxBufferSize,
            maxBindingBytes: adapter.limits.maxStorageBufferBindingSize,
          },
        },
      };
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      if (!(await activate('wasm'))) return { ok: false, reason: 'the wasm module did not load' };
      shareIdentityOnWasm();
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
async function importOptional(
  pkg: string,
  load: () => Promise<unknown> = () => import(pkg),
): Promise<string | null> {
  try {
    await load();
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
