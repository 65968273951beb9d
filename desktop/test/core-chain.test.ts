// Wallet, governance, models, chat and the personal trainer through the public API, against a
// throwaway devnet with Commons deployed and a model store serving the real genesis checkpoint.
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonRpcProvider, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import { CommonsClient } from '@commons/chain';
import {
  encodeCheckpoint,
  LoraAdapter,
  mergeLora,
  readCheckpoint,
  Rng,
  Transformer,
  type EncodedCheckpoint,
} from '@commons/shared/engine';
import { runProposal, TxLog } from '../src/demo/index.ts';
import { ApiError } from '../src/api/define.ts';
import { createCore, type Core } from '../src/core/core.ts';

const GENESIS = fileURLToPath(new URL('../../shared/genesis/', import.meta.url));
const PASSPHRASE = 'a passphrase for tests';
const FAST_SCRYPT = { vaultLogN: 15, walletLogN: 15 };

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw err;
  return err;
}

describe('core against a devnet', () => {
  let dir: string;
  let devnet: Devnet;
  let provider: JsonRpcProvider;
  let store: Server;
  let storeUrl: string;
  /** The store serves a copy with one weight byte changed while this is set. */
  let tamper = true;
  let genesisHash: string;
  let member: Core;
  let other: Core;
  /** Further checkpoints the store serves (versions registered by the tests), by hash. */
  const served = new Map<string, EncodedCheckpoint>();
  /** Every path the store was asked for, in order. */
  const requested: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commons-core-'));
    devnet = await startDevnet(dir, {});
    provider = new JsonRpcProvider(devnet.rpcUrl, undefined, { cacheTimeout: -1 });
    // The genesis model ships as a Hugging Face folder; a coordinator serves it as the
    // commons checkpoint of the same hash.
    const genesis = await readCheckpoint(GENESIS);
    const encoded = encodeCheckpoint({
      kind: 'model',
      config: genesis.manifest.config,
      tokenizer: genesis.manifest.tokenizer,
      tensors: genesis.tensors,
      provenance: genesis.manifest.provenance,
    });
    const manifest = Buffer.from(JSON.stringify(encoded.manifest));
    const weights = Buffer.from(encoded.weights);
    genesisHash = encoded.hash;
    const tampered = Buffer.from(weights);
    tampered[tampered.length >> 1]! ^= 0x40;
    // The coordinator's content-addressed layout: /models/<sha256>/{manifest.json,weights.bin}.
    store = createServer((req, res) => {
      requested.push(req.url ?? '');
      const [, models, hash, file] = (req.url ?? '').split('/');
      const extra = served.get(hash ?? '');
      if (models === 'models' && extra) {
        if (file === 'manifest.json') return void res.end(JSON.stringify(extra.manifest));
        if (file === 'weights.bin') return void res.end(extra.weights);
      }
      if (models !== 'models' || hash !== genesisHash) return void res.writeHead(404).end();
      if (file === 'manifest.json') return void res.end(manifest);
      if (file === 'weights.bin') return void res.end(tamper ? tampered : weights);
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => store.listen(0, '127.0.0.1', resolve));
    const address = store.address();
    storeUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const initialSettings = {
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addressesFile,
      coordinatorUrl: storeUrl,
      backend: 'wasm' as const,
    };
    member = await createCore({
      dataDir: join(dir, 'member'),
      initialSettings,
      scrypt: FAST_SCRYPT,
    });
    other = await createCore({ dataDir: join(dir, 'other'), initialSettings, scrypt: FAST_SCRYPT });
  });

  afterAll(async () => {
    await member?.close();
    await other?.close();
    provider?.destroy();
    await new Promise((resolve) => store?.close(resolve));
    await devnet?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function advance(seconds: number): Promise<void> {
    await provider.send('evm_increaseTime', [seconds]);
    await provider.send('evm_mine', []);
  }

  it('creates, imports, unlocks and delegates a wallet', async () => {
    const h = member.invoke;
    expect((await rejection(h('wallet.unlock', { passphrase: PASSPHRASE }))).code).toBe(
      'not-found',
    );
    const devKey = devnet.keys[1]!;
    const devAddress = new Wallet(devKey).address;
    expect(
      await h('wallet.import', { kind: 'privateKey', privateKey: devKey, passphrase: PASSPHRASE }),
    ).toEqual({
      exists: true,
      unlocked: true,
      address: devAddress,
    });
    expect((await rejection(h('wallet.create', { passphrase: PASSPHRASE }))).code).toBe('conflict');
    await h('wallet.lock');
    expect((await rejection(h('wallet.delegate', {}))).code).toBe('locked');
    expect((await rejection(h('wallet.unlock', { passphrase: 'not the passphrase' }))).code).toBe(
      'wrong-passphrase',
    );
    await h('wallet.unlock', { passphrase: PASSPHRASE });

    // Delegating away moves the voting power; delegating back restores it.
    const before = await h('wallet.account');
    expect(BigInt(before.balance)).toBeGreaterThan(0n);
    const away = new Wallet(devnet.keys[5]!).address;
    await h('wallet.delegate', { to: away });
    const delegated = await h('wallet.account');
    expect(delegated.delegate).toBe(away);
    expect(delegated.votes).toBe('0');
    await h('wallet.delegate', {});
    const back = await h('wallet.account');
    expect(back.delegate).toBe(devAddress);
    expect(back.votes).toBe(before.balance);

    // A new wallet comes with its recovery phrase, which re-imports to the same address.
    const created = await other.invoke('wallet.create', { passphrase: PASSPHRASE });
    expect(created.mnemonic.split(' ')).toHaveLength(12);
    const third = await createCore({ dataDir: join(dir, 'third'), scrypt: FAST_SCRYPT });
    try {
      const imported = await third.invoke('wallet.import', {
        kind: 'mnemonic',
        mnemonic: created.mnemonic,
        passphrase: PASSPHRASE,
      });
      expect(imported.address).toBe(created.address);
    } finally {
      await third.close();
    }
  });

  it('proposes a policy change, votes with a reason and by a relayed signature', async () => {
    const h = member.invoke;
    const { policy } = await h('governance.policy');
    const bad = await rejection(h('governance.proposePolicy', { changes: { localEpochs: 1000 } }));
    expect(bad.code).toBe('invalid-argument');
    // An adapter rule without a shape is refused at the edge, naming what it needs.
    const shapeless = await rejection(
      h('governance.proposePolicy', {
        changes: { adapter: { rule: 'ffa-lora', rank: 0, alpha: 16, targets: ['q_proj'] } },
      }),
    );
    expect(shapeless.code).toBe('invalid-argument');
    expect(shapeless.message).toMatch(/needs a rank ≥ 1/);
    // The adapter is one change, compared by value: LoRA-FedAvg at rank 16 on four projections.
    const next = {
      rule: 'lora-fedavg' as const,
      rank: 16,
      alpha: 32,
      targets: ['q_proj' as const, 'k_proj' as const, 'v_proj' as const, 'o_proj' as const],
    };
    const toFedAvg = await h('governance.proposePolicy', { changes: { adapter: next } });
    expect(toFedAvg.changes).toEqual([{ field: 'adapter', from: policy.adapter, to: next }]);
    // The adapter as it is now is no change at all.
    const same = await rejection(
      h('governance.proposePolicy', { changes: { adapter: { ...policy.adapter } } }),
    );
    expect(same.message).toMatch(/equals the one in force/);
    const { id, changes } = await h('governance.proposePolicy', {
      changes: { noiseMultiplier: policy.noiseMultiplier + 0.5 },
    });
    expect(changes).toEqual([
      { field: 'noiseMultiplier', from: policy.noiseMultiplier, to: policy.noiseMultiplier + 0.5 },
    ]);
    await advance(5);
    const open = await h('governance.get', { id });
    expect(open.state).toBe('active');
    expect(open.hasVoted).toBe(false);
    expect(open.actions[0]).toMatchObject({ kind: 'set-policy', changes });

    await h('governance.vote', { id, support: 'for', reason: 'more noise, more privacy' });
    const voted = await h('governance.get', { id });
    expect(voted.hasVoted).toBe(true);
    expect(voted.votes.for).toBe((await h('wallet.account')).votes);
    const again = await rejection(h('governance.vote', { id, support: 'against' }));
    expect(again.message).toMatch(/already voted/);
    expect(again.code).toBe('conflict');

    // Another member (a dev account with tokens) signs without sending; this member relays.
    await other.invoke('wallet.remove', {
      address: (await other.invoke('wallet.status')).address!,
    });
    await other.invoke('wallet.import', {
      kind: 'privateKey',
      privateKey: devnet.keys[2]!,
      passphrase: PASSPHRASE,
    });
    const ballot = await other.invoke('governance.signVote', { id, support: 'against' });
    expect(ballot.voter).toBe(new Wallet(devnet.keys[2]!).address);
    const relayed = await h('governance.relayVote', { vote: ballot });
    expect(relayed.relayer).toBe(new Wallet(devnet.keys[1]!).address);
    const tallied = await other.invoke('governance.get', { id });
    expect(tallied.votes.against).toBe((await other.invoke('wallet.account')).votes);
    expect(tallied.hasVoted).toBe(true);
    expect((await h('governance.list')).map((p) => p.id)).toContain(id);
  });

  it('refuses a model file that does not hash to the registered value, then keeps a good one', async () => {
    const h = member.invoke;
    const { active, versions } = await h('models.list');
    expect(active.replace(/^0x/, '')).toBe(genesisHash);
    expect(versions[0]!.local).toEqual({ downloaded: false, verified: false, bytes: 0 });

    tamper = true;
    expect((await rejection(h('models.download', { hash: genesisHash }))).code).toBe('integrity');
    expect((await h('models.list')).versions[0]!.local.downloaded).toBe(false);

    tamper = false;
    const good = await h('models.download', { hash: genesisHash });
    expect(good.local).toMatchObject({ downloaded: true, verified: true });

    // A copy altered on disk afterwards is caught on the next check and removed.
    const weightsFile = join(dir, 'member', 'models', genesisHash, 'weights.bin');
    const bytes = await readFile(weightsFile);
    bytes[100]! ^= 0x01;
    await writeFile(weightsFile, bytes);
    expect((await rejection(h('models.verify', { hash: genesisHash }))).code).toBe('integrity');
    expect((await h('models.list')).versions[0]!.local.downloaded).toBe(false);
  });

  it('streams a reply token by token into the vault, and cancels one', async () => {
    const h = member.invoke;
    await h('vault.setup', { protection: 'passphrase', passphrase: PASSPHRASE });
    const chat = await h('vault.createChat', { title: 'test' });
    const tokens: string[] = [];
    const stop = member.events.on('chat.token', (t) => {
      if (t.requestId === 'r1') tokens.push(t.text);
    });
    const reply = await h('chat.send', {
      requestId: 'r1',
      chatId: chat.id,
      text: 'ROMEO:',
      options: { maxTokens: 6, temperature: 0, seed: 1 },
    });
    stop();
    expect(tokens.length).toBeGreaterThan(0);
    expect(reply.message.text).toBe(tokens.join('').trim());
    const status = await h('chat.status');
    expect(status.model).toMatchObject({ hash: genesisHash, backend: 'wasm' });
    const stored = await h('vault.readChat', { id: chat.id });
    expect(stored.history.map((m) => m.role)).toEqual(['user', 'assistant']);

    // Cancel as soon as the first token of a long reply arrives.
    const off = member.events.on('chat.token', (t) => {
      if (t.requestId === 'r2') void h('chat.cancel', { requestId: 'r2' });
    });
    const cancelled = await h('chat.regenerate', {
      requestId: 'r2',
      chatId: chat.id,
      options: { maxTokens: 500, temperature: 1, seed: 2 },
    });
    off();
    expect(cancelled.finish).toBe('cancelled');
    expect((await h('vault.readChat', { id: chat.id })).history).toHaveLength(2);
    expect((await h('chat.cancel', { requestId: 'r2' })).cancelled).toBe(false);
  });

  it('trains a personal adapter in a worker, reporting progress to the end, and layers it on chat', async () => {
    const h = member.invoke;
    const notes = join(dir, 'notes.txt');
    await writeFile(notes, 'To plant or not to plant, that is the olive question.\n'.repeat(60));
    const { imported } = await h('vault.importFiles', { paths: [notes] });
    const progress: number[] = [];
    const states: string[] = [];
    const offP = member.events.on('training.progress', (p) => progress.push(p.step));
    const done = new Promise<void>((resolve) => {
      member.events.on('training.state', (s) => {
        states.push(s.state);
        if (['done', 'failed', 'cancelled'].includes(s.state)) resolve();
      });
    });
    await h('training.start', {
      documentIds: imported.map((d) => d.id),
      steps: 3,
      batchSize: 2,
      rank: 2,
    });
    await done;
    offP();
    const status = await h('training.status');
    expect(status.error).toBeNull();
    expect(states.at(-1)).toBe('done');
    expect(progress).toEqual([1, 2, 3]);
    expect(status.adapter).toMatchObject({
      baseHash: genesisHash,
      steps: 3,
      rank: 2,
      enabled: true,
    });

    await h('chat.load');
    expect((await h('chat.status')).model?.adapter).toEqual({
      hash: status.adapter!.hash,
      enabled: true,
    });
    await h('training.useAdapter', { enabled: false });
    await h('chat.load');
    expect((await h('chat.status')).model?.adapter?.enabled).toBe(false);
  });

  /** Registers `version` (parent: the active one) as the coordinator would and votes it in. */
  async function registerAndActivate(input: {
    version: EncodedCheckpoint;
    parentHash: string;
    baseHash: string;
    adapterHash?: string;
    roundId: number;
  }): Promise<void> {
    const coordinatorKey = await CommonsClient.connect({
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addressesFile,
      privateKey: devnet.keys[0]!,
    });
    const holder = await CommonsClient.connect({
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addressesFile,
      privateKey: devnet.keys[1]!,
    });
    try {
      await coordinatorKey.registerCandidate({
        contentHash: input.version.hash,
        parentHash: input.parentHash,
        baseHash: input.baseHash,
        ...(input.adapterHash ? { adapterHash: input.adapterHash } : {}),
        uri: `${storeUrl}/models/${input.version.hash}/`,
        roundId: input.roundId,
        valBpc: 2.2,
        epsilon: 1,
        delta: 1e-5,
      });
      const run = await runProposal({
        rpcUrl: devnet.rpcUrl,
        proposer: holder,
        actions: [holder.activateModelAction(input.version.hash)],
        description: `Activate ${input.version.hash}`,
        ballots: [
          { voter: holder, support: 'for' },
          { voter: coordinatorKey, support: 'for' },
        ],
        txs: new TxLog(),
      });
      expect(run.state).toBe('executed');
    } finally {
      coordinatorKey.destroy();
      holder.destroy();
    }
  }

  it('activates a version from an adapter round by its adapter alone, and the personal adapter follows', async () => {
    const h = member.invoke;
    const trainedOn = (await h('training.status')).adapter!;
    expect(trainedOn.baseHash).toBe(genesisHash);
    const genesis = await readCheckpoint(GENESIS);
    // A community round's outcome: genesis with an FFA-LoRA adapter folded in.
    const lora = { rank: 4, alpha: 8, targets: ['q_proj' as const, 'v_proj' as const] };
    const factors = LoraAdapter.initialTensors(genesis.manifest.config, lora, 3);
    const rng = new Rng(3);
    for (const [name, t] of factors) {
      if (name.endsWith('lora_B.weight'))
        for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * 0.01;
    }
    const adapter = encodeCheckpoint({
      config: genesis.manifest.config,
      tokenizer: genesis.manifest.tokenizer,
      tensors: factors,
      adapter: { baseHash: genesisHash, lora },
    });
    const version = encodeCheckpoint({
      config: genesis.manifest.config,
      tokenizer: genesis.manifest.tokenizer,
      tensors: mergeLora(genesis.tensors, factors, lora),
    });
    served.set(adapter.hash, adapter);
    served.set(version.hash, version);
    await registerAndActivate({
      version,
      parentHash: genesisHash,
      baseHash: genesisHash,
      adapterHash: adapter.hash,
      roundId: 1,
    });

    const listed = (await h('models.list')).versions.find(
      (v) => v.contentHash === `0x${version.hash}`,
    )!;
    expect(listed).toMatchObject({
      active: true,
      baseHash: `0x${genesisHash}`,
      adapterHash: `0x${adapter.hash}`,
      parentHash: `0x${genesisHash}`,
    });
    // Chat loads the new version: only the adapter travels, folded into the genesis copy here.
    requested.length = 0;
    await h('chat.load');
    expect(requested).toEqual([
      `/models/${adapter.hash}/manifest.json`,
      `/models/${adapter.hash}/weights.bin`,
    ]);
    const chat = await h('chat.status');
    expect(chat.model?.hash).toBe(version.hash);
    // The personal adapter, trained on genesis, stays layered on top of the community adapter.
    expect(chat.model?.adapter).toEqual({ hash: trainedOn.hash, enabled: true });
    const status = await h('training.status');
    expect(status.adapter).toMatchObject({ hash: trainedOn.hash, carriedFrom: genesisHash });
    expect(status.adapterSetAside).toBeNull();

    // A version of another shape (a full model, its own base): the adapter cannot follow; it is
    // set aside with the reason, and kept.
    const config = { ...genesis.manifest.config, nEmbd: 64, nHead: 2, nKvHead: 1 };
    const model = Transformer.create(config, 9);
    const narrow = encodeCheckpoint({
      config,
      tokenizer: genesis.manifest.tokenizer,
      tensors: model.toTensors(),
    });
    model.dispose();
    served.set(narrow.hash, narrow);
    await registerAndActivate({
      version: narrow,
      parentHash: version.hash,
      baseHash: narrow.hash,
      roundId: 2,
    });
    await h('chat.load');
    expect((await h('chat.status')).model).toMatchObject({ hash: narrow.hash, adapter: null });
    const aside = await h('training.status');
    expect(aside.adapter).toBeNull();
    expect(aside.adapterSetAside?.baseHash).toBe(genesisHash);
    expect(aside.adapterSetAside?.reason).toMatch(/shape differs from the active version/);
  }, 180_000);
});
