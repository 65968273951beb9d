import type { Manifest } from '../checkpoint/index.ts';
import { CheckpointError } from '../checkpoint/index.ts';
import { readCheckpoint, writeCheckpoint } from '../checkpoint/folder.ts';
import { LoraAdapter } from './lora.ts';
import { BpeTokenizer } from './tokenizer.ts';
import { GPT, parameterShapes } from './transformer.ts';

/**
 * Models and adapters to and from verified checkpoint folders: the one place where the
 * network, its tokenizer and the checkpoint codec meet. Loading checks the hash (and the
 * expected hash, e.g. the one registered on chain) before a single weight reaches tfjs.
 */
export interface LoadedModel {
  model: GPT;
  tokenizer: BpeTokenizer;
  manifest: Manifest;
  hash: string;
}

export async function saveModel(
  dir: string,
  model: GPT,
  tokenizer: BpeTokenizer,
  provenance: Record<string, unknown> = {},
): Promise<{ hash: string; dir: string }> {
  return writeCheckpoint(dir, {
    kind: 'model',
    config: model.config,
    tokenizer: tokenizer.toJSON(),
    tensors: model.toTensors(),
    provenance,
  });
}

export async function loadModel(
  dir: string,
  opts: { expectedHash?: string } = {},
): Promise<LoadedModel> {
  const { manifest, tensors, hash } = await readCheckpoint(dir, opts);
  if (manifest.kind !== 'model') {
    throw new CheckpointError('MALFORMED_MANIFEST', `${dir} holds an adapter, not a model`);
  }
  const tokenizer = BpeTokenizer.fromJSON(manifest.tokenizer);
  if (tokenizer.vocabSize !== manifest.config.vocabSize) {
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `tokenizer has ${tokenizer.vocabSize} tokens but the model config says ${manifest.config.vocabSize}`,
    );
  }
  const expected = parameterShapes(manifest.config);
  const problem = shapeProblem(expected, tensors);
  if (problem) throw new CheckpointError('SHAPE_MISMATCH', `${dir}: ${problem}`);
  return { model: GPT.fromTensors(manifest.config, tensors), tokenizer, manifest, hash };
}

export async function saveAdapter(
  dir: string,
  adapter: LoraAdapter,
  base: Pick<LoadedModel, 'model' | 'tokenizer' | 'hash'>,
  provenance: Record<string, unknown> = {},
): Promise<{ hash: string; dir: string }> {
  return writeCheckpoint(dir, {
    kind: 'adapter',
    config: base.model.config,
    tokenizer: base.tokenizer.toJSON(),
    tensors: adapter.toTensors(),
    adapter: { baseHash: base.hash, lora: adapter.config },
    provenance,
  });
}

/** Load an adapter and check it was trained on exactly this base model. */
export async function loadAdapter(
  dir: string,
  base: Pick<LoadedModel, 'model' | 'hash'>,
): Promise<{ adapter: LoraAdapter; manifest: Manifest; hash: string }> {
  const { manifest, tensors, hash } = await readCheckpoint(dir);
  if (manifest.kind !== 'adapter' || !manifest.adapter) {
    throw new CheckpointError('MALFORMED_MANIFEST', `${dir} holds a full model, not an adapter`);
  }
  if (manifest.adapter.baseHash !== base.hash) {
    throw new CheckpointError(
      'UNEXPECTED_HASH',
      `adapter ${dir} was trained on model ${manifest.adapter.baseHash.slice(0, 12)}…, not on the loaded ${base.hash.slice(0, 12)}…`,
    );
  }
  const problem = shapeProblem(
    LoraAdapter.shapes(base.model.config, manifest.adapter.lora),
    tensors,
  );
  if (problem) throw new CheckpointError('SHAPE_MISMATCH', `${dir}: ${problem}`);
  return {
    adapter: LoraAdapter.fromTensors(base.model.config, manifest.adapter.lora, tensors),
    manifest,
    hash,
  };
}

function shapeProblem(
  expected: Map<string, number[]>,
  tensors: Map<string, { shape: number[] }>,
): string | null {
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) return `missing tensor "${name}"`;
    if (t.shape.join('x') !== shape.join('x')) {
      return `tensor "${name}" has shape [${t.shape}], expected [${shape}]`;
    }
  }
  for (const name of tensors.keys()) if (!expected.has(name)) return `unexpected tensor "${name}"`;
  return null;
}
