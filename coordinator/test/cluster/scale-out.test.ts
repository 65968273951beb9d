// Scale-out mode with real parts: a real redis-server, a Hardhat devnet, two coordinator nodes
// sharing both, real Socket.IO clients signed in to each. One round spans the nodes: each
// samples and takes its own clients' updates, the leader combines the partials and publishes
// once. The lease hands out fencing tokens, and a stale leader's writes are refused.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import { readCheckpoint, encodeTensors, type NamedTensors } from '@commons/shared/engine';
import type { RoundTask } from '@commons/shared/protocol';
import { clusterKeys } from '../../src/cluster/keys.ts';
import { FencedError, LeaderLease } from '../../src/cluster/lease.ts';
import { cohortQuotas } from '../../src/cluster/leader.ts';
import type { ScaleOutNode } from '../../src/cluster/node.ts';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { RoundLog } from '../../src/cluster/round-log.ts';
import { GENESIS_DIR } from '../../src/config.ts';
import { publishCandidate } from '../../src/rounds/publisher.ts';
import { ModelStore } from '../../src/store/models.ts';
import { TEST_POLICY } from '../fixtures/federation.ts';
import { connectRaw, type RawClient } from '../fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from '../fixtures/updates.ts';
import { health, resultOf, startNode, until } from './fixtures.ts';

let dir: string;
let redisServer: RedisServer;
let devnet: Devnet;
let base: NamedTensors;
const nodes: ScaleOutNode[] = [];
let clients: RawClient[] = [];
const wallets: Wallet[] = [];
const silent = pino({ level: 'silent' });

function inviteTo(client: RawClient, roundId: number): Promise<RoundTask> {
  return new Promise((resolve) => {
    const found = client.invites.find((t) => t.roundId === roundId);
    if (found) return resolve(found);
    client.socket.on('round:invite', (task) => {
      if (task.roundId === roundId) resolve(task);
    });
  });
}

beforeAll(async () => {
  base = (await readCheckpoint(GENESIS_DIR)).tensors;
  dir = await mkdtemp(path.join(tmpdir(), 'commons-scale-out-'));
  redisServer = await startRedisServer(path.join(dir, 'redis'));
  devnet = await startDevnet(path.join(dir, 'chain'), { ...TEST_POLICY, minClients: 4 });
  for (const key of devnet.keys.slice(1, 5)) wallets.push(new Wallet(key));
  nodes.push(await startNode(devnet, dir, redisServer.url, 'node-a', { maxRounds: 1 }));
  nodes.push(await startNode(devnet, dir, redisServer.url, 'node-b', { maxRounds: 1 }));
  // Two clients on each node.
  clients = await Promise.all(wallets.map((w, i) => connectRaw(nodes[i % 2]!.url, w)));
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.close();
  for (const node of nodes) await node.close();
  await devnet?.stop();
  await redisServer?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('scale-out: one round across two nodes', () => {
  it('samples on each node, combines the partials on the leader and publishes once', async () => {
    const results = clients.map((c) => resultOf(c, 1));
    const tasks = await Promise.all(clients.map((c) => inviteTo(c, 1)));
    await Promise.all(
      tasks.map(async (task, i) => {
        const frame = encodeTensors(randomUpdate(base, 10 + i, 0.5), task.encoding);
        const ack = await uploadFrame(
          clients[i]!,
          wallets[i]!,
          task,
          devnet.addresses.chainId,
          frame,
        );
        expect(ack.ok).toBe(true);
      }),
    );
    // Every client hears the result, whichever node it is on (the Redis Streams adapter).
    const all = await Promise.all(results);
    for (const result of all) {
      expect(result.outcome).toBe('published');
      expect(result.accepted).toBe(4);
    }
    const hash = all[0]!.candidate!.hash;
    // The round record and the partials: one per node, two contributors each.
    const rounds = nodes[0]!.rounds;
    const { partials } = await rounds.partials(1);
    expect(partials.map((p) => p.nodeId).sort()).toEqual(['node-a', 'node-b']);
    expect(partials.map((p) => p.count)).toEqual([2, 2]);
    const record = await rounds.round(1);
    expect(record?.state).toBe('published');
    expect(record?.candidate?.hash).toBe(hash);
    // On chain: the version registered, with round 1 as its round.
    const version = await nodes[0]!.chain.modelVersion(hash);
    expect(Number(version.roundId)).toBe(1);
    // Each node mirrors the outcome into its own database.
    await until('both nodes settle round 1', async () =>
      nodes.every((n) => n.db.getRound(1)?.state === 'published'),
    );
  });

  it('/healthz on every node names the same leader, and /metrics shows it', async () => {
    const [a, b] = await Promise.all(nodes.map((n) => health(n.url)));
    expect(a!['leader']).toBe(b!['leader']);
    expect(['node-a', 'node-b']).toContain(a!['leader']);
    expect([a!['isLeader'], b!['isLeader']].filter(Boolean)).toHaveLength(1);
    const leader = nodes.find((n) => n.nodeId === a!['leader'])!;
    const metrics = await (await fetch(`${leader.url}/metrics`)).text();
    expect(metrics).toMatch(/^commons_cluster_leader 1$/m);
    expect(metrics).toMatch(/^commons_cluster_nodes 2$/m);
  });
});

describe('scale-out: a leader that died between the chain and Redis', () => {
  it('publishes the fixed candidate as it is, and the chain shows one registration', async () => {
    const rounds = nodes[0]!.rounds;
    const first = (await rounds.round(1))!;
    // What a leader left when it died after registering round 2's candidate on chain but before
    // marking the round published: the candidate in the shared store and fixed in Redis.
    const models = await ModelStore.open(path.join(dir, 'shared', 'models'), { shared: true });
    const { manifest } = await readCheckpoint(GENESIS_DIR);
    const tensors = randomUpdate(base, 99, 10);
    const hash = await models.publish({
      kind: 'model',
      config: manifest.config,
      tokenizer: manifest.tokenizer,
      tensors,
      provenance: { parent: first.candidate!.hash, roundId: 2 },
    });
    const contributors = first.candidate!.contributors;
    await publishCandidate(
      nodes[0]!.chain,
      {
        roundId: 2,
        hash,
        parentHash: first.candidate!.hash,
        adapterHash: null,
        publicUrl: nodes[0]!.url,
        commitments: contributors.map((c) => c.commitment),
        contributors: contributors.map((c) => c.address),
        valBpc: 5,
        epsilon: Infinity,
        delta: 1e-5,
        proposeActivation: false,
      },
      silent,
    );
    const token = Number(await rounds.read(rounds.keys.epoch));
    const result = resultOf(clients[0]!, 2);
    await rounds.writeRound(token, {
      ...first,
      id: 2,
      state: 'candidate',
      baseHash: first.candidate!.hash,
      candidate: { ...first.candidate!, hash, valBpc: 5 },
    });
    // The leader resumes it: registration found on chain, rewards found posted, round published.
    const published = await result;
    expect(published.outcome).toBe('published');
    expect(published.candidate?.hash).toBe(hash);
    const registered = (await nodes[0]!.chain.listModels()).filter((m) => Number(m.roundId) === 2);
    expect(registered).toHaveLength(1);
    expect((await rounds.round(2))?.state).toBe('published');
  });
});

describe('scale-out: the leader lease', () => {
  it('hands out strictly increasing fencing tokens and refuses a stale leader', async () => {
    const redis = new Redis(redisServer.url);
    const keys = clusterKeys('lease-test:');
    const log = new RoundLog(redis, keys);
    const first = new LeaderLease(redis, keys, { nodeId: 'x', ttlMs: 600 }, silent);
    const second = new LeaderLease(redis, keys, { nodeId: 'y', ttlMs: 600 }, silent);
    try {
      await first.tick();
      await second.tick();
      const token = first.token;
      expect(token).toBeGreaterThan(0);
      expect(second.token).toBe(0);
      // A held lease is not taken.
      await second.tick();
      expect(second.token).toBe(0);
      // x stops renewing (paused): after the term, y takes the lease with a larger token.
      await new Promise((r) => setTimeout(r, 700));
      await second.tick();
      expect(second.token).toBe(token + 1);
      // x wakes believing nothing happened: its writes carry the old token and are refused.
      const record = { id: 1, state: 'failed' } as never;
      await expect(log.writeRound(token, record)).rejects.toBeInstanceOf(FencedError);
      await expect(log.writeFenced(token, keys.accountant, '{}')).rejects.toThrow(/stale/);
      await log.writeRound(second.token, record);
      // x's next renewal finds y's lease and x steps down.
      await first.tick();
      expect(first.isLeader()).toBe(false);
    } finally {
      await first.stop();
      await second.stop();
      redis.disconnect();
    }
  });

  it('counts a retried partial once (idempotency key per node)', async () => {
    const redis = new Redis(redisServer.url);
    const log = new RoundLog(redis, clusterKeys('partial-test:'));
    try {
      const partial = {
        nodeId: 'n1',
        roundId: 7,
        blob: null,
        weight: 0,
        count: 0,
        contributors: [],
        eligible: 3,
        sampled: 2,
      };
      expect(await log.postPartial(partial)).toBe(true);
      expect(await log.postPartial(partial)).toBe(false);
      // A malformed stream entry is named and never counted.
      await redis.xadd('partial-test:round:7:partials', '*', 'partial', '{"nodeId":"n2"}');
      const { partials, refused } = await log.partials(7);
      expect(partials).toHaveLength(1);
      expect(refused[0]).toMatch(/roundId/);
    } finally {
      redis.disconnect();
    }
  });

  it('splits a sample over nodes in proportion to their clients', () => {
    const quotas = cohortQuotas(
      [
        { nodeId: 'a', url: '', clients: 10, pid: 1 },
        { nodeId: 'b', url: '', clients: 5, pid: 2 },
        { nodeId: 'c', url: '', clients: 1, pid: 3 },
      ],
      8,
    );
    expect(quotas['a']! + quotas['b']! + quotas['c']!).toBe(8);
    expect(quotas['a']).toBe(5);
    expect(quotas['b']).toBeGreaterThanOrEqual(2);
    expect(quotas['c']).toBeLessThanOrEqual(1);
  });
});
