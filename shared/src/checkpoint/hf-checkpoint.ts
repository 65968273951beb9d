import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { openHfFolder, writeHfFolder } from '../formats/hf-folder.ts';
import { ModelFormatError } from '../formats/errors.ts';
import type { ModelConfig } from '../model/config.ts';
import { hfConfig, modelConfigFromHf, parameterShapes } from '../model/config.ts';
import { pathExists, writeFolderAtomically } from './atomic-folder.ts';
import { encodeCheckpoint, type DecodedCheckpoint, type DecodeOptions } from './codec.ts';
import { CheckpointError } from './errors.ts';
import type { NamedTensors } from './tensors.ts';

/**
 * A Commons model as a Hugging Face model folder: config.json, generation_config.json,
 * model.safetensors (float32), tokenizer.json and tokenizer_config.json, so transformers,
 * llama.cpp's converter, the Commons library and chat all open it as they open SmolLM2;
 * plus commons-checkpoint.json, which records the model's Commons hash (the one the
 * ModelRegistry holds) and its provenance.
 *
 * The hash is the same one a commons-checkpoint (manifest.json + weights.bin) of the same
 * model has (hash.ts): the reader rebuilds that checkpoint's identity from the folder and
 * hashes it, so one model has one hash whichever way it is stored or sent, and a folder
 * whose files were changed no longer matches the hash it records.
 */
export const HF_CHECKPOINT_FILE = 'commons-checkpoint.json';
const HF_CHECKPOINT_FORMAT = 'commons-hf-checkpoint';

export interface HfCheckpointInput {
  config: ModelConfig;
  /** The tokenizer as ChatTokenizer.toJSON() gives it: { format, tokenizer, config }. */
  tokenizer: { tokenizer: Record<string, unknown>; config: Record<string, unknown> };
  tensors: NamedTensors;
  provenance?: Record<string, unknown>;
}

/** True when `dir` holds a Hugging Face folder written by writeHfCheckpoint. */
export async function isHfCheckpointFolder(dir: string): Promise<boolean> {
  return (
    (await pathExists(join(dir, HF_CHECKPOINT_FILE))) &&
    (await pathExists(join(dir, 'config.json')))
  );
}

/** Writes the model into `dir`, which must not exist yet, in one step (atomic-folder.ts). */
export async function writeHfCheckpoint(
  dir: string,
  input: HfCheckpointInput,
): Promise<{ hash: string; dir: string }> {
  // The config as a reader will see it (defaults filled in), so the hashes agree.
  const config = modelConfigFromHf(hfConfig(input.config));
  const record = { format: 'huggingface-tokenizers', ...input.tokenizer };
  const tensors = ordered(config, input.tensors, dir);
  const { hash } = encodeCheckpoint({ kind: 'model', config, tokenizer: record, tensors });
  const eos = eosTokenIds(input.tokenizer);
  const target = await writeFolderAtomically(dir, async (temp) => {
    await writeHfFolder(temp, {
      config: hfConfig(config, { eosTokenId: eos[0] }),
      generationConfig: { eos_token_id: eos, transformers_version: '4.46.0' },
      tensors,
    });
    const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
    await writeFile(join(temp, 'tokenizer.json'), json(input.tokenizer.tokenizer));
    await writeFile(join(temp, 'tokenizer_config.json'), json(input.tokenizer.config));
    await writeFile(
      join(temp, HF_CHECKPOINT_FILE),
      json({ format: HF_CHECKPOINT_FORMAT, hash, provenance: input.provenance ?? {} }),
    );
  });
  return { hash, dir: target };
}

/**
 * Reads and verifies a folder written by writeHfCheckpoint: every tensor the config implies
 * with its shape, none other, and the content hashing to the hash recorded (and to
 * `opts.expectedHash`, e.g. the one registered on chain).
 */
export async function readHfCheckpoint(
  dir: string,
  opts: DecodeOptions = {},
): Promise<DecodedCheckpoint> {
  const recorded = await readJson(join(dir, HF_CHECKPOINT_FILE));
  if (
    recorded.format !== HF_CHECKPOINT_FORMAT ||
    typeof recorded.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(recorded.hash)
  ) {
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `${dir}/${HF_CHECKPOINT_FILE} is not a ${HF_CHECKPOINT_FORMAT} record with a hash`,
    );
  }
  const provenance = (recorded.provenance ?? {}) as Record<string, unknown>;
  const decoded = await readHfFolderCheckpoint(dir, { provenance });
  if (decoded.hash !== recorded.hash) {
    throw new CheckpointError(
      'HASH_MISMATCH',
      `${dir} is corrupt: ${HF_CHECKPOINT_FILE} records hash ${recorded.hash} but the files hash to ${decoded.hash}`,
    );
  }
  if (opts.expectedHash !== undefined) {
    const want = opts.expectedHash.toLowerCase().replace(/^0x/, '');
    if (want !== decoded.hash) {
      throw new CheckpointError(
        'UNEXPECTED_HASH',
        `expected checkpoint ${want} but ${dir} is ${decoded.hash}`,
      );
    }
  }
  return decoded;
}

/**
 * Any Hugging Face Llama-family folder (config.json, safetensors, tokenizer.json,
 * tokenizer_config.json) as a Commons checkpoint: a model pulled from the hub or imported into
 * the library, to train from (a community built on an open-weights base). Refuses, by name, a
 * config the trainable model does not compute and any tensor missing, stray or misshapen. The
 * hash is the checkpoint hash of what was read; nothing records an expected one here.
 */
export async function readHfFolderCheckpoint(
  dir: string,
  options: { provenance?: Record<string, unknown> } = {},
): Promise<DecodedCheckpoint> {
  let config: ModelConfig;
  try {
    config = modelConfigFromHf(await readJson(join(dir, 'config.json')), `${dir}/config.json`);
  } catch (error) {
    if (error instanceof CheckpointError) throw error;
    throw new CheckpointError('MALFORMED_MANIFEST', (error as Error).message, { cause: error });
  }
  const tokenizer = {
    format: 'huggingface-tokenizers',
    tokenizer: await readJson(join(dir, 'tokenizer.json')),
    config: await readJson(join(dir, 'tokenizer_config.json')),
  };
  const folder = await openHfFolder(dir);
  const tensors: NamedTensors = new Map();
  try {
    const expected = parameterShapes(config);
    const held = new Set(folder.tensorNames);
    for (const name of held) {
      if (!expected.has(name)) {
        throw new CheckpointError('SHAPE_MISMATCH', `${dir}: unexpected tensor "${name}"`);
      }
    }
    for (const [name, shape] of expected) {
      if (!held.has(name)) {
        throw new CheckpointError('SHAPE_MISMATCH', `${dir}: missing tensor "${name}"`);
      }
      const t = await folder.read(name);
      if (t.shape.join('x') !== shape.join('x')) {
        throw new CheckpointError(
          'SHAPE_MISMATCH',
          `${dir}: tensor "${name}" has shape [${t.shape}], expected [${shape}]`,
        );
      }
      tensors.set(name, { shape: [...t.shape], data: t.data });
    }
  } catch (error) {
    if (error instanceof ModelFormatError) {
      throw new CheckpointError('MALFORMED_MANIFEST', error.message, { cause: error });
    }
    throw error;
  } finally {
    await folder.close();
  }
  const encoded = encodeCheckpoint({
    kind: 'model',
    config,
    tokenizer,
    tensors,
    provenance: options.provenance ?? {},
  });
  return { manifest: encoded.manifest, tensors, hash: encoded.hash };
}

/** The tensors in parameter order (the order the hash covers), refusing strays and gaps. */
function ordered(config: ModelConfig, tensors: NamedTensors, dir: string): NamedTensors {
  const out: NamedTensors = new Map();
  const expected = parameterShapes(config);
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t || t.shape.join('x') !== shape.join('x')) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `${dir}: tensor "${name}" is ${t ? `[${t.shape}]` : 'missing'}, expected [${shape}]`,
      );
    }
    out.set(name, t);
  }
  for (const name of tensors.keys()) {
    if (!expected.has(name))
      throw new CheckpointError('SHAPE_MISMATCH', `${dir}: unexpected tensor "${name}"`);
  }
  return out;
}

/**
 * The ids that end a reply, for generation_config.json: the chat template's end-of-turn
 * token first (`<|im_end|>` in ChatML), then the tokenizer's eos_token and the end of a
 * document (`<|endoftext|>`), which a model trained on plain text emits instead.
 */
function eosTokenIds(tokenizer: HfCheckpointInput['tokenizer']): number[] {
  const added = (tokenizer.tokenizer.added_tokens ?? []) as { id: number; content: string }[];
  const id = (content: unknown) => added.find((t) => t.content === content)?.id;
  const eos = tokenizer.config.eos_token;
  const eosText = typeof eos === 'string' ? eos : (eos as { content?: string } | null)?.content;
  const ids = [id('<|im_end|>'), id(eosText), id('<|endoftext|>')].filter(
    (v): v is number => v !== undefined,
  );
  return [...new Set(ids)];
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new CheckpointError('MISSING_FILE', `${file} does not exist`, { cause: error });
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error();
    return value as Record<string, unknown>;
  } catch (error) {
    throw new CheckpointError('MALFORMED_MANIFEST', `${file} is not a JSON object`, {
      cause: error,
    });
  }
}
