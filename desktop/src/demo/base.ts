// The model a demo community starts from: the genesis model, or (npm run demo -- --base NAME)
// any Llama-family model in the member's library or on disk, read as a Commons checkpoint so the
// devnet can register it as genesis and the coordinator can serve and train it.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  isHfCheckpointFolder,
  ModelLibrary,
  readCheckpoint,
  readHfFolderCheckpoint,
  resolveModel,
  type DecodedCheckpoint,
} from '@commons/shared/engine';

/** The shipped genesis model (a Hugging Face folder with its Commons hash). */
export const GENESIS_DIR = fileURLToPath(new URL('../../../shared/genesis/', import.meta.url));

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/**
 * The folder `ref` names: a folder path, or a model's name in the library. A GGUF file is
 * refused: its weights are quantised for inference, and rounds train float weights.
 */
export async function resolveBase(ref: string, library = new ModelLibrary()): Promise<string> {
  const resolved = await resolveModel(ref, library);
  if (resolved.format === 'gguf') {
    throw new Error(
      `${ref} is a GGUF file, quantised for inference; a community trains from a Hugging Face folder (commons model pull <org/name>)`,
    );
  }
  return resolved.path;
}

/** A checkpoint folder (Commons or Commons-written Hugging Face) or any Hugging Face folder. */
export async function readBaseCheckpoint(folder: string): Promise<DecodedCheckpoint> {
  if ((await exists(path.join(folder, 'manifest.json'))) || (await isHfCheckpointFolder(folder))) {
    return readCheckpoint(folder);
  }
  if (await exists(path.join(folder, 'config.json'))) return readHfFolderCheckpoint(folder);
  throw new Error(`${folder} holds no model (neither manifest.json nor config.json)`);
}
