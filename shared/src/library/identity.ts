import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { canonicalJson } from '../checkpoint/canonical-json.ts';
import { sha256Hex, sha256Stream } from '../checkpoint/hash.ts';

/**
 * A model's identity: sha256 over the canonical JSON of its file manifest, the list of
 * (name, size, sha256) of every file it is made of, sorted by name. A Hugging Face folder
 * and a single GGUF file each get one such hash, the same on every machine, so the chain
 * can name a base model and every member can check the files they hold against it.
 */
export interface ModelFile {
  /** Path inside the model ("model.safetensors", "model.gguf"), '/'-separated. */
  name: string;
  size: number;
  sha256: string;
}

export function modelIdentity(files: readonly ModelFile[]): string {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sha256Hex(
    new TextEncoder().encode(
      canonicalJson({ format: 'commons-model-files/1', files: sorted.map((f) => ({ ...f })) }),
    ),
  );
}

/** sha256 of a file, streamed (models are gigabytes). */
export async function hashFile(path: string): Promise<ModelFile & { path: string }> {
  const hash = sha256Stream();
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const { size: statSize } = await stat(path);
  if (statSize !== size) throw new Error(`${path} changed while it was being hashed`);
  return { path, name: path, size, sha256: hash.hex() };
}
