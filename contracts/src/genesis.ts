// Where the genesis model's hash comes from at deployment: explicit parameters, else the
// record the genesis training writes beside the Hugging Face folder
// (shared/genesis/commons-checkpoint.json, or any JSON file with a "hash").
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { hashToBytes32 } from '@commons/chain';

export const GENESIS_MANIFEST_PATH = fileURLToPath(
  new URL('../../shared/genesis/commons-checkpoint.json', import.meta.url),
);

export interface GenesisModel {
  /** bytes32 form of the checkpoint's sha256. */
  hash: string;
  uri: string;
}

/** The default location of a checkpoint: any content-addressed store resolves it by hash. */
export function defaultGenesisUri(hash: string): string {
  return `sha256:${hashToBytes32(hash).slice(2)}`;
}

/**
 * Resolves the genesis model: `hash` (and `uri`) when given; otherwise the manifest's `hash`
 * (and `uri`, if it has one). Throws a clear error when neither is available.
 */
export async function resolveGenesis(options: {
  hash?: string | undefined;
  uri?: string | undefined;
  manifestPath?: string | undefined;
}): Promise<GenesisModel> {
  if (options.hash) {
    const hash = hashToBytes32(options.hash);
    return { hash, uri: options.uri ?? defaultGenesisUri(hash) };
  }
  const manifestPath = options.manifestPath ?? GENESIS_MANIFEST_PATH;
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch {
    throw new Error(
      `No genesis model: pass --genesis-hash <sha256> (and optionally --genesis-uri), ` +
        `or create ${manifestPath} (npm run train:genesis).`,
    );
  }
  const manifest = JSON.parse(text) as { hash?: unknown; uri?: unknown };
  if (typeof manifest.hash !== 'string') {
    throw new Error(`Genesis manifest ${manifestPath} has no "hash" field (sha256, 64 hex)`);
  }
  const hash = hashToBytes32(manifest.hash);
  const uri =
    options.uri ?? (typeof manifest.uri === 'string' ? manifest.uri : defaultGenesisUri(hash));
  return { hash, uri };
}
