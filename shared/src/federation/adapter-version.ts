import {
  CheckpointError,
  decodeCheckpoint,
  encodeCheckpoint,
  mergeLora,
} from '../checkpoint/index.ts';
import {
  fetchCheckpointBytes,
  verifyBaseModel,
  type BaseModel,
  type FetchBaseModelOptions,
} from './base-model.ts';

/**
 * A model version that came from an adapter round is its parent with the round's LoRA adapter
 * folded in (ModelRegistry records it as base, adapter, parent). A member who already holds
 * the parent needs only the adapter: a few megabytes where the model is hundreds. The adapter
 * is fetched from the same content-addressed store, checked against the hash the chain
 * records for it, folded into the parent (checkpoint/lora-merge.ts, bit-reproducible), and
 * the result must hash to the version's own registered hash before it is kept or used.
 */

export interface AdapterVersionRef {
  /** The version's content hash (the merged model's), as the chain records it. */
  hash: string;
  /** The adapter's checkpoint hash, as the chain records it. */
  adapterHash: string;
  /** The verified parent version the adapter applies to. */
  parent: BaseModel;
}

/** Where the content-addressed store serves a checkpoint. */
function storePath(hash: string): string {
  return `/models/${hash}/`;
}

/**
 * The version `ref.hash` from its parent and its adapter. Throws UNEXPECTED_HASH when the
 * adapter was made for another parent or the fold does not give the registered hash,
 * ADAPTER_MISMATCH when the adapter does not fit the parent's shape; nothing unverified is
 * cached.
 */
export async function fetchAdapterVersion(
  coordinator: string | URL,
  ref: AdapterVersionRef,
  options: FetchBaseModelOptions = {},
): Promise<BaseModel> {
  const cached = await options.cache?.get(ref.hash);
  if (cached) return verifyBaseModel(cached, ref.hash);
  const bytes = await fetchCheckpointBytes(
    coordinator,
    { hash: ref.adapterHash, path: storePath(ref.adapterHash) },
    options,
  );
  const adapter = decodeCheckpoint(bytes.manifest, bytes.weights, {
    expectedHash: ref.adapterHash,
  });
  const info = adapter.manifest.adapter;
  if (adapter.manifest.kind !== 'adapter' || info === undefined) {
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `checkpoint ${ref.adapterHash} is a full model, not an adapter`,
    );
  }
  const { parent } = ref;
  if (info.baseHash !== parent.hash) {
    throw new CheckpointError(
      'UNEXPECTED_HASH',
      `adapter ${ref.adapterHash} applies to model ${info.baseHash}, not to the parent ${parent.hash}`,
    );
  }
  const merged = encodeCheckpoint({
    config: parent.config,
    tokenizer: parent.manifest.tokenizer,
    tensors: mergeLora(parent.tensors, adapter.tensors, info.lora),
    provenance: { parent: parent.hash, adapter: ref.adapterHash },
  });
  if (merged.hash !== ref.hash) {
    throw new CheckpointError(
      'UNEXPECTED_HASH',
      `folding adapter ${ref.adapterHash} into ${parent.hash} gives ${merged.hash}, not the registered ${ref.hash}`,
    );
  }
  const modelBytes = {
    manifest: new TextEncoder().encode(`${JSON.stringify(merged.manifest, null, 2)}\n`),
    weights: merged.weights,
  };
  const model = verifyBaseModel(modelBytes, ref.hash);
  await options.cache?.set(ref.hash, modelBytes);
  return model;
}
