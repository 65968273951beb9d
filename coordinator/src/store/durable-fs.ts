import { stat } from 'node:fs/promises';
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
