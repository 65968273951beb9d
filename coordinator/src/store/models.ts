import { randomUUID } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import {
  decodeCheckpoint,
  type CheckpointInput,
  type DecodedCheckpoint,
  type DecodeOptions,
  type EncodedCheckpoint,
  MANIFEST_FILE,
  readCheckpoint,
  WEIGHTS_FILE,
  writeCheckpoint,
  syncDirectory,
} from '@commons/shared/engine';

import { isErrorCode, statOrUndefined, temporaryFolder } from './durable-fs.ts';
import { assertSha256Hex, isSha256Hex, StoreError } from './errors.ts';

/** The files of a published model, the only ones the HTTP routes serve. */
export const MODEL_FILES = [MANIFEST_FILE, WEIGHTS_FILE] as const;
export type ModelFileName = (typeof MODEL_FILES)[number];

export interface ModelFile {
  path: string;
  size: number;
}

/**
 * Published checkpoints, one immutable folder per content hash: models/<hash>/manifest.json
 * and weights.bin, in the one checkpoint format (shared/checkpoint). Clients fetch them over
 * HTTP and verify the hash against the chain; the coordinator verifies on load.
 */
export class ModelStore {
  readonly root: string;
  private readonly stagingDir: string;

  private constructor(root: string, stagingDir: string) {
    this.root = root;
    this.stagingDir = stagingDir;
  }

  /**
   * Opens (creating if needed) the store in `root` and removes what a crashed publish left.
   * `shared`: several coordinator nodes use this folder (scale-out mode).
   */
  static async open(root: string, options: { shared?: boolean } = {}): Promise<ModelStore> {
    const dir = resolve(root);
    return new ModelStore(
      dir,
      await temporaryFolder(join(dir, '.staging'), options.shared ?? false),
    );
  }

  /**
   * Stores a checkpoint under its content hash and returns the hash. Publishing content that
   * is already there is a no-op. An encoded checkpoint is verified first, and must re-encode
   * to the very same hash (so what is served is exactly what was hashed).
   */
  async publish(checkpoint: CheckpointInput | EncodedCheckpoint): Promise<string> {
    let input: CheckpointInput;
    let claimed: string | undefined;
    if (isEncoded(checkpoint)) {
      const decoded = decodeCheckpoint(checkpoint.manifest, checkpoint.weights, {
        expectedHash: checkpoint.hash,
      });
      if (await this.has(decoded.hash)) return decoded.hash;
      input = toInput(decoded);
      claimed = decoded.hash;
    } else {
      input = checkpoint;
    }

    // writeCheckpoint makes the folder appear whole under a staging name; one more rename
    // then publishes it under its hash, which is only known once it is encoded.
    const staging = join(this.stagingDir, randomUUID());
    const { hash } = await writeCheckpoint(staging, input);
    try {
      if (claimed !== undefined && hash !== claimed) {
        throw new StoreError(
          'CORRUPT',
          `checkpoint ${claimed} re-encodes to ${hash}; it was not written by this codec`,
        );
      }
      await rename(staging, this.dir(hash));
      await syncDirectory(this.root);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      // Already published (earlier, or by a concurrent call): same hash, same content.
      if (isErrorCode(error, 'ENOTEMPTY') || isErrorCode(error, 'EEXIST')) return hash;
      throw error;
    }
    return hash;
  }

  /**
   * Imports the checkpoint folder `dir` (a seed model, the genesis) unless its hash is already
   * here; resolves with the hash and whether it was new.
   */
  async importFolder(dir: string): Promise<{ hash: string; imported: boolean }> {
    const { manifest, tensors, hash } = await readCheckpoint(dir);
    if (await this.has(hash)) return { hash, imported: false };
    await this.publish({
      kind: manifest.kind,
      config: manifest.config,
      tokenizer: manifest.tokenizer,
      tensors,
      provenance: manifest.provenance,
    });
    return { hash, imported: true };
  }

  async has(hash: string): Promise<boolean> {
    return (await statOrUndefined(join(this.dir(hash), MANIFEST_FILE))) !== undefined;
  }

  /** Reads and fully verifies the model `hash` (NOT_FOUND when absent, HASH_MISMATCH if damaged). */
  async load(
    hash: string,
    opts: Omit<DecodeOptions, 'expectedHash'> = {},
  ): Promise<DecodedCheckpoint> {
    if (!(await this.has(hash)))
      throw new StoreError('NOT_FOUND', `model ${hash} is not published`);
    return readCheckpoint(this.dir(hash), { ...opts, expectedHash: hash });
  }

  /** One file of a published model, for serving; undefined when the model is absent. */
  async file(hash: string, name: ModelFileName): Promise<ModelFile | undefined> {
    const path = join(this.dir(hash), name);
    const stats = await statOrUndefined(path);
    return stats?.isFile() === true ? { path, size: stats.size } : undefined;
  }

  /** Both files of a published model; undefined when the model is absent. */
  async files(hash: string): Promise<Record<ModelFileName, ModelFile> | undefined> {
    const manifest = await this.file(hash, MANIFEST_FILE);
    const weights = await this.file(hash, WEIGHTS_FILE);
    if (manifest === undefined || weights === undefined) return undefined;
    return { [MANIFEST_FILE]: manifest, [WEIGHTS_FILE]: weights };
  }

  /** Every published model's hash, sorted. */
  async list(): Promise<string[]> {
    const names = await readdir(this.root);
    return names.filter(isSha256Hex).sort();
  }

  /** The folder of model `hash`; BAD_HASH for anything but 64 lowercase hex digits. */
  dir(hash: string): string {
    assertSha256Hex(hash, 'model');
    return join(this.root, hash);
  }
}

function isEncoded(value: CheckpointInput | EncodedCheckpoint): value is EncodedCheckpoint {
  return 'manifest' in value && 'weights' in value;
}

/** Back from a verified checkpoint to what the encoder takes, to write it with writeCheckpoint. */
function toInput({ manifest, tensors }: DecodedCheckpoint): CheckpointInput {
  const dtypes = new Set(manifest.tensors.map((t) => t.dtype));
  const [dtype = 'float32'] = dtypes;
  if (dtypes.size > 1) {
    throw new StoreError(
      'UNSUPPORTED',
      `checkpoint ${manifest.hash} mixes tensor dtypes (${[...dtypes].join(', ')})`,
    );
  }
  return {
    kind: manifest.kind,
    config: manifest.config,
    tokenizer: manifest.tokenizer,
    tensors,
    dtype,
    provenance: manifest.provenance,
    ...(manifest.adapter === undefined ? {} : { adapter: manifest.adapter }),
  };
}
