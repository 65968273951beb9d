import { open, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';

/** The few file-system steps the stores need to make writes survive a crash. */

/** Writes `bytes` to a new file (refusing an existing one) and fsyncs it before closing. */
export async function writeNewFileDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename or a new entry durable. Some platforms (Windows) cannot open a folder. */
export async function syncDirectory(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // Best effort: the platform cannot fsync a folder.
  } finally {
    await handle.close();
  }
}

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
