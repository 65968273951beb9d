// Rounds that go wrong the ordinary ways, Flower-style — a failure is an outcome, not a crash:
// a contributor who disconnects after accepting is dropped once the reconnect grace runs out;
// one who stays connected but never uploads is dropped at the deadline; one who gives up
// (round:withdraw) is dropped at once. With fewer updates than
// the policy's minimum the round fails cleanly (nothing published, the active model unchanged,
// the participants marked dropped), and the next round starts and can publish.
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Devnet } from '@commons/contracts';
import { readCheckpoint, type NamedTensors, encodeTensors } from '@commons/shared/engine';
import type { RoundResult, RoundStatus, RoundTask } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { startFederation, type Federation } from './fixtures/federation.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

let federation: Federation | undefined;
let devnet: Devnet;
let coordinator: Coordinator;
let base: NamedTensors;
const results: RoundResult[] = [];
const clients: RawClient[] = [];
const wallets: Wallet[] = [];

function resultOf(roundId: number): Promise<RoundResult> {
  return new Promise((resolve) => {
    const found = results.find((r) => r.roundId === roundId);
    if (found) return resolve(found);
    const listener = (result: RoundResult) => {
      if (result.roundId !== roundId) return;
      coordinator.engine.off('result', listener);
      resolve(result);
    };
    coordinator.engine.on('result', listener);
  });
}

/** The next invitation to round `roundId` (invitations to earlier rounds are skipped). */
function inviteTo(client: RawClient, roundId: number): Promise<RoundTask> {
  return new Promise((resolve) => {
    const found = client.invites.find((t) => t.roundId === roundId);
    if (found) return resolve(found);
    client.socket.on('round:invite', (task) => {
      if (task.roundId === roundId) resolve(task);
    });
  });
}

async function uploadGood(client: RawClient, wallet: Wallet, task: RoundTask, seed: number) {
  const frame = encodeTensors(randomUpdate(base, seed, 0.5), task.encoding);
  const ack = await uploadFrame(client, wallet, task, devnet.addresses.chainId, frame);
  if (!ack.ok) throw new Error(`upload refused: ${ack.error.code} ${ack.error.message}`);
}

beforeAll(async () => {
  base = (await readCheckpoint(GENESIS_DIR)).tensors;
  federation = await startFederation(
    'rounds',
    { roundDeadlineSeconds: 600 },
    {
      encoding: 'int8',
      evalChars: 2000,
      publishMarginBpc: 1,
      // The policy's deadline is capped so the straggler case takes seconds, not minutes.
      maxRoundSeconds: 12,
      reconnectGraceMs: 300,
      roundIntervalMs: 0,
    },
  );
  ({ devnet, coordinator } = federation);
  coordinator.engine.on('result', (r) => results.push(r));
  for (const key of devnet.keys.slice(1, 4)) wallets.push(new Wallet(key));
});

afterAll(async () => {
  for (const client of clients) client.close();
  await federation?.stop();
});

describe('round failures', () => {
  it('drops a disconnected contributor, fails the round below the minimum, and starts the next', async () => {
    const genesis = (await coordinator.chain.activeModel()).contentHash;
    const [alice, bob] = [
      await connectRaw(coordinator.url, wallets[0]!),
      await connectRaw(coordinator.url, wallets[1]!),
    ];
    clients.push(alice, bob);
    const task = await inviteTo(alice, 1);
    await inviteTo(bob, 1);
    await uploadGood(alice, wallets[0]!, task, 1);
    bob.close(); // gone for good after accepting

    const failed = await resultOf(1);
    expect(failed.outcome).toBe('failed');
    expect(failed.accepted).toBe(1);
    expect(failed.reason).toMatch(/only 1 update.*needs 2/);
    expect(failed.candidate).toBeUndefined();
    const participants = coordinator.db.participants(1);
    const statusOf = (w: Wallet) =>
      participants.find((p) => p.address.toLowerCase() === w.address.toLowerCase())?.status;
    expect(statusOf(wallets[1]!)).toBe('dropped');
    expect(statusOf(wallets[0]!)).toBe('accepted');
    expect(coordinator.db.submissions(1).map((s) => s.address)).toEqual([wallets[0]!.address]);
    expect(coordinator.db.getRound(1)?.state).toBe('failed');
    expect((await coordinator.chain.activeModel()).contentHash).toBe(genesis);

    // Round 2 starts once two eligible clients are connected again.
    const carol = await connectRaw(coordinator.url, wallets[2]!);
    clients.push(carol);
    const second = await inviteTo(carol, 2);
    expect((await inviteTo(alice, 2)).roundId).toBe(2);
    expect(second.baseModel.hash).toBe(task.baseModel.hash);

    // A straggler stays connected and never uploads: the deadline drops it.
    await uploadGood(alice, wallets[0]!, second, 2);
    const late = await resultOf(2);
    expect(late.outcome).toBe('failed');
    expect(late.reason).toMatch(/only 1 update/);
    expect(coordinator.db.participants(2).find((p) => p.status === 'dropped')?.address).toBe(
      wallets[2]!.address,
    );

    // A participant that gives up says so, and the round does not wait for the deadline.
    const [third] = await Promise.all([inviteTo(alice, 3), inviteTo(carol, 3)]);
    await uploadGood(alice, wallets[0]!, third, 3);
    carol.socket.emit('round:withdraw', { roundId: 3, reason: 'out of disk space' });
    const withdrawn = await resultOf(3);
    expect(Date.now()).toBeLessThan(third.deadline);
    expect(withdrawn.outcome).toBe('failed');
    expect(withdrawn.accepted).toBe(1);

    // Round 4 with both uploading publishes.
    const [fourth] = await Promise.all([inviteTo(alice, 4), inviteTo(carol, 4)]);
    const statuses: RoundStatus[] = [];
    alice.socket.on('round:status', (s) => statuses.push(s));
    await uploadGood(alice, wallets[0]!, fourth, 4);
    await uploadGood(carol, wallets[2]!, fourth, 5);
    const published = await resultOf(4);
    expect(published.outcome).toBe('published');
    expect(published.accepted).toBe(2);
    expect(await coordinator.chain.isRegistered(published.candidate!.hash)).toBe(true);
    expect(statuses.map((s) => s.state)).toContain('published');
  });
});
