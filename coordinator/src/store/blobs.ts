import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { sha256Hex, syncDirectory, writeNewFileDurably } from '@commons/shared/engine';

import { isErrorCode, statOrUndefined, temporaryFolder } from './durable-fs.ts';
import { assertSha256Hex, isSha256Hex, StoreError } from './errors.ts';

/**
 * A content-addressed folder of immutable blobs (update frames, strategy tensors), each named
 * by the sha256 of its bytes and fanned out by the first two hex digits (ab/cdef...), so no
 * folder grows past a few thousand entries.
 *
 * A blob appears under its name only when complete and durable: bytes go to a temporary file
 * that is fsynced, renamed into place, and the folder fsynced; a crash leaves either nothing
 * or the whole blob (plus, at worst, a stray temporary file that open() removes).
 */
export class BlobStore {
  readonly root: string;
  private readonly tempDir: string;

  private constructor(root: string, tempDir: string) {
    this.root = root;
    this.tempDir = tempDir;
  }

  /**
   * Opens (creating if needed) the store in `root` and removes temporaries a crash left.
   * `shared`: several coordinator nodes use this folder (scale-out mode).
   */
  static async open(root: string, options: { shared?: boolean } = {}): Promise<BlobStore> {
    const dir = resolve(root);
    return new BlobStore(dir, await temporaryFolder(join(dir, '.tmp'), options.shared ?? false));
  }

  /**
   * Stores `bytes` and resolves with their sha256 once they are durable. Putting content
   * that is already there is a no-op (a stored file of the wrong size, which can only be
   * damage, is replaced).
   */
  async put(bytes: Uint8Array): Promise<string> {
    const hash = sha256Hex(bytes);
    const target = this.path(hash);
    if ((await statOrUndefined(target))?.size === bytes.length) return hash;

    const temp = join(this.tempDir, randomUUID());
    try {
      await writeNewFileDurably(temp, bytes);
      const fanOut = join(this.root, hash.slice(0, 2));
      if ((await statOrUndefined(fanOut)) === undefined) {
        await mkdir(fanOut, { recursive: true });
        await syncDirectory(this.root);
      }
      // Two puts of the same bytes may race here: rename replaces atomically and both
      // files hold the same content, so either winner is right.
      await rename(temp, target);
      await syncDirectory(fanOut);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return hash;
  }

  async has(hash: string): Promise<boolean> {
    return (await statOrUndefined(this.path(hash))) !== undefined;
  }

  /** The blob's bytes, after checking they still hash to `hash` (CORRUPT otherwise). */
  async read(hash: string): Promise<Uint8Array> {
    let buffer: Buffer;
    try {
      buffer = await readFile(this.path(hash));
    } catch (error) {
      throw notFoundOr(hash, error);
    }
    return this.verified(hash, buffer);
  }

  /** read(), blocking: for the few callers that cannot await (restoring state on start). */
  readSync(hash: string): Uint8Array {
    let buffer: Buffer;
    try {
      buffer = readFileSync(this.path(hash));
    } catch (error) {
      throw notFoundOr(hash, error);
    }
    return this.verified(hash, buffer);
  }

  private verified(hash: string, buffer: Buffer): Uint8Array {
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const actual = sha256Hex(bytes);
    if (actual !== hash) {
      throw new StoreError(
        'CORRUPT',
        `blob ${hash} is corrupt: its ${bytes.length} bytes hash to ${actual}`,
      );
    }
    return bytes;
  }

  /** Where the blob named `hash` lives (whether or not it exists); BAD_HASH for a non-hash. */
  path(hash: string): string {
    assertSha256Hex(hash, 'blob');
    return join(this.root, hash.slice(0, 2), hash.slice(2));
  }

  /** Removes the blob; false when there was none. */
  async delete(hash: string): Promise<boolean> {
    try {
      await unlink(this.path(hash));
      return true;
    } catch (error) {
      if (isErrorCode(error, 'ENOENT')) return false;
      throw error;
    }
  }

  /** Every blob's hash, sorted. */
  async list(): Promise<string[]> {
    const hashes: string[] = [];
    for (const prefix of await readdir(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const rest of await readdir(join(this.root, prefix))) {
        const hash = prefix + rest;
        if (isSha256Hex(hash)) hashes.push(hash);
      }
    }
    return hashes.sort();
  }
}

/** "No such file" becomes NOT_FOUND naming the blob; anything else stays as it was. */
function notFoundOr(hash: string, error: unknown): unknown {
  return isErrorCode(error, 'ENOENT')
    ? new StoreError('NOT_FOUND', `blob ${hash} does not exist`, { cause: error })
    : error;
}
