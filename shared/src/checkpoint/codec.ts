import type { ModelConfig } from '../model/config.ts';
import { canonicalJson } from './canonical-json.ts';
import { BYTES_PER_ELEMENT, bytesToFloats, floatsToBytes, type FloatDtype } from './dtype.ts';
import { CheckpointError } from './errors.ts';
import { checkpointHash } from './hash.ts';
import {
  alignUp,
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  parseManifest,
  type AdapterInfo,
  type CheckpointKind,
  type Manifest,
  type TensorEntry,
} from './manifest.ts';
import { elementCount, formatShape, sameShape, type NamedTensors } from './tensors.ts';

/**
 * A checkpoint in memory: manifest + weights bytes. This is the pure half of the format, for
 * bytes served over HTTP or held in a blob store; folder.ts puts the same bytes on disk.
 */

export interface CheckpointInput {
  /** Defaults to 'adapter' when `adapter` is given, else 'model'. */
  kind?: CheckpointKind;
  config: ModelConfig;
  /** The tokenizer's own JSON object; stored as is (keys sorted), parsed by the model loader. */
  tokenizer: unknown;
  tensors: NamedTensors;
  /** Storage type of every tensor; 'float16' halves the size. Default 'float32'. */
  dtype?: FloatDtype;
  provenance?: Record<string, unknown>;
  adapter?: AdapterInfo;
}

export interface EncodedCheckpoint {
  manifest: Manifest;
  weights: Uint8Array;
  hash: string;
}

export interface DecodeOptions {
  /** The hash the caller trusts (e.g. read from the ModelRegistry); refused if different. */
  expectedHash?: string;
  /** Every tensor the model expects, with its shape; refused on any difference. */
  expectedShapes?: Map<string, number[]>;
}

export interface DecodedCheckpoint {
  manifest: Manifest;
  tensors: NamedTensors;
  hash: string;
}

// Any valid hash will do: it is replaced once the real one is known.
const HASH_PLACEHOLDER = '0'.repeat(64);

export function encodeCheckpoint(input: CheckpointInput): EncodedCheckpoint {
  const dtype = input.dtype ?? 'float32';
  const entries: TensorEntry[] = [];
  const blocks: { offset: number; bytes: Uint8Array }[] = [];
  let end = 0;
  for (const [name, tensor] of input.tensors) {
    if (!tensor.shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" has an invalid shape ${formatShape(tensor.shape)}`,
      );
    }
    if (elementCount(tensor.shape) !== tensor.data.length) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" has shape ${formatShape(tensor.shape)} but ${tensor.data.length} values`,
      );
    }
    const bytes = floatsToBytes(tensor.data, dtype, name);
    const offset = alignUp(end);
    entries.push({ name, dtype, shape: [...tensor.shape], offset, byteLength: bytes.length });
    blocks.push({ offset, bytes });
    end = offset + bytes.length;
  }
  // A fresh buffer is zero-filled, so the alignment padding is zeros.
  const weights = new Uint8Array(end);
  for (const { offset, bytes } of blocks) weights.set(bytes, offset);

  const kind = input.kind ?? (input.adapter === undefined ? 'model' : 'adapter');
  // Validate with the very schema readers use, so nothing is written that cannot be read.
  const manifest = parseManifest({
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    kind,
    hash: HASH_PLACEHOLDER,
    config: input.config,
    tokenizer: plainJson(input.tokenizer),
    ...(input.adapter === undefined ? {} : { adapter: input.adapter }),
    tensors: entries,
    weightsByteLength: end,
    provenance: plainJson(input.provenance ?? {}),
  });
  const hash = checkpointHash(manifest, weights);
  return { manifest: { ...manifest, hash }, weights, hash };
}

/**
 * Verifies a checkpoint completely and only then returns its tensors, each in a fresh
 * Float32Array that shares nothing with `weights`. Checks, in order: the manifest (JSON,
 * format version, schema, tensor index), the size of the weights, the content hash, the
 * caller's expected hash, the caller's expected shapes, and that every weight is finite.
 */
export function decodeCheckpoint(
  manifestJson: unknown,
  weights: Uint8Array,
  opts: DecodeOptions = {},
): DecodedCheckpoint {
  const manifest = parseManifest(manifestJson);
  if (weights.length !== manifest.weightsByteLength) {
    throw new CheckpointError(
      'SIZE_MISMATCH',
      `weights are ${weights.length} bytes but the manifest describes ${manifest.weightsByteLength}`,
    );
  }
  const hash = checkpointHash(manifest, weights);
  if (hash !== manifest.hash) {
    throw new CheckpointError(
      'HASH_MISMATCH',
      `checkpoint is corrupt: manifest expects hash ${manifest.hash} but the content hashes to ${hash}`,
    );
  }
  if (opts.expectedHash !== undefined) {
    const expected = opts.expectedHash.toLowerCase().replace(/^0x/, '');
    if (expected !== hash) {
      throw new CheckpointError(
        'UNEXPECTED_HASH',
        `expected checkpoint ${expected} but this one is ${hash}`,
      );
    }
  }
  if (opts.expectedShapes !== undefined) checkExpectedShapes(manifest.tensors, opts.expectedShapes);

  const tensors: NamedTensors = new Map();
  for (const entry of manifest.tensors) {
    const count = entry.byteLength / BYTES_PER_ELEMENT[entry.dtype];
    const data = bytesToFloats(weights, entry.offset, count, entry.dtype, entry.name);
    tensors.set(entry.name, { shape: [...entry.shape], data });
  }
  return { manifest, tensors, hash };
}

function checkExpectedShapes(entries: TensorEntry[], expected: Map<string, number[]>): void {
  const present = new Set<string>();
  for (const entry of entries) {
    present.add(entry.name);
    const shape = expected.get(entry.name);
    if (shape === undefined) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `unexpected tensor "${entry.name}" for this model`,
      );
    }
    if (!sameShape(shape, entry.shape)) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${entry.name}" has shape ${formatShape(entry.shape)}, the model expects ${formatShape(shape)}`,
      );
    }
  }
  for (const name of expected.keys()) {
    if (!present.has(name)) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" is missing from the checkpoint`,
      );
    }
  }
}

/** A JSON-only deep copy (throws on what JSON cannot hold), so the manifest is plain data. */
function plainJson(value: unknown): unknown {
  return JSON.parse(canonicalJson(value)) as unknown;
}
