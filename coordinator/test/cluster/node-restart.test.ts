// A node killed and restarted in the middle of a round, faster than its heartbeat expires: its
// cohort's running aggregate died with the old process, so the restarted node hands the leader
// an empty partial that says why, instead of leaving the leader waiting for it until the
// deadline; the round counts what the other cohort gathered and fails by name when that is
// short of the policy's minimum.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import { readCheckpoint, encodeTensors } from '@commons/shared/engine';
import type { ScaleOutNode } from '../../src/cluster/node.ts';
import { freePort, startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { GENESIS_DIR } from '../../src/config.ts';
import { TEST_POLICY } from '../fixtures/federation.ts';
import { connectRaw, type RawClient } from '../fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from '../fixtures/updates.ts';
import { resultOf, spawnNode, startNode, type NodeProcess } from './fixtures.ts';

let dir: string;
let redis: RedisServer | null = null;
let devnet: Devnet | null = null;
let a: ScaleOutNode | null = null;
let b: NodeProcess | null = null;
const clients: RawClient[] = [];

afterAll(async () => {
  for (const client of clients) client.close();
  b?.child.kill('SIGKILL');
  await b?.exited;
  await a?.close();
  await devnet?.stop();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('scale-out: a node restarted mid-round', () => {
  it('gives up its cohort with a named reason, and the round does not wait for it', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'commons-scale-out-restart-'));
    redis = await startRedisServer(path.join(dir, 'redis'));
    devnet = await startDevnet(path.join(dir, 'chain'), {
      ...TEST_POLICY,
      minClients: 4,
      roundDeadlineSeconds: 300,
    });
    // b's heartbeat outlives its restart by far: the leader still counts it alive meanwhile.
    const port = await freePort();
    const ttl = ['--node-ttl-seconds', '60'];
    b = await spawnNode(devnet, dir, redis.url, 'b', port, ttl);
    a = await startNode(devnet, dir, redis.url, 'a', { maxRounds: 1 });
    const wallets = devnet.keys.slice(1, 5).map((k) => new Wallet(k));
    for (const [i, wallet] of wallets.entries())
      clients.push(await connectRaw(i % 2 === 0 ? a.url : b.url, wallet));
    const base = (await readCheckpoint(GENESIS_DIR)).tensors;
    const tasks = await Promise.all(clients.map((c) => c.nextInvite()));
    const result = resultOf(clients[0]!, 1);
    // Node a's clients (0 and 2) upload; b's hold theirs.
    for (const i of [0, 2]) {
      const frame = encodeTensors(randomUpdate(base, 50 + i, 0.5), tasks[i]!.encoding);
      const ack = await uploadFrame(
        clients[i]!,
        wallets[i]!,
        tasks[i]!,
        devnet.addresses.chainId,
        frame,
      );
      expect(ack.ok).toBe(true);
    }
    // b is killed and started again on the same data folder.
    b.child.kill('SIGKILL');
    await b.exited;
    b = await spawnNode(devnet, dir, redis.url, 'b', port, ttl);
    const failed = await result;
    expect(failed.outcome).toBe('failed');
    expect(failed.reason).toMatch(/only 2 updates arrived across 2 of 2 nodes; the policy needs 4/);
    const { partials } = await a.rounds.partials(1);
    const fromB = partials.find((p) => p.nodeId === 'b');
    expect(fromB?.count).toBe(0);
    expect(fromB?.dropped).toMatch(/restarted mid-round/);
  }, 120_000);
});
