// Scale-out faults with real processes: three `commons-coordinator --redis` nodes behind a TCP
// front door, a real redis-server, a Hardhat devnet, six light clients that reconnect with
// jittered back-off. Round 1 runs undisturbed (everyone signed in, every node's heartbeat
// current); round 2 is held mid-training while something breaks, then its uploads go.
//   - a non-leader node killed with -9: its clients reconnect elsewhere, its cohort is dropped,
//     the round publishes with the rest;
//   - the leader killed with -9: another node takes the lease and finishes the round; the
//     chain shows one registration for it;
//   - Redis restarted mid-round: nodes reconnect, every update counts exactly once;
//   - skewed clocks (faketime) and a leader paused past its term (SIGSTOP): one leader at a
//     time, the paused one's writes fenced off, one registration per round.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { CommonsClient } from '@commons/chain';
import { startDevnet, type Devnet } from '@commons/contracts';
import { readCheckpoint, type NamedTensors } from '@commons/shared/engine';
import { startFrontDoor, type FrontDoor } from '../../src/cluster/front-door.ts';
import { clusterKeys } from '../../src/cluster/keys.ts';
import { freePort, startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { RoundLog } from '../../src/cluster/round-log.ts';
import { GENESIS_DIR } from '../../src/config.ts';
import { TEST_POLICY } from '../fixtures/federation.ts';
import { health, spawnNode, until, type NodeProcess } from './fixtures.ts';
import { lightClient, type LightClient } from './light-client.ts';

const CLIENTS = 6;

/** libfaketime, preloaded into the node process itself (a wrapper would stand between the
 * test's signals and the node). */
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

function hasFaketime(): boolean {
  return existsSync(LIBFAKETIME);
}

interface Cluster {
  dir: string;
  redis: RedisServer;
  devnet: Devnet;
  chain: CommonsClient;
  nodes: NodeProcess[];
  door: FrontDoor;
  clients: LightClient[];
  rounds: RoundLog;
  redisClient: Redis;
}

let cluster: Cluster | null = null;

async function startCluster(envs: Record<string, string>[] = [{}, {}, {}]): Promise<Cluster> {
  const base: NamedTensors = (await readCheckpoint(GENESIS_DIR)).tensors;
  const dir = await mkdtemp(path.join(tmpdir(), 'commons-faults-'));
  const redis = await startRedisServer(path.join(dir, 'redis'));
  const devnet = await startDevnet(path.join(dir, 'chain'), {
    ...TEST_POLICY,
    minClients: 4,
    roundDeadlineSeconds: 120,
  });
  const chain = await CommonsClient.connect({
    rpcUrl: devnet.rpcUrl,
    addresses: devnet.addresses,
    privateKey: devnet.keys[9]!,
  });
  const ports = [await freePort(), await freePort(), await freePort()];
  const nodes = await Promise.all(
    ports.map((port, i) => spawnNode(devnet, dir, redis.url, `n${i + 1}`, port, [], envs[i] ?? {})),
  );
  const door = await startFrontDoor(ports.map((port) => ({ host: '127.0.0.1', port })));
  const wallets = devnet.keys.slice(1, 1 + CLIENTS).map((k) => new Wallet(k));
  const clients = wallets.map((w, i) =>
    lightClient(door.url, w, devnet.addresses.chainId, base, i + 1, new Set([2])),
  );
  const redisClient = new Redis(redis.url);
  // The Redis-restart test takes it away for a moment: the client reconnects by itself.
  redisClient.on('error', () => undefined);
  cluster = {
    dir,
    redis,
    devnet,
    chain,
    nodes,
    door,
    clients,
    rounds: new RoundLog(redisClient, clusterKeys()),
    redisClient,
  };
  return cluster;
}

afterEach(async () => {
  if (!cluster) return;
  const c = cluster;
  cluster = null;
  for (const client of c.clients) client.close();
  for (const node of c.nodes) {
    node.child.kill('SIGCONT');
    node.child.kill('SIGKILL');
  }
  await Promise.all(c.nodes.map((n) => n.exited));
  await c.door.close();
  c.redisClient.disconnect();
  c.chain.destroy();
  await c.devnet.stop();
  await c.redis.stop();
  await rm(c.dir, { recursive: true, force: true });
});

/** Round 1 runs to publication with every client; then every client holds its round-2 invite. */
async function throughRound1(c: Cluster): Promise<void> {
  await until(
    'round 1 published to every client',
    async () =>
      c.clients.every((client) =>
        client.results.some((r) => r.roundId === 1 && r.outcome === 'published'),
      ),
    90_000,
  );
  await until(
    'every client invited to round 2',
    async () => c.clients.every((client) => client.invites.some((t) => t.roundId === 2)),
    60_000,
  );
}

async function leaderOf(c: Cluster, alive: NodeProcess[] = c.nodes): Promise<NodeProcess> {
  const id = await until(
    'a leader',
    async () => (await health(alive[0]!.url))['leader'] as string | null,
  );
  return c.nodes.find((n) => n.nodeId === id)!;
}

function resultOf(c: Cluster, roundId: number) {
  return until(
    `round ${roundId}'s result`,
    async () => c.clients.flatMap((cl) => cl.results).find((r) => r.roundId === roundId),
    90_000,
  );
}

async function registrations(c: Cluster, roundId: number): Promise<number> {
  return (await c.chain.listModels()).filter((m) => Number(m.roundId) === roundId).length;
}

describe('scale-out faults (real processes, real Redis)', () => {
  it('a non-leader killed with -9 mid-round: its clients move, its cohort is dropped, the round publishes', async () => {
    const c = await startCluster();
    await throughRound1(c);
    const leader = await leaderOf(c);
    const victim = c.nodes.find((n) => n !== leader)!;
    victim.child.kill('SIGKILL');
    await victim.exited;
    const alive = c.nodes.filter((n) => n !== victim);
    // Every client is signed in again, on the two live nodes (the victim's reconnected).
    await until('all clients on the live nodes', async () => {
      const held = await Promise.all(
        alive.map(async (n) => (await health(n.url))['clients'] as number),
      );
      // The server counts a session before its acknowledgement reaches the client.
      return (
        held.reduce((a, b) => a + b, 0) === CLIENTS &&
        c.clients.filter((cl) => cl.signIns >= 2).length === 2
      );
    });
    const moved = c.clients.filter((client) => client.signIns >= 2);
    expect(moved).toHaveLength(2);
    for (const client of c.clients) client.release();
    const result = await resultOf(c, 2);
    expect(result.outcome).toBe('published');
    expect(result.accepted).toBe(4);
    // The moved clients were refused by their new node (not in its cohort): not counted twice,
    // not counted at all.
    await until('every upload answered', async () =>
      c.clients.every((client) => client.uploads.has(2)),
    );
    for (const client of moved) expect(client.uploads.get(2)).not.toBe('accepted');
    const { partials } = await c.rounds.partials(2);
    expect(partials.map((p) => p.nodeId).sort()).toEqual(alive.map((n) => n.nodeId).sort());
    expect(await registrations(c, 2)).toBe(1);
  }, 240_000);

  it('the leader killed with -9 mid-round: another node takes the lease and publishes once', async () => {
    const c = await startCluster();
    await throughRound1(c);
    const leader = await leaderOf(c);
    leader.child.kill('SIGKILL');
    await leader.exited;
    const alive = c.nodes.filter((n) => n !== leader);
    const next = await until('a new leader', async () => {
      const id = (await health(alive[0]!.url))['leader'];
      return id && id !== leader.nodeId ? (id as string) : null;
    });
    expect(alive.map((n) => n.nodeId)).toContain(next);
    for (const client of c.clients) client.release();
    const result = await resultOf(c, 2);
    expect(result.outcome).toBe('published');
    expect(result.accepted).toBe(4);
    expect(await registrations(c, 2)).toBe(1);
    expect(await registrations(c, 1)).toBe(1);
    // The lease moved under a larger fencing token.
    const newLeader = c.nodes.find((n) => n.nodeId === next)!;
    const round1 = await c.rounds.round(1);
    expect((await health(newLeader.url))['leaseToken'] as number).toBeGreaterThan(round1!.token);
  }, 240_000);

  it('Redis restarted mid-round: the nodes reconnect and every update counts exactly once', async () => {
    const c = await startCluster();
    await throughRound1(c);
    // Half the uploads land before Redis goes away.
    for (const client of c.clients.slice(0, 3)) client.release();
    await until('three uploads accepted', async () =>
      c.clients.slice(0, 3).every((cl) => cl.uploads.get(2) === 'accepted'),
    );
    const port = c.redis.port;
    await c.redis.stop();
    c.redis = await startRedisServer(c.redis.dataDir, { port });
    for (const client of c.clients) client.release();
    const result = await resultOf(c, 2);
    expect(result.outcome).toBe('published');
    expect(result.accepted).toBe(CLIENTS);
    const { partials } = await c.rounds.partials(2);
    const contributors = partials.flatMap((p) => p.contributors.map((x) => x.address));
    expect(contributors).toHaveLength(CLIENTS);
    expect(new Set(contributors).size).toBe(CLIENTS);
    expect(await registrations(c, 2)).toBe(1);
    for (const node of c.nodes) expect((await health(node.url))['status']).toBe('ok');
  }, 240_000);

  it.skipIf(!hasFaketime())(
    'skewed clocks and a leader paused past its term: one leader at a time, fenced writes, one registration per round',
    async () => {
      // n2's wall clock runs ten minutes ahead, n3's ten minutes behind (libfaketime). Leases
      // and round durations read no wall clock; sign-in sessions (an hour) still overlap.
      // Only the wall clock moves (FAKETIME_DONT_FAKE_MONOTONIC): an NTP-less machine's drift.
      const skew = (offset: string) => ({
        LD_PRELOAD: LIBFAKETIME,
        FAKETIME: offset,
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      });
      const c = await startCluster([{}, skew('+10m'), skew('-10m')]);
      await throughRound1(c);
      const leader = await leaderOf(c);
      // The leader is paused (a GC pause, a frozen VM) for longer than its lease term.
      leader.child.kill('SIGSTOP');
      const alive = c.nodes.filter((n) => n !== leader);
      const next = await until('another node leads', async () => {
        const id = (await health(alive[0]!.url))['leader'];
        return id && id !== leader.nodeId ? (id as string) : null;
      });
      leader.child.kill('SIGCONT');
      for (const client of c.clients) client.release();
      const result = await resultOf(c, 2);
      expect(result.outcome).toBe('published');
      expect(await registrations(c, 2)).toBe(1);
      expect(await registrations(c, 1)).toBe(1);
      // Every node took part, skewed or not. (Over both rounds: round 1 starts once any four
      // clients are in, so a node whose clients signed in last may have had none in it.)
      const contributed = new Set<string>();
      for (const round of [1, 2]) {
        for (const p of (await c.rounds.partials(round)).partials) {
          if (p.count > 0) contributed.add(p.nodeId);
        }
      }
      expect([...contributed].sort()).toEqual(['n1', 'n2', 'n3']);
      // Exactly one node believes it leads: the new one; the woken one stepped down.
      await until('the paused node stepped down', async () => {
        const views = await Promise.all(c.nodes.map((n) => health(n.url)));
        return (
          views.filter((v) => v['isLeader']).length === 1 &&
          views.find((v) => v['isLeader'])!['node'] === next
        );
      });
      expect(leader.stderr()).toMatch(/no longer leader|fenced/);
    },
    240_000,
  );
});
