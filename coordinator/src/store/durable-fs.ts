import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stats } from 'node:fs';

// What the stores ask the file system besides writing: whether something is there, and which
// error a call failed with. The fsync steps themselves are shared/src/storage/durable-write.ts.

/** stat(), or undefined when nothing is there. */
export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if (isErrorCode(error, 'ENOENT') || isErrorCode(error, 'ENOTDIR')) return undefined;
    throw error;
  }
}

export function isErrorCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/**
 * The folder a store writes its temporaries in, cleared of what a crash left. A store of one
 * process owns `dir` and clears it all. A store several coordinator nodes share (scale-out mode)
 * gives each process its own subfolder and clears only others' that are over an hour old: a
 * younger one may be a live node's publish in progress.
 */
export async function temporaryFolder(dir: string, shared: boolean): Promise<string> {
  if (!shared) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return dir;
  }
  await mkdir(dir, { recursive: true });
  const cutoff = Date.now() - 3_600_000;
  for (const entry of await readdir(dir)) {
    const info = await statOrUndefined(join(dir, entry));
    if (info && info.mtimeMs < cutoff) await rm(join(dir, entry), { recursive: true, force: true });
  }
  const own = join(dir, randomUUID());
  await mkdir(own, { recursive: true });
  return own;
}
