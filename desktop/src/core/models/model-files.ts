// Local copies of model versions: <data>/models/<sha256>/{manifest.json,weights.bin}, exactly
// the two files the coordinator's store serves. It is the ModelCache fetchBaseModel uses, so a
// copy is only ever written after its bytes verified against the expected hash, and is
// verified again every time it is read (a file altered on disk is caught, not trusted).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointBytes, ModelCache } from '@commons/shared/contributor';
import { writeFileAtomic } from '@commons/shared/engine';

/** 64 lowercase hex digits, the form the store and the manifests use (the chain adds 0x). */
export function plainHash(hash: string): string {
  return hash.toLowerCase().replace(/^0x/, '');
}

export class ModelFiles implements ModelCache {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'models');
  }

  folder(hash: string): string {
    return join(this.dir, plainHash(hash));
  }

  /** Bytes on disk, or 0 when there is no complete copy. */
  async size(hash: string): Promise<number> {
    try {
      const [m, w] = await Promise.all([
        stat(join(this.folder(hash), 'manifest.json')),
        stat(join(this.folder(hash), 'weights.bin')),
      ]);
      return m.size + w.size;
    } catch {
      return 0;
    }
  }

  async get(hash: string): Promise<CheckpointBytes | undefined> {
    try {
      const [manifest, weights] = await Promise.all([
        readFile(join(this.folder(hash), 'manifest.json')),
        readFile(join(this.folder(hash), 'weights.bin')),
      ]);
      return { manifest, weights };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Both files land in a temporary folder renamed into place: never half a model under its name. */
  async set(hash: string, bytes: CheckpointBytes): Promise<void> {
    const target = this.folder(hash);
    const temp = `${target}.partial-${randomBytes(6).toString('hex')}`;
    await mkdir(temp, { recursive: true });
    try {
      await writeFileAtomic(join(temp, 'weights.bin'), bytes.weights);
      await writeFileAtomic(join(temp, 'manifest.json'), bytes.manifest);
      await rm(target, { recursive: true, force: true });
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  }

  async remove(hash: string): Promise<void> {
    await rm(this.folder(hash), { recursive: true, force: true });
  }
}
