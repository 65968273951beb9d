// A scale-out coordinator node: `commons-coordinator --redis URL --node-id ID --shared-dir DIR`.
// The same HTTP routes and Socket.IO edge as a single coordinator, with three differences:
//   - Socket.IO runs on the Redis Streams adapter, so a broadcast (round status, result) from
//     any node reaches every client on every node;
//   - rounds are the leader's (cluster/leader.ts), whichever node holds the lease; this node's
//     part in each is its cohort (cluster/cohort.ts);
//   - the model store and the partial sums live in the shared folder every node reads.
// Each node keeps its own SQLite (its cohorts' submission rows, its blobs) in --data-dir.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { Wallet } from 'ethers';
import { Redis } from 'ioredis';
import { readAddressesFile, CommonsClient, type RewardEntry } from '@commons/chain';
import { selectBackend, type BackendReport } from '@commons/shared/engine';
import type { RoundStatus } from '@commons/shared/protocol';
import { errorMessage } from '@commons/shared/errors';
import type { Logger } from 'pino';
import { coordinatorConfigSchema, type CoordinatorConfigInput } from '../config.ts';
import { bindDeployment, readEvalText } from '../coordinator.ts';
import { createLogger } from '../observability/logger.ts';
import { createMetrics, type CoordinatorMetrics } from '../observability/metrics.ts';
import { AdaptiveClipping } from '../privacy/adaptive-clipping.ts';
import { CandidateEvaluator } from '../rounds/evaluator.ts';
import { openEdge } from '../server/edge.ts';
import { BlobStore } from '../store/blobs.ts';
import { CoordinatorDatabase } from '../store/database.ts';
import { ModelStore } from '../store/models.ts';
import { CohortRunner } from './cohort.ts';
import { clusterKeys } from './keys.ts';
import { LeaderLease } from './lease.ts';
import { ClusterLeader } from './leader.ts';
import { RoundLog, type ClusterRound } from './round-log.ts';

/** How often a node refreshes its heartbeat and looks at the latest round. */
const WATCH_MS = 250;
const BEAT_MS = 1_000;

export interface ScaleOutNode {
  nodeId: string;
  url: string;
  port: number;
  db: CoordinatorDatabase;
  chain: CommonsClient;
  metrics: CoordinatorMetrics;
  log: Logger;
  backend: BackendReport;
  lease: LeaderLease;
  rounds: RoundLog;
  /** Graceful stop: hands the lease back, finishes nothing, closes everything. */
  close(): Promise<void>;
}

export async function startScaleOutNode(input: CoordinatorConfigInput): Promise<ScaleOutNode> {
  const config = coordinatorConfigSchema.parse(input);
  if (!config.redis || !config.nodeId || !config.sharedDir) {
    throw new Error(
      'scale-out mode needs redis, nodeId and sharedDir (--redis, --node-id, --shared-dir)',
    );
  }
  const nodeId = config.nodeId;
  // Every line this node logs names it.
  const log = createLogger({ level: config.logLevel, name: 'coordinator' }).child({ node: nodeId });
  const metrics = createMetrics();
  const backend = await selectBackend();
  const evalText = config.evalFile === undefined ? undefined : await readEvalText(config.evalFile);
  const addresses = await readAddressesFile(config.addressesFile);
  const chain = await CommonsClient.connect({
    rpcUrl: config.rpcUrl,
    addresses,
    privateKey: config.privateKey,
  });
  await chain.assertDeployed();

  const keys = clusterKeys(config.redisPrefix);
  // ioredis reconnects on its own (back-off up to 2 s) and queues commands meanwhile: a Redis
  // restart delays a node, it does not stop it.
  const redis = new Redis(config.redis, {
    lazyConnect: true,
    retryStrategy: (n) => Math.min(n * 100, 2_000),
  });
  redis.on('error', (error) => log.debug({ err: errorMessage(error) }, 'redis'));
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis at ${config.redis} cannot be reached: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  const appendOnly = (await redis.config('GET', 'appendonly')) as string[];
  if (appendOnly[1] !== 'yes') {
    log.warn(
      'Redis runs without appendonly: a restart would lose the fencing counter and the round records',
    );
  }
  // The Streams adapter blocks on XREAD: it gets a connection of its own.
  const adapterRedis = redis.duplicate();
  adapterRedis.on('error', (error) => log.debug({ err: errorMessage(error) }, 'redis (adapter)'));

  const dataDir = path.resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const db = CoordinatorDatabase.open(path.join(dataDir, 'coordinator.db'));
  bindDeployment(db, `${addresses.chainId}:${addresses.contracts.modelRegistry.toLowerCase()}`);
  const sharedDir = path.resolve(config.sharedDir);
  const blobs = await BlobStore.open(path.join(dataDir, 'blobs'));
  const shared = await BlobStore.open(path.join(sharedDir, 'blobs'), { shared: true });
  const models = await ModelStore.open(path.join(sharedDir, 'models'), { shared: true });
  for (const dir of config.seedModels) {
    const { hash, imported } = await models.importFolder(dir);
    if (imported) log.info({ hash, from: dir }, 'seeded the shared model store');
  }

  const rounds = new RoundLog(redis, keys);
  const lease = new LeaderLease(redis, keys, { nodeId, ttlMs: config.leaseTtlMs }, log);
  /** Reward entries of published rounds, as the leader recorded them (any node serves claims). */
  const rewards = new Map<number, RewardEntry[]>();
  let health: () => Promise<object> = async () => ({ status: 'starting', node: nodeId });
  const {
    httpServer,
    io,
    hub,
    port,
    localUrl: url,
    publicUrl,
  } = await openEdge(config, {
    models,
    rewards: (roundId) => rewards.get(roundId),
    health: () => health(),
    metrics,
    log,
    chain,
    chainId: addresses.chainId,
    adapter: createAdapter(adapterRedis, { streamName: keys.socketStream }),
  });
  const roundOptions = {
    publicUrl,
    chainId: addresses.chainId,
    ...(config.strategy === undefined ? {} : { strategy: config.strategy }),
    encoding: config.encoding,
    batchSize: config.batchSize,
    maxSteps: config.maxSteps,
    maxRoundSeconds: config.maxRoundSeconds,
    inviteTimeoutMs: config.inviteTimeoutMs,
    reconnectGraceMs: config.reconnectGraceMs,
    roundIntervalMs: config.roundIntervalMs,
    publishMarginBpc: config.publishMarginBpc,
    proposeActivation: config.proposeActivation,
    seed: config.seed,
    ...(config.noiseSeed === undefined ? {} : { noiseSeed: config.noiseSeed }),
    maxRounds: config.maxRounds,
  };
  const cohort = new CohortRunner({
    nodeId,
    db,
    blobs,
    shared,
    models,
    clipping: new AdaptiveClipping(db),
    hub,
    rounds,
    metrics,
    log,
    chainId: addresses.chainId,
    seed: config.seed,
    inviteTimeoutMs: config.inviteTimeoutMs,
    reconnectGraceMs: config.reconnectGraceMs,
  });
  hub.attach(cohort);
  const leader = new ClusterLeader({
    nodeId,
    lease,
    rounds,
    chain,
    models,
    shared,
    evaluator: new CandidateEvaluator({
      maxChars: config.evalChars,
      ...(evalText !== undefined ? { text: evalText } : {}),
    }),
    hub,
    metrics,
    log,
    options: roundOptions,
    // Past the round's duration: the cohorts' last stage (SecAgg+ unmasking) and the hand-over.
    partialGraceMs: 3 * config.inviteTimeoutMs + 5_000,
  });

  // The node's watch: its heartbeat, and the latest round (taken, or its outcome mirrored).
  let latest: ClusterRound | null = null;
  let liveNodes = 0;
  let redisError: string | null = null;
  const settled = new Set<number>();
  const beat = async () => {
    await rounds.beat(
      { nodeId, url, clients: hub.connected().length, pid: process.pid },
      config.nodeTtlMs,
    );
    liveNodes = (await rounds.liveNodes()).length;
    metrics.clusterNodes.set(liveNodes);
    metrics.clusterLeader.set(lease.isLeader() ? 1 : 0);
    metrics.clusterLeaseToken.set(lease.token);
  };
  /** Mirrors a finished round: its reward entries (served here too) and the cohort's rows. */
  const settle = async (round: ClusterRound) => {
    if (round.rewards) {
      rewards.set(
        round.id,
        round.rewards.map((r) => ({ account: r.account, amount: BigInt(r.amount) })),
      );
    }
    await cohort.settle(round);
  };
  const watch = async () => {
    latest = await rounds.latest();
    if (!latest) return;
    cohort.lastStatus = statusOf(latest);
    if (latest.state === 'training') cohort.take(latest);
    else if (
      (latest.state === 'published' || latest.state === 'failed') &&
      !settled.has(latest.id)
    ) {
      settled.add(latest.id);
      await settle(latest);
    }
    // A round that ended while the watch was looking elsewhere (the next already configured).
    for (const id of cohort.unsettled()) {
      if (id === latest.id) continue;
      const round = await rounds.round(id);
      if (round && (round.state === 'published' || round.state === 'failed')) await settle(round);
    }
  };
  let stopping = false;
  const repeat = (every: number, work: () => Promise<void>): NodeJS.Timeout =>
    setInterval(() => {
      if (stopping) return;
      work().then(
        () => {
          redisError = null;
        },
        (error: unknown) => {
          redisError = errorMessage(error);
          log.warn({ err: redisError }, 'cluster watch step failed');
        },
      );
    }, every);
  await beat();
  const timers = [repeat(BEAT_MS, beat), repeat(WATCH_MS, watch)];
  lease.start();
  leader.start();

  health = async () => {
    let leaderId: string | null = null;
    try {
      leaderId = await lease.leaderNodeId();
    } catch {
      // Redis unreachable: reported below.
    }
    return {
      status: redisError === null ? 'ok' : 'degraded',
      mode: 'scale-out',
      node: nodeId,
      leader: leaderId,
      isLeader: lease.isLeader(),
      leaseToken: lease.token,
      nodes: liveNodes,
      clients: hub.connected().length,
      backend: backend.backend,
      chainId: addresses.chainId,
      coordinator: new Wallet(config.privateKey).address,
      ...(redisError === null ? {} : { redisError }),
      round: latest === null ? null : { id: latest.id, state: latest.state, nodes: latest.nodes },
    };
  };
  log.info(
    { url, publicUrl, dataDir, sharedDir, redis: redactUrl(config.redis) },
    'scale-out node listening',
  );

  let closing: Promise<void> | null = null;
  return {
    nodeId,
    url,
    port,
    db,
    chain,
    metrics,
    log,
    backend,
    lease,
    rounds,
    close: () =>
      (closing ??= (async () => {
        stopping = true;
        for (const timer of timers) clearInterval(timer);
        await leader.stop();
        await cohort.stop();
        await lease.stop();
        await rounds.leave(nodeId).catch(() => undefined);
        await io.close();
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
        adapterRedis.disconnect();
        await redis.quit().catch(() => redis.disconnect());
        chain.destroy();
        db.close();
        log.info('stopped');
      })()),
  };
}

function statusOf(round: ClusterRound): RoundStatus {
  return {
    roundId: round.id,
    state: round.state === 'candidate' ? 'evaluating' : round.state,
    baseModel: round.baseHash,
    invited: Object.values(round.quotas).reduce((n, q) => n + q, 0),
    accepted: round.result?.accepted ?? 0,
    minClients: round.policy.minClients,
    deadline: round.task.deadline,
  };
}

/** A Redis URL without its password, for logs. */
function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
