import { readFile, stat } from 'node:fs/promises';
import { freemem } from 'node:os';
import path from 'node:path';
import { currentBackend, gpuLimitProblem, selectBackend } from '../backend/select.ts';
import { ChatTokenizer } from '../chat/tokenizer.ts';
import { decoderTensorShapes, parseDecoderConfig, type DecoderConfig } from '../decoder/config.ts';
import { hfConfigFromGguf, loadDecoderGguf } from '../decoder/gguf.ts';
import { loadDecoderFolder } from '../decoder/load.ts';
import type { Decoder, WeightsMode } from '../decoder/model.ts';
import { elementCount } from '../checkpoint/tensors.ts';
import { GgufFile } from '../formats/gguf.ts';
import { openHfFolder } from '../formats/hf-folder.ts';
import { LibraryError, type LibraryEntry, type ModelLibrary } from './library.ts';

/**
 * Finding a model by what a member types (a library name, a model folder, a .gguf file),
 * estimating the memory it needs before loading it, and loading it with its tokenizer.
 */
export interface ModelRef {
  format: 'hf' | 'gguf';
  /** The folder (hf) or the .gguf file. */
  path: string;
  entry: LibraryEntry | null;
}

export async function resolveModel(ref: string, library: ModelLibrary): Promise<ModelRef> {
  const info = await stat(ref).catch(() => null);
  if (info?.isFile() && ref.toLowerCase().endsWith('.gguf'))
    return { format: 'gguf', path: path.resolve(ref), entry: null };
  if (info?.isDirectory()) {
    const hasConfig = await stat(path.join(ref, 'config.json')).then(
      () => true,
      () => false,
    );
    if (hasConfig) return { format: 'hf', path: path.resolve(ref), entry: null };
  }
  const entry = await library.get(ref);
  return {
    format: entry.format,
    path:
      entry.format === 'gguf' ? path.join(entry.location, entry.files[0]!.name) : entry.location,
    entry,
  };
}

/** The context a chat keeps by default: models advertise up to 128k, which no laptop holds. */
export const DEFAULT_CONTEXT = 4096;

export async function readConfig(ref: ModelRef): Promise<DecoderConfig> {
  if (ref.format === 'gguf') {
    const file = await GgufFile.open(ref.path);
    try {
      return parseDecoderConfig(hfConfigFromGguf(file), ref.path);
    } finally {
      await file.close();
    }
  }
  const folder = await openHfFolder(ref.path);
  try {
    return parseDecoderConfig(folder.config, path.join(ref.path, 'config.json'));
  } finally {
    await folder.close();
  }
}

export interface MemoryEstimate {
  parameters: number;
  /** How the weights would be held (decoder/model.ts). */
  weights: WeightsMode;
  /** Weights as this engine holds them: float32, or int8 matrices with a float32 scale per row
   * (norms and biases stay float32). */
  weightBytes: number;
  /** Keys and values for a full context. */
  kvCacheBytes: number;
  context: number;
  totalBytes: number;
  availableBytes: number;
  fits: boolean;
}

export class ModelTooLargeError extends Error {
  readonly estimate: MemoryEstimate;

  constructor(name: string, estimate: MemoryEstimate) {
    super(
      `${name} needs about ${gb(estimate.totalBytes)} of memory here (${gb(estimate.weightBytes)} of weights${estimate.weights === 'int8' ? ' even as int8' : ''}, ${gb(estimate.kvCacheBytes)} for a ${estimate.context}-token context), and this machine has ${gb(estimate.availableBytes)} available. Close other programs, choose a smaller model, or shorten the context with --context.`,
    );
    this.name = 'ModelTooLargeError';
    this.estimate = estimate;
  }
}

export function estimateMemory(
  config: DecoderConfig,
  context: number,
  availableBytes: number,
  weights: WeightsMode = 'f32',
): MemoryEstimate {
  let parameters = 0;
  let weightBytes = 0;
  let largestMatrix = 0;
  for (const shape of decoderTensorShapes(config).values()) {
    const count = elementCount(shape);
    parameters += count;
    // Every 2-D tensor is a matrix int8 mode quantises; 1-D ones (norms, biases) stay float32.
    const quantized = weights === 'int8' && shape.length === 2;
    weightBytes += quantized ? count + 4 * shape[0]! : 4 * count;
    if (shape.length === 2) largestMatrix = Math.max(largestMatrix, count);
  }
  const kvCacheBytes = config.numLayers * 2 * config.numKvHeads * config.headDim * context * 4;
  // The runtime, the activations of a long prompt and one tensor's host copy while loading;
  // int8 mode also holds one matrix as float32 at a time (while quantising it at load, and
  // dequantised for its matMul).
  const transient = weights === 'int8' ? 4 * largestMatrix : 0;
  const overhead = 256e6 + 0.1 * weightBytes + transient;
  const totalBytes = weightBytes + kvCacheBytes + overhead;
  return {
    parameters,
    weights,
    weightBytes,
    kvCacheBytes,
    context,
    totalBytes,
    availableBytes,
    fits: totalBytes <= availableBytes,
  };
}

/**
 * How openChatModel holds a model's weights: float32 where that estimate fits, else int8
 * (`estimate`, which may not fit either); `f32` is the float32 estimate either way.
 */
export function chooseWeights(
  config: DecoderConfig,
  context: number,
  availableBytes: number,
): { f32: MemoryEstimate; estimate: MemoryEstimate } {
  const f32 = estimateMemory(config, context, availableBytes);
  return {
    f32,
    estimate: f32.fits ? f32 : estimateMemory(config, context, availableBytes, 'int8'),
  };
}

/** Memory the kernel could give this process now (MemAvailable, not just free pages). */
export async function availableMemory(): Promise<number> {
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const kb = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1];
  return kb === undefined ? freemem() : Number(kb) * 1024;
}

export interface OpenedModel {
  ref: ModelRef;
  decoder: Decoder;
  config: DecoderConfig;
  tokenizer: ChatTokenizer;
  eosTokenIds: number[];
  estimate: MemoryEstimate;
  /** What to tell the member about how the model was opened: set when float32 weights did
   * not fit and they are held as int8 instead (slower, and slightly less exact); else null. */
  notice: string | null;
}

/**
 * Loads a model to chat with, its weights as float32 where they fit and as int8 where only
 * that fits (slower: each matrix is dequantised for every use). Refuses, before loading, a
 * model that will not fit either way (with a message that says what it needs and what there
 * is) and a library model whose files no longer hash to its identity when `verify` is asked
 * for.
 */
export async function openChatModel(
  ref: ModelRef,
  options: { context?: number; availableBytes?: number; expectIdentity?: string } = {},
): Promise<OpenedModel> {
  const config = await readConfig(ref);
  const context = Math.min(config.maxPositions, options.context ?? DEFAULT_CONTEXT);
  const available = options.availableBytes ?? (await availableMemory());
  const { f32, estimate } = chooseWeights(config, context, available);
  const name = ref.entry?.name ?? path.basename(ref.path);
  if (!estimate.fits) throw new ModelTooLargeError(name, estimate);
  const notices: string[] = [];
  if (estimate.weights === 'int8') {
    notices.push(
      `${name} would need about ${gb(f32.totalBytes)} with float32 weights and ${gb(available)} is available, so its weights are held as int8 with a scale per row (about ${gb(estimate.totalBytes)} in all): replies are slower and a little less exact.`,
    );
  }
  const beyondGpu = gpuLimitProblem(currentBackend(), {
    largestTensor: largestTensor(config),
    weightBytes: estimate.weightBytes,
  });
  if (beyondGpu !== null) {
    const cpu = await selectBackend({ force: 'wasm' });
    notices.push(`${name} runs on ${cpu.backend}, not the GPU: ${beyondGpu}.`);
  }
  const notice = notices.length > 0 ? notices.join(' ') : null;
  if (options.expectIdentity !== undefined && ref.entry?.identity !== options.expectIdentity) {
    throw new LibraryError(
      'MISMATCH',
      `${name} is ${ref.entry?.identity ?? 'not a library model'}, not the model ${options.expectIdentity} it was asked to be`,
    );
  }
  if (ref.format === 'gguf') {
    const loaded = await loadDecoderGguf(ref.path, { context, weights: estimate.weights });
    const tokenizer = new ChatTokenizer(
      loaded.tokenizer.tokenizerJson,
      loaded.tokenizer.tokenizerConfig,
    );
    return {
      ref,
      decoder: loaded.decoder,
      config: loaded.config,
      tokenizer,
      eosTokenIds: loaded.eosTokenIds,
      estimate,
      notice,
    };
  }
  const loaded = await loadDecoderFolder(ref.path, { context, weights: estimate.weights });
  const tokenizer = await ChatTokenizer.fromFolder(ref.path);
  return {
    ref,
    decoder: loaded.decoder,
    config: loaded.config,
    tokenizer,
    eosTokenIds: loaded.eosTokenIds,
    estimate,
    notice,
  };
}

/** The model's largest tensor as float32 (what a GPU backend would upload whole). */
function largestTensor(config: DecoderConfig): { name: string; bytes: number } {
  let largest = { name: '', bytes: 0 };
  for (const [name, shape] of decoderTensorShapes(config)) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    if (bytes > largest.bytes) largest = { name, bytes };
  }
  return largest;
}

/** Bytes as gigabytes (or megabytes below one), for people. */
export function gb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}
