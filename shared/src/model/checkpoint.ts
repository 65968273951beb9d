import type { Manifest } from '../checkpoint/index.ts';
import { CheckpointError } from '../checkpoint/index.ts';
import { readCheckpoint, writeCheckpoint } from '../checkpoint/folder.ts';
import { writeHfCheckpoint } from '../checkpoint/hf-checkpoint.ts';
import { LoraAdapter } from './lora.ts';
import { ChatTokenizer } from '../chat/tokenizer.ts';
import { parameterShapes } from './config.ts';
import { Transformer } from './transformer.ts';

/**
 * Models and adapters to and from verified checkpoint folders: the one place where the
 * network, its tokenizer and the checkpoint codec meet. Loading checks the hash (and the
 * expected hash, e.g. the one registered on chain) before a single weight reaches tfjs.
 */
export interface LoadedModel {
  model: Transformer;
  tokenizer: ChatTokenizer;
  manifest: Manifest;
  hash: string;
}

export async function saveModel(
  dir: string,
  model: Transformer,
  tokenizer: ChatTokenizer,
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

/**
 * Saves a model as a Hugging Face folder (hf-checkpoint.ts): what the genesis model ships as
 * and what a member exports, loadable by loadModel, the inference engine and transformers.
 */
export async function saveHfModel(
  dir: string,
  model: Transformer,
  tokenizer: ChatTokenizer,
  provenance: Record<string, unknown> = {},
): Promise<{ hash: string; dir: string }> {
  const record = tokenizer.toJSON();
  return writeHfCheckpoint(dir, {
    config: model.config,
    tokenizer: { tokenizer: record.tokenizer, config: record.config },
    tensors: model.toTensors(),
    provenance,
  });
}

/** A model from a commons-checkpoint or Hugging Face checkpoint folder, verified first. */
export async function loadModel(
  dir: string,
  opts: { expectedHash?: string } = {},
): Promise<LoadedModel> {
  const { manifest, tensors, hash } = await readCheckpoint(dir, opts);
  if (manifest.kind !== 'model') {
    throw new CheckpointError('MALFORMED_MANIFEST', `${dir} holds an adapter, not a model`);
  }
  const tokenizer = ChatTokenizer.fromJSON(manifest.tokenizer);
  // The embedding may have spare rows (Qwen2.5 pads its vocabulary), never too few.
  if (tokenizer.vocabSize > manifest.config.vocabSize) {
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `tokenizer has ${tokenizer.vocabSize} tokens but the model embeds only ${manifest.config.vocabSize}`,
    );
  }
  const expected = parameterShapes(manifest.config);
  const problem = shapeProblem(expected, tensors);
  if (problem) throw new CheckpointError('SHAPE_MISMATCH', `${dir}: ${problem}`);
  return { model: Transformer.fromTensors(manifest.config, tensors), tokenizer, manifest, hash };
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

/**
 * Load an adapter and check it was trained on exactly this base model. With `carry`, an adapter
 * trained on another model is layered too when its shape fits this one: a personal adapter
 * follows the member from one community version to the next (a version from an adapter round
 * keeps its parent's shape); `carriedFrom` then names the model it was trained on.
 */
export async function loadAdapter(
  dir: string,
  base: Pick<LoadedModel, 'model' | 'hash'>,
  options: { carry?: boolean } = {},
): Promise<{ adapter: LoraAdapter; manifest: Manifest; hash: string; carriedFrom: string | null }> {
  const { manifest, tensors, hash } = await readCheckpoint(dir);
  if (manifest.kind !== 'adapter' || !manifest.adapter) {
    throw new CheckpointError('MALFORMED_MANIFEST', `${dir} holds a full model, not an adapter`);
  }
  const trainedOn = manifest.adapter.baseHash;
  if (trainedOn !== base.hash && options.carry !== true) {
    throw new CheckpointError(
      'UNEXPECTED_HASH',
      `adapter ${dir} was trained on model ${trainedOn.slice(0, 12)}…, not on the loaded ${base.hash.slice(0, 12)}…`,
    );
  }
  const problem = shapeProblem(
    LoraAdapter.shapes(base.model.config, manifest.adapter.lora),
    tensors,
  );
  if (problem) {
    throw new CheckpointError(
      trainedOn === base.hash ? 'SHAPE_MISMATCH' : 'ADAPTER_MISMATCH',
      trainedOn === base.hash
        ? `${dir}: ${problem}`
        : `adapter ${dir} was trained on model ${trainedOn.slice(0, 12)}…, whose shape differs from ${base.hash.slice(0, 12)}… (${problem}); train a new one on this model`,
    );
  }
  return {
    adapter: LoraAdapter.fromTensors(base.model.config, manifest.adapter.lora, tensors),
    manifest,
    hash,
    carriedFrom: trainedOn === base.hash ? null : trainedOn,
  };
}

/**
 * What keeps `tensors` from being exactly the `expected` set (a missing, misshapen or
 * unexpected tensor, named), or null. One wording for every place an adapter or checkpoint
 * meets a model it may not fit: the CLI, the desktop's personal adapter, loaders.
 */
export function shapeProblem(
  expected: ReadonlyMap<string, readonly number[]>,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
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
