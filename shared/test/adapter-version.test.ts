// Activating an adapter version from the adapter alone: the member holds the parent, fetches the
// adapter from the content-addressed store, folds it in and keeps the result only when it hashes
// to the version's registered hash. The store here is an in-memory one behind `fetch`; the real
// HTTP store is exercised by coordinator/test/adapter-federation.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { CheckpointError } from '../src/checkpoint/errors.ts';
import { encodeCheckpoint, type EncodedCheckpoint } from '../src/checkpoint/codec.ts';
import { mergeLora } from '../src/checkpoint/lora-merge.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { fetchAdapterVersion } from '../src/federation/adapter-version.ts';
import { MemoryModelCache, verifyBaseModel, type BaseModel } from '../src/federation/base-model.ts';
import type { LoraConfig, ModelConfig } from '../src/model/config.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { Rng } from '../src/model/rng.ts';
import { Transformer } from '../src/model/transformer.ts';

const LORA: LoraConfig = { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj'] };
const STORE = 'http://store.test';

let config: ModelConfig;
let tokenizerJson: unknown;

beforeAll(async () => {
  await selectBackend();
  const tokenizer = ChatTokenizer.train(
    'the quick brown fox jumps over the lazy dog '.repeat(20),
    300,
  );
  tokenizerJson = tokenizer.toJSON();
  config = {
    vocabSize: 300,
    blockSize: 16,
    nLayer: 2,
    nHead: 2,
    nKvHead: 1,
    nEmbd: 16,
    dropout: 0,
    bias: true,
    tiedHead: true,
  };
});

function bytesOf(checkpoint: EncodedCheckpoint) {
  return {
    manifest: new TextEncoder().encode(JSON.stringify(checkpoint.manifest)),
    weights: checkpoint.weights,
  };
}

/** A parent model (verified, as a member holds it), an adapter for it, and the version they make. */
function scenario(seed: number) {
  const model = Transformer.create(config, seed);
  const tensors = model.toTensors();
  model.dispose();
  const parentCheckpoint = encodeCheckpoint({ config, tokenizer: tokenizerJson, tensors });
  const parent: BaseModel = verifyBaseModel(bytesOf(parentCheckpoint), parentCheckpoint.hash);
  const factors = LoraAdapter.initialTensors(config, LORA, seed);
  const rng = new Rng(seed);
  for (const [name, t] of factors) {
    if (name.endsWith('lora_B.weight'))
      for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * 0.1;
  }
  const adapter = encodeCheckpoint({
    config,
    tokenizer: tokenizerJson,
    tensors: factors,
    adapter: { baseHash: parent.hash, lora: LORA },
  });
  const version = encodeCheckpoint({
    config,
    tokenizer: tokenizerJson,
    tensors: mergeLora(tensors, factors, LORA),
  });
  return { parent, adapter, version };
}

/** `fetch` over an in-memory content-addressed store, with a hook to alter what it serves. */
function storeFetch(
  checkpoints: EncodedCheckpoint[],
  alter: (file: string, bytes: Uint8Array) => Uint8Array = (_, b) => b,
): { fetch: typeof fetch; requested: string[] } {
  const requested: string[] = [];
  const byHash = new Map(checkpoints.map((c) => [c.hash, bytesOf(c)]));
  const doFetch = (async (input: URL | RequestInfo) => {
    const url = new URL(String(input instanceof Request ? input.url : input));
    requested.push(url.pathname);
    const [, , hash, file] = url.pathname.split('/');
    const found = byHash.get(hash!);
    if (!found) return new Response('not found', { status: 404 });
    const bytes = file === 'manifest.json' ? found.manifest : found.weights;
    return new Response(alter(file!, bytes) as Uint8Array<ArrayBuffer>);
  }) as typeof fetch;
  return { fetch: doFetch, requested };
}

async function refusal(run: Promise<unknown>): Promise<CheckpointError> {
  try {
    await run;
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    return error as CheckpointError;
  }
  throw new Error('expected a refusal');
}

describe('fetchAdapterVersion', () => {
  it('downloads only the adapter, folds it in and gets the registered version', async () => {
    const { parent, adapter, version } = scenario(1);
    const store = storeFetch([adapter]);
    const cache = new MemoryModelCache(2);
    const got = await fetchAdapterVersion(
      STORE,
      { hash: version.hash, adapterHash: adapter.hash, parent },
      { fetch: store.fetch, cache },
    );
    expect(got.hash).toBe(version.hash);
    expect(store.requested).toEqual([
      `/models/${adapter.hash}/manifest.json`,
      `/models/${adapter.hash}/weights.bin`,
    ]);
    expect(adapter.weights.byteLength * 5).toBeLessThan(version.weights.byteLength);
    // Cached under the version's hash, and served from there next time without a request.
    expect(cache.get(version.hash)).toBeDefined();
    const again = await fetchAdapterVersion(
      STORE,
      { hash: version.hash, adapterHash: adapter.hash, parent },
      { fetch: store.fetch, cache },
    );
    expect(again.hash).toBe(version.hash);
    expect(store.requested).toHaveLength(2);
  });

  it('refuses a tampered adapter and caches nothing', async () => {
    const { parent, adapter, version } = scenario(2);
    const cache = new MemoryModelCache(2);
    const store = storeFetch([adapter], (file, bytes) => {
      if (file !== 'weights.bin') return bytes;
      const copy = bytes.slice();
      copy[copy.length - 1]! ^= 0x40;
      return copy;
    });
    const error = await refusal(
      fetchAdapterVersion(
        STORE,
        { hash: version.hash, adapterHash: adapter.hash, parent },
        { fetch: store.fetch, cache },
      ),
    );
    expect(error.code).toBe('HASH_MISMATCH');
    expect(cache.get(version.hash)).toBeUndefined();
  });

  it('refuses an adapter made for another parent, and a fold that is not the registered version', async () => {
    const one = scenario(3);
    const other = scenario(4);
    // The adapter names its parent: applying it to another is refused before any arithmetic.
    const wrongParent = await refusal(
      fetchAdapterVersion(
        STORE,
        { hash: one.version.hash, adapterHash: one.adapter.hash, parent: other.parent },
        { fetch: storeFetch([one.adapter]).fetch },
      ),
    );
    expect(wrongParent.code).toBe('UNEXPECTED_HASH');
    expect(wrongParent.message).toMatch(/applies to model .* not to the parent/);
    // The right parent and adapter, but the chain registered another version hash.
    const notRegistered = await refusal(
      fetchAdapterVersion(
        STORE,
        { hash: other.version.hash, adapterHash: one.adapter.hash, parent: one.parent },
        { fetch: storeFetch([one.adapter]).fetch },
      ),
    );
    expect(notRegistered.code).toBe('UNEXPECTED_HASH');
    expect(notRegistered.message).toMatch(/gives .* not the registered/);
  });

  it('refuses an adapter whose shape does not fit the parent', async () => {
    const { parent } = scenario(5);
    const wide = { ...config, nEmbd: 32 };
    const factors = LoraAdapter.initialTensors(wide, LORA, 5);
    const misfit = encodeCheckpoint({
      config: wide,
      tokenizer: tokenizerJson,
      tensors: factors,
      adapter: { baseHash: parent.hash, lora: LORA },
    });
    const error = await refusal(
      fetchAdapterVersion(
        STORE,
        { hash: parent.hash, adapterHash: misfit.hash, parent },
        { fetch: storeFetch([misfit]).fetch },
      ),
    );
    expect(error.code).toBe('ADAPTER_MISMATCH');
  });
});
