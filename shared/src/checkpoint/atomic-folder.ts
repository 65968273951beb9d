import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import { syncDirectory } from '../storage/durable-write.ts';
import { CheckpointError } from './errors.ts';

/**
 * Writes a checkpoint folder in one step: `fill` writes every file into a hidden sibling folder,
 * which is then renamed to `dir`, so a crash or an error never leaves a half-written checkpoint
 * under the final name; on error the temporary folder is removed. `dir` must not exist yet
 * (checkpoints are immutable). Node only. Returns the absolute path written.
 */
export async function writeFolderAtomically(
  dir: string,
  fill: (temp: string) => Promise<void>,
): Promise<string> {
  const target = resolve(dir);
  if (await pathExists(target)) {
    throw new CheckpointError('ALREADY_EXISTS', `${target} already exists`);
  }
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const temp = join(parent, `.${basename(target)}.partial-${randomUUID()}`);
  await mkdir(temp);
  try {
    await fill(temp);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    if (isErrorCode(error, 'EEXIST') || isErrorCode(error, 'ENOTEMPTY')) {
      throw new CheckpointError('ALREADY_EXISTS', `${target} already exists`, { cause: error });
    }
    throw error;
  }
  await syncDirectory(parent);
  return target;
}

/** Whether `path` exists; a path under a file (ENOTDIR) does not. Other errors are thrown. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isErrorCode(error, 'ENOENT') || isErrorCode(error, 'ENOTDIR')) return false;
    throw error;
  }
}

export function isErrorCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
