// What every member's client does when governance changes the active model: read the active
// version from ModelRegistry, download it from the coordinator's content-addressed store,
// verify it against the hash on chain (fetchBaseModel refuses anything else), load it and
// answer a prompt with it.
import type { CommonsClient } from '@commons/chain';
import { fetchBaseModel } from '@commons/shared/contributor';
import { generate, Transformer } from '@commons/shared/engine';

export interface MemberReply {
  /** The active model's sha256 (64 hex), as the chain names it and the download hashed to. */
  hash: string;
  reply: string;
  /** Download and verification, then generation. */
  ms: { fetch: number; generate: number };
}

/** The active version on chain, fetched from `coordinator` and verified, answering `prompt`. */
export async function replyWithActiveModel(
  chain: CommonsClient,
  coordinator: string,
  prompt: string,
  options: { maxTokens: number; seed: number },
): Promise<MemberReply> {
  const active = await chain.activeModel();
  const hash = active.contentHash.replace(/^0x/, '').toLowerCase();
  const fetched = performance.now();
  const base = await fetchBaseModel(coordinator, { hash, path: `/models/${hash}/` });
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
      reply,
      ms: { fetch: generated - fetched, generate: performance.now() - generated },
    };
  } finally {
    model.dispose();
  }
}
