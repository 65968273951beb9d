// Restarts that used to keep the coordinator down. A round published without noise leaves the
// accountant at ε = ∞, which must survive being saved and read back; and a round whose stored
// update its aggregator refuses (as a frame with two tensors swapped once left behind) must
// fail on restore, cleanly, with the coordinator up and the next round running.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import { readCheckpoint, type NamedTensors, encodeTensors } from '@commons/shared/engine';
import type { RoundResult, RoundTask } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { BlobStore } from '../src/store/blobs.ts';
import { CoordinatorDatabase } from '../src/store/database.ts';
import { coordinatorOn, TEST_POLICY, type CoordinatorOptions } from './fixtures/federation.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

const OPTIONS: CoordinatorOptions = {
  encoding: 'int8',
  evalChars: 500,
  publishMarginBpc: 100,
  roundIntervalMs: 0,
};

let dir: string;
let devnet: Devnet;
let base: NamedTensors;
let coordinator: Coordinator | null = null;
let clients: RawClient[] = [];
const wallets: Wallet[] = [];

function inviteTo(client: RawClient, roundId: number): Promise<RoundTask> {
  return new Promise((resolve) => {
    const found = client.invites.find((t) => t.roundId === roundId);
    if (found) return resolve(found);
    client.socket.on('round:invite', (task) => {
      if (task.roundId === roundId) resolve(task);
    });
  });
}

function resultOf(c: Coordinator, roundId: number): Promise<RoundResult> {
  return new Promise((resolve) => {
    const listener = (result: RoundResult) => {
      if (result.roundId !== roundId) return;
      c.engine.off('result', listener);
      resolve(result);
    };
    c.engine.on('result', listener);
  });
}

async function upload(i: number, task: RoundTask, seed: number): Promise<void> {
  const frame = encodeTensors(randomUpdate(base, seed, 0.5), task.encoding);
  const ack = await uploadFrame(clients[i]!, wallets[i]!, task, devnet.addresses.chainId, frame);
  if (!ack.ok) throw new Error(`upload refused: ${ack.error.code} ${ack.error.message}`);
}

async function start(): Promise<Coordinator> {
  coordinator = await coordinatorOn(devnet, dir, OPTIONS);
  clients = await Promise.all(wallets.map((w) => connectRaw(coordinator!.url, w)));
  return coordinator;
}

async function stop(): Promise<void> {
  for (const client of clients) client.close();
  await coordinator?.close();
  coordinator = null;
}

beforeAll(async () => {
  base = (await readCheckpoint(GENESIS_DIR)).tensors;
  dir = await mkdtemp(path.join(tmpdir(), 'commons-restart-'));
  devnet = await startDevnet(dir, TEST_POLICY);
  for (const key of devnet.keys.slice(1, 3)) wallets.push(new Wallet(key));
});

afterAll(async () => {
  await stop();
  await devnet?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('coordinator restarts', () => {
  it('starts again after a round published with noise multiplier 0 (ε = ∞)', async () => {
    const c = await start();
    const published = resultOf(c, 1);
    const tasks = await Promise.all(clients.map((client) => inviteTo(client, 1)));
    await upload(0, tasks[0]!, 1);
    await upload(1, tasks[1]!, 2);
    expect((await published).outcome).toBe('published');
    expect((await published).candidate?.epsilon).toBeNull();
    await stop();

    const again = await start();
    expect((await fetch(`${again.url}/healthz`)).status).toBe(200);
    // The accountant came back with its ε = ∞ and goes on composing.
    const next = resultOf(again, 2);
    const second = await Promise.all(clients.map((client) => inviteTo(client, 2)));
    await upload(0, second[0]!, 3);
    await upload(1, second[1]!, 4);
    expect((await next).outcome).toBe('published');
    expect((await next).candidate?.epsilon).toBeNull();
  });

  it('fails a round it cannot rebuild after a restart, and goes on with the next', async () => {
    const tasks = await Promise.all(clients.map((client) => inviteTo(client, 3)));
    await upload(0, tasks[0]!, 5);
    await stop();

    // What the old admission left behind: the second contributor's frame with its first two tensors swapped,
    // durably stored and recorded as accepted.
    const data = path.join(dir, 'coordinator');
    const entries = [...randomUpdate(base, 6, 0.5)];
    const swapped = encodeTensors(
      new Map([entries[1]!, entries[0]!, ...entries.slice(2)]),
      tasks[1]!.encoding,
    );
    const blobs = await BlobStore.open(path.join(data, 'blobs'));
    const db = CoordinatorDatabase.open(path.join(data, 'coordinator.db'));
    db.acceptSubmission({
      roundId: 3,
      address: wallets[1]!.address,
      sha256: await blobs.put(swapped),
      numExamples: 100,
      byteLength: swapped.byteLength,
      encoding: tasks[1]!.encoding,
      norm: 0.5,
      commitment: `0x${'ab'.repeat(32)}`,
    });
    db.close();

    const again = await start();
    const round = again.db.getRound(3);
    expect(round?.state).toBe('failed');
    expect(round?.failureReason).toMatch(/could not be resumed.*embed_tokens/);
    // Nothing of the failed round is published or rewarded; round 4 runs as usual.
    expect(again.db.getRewards(3)).toBeUndefined();
    const next = resultOf(again, 4);
    const fourth = await Promise.all(clients.map((client) => inviteTo(client, 4)));
    await upload(0, fourth[0]!, 7);
    await upload(1, fourth[1]!, 8);
    expect((await next).outcome).toBe('published');
  });
});
