import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { writeNewFileDurably } from '../storage/durable-write.ts';

import { isErrorCode, pathExists, writeFolderAtomically } from './atomic-folder.ts';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  type CheckpointInput,
  type DecodedCheckpoint,
  type DecodeOptions,
} from './codec.ts';
import { CheckpointError } from './errors.ts';
import { isHfCheckpointFolder, readHfCheckpoint } from './hf-checkpoint.ts';

/**
 * A checkpoint on disk is a folder holding manifest.json and weights.bin. Node only: the
 * browser uses codec.ts directly on bytes it fetched.
 */
export const MANIFEST_FILE = 'manifest.json';
export const WEIGHTS_FILE = 'weights.bin';

/**
 * Writes the checkpoint into `dir`, which must not exist yet (checkpoints are immutable).
 * Both files are written and flushed in a hidden sibling folder that is then renamed to
 * `dir` in one step, so a crash or an error never leaves a half-written checkpoint under
 * the final name; on error the temporary folder is removed.
 */
export async function writeCheckpoint(
  dir: string,
  input: CheckpointInput,
): Promise<{ hash: string; dir: string }> {
  const { manifest, weights, hash } = encodeCheckpoint(input);
  const target = await writeFolderAtomically(dir, async (temp) => {
    await writeNewFileDurably(join(temp, WEIGHTS_FILE), weights);
    await writeNewFileDurably(
      join(temp, MANIFEST_FILE),
      new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`),
    );
  });
  return { hash, dir: target };
}

/**
 * Reads and fully verifies the checkpoint in `dir` (see decodeCheckpoint for the checks): a
 * commons-checkpoint folder, or a model saved as a Hugging Face folder (hf-checkpoint.ts),
 * which has the same hash.
 */
export async function readCheckpoint(
  dir: string,
  opts: DecodeOptions = {},
): Promise<DecodedCheckpoint> {
  if (!(await pathExists(join(dir, MANIFEST_FILE))) && (await isHfCheckpointFolder(dir))) {
    return readHfCheckpoint(dir, opts);
  }
  const manifest = await readRequired(join(dir, MANIFEST_FILE));
  const weights = await readRequired(join(dir, WEIGHTS_FILE));
  return decodeCheckpoint(manifest, weights, opts);
}

async function readRequired(path: string): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    // A plain Uint8Array view: Buffer's own slice() shares memory, which codec code must
    // never be surprised by.
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    if (isErrorCode(error, 'ENOENT') || isErrorCode(error, 'ENOTDIR')) {
      throw new CheckpointError('MISSING_FILE', `${path} does not exist`, { cause: error });
    }
    throw error;
  }
}
