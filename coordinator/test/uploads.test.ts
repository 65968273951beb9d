// Every way an upload can be wrong is refused with its named code, and none of them touches
// the aggregate: after the bad uploads, two good ones produce exactly their weighted mean.
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readCheckpoint,
  decodeCheckpoint,
  type NamedTensors,
  decodeTensors,
  encodeTensors,
} from '@commons/shared/engine';
import type { RoundResult, RoundTask, UploadBegin } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import type { Devnet } from '@commons/contracts';
import { startFederation, type Federation } from './fixtures/federation.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate as randomUpdateOf, uploadFrame } from './fixtures/updates.ts';

let federation: Federation | undefined;
let devnet: Devnet;
let coordinator: Coordinator;
let base: NamedTensors;
let alice: RawClient;
let bob: RawClient;
let task: RoundTask;
const wallets: Wallet[] = [];
const result = { value: null as RoundResult | null };

function randomUpdate(seed: number, norm: number, tamper?: (t: NamedTensors) => void) {
  return randomUpdateOf(base, seed, norm, tamper);
}

function upload(
  client: RawClient,
  wallet: Wallet,
  frame: Uint8Array,
  overrides: Partial<UploadBegin> = {},
  options: { signer?: Wallet; dropLastChunk?: boolean } = {},
) {
  return uploadFrame(client, wallet, task, devnet.addresses.chainId, frame, overrides, options);
}

function codeOf(ack: { ok: boolean; error?: { code: string } }): string {
  return ack.ok ? 'ok' : (ack.error?.code ?? '?');
}

beforeAll(async () => {
  base = (await readCheckpoint(GENESIS_DIR)).tensors;
  federation = await startFederation(
    'uploads',
    {},
    { encoding: 'fp32', evalChars: 2000, publishMarginBpc: 1, maxRounds: 1 },
  );
  ({ devnet, coordinator } = federation);
  coordinator.engine.on('result', (r) => (result.value = r));
  for (const key of devnet.keys.slice(1, 4)) wallets.push(new Wallet(key));
  alice = await connectRaw(coordinator.url, wallets[0]!);
  bob = await connectRaw(coordinator.url, wallets[1]!);
  task = await alice.nextInvite();
  await bob.nextInvite();
});

afterAll(async () => {
  alice?.close();
  bob?.close();
  await federation?.stop();
});

describe('upload refusals', () => {
  it('invites the signed-in clients with the active model and the policy clip bound', () => {
    expect(task.roundId).toBe(1);
    expect(task.baseModel.hash).toBe(devnet.addresses.genesis.hash.slice(2));
    expect(task.clipNorm).toBe(1);
    expect(task.upload.frameBytes).toBe(encodeTensors(base, 'fp32').byteLength);
  });

  it('refuses a message before sign-in and a malformed one', async () => {
    const stranger = await connectRaw(coordinator.url, wallets[2]!, { signIn: false });
    const ack = await stranger.socket.emitWithAck('upload:begin', {} as UploadBegin);
    expect(codeOf(ack)).toBe('UNAUTHENTICATED');
    stranger.close();
    const bad = await alice.socket.emitWithAck('upload:begin', { roundId: 'one' } as never);
    expect(codeOf(bad)).toBe('MALFORMED_MESSAGE');
  });

  it('refuses a client that was not sampled into the round', async () => {
    const late = await connectRaw(coordinator.url, wallets[2]!);
    const frame = encodeTensors(randomUpdate(9, 0.5), 'fp32');
    expect(codeOf(await upload(late, wallets[2]!, frame))).toBe('NOT_INVITED');
    late.close();
  });

  it('refuses replays, wrong models, forged signatures and wrong sizes before any byte', async () => {
    const frame = encodeTensors(randomUpdate(1, 0.5), 'fp32');
    const w = wallets[0]!;
    expect(codeOf(await upload(alice, w, frame, { roundId: 2 }))).toBe('WRONG_ROUND');
    expect(codeOf(await upload(alice, w, frame, { baseModel: 'ab'.repeat(32) }))).toBe(
      'WRONG_BASE_MODEL',
    );
    expect(codeOf(await upload(alice, w, frame, {}, { signer: wallets[2]! }))).toBe(
      'BAD_SIGNATURE',
    );
    expect(codeOf(await upload(alice, w, frame, { contributor: wallets[1]!.address }))).toBe(
      'BAD_SIGNATURE',
    );
    expect(codeOf(await upload(alice, w, frame, { byteLength: frame.byteLength + 4 }))).toBe(
      'UPLOAD_TOO_LARGE',
    );
    expect(codeOf(await upload(alice, w, frame, { encoding: 'int8' }))).toBe('BAD_FRAME');
  });

  it('refuses truncated, mis-hashed, mis-shaped, non-finite and over-norm frames', async () => {
    const w = wallets[0]!;
    const good = encodeTensors(randomUpdate(1, 0.5), 'fp32');
    expect(codeOf(await upload(alice, w, good, {}, { dropLastChunk: true }))).toBe('TRUNCATED');
    expect(codeOf(await upload(alice, w, good, { sha256: 'cd'.repeat(32) }))).toBe('HASH_MISMATCH');
    // Same byte size, transposed shape: only the shape check can catch it.
    const transposed = randomUpdate(2, 0.5, (t) => {
      const gate = t.get('model.layers.0.mlp.gate_proj.weight')!;
      gate.shape = [gate.shape[1]!, gate.shape[0]!];
    });
    expect(codeOf(await upload(alice, w, encodeTensors(transposed, 'fp32')))).toBe('WRONG_SHAPE');
    const nan = encodeTensors(randomUpdate(3, 0.5), 'fp32');
    new DataView(nan.buffer).setFloat32(nan.byteLength - 4, Number.NaN, true);
    expect(codeOf(await upload(alice, w, nan))).toBe('NON_FINITE');
    expect(codeOf(await upload(alice, w, encodeTensors(randomUpdate(4, 1.5), 'fp32')))).toBe(
      'NORM_EXCEEDED',
    );
    // Every name, shape and the size right, but the first two swapped: the aggregator reads by
    // position, so this is refused by name and nothing of it is recorded.
    const entries = [...randomUpdate(5, 0.5)];
    expect(entries.slice(0, 2).map(([name]) => name)).toEqual([
      'model.embed_tokens.weight',
      'model.layers.0.input_layernorm.weight',
    ]);
    const swapped = encodeTensors(new Map([entries[1]!, entries[0]!, ...entries.slice(2)]), 'fp32');
    expect(swapped.byteLength).toBe(task.upload.frameBytes);
    const refused = await upload(alice, w, swapped);
    expect(codeOf(refused)).toBe('WRONG_SHAPE');
    expect(refused.ok ? '' : refused.error.message).toMatch(
      /tensor 0 is "model.layers.0.input_layernorm.weight".*"model.embed_tokens.weight"/,
    );
    expect(coordinator.db.submissions(task.roundId)).toEqual([]);
  });

  it('accepts good updates once each, and the published model is exactly their weighted mean', async () => {
    const updates = [randomUpdate(10, 0.8), randomUpdate(11, 0.3)];
    const frames = updates.map((u) => encodeTensors(u, 'fp32'));
    const first = await upload(alice, wallets[0]!, frames[0]!, { numExamples: 300 });
    expect(first.ok).toBe(true);
    expect(codeOf(await upload(alice, wallets[0]!, frames[0]!, { numExamples: 300 }))).toBe(
      'DUPLICATE_UPLOAD',
    );
    expect((await upload(bob, wallets[1]!, frames[1]!, { numExamples: 100 })).ok).toBe(true);

    const published = await new Promise<RoundResult>((resolve) => {
      if (result.value) resolve(result.value);
      else coordinator.engine.once('result', resolve);
    });
    expect(published.outcome).toBe('published');
    expect(published.accepted).toBe(2);
    // Alice's refused uploads earned her nothing extra: one reward each.
    const rewarded = coordinator.db.getRewards(task.roundId)?.entries.map((e) => e.account);
    expect(rewarded?.map((a) => a.toLowerCase())).toEqual(
      [wallets[0]!.address, wallets[1]!.address].map((a) => a.toLowerCase()),
    );
    const hash = published.candidate!.hash;
    expect(await coordinator.chain.isRegistered(hash)).toBe(true);
    // No noise in this policy: the registry says so (ε = ∞), never a misleading finite ε.
    expect(published.candidate!.epsilon).toBeNull();
    expect((await coordinator.chain.modelVersion(hash)).epsilon).toBe(Infinity);

    // Fetch the candidate over HTTP as a client would and compare with base + weighted mean.
    const fetchBytes = async (file: string) => {
      const response = await fetch(`${coordinator.url}/models/${hash}/${file}`);
      expect(response.status).toBe(200);
      return new Uint8Array(await response.arrayBuffer());
    };
    const candidate = decodeCheckpoint(
      await fetchBytes('manifest.json'),
      await fetchBytes('weights.bin'),
      { expectedHash: hash },
    ).tensors;
    const decoded = frames.map((f) => decodeTensors(f));
    let worst = 0;
    for (const [name, { data }] of base) {
      const a = decoded[0]!.get(name)!.data;
      const b = decoded[1]!.get(name)!.data;
      const got = candidate.get(name)!.data;
      for (let i = 0; i < data.length; i++) {
        const expected = data[i]! + (300 * a[i]! + 100 * b[i]!) / 400;
        worst = Math.max(worst, Math.abs(got[i]! - expected));
      }
    }
    expect(worst).toBeLessThan(1e-6);

    const metrics = await (await fetch(`${coordinator.url}/metrics`)).text();
    for (const code of ['WRONG_ROUND', 'BAD_SIGNATURE', 'NORM_EXCEEDED', 'TRUNCATED']) {
      expect(metrics).toMatch(new RegExp(`commons_rejections_total\\{code="${code}"\\} [1-9]`));
    }
  });
});
