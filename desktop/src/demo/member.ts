// What every member's client does when governance changes the active model: read the active
// version from ModelRegistry with its base and adapters, get its weights from the coordinator's
// content-addressed store — only the adapter when the member already holds the parent, folded
// in (fetchAdapterVersion), or the whole checkpoint — verify them against the hash on chain,
// load the model and answer a prompt with it.
import type { CommonsClient } from '@commons/chain';
import {
  fetchAdapterVersion,
  fetchBaseModel,
  verifyBaseModel,
  type ModelCache,
} from '@commons/shared/contributor';
import { generate, Transformer } from '@commons/shared/engine';

export interface MemberReply {
  /** The active model's sha256 (64 hex), as the chain names it and the download hashed to. */
  hash: string;
  /** Its base on chain (the nearest full version) and the adapters folded in since, oldest first. */
  base: string;
  adapters: string[];
  /** Only the adapter travelled: the member held the parent and folded it in. */
  adapterOnly: boolean;
  reply: string;
  /** Download and verification, then generation. */
  ms: { fetch: number; generate: number };
}

const plain = (hash: string) => hash.replace(/^0x/, '').toLowerCase();

/**
 * The active version on chain, fetched from `coordinator` and verified, answering `prompt`.
 * `cache` holds the member's verified versions: with the parent in it, only the adapter is
 * fetched; the version is added to it.
 */
export async function replyWithActiveModel(
  chain: CommonsClient,
  coordinator: string,
  prompt: string,
  options: { maxTokens: number; seed: number; cache?: ModelCache },
): Promise<MemberReply> {
  const active = await chain.activeModel();
  const hash = plain(active.contentHash);
  const lineage = await chain.adapterChain(hash);
  const adapters = lineage.adapters.map(plain);
  // What the chain says must hang together: the version's own adapter is its chain's newest.
  if (active.adapterHash && adapters.at(-1) !== plain(active.adapterHash)) {
    throw new Error(`the registry's adapter chain for ${hash} does not end in its adapter`);
  }
  const fetched = performance.now();
  const parentHash = active.parentHash ? plain(active.parentHash) : null;
  const parentBytes =
    active.adapterHash && parentHash ? await options.cache?.get(parentHash) : undefined;
  const cache = options.cache ? { cache: options.cache } : {};
  const base =
    parentBytes && parentHash
      ? await fetchAdapterVersion(
          coordinator,
          {
            hash,
            adapterHash: plain(active.adapterHash!),
            parent: verifyBaseModel(parentBytes, parentHash),
          },
          cache,
        )
      : await fetchBaseModel(coordinator, { hash, path: `/models/${hash}/` }, cache);
  const generated = performance.now();
  const model = Transformer.fromTensors(base.config, base.tensors);
  try {
    let reply = '';
    for await (const chunk of generate(model, base.tokenizer, prompt, {
      maxTokens: options.maxTokens,
      seed: options.seed,
    })) {
      reply += chunk.text;
    }
    return {
      hash: base.hash,
      base: plain(lineage.base),
      adapters,
      adapterOnly: parentBytes !== undefined,
      reply,
      ms: { fetch: generated - fetched, generate: performance.now() - generated },
    };
  } finally {
    model.dispose();
  }
}
