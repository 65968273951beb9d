// The two fsync steps every store in this repository takes to make a write survive a crash:
// flush a new file's bytes before its name is published (by a rename), then flush the folder
// so that the rename or new entry itself is on disk. The atomic file writes (atomic-file.ts),
// the checkpoint folders (checkpoint/folder.ts) and the coordinator's blob and model stores
// all use these, so there is one answer to "how does this platform fsync".
import { open } from 'node:fs/promises';

/**
 * Writes `data` to a new file at `path` (refusing one that exists: a temporary name must be
 * fresh) with permission `mode`, and fsyncs it before closing.
 */
export async function writeNewFileDurably(
  path: string,
  data: Uint8Array | string,
  mode = 0o666,
): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Fsyncs the folder `dir`, so a rename into it or a new entry in it survives a crash. Best
 * effort: it runs after the rename, when the data is already complete under its final name,
 * so a platform that cannot fsync a folder (Windows cannot open one; its renames are
 * journalled by NTFS instead) must not turn a finished write into a reported failure.
 */
export async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  let handle;
  try {
    handle = await open(dir, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on a folder (EINVAL, EISDIR): nothing more can be done.
  } finally {
    await handle.close();
  }
}
