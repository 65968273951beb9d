import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { syncDirectory, writeNewFileDurably } from '../storage/durable-write.ts';

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
  const target = resolve(dir);
  if (await exists(target)) {
    throw new CheckpointError('ALREADY_EXISTS', `${target} already exists`);
  }
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const temp = join(parent, `.${basename(target)}.partial-${randomUUID()}`);
  await mkdir(temp);
  try {
    // Each file is flushed, so the rename below never publishes a name whose data is not on
    // disk; the parent folder is flushed after it, so the rename itself survives a crash.
    await writeNewFileDurably(join(temp, WEIGHTS_FILE), weights);
    await writeNewFileDurably(
      join(temp, MANIFEST_FILE),
      new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`),
    );
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    if (isErrorCode(error, 'EEXIST') || isErrorCode(error, 'ENOTEMPTY')) {
      throw new CheckpointError('ALREADY_EXISTS', `${target} already exists`, { cause: error });
    }
    throw error;
  }
  await syncDirectory(parent);
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
  if (!(await exists(join(dir, MANIFEST_FILE))) && (await isHfCheckpointFolder(dir))) {
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

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isErrorCode(error, 'ENOENT')) return false;
    throw error;
  }
}

function isErrorCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
