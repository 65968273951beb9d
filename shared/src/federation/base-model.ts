import {
  CheckpointError,
  decodeCheckpoint,
  parseManifest,
  type Manifest,
  type NamedTensors,
} from '../checkpoint/index.ts';
import type { ModelConfig } from '../model/config.ts';
import { ChatTokenizer } from '../chat/tokenizer.ts';
import { parameterShapes } from '../model/config.ts';

/**
 * A round's base model, fetched from the coordinator's content-addressed model store
 * (`<coordinator><path>manifest.json` and `weights.bin`) and verified against the hash the
 * round names before a single weight is used. Pure fetch + codec: no file system, so it runs
 * in Node, a browser and a worker alike. (model/checkpoint.ts does the same checks for
 * folders on disk; it is Node only.)
 */

/** A checkpoint as the two files the store serves. */
export interface CheckpointBytes {
  manifest: Uint8Array;
  weights: Uint8Array;
}

/**
 * Where verified checkpoint bytes are kept between rounds, by hash. Whatever it returns is
 * verified again on use, so a cache that was tampered with is caught, not trusted.
 */
export interface ModelCache {
  get(hash: string): CheckpointBytes | undefined | Promise<CheckpointBytes | undefined>;
  set(hash: string, bytes: CheckpointBytes): void | Promise<void>;
}

/** Keeps the most recent `capacity` checkpoints in memory (rounds rarely change model). */
export class MemoryModelCache implements ModelCache {
  readonly #entries = new Map<string, CheckpointBytes>();
  readonly #capacity: number;

  constructor(capacity = 1) {
    this.#capacity = capacity;
  }

  get(hash: string): CheckpointBytes | undefined {
    const bytes = this.#entries.get(hash);
    if (bytes) {
      // Most recently used last.
      this.#entries.delete(hash);
      this.#entries.set(hash, bytes);
    }
    return bytes;
  }

  set(hash: string, bytes: CheckpointBytes): void {
    this.#entries.delete(hash);
    this.#entries.set(hash, bytes);
    while (this.#entries.size > this.#capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }
}

export interface BaseModel {
  hash: string;
  manifest: Manifest;
  config: ModelConfig;
  tokenizer: ChatTokenizer;
  /** Every weight, host copies in checkpoint order. */
  tensors: NamedTensors;
}

/** What a round says about its base model (RoundTask['baseModel']). */
export interface BaseModelRef {
  hash: string;
  /** Folder of the checkpoint on the coordinator, e.g. `/models/<hash>/`. */
  path: string;
}

export interface FetchBaseModelOptions {
  cache?: ModelCache;
  signal?: AbortSignal;
  /** Bytes of weights.bin received so far, of `total`. */
  onProgress?: (done: number, total: number) => void;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
}

/** The largest manifest.json we read (the tokenizer lives in it; 65k-token BPE is a few MB). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/**
 * Downloads (or takes from the cache) the checkpoint `ref` names and verifies it: a model,
 * hashing to `ref.hash`, with exactly the tensors its config needs, and a tokenizer that
 * agrees with the config. Throws a CheckpointError otherwise; nothing unverified is cached.
 */
export async function fetchBaseModel(
  coordinator: string | URL,
  ref: BaseModelRef,
  options: FetchBaseModelOptions = {},
): Promise<BaseModel> {
  const cached = await options.cache?.get(ref.hash);
  if (cached) return verifyBaseModel(cached, ref.hash);
  const bytes = await fetchCheckpointBytes(coordinator, ref, options);
  const model = verifyBaseModel(bytes, ref.hash);
  await options.cache?.set(ref.hash, bytes);
  return model;
}

/**
 * The two files of the checkpoint `ref` names, as served: the manifest is refused at once if it
 * declares another hash, and the weights are read no further than the size it declares. The
 * caller verifies the content (verifyBaseModel, decodeCheckpoint).
 */
export async function fetchCheckpointBytes(
  coordinator: string | URL,
  ref: BaseModelRef,
  options: Omit<FetchBaseModelOptions, 'cache'> = {},
): Promise<CheckpointBytes> {
  const folder = new URL(ref.path.endsWith('/') ? ref.path : `${ref.path}/`, coordinator);
  const doFetch = options.fetch ?? fetch;
  const get = async (file: string) => {
    const url = new URL(file, folder);
    const response = await doFetch(url, options.signal ? { signal: options.signal } : {});
    if (!response.ok) throw new Error(`GET ${url.href} answered HTTP ${response.status}`);
    return response;
  };

  const manifestBytes = await readBody(await get('manifest.json'), MAX_MANIFEST_BYTES);
  // Look at the manifest before downloading the weights: a wrong checkpoint is refused at once,
  // and its declared size bounds what we are willing to receive.
  const manifest = parseManifest(manifestBytes);
  if (manifest.hash !== ref.hash) {
    throw new CheckpointError(
      'UNEXPECTED_HASH',
      `the coordinator served checkpoint ${manifest.hash} for ${ref.hash}`,
    );
  }
  const total = manifest.weightsByteLength;
  options.onProgress?.(0, total);
  const weights = await readBody(await get('weights.bin'), total, (done) =>
    options.onProgress?.(done, total),
  );
  return { manifest: manifestBytes, weights };
}

/** Verifies checkpoint bytes as the base model `expectedHash` (see fetchBaseModel). */
export function verifyBaseModel(bytes: CheckpointBytes, expectedHash: string): BaseModel {
  const declared = parseManifest(bytes.manifest);
  if (declared.kind !== 'model') {
    throw new CheckpointError('MALFORMED_MANIFEST', 'the base model is an adapter, not a model');
  }
  const { manifest, tensors, hash } = decodeCheckpoint(bytes.manifest, bytes.weights, {
    expectedHash,
    expectedShapes: parameterShapes(declared.config),
  });
  const tokenizer = ChatTokenizer.fromJSON(manifest.tokenizer);
  if (tokenizer.vocabSize > manifest.config.vocabSize) {
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `tokenizer has ${tokenizer.vocabSize} tokens but the model embeds only ${manifest.config.vocabSize}`,
    );
  }
  return { hash, manifest, config: manifest.config, tokenizer, tensors };
}

/**
 * The whole body, refusing more than `limit` bytes (a server cannot make us allocate without
 * bound); reports bytes received as they arrive.
 */
async function readBody(
  response: Response,
  limit: number,
  onBytes?: (done: number) => void,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new CheckpointError(
      'SIZE_MISMATCH',
      `${response.url} is larger than the ${limit} bytes expected`,
    );
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) throw tooLarge();
  if (!response.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let done = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done: finished, value } = await reader.read();
    if (finished) break;
    done += value.byteLength;
    if (done > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
    onBytes?.(done);
  }
  if (chunks.length === 1) return chunks[0]!;
  const body = new Uint8Array(done);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}
