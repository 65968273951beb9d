// Scale-out mode on this machine: nodes as real `commons-coordinator --redis` processes sharing
// a real redis-server, light clients in forked load-generator processes (one per node, each
// signing in to its node), a real Hardhat devnet.
//   connections  signed-in clients held by 1, 2 and 3 nodes (the same target spread over them);
//   round        one round of `clients` light clients across `nodes` nodes, end to end (the
//                round configured in Redis → published), with per-stage times, next to the same
//                total work (the same clients and model) on one embedded coordinator.
// Goal (issue 15): the distributed round's overhead over the same work on one node ≤ 20%.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { FULL_DELTA, type FederationPolicy } from '@commons/chain';
import { defaultGenesisUri, startDevnet, type Devnet } from '@commons/contracts';
import { clusterKeys } from '../src/cluster/keys.ts';
import { freePort, startRedisServer, type RedisServer } from '../src/cluster/redis-server.ts';
import { RoundLog, type ClusterPartial } from '../src/cluster/round-log.ts';
import { ModelStore } from '../src/store/models.ts';
import { ONE_MILLION_MODEL, writeInitialModel } from '../lab/simulation/init-model.ts';
import { benchRound } from './capacity.ts';
import type { GeneratorInput, GeneratorMessage } from './load-generator.ts';
import { textTable } from './table.ts';

const NODE_BIN = fileURLToPath(new URL('../bin/commons-coordinator.ts', import.meta.url));
const GENERATOR = fileURLToPath(new URL('./load-generator.ts', import.meta.url));

export interface ScaleOutConnectionsRow {
  nodes: number;
  target: number;
  connected: number;
  /** From the first connection attempt to the last sign-in. */
  seconds: number;
  /** Peak RSS of the node processes, summed (MB). */
  nodesRssMb: number;
}

export interface ScaleOutRoundRow {
  nodes: number;
  clients: number;
  params: number;
  outcome: string;
  accepted: number;
  /** Configured (record in Redis) → published. */
  roundSeconds: number;
  /** Configured → every node's partial in the stream. */
  cohortsSeconds: number;
  /** Last partial → candidate fixed (combine, noise, evaluate, store). */
  leaderSeconds: number;
  /** Candidate fixed → published (chain registration, rewards). */
  publishSeconds: number;
  /** The slowest node's stages (invite, upload), seconds. */
  slowestCohort: Record<string, number>;
  /** The same clients and model on one embedded coordinator (benchRound), configured → published. */
  singleNodeSameWorkSeconds: number;
  /** How that single-node round ended ('published', or why it failed). */
  singleNodeOutcome: string;
  /** roundSeconds / singleNodeSameWorkSeconds − 1. */
  overhead: number;
}

interface Options {
  log: (line: string) => void;
}

interface Cluster {
  dir: string;
  redis: RedisServer;
  devnet: Devnet;
  nodes: { child: ChildProcess; url: string }[];
  generators: ChildProcess[];
  stop(): Promise<void>;
}

async function startCluster(
  name: string,
  nodeCount: number,
  policy: Parameters<typeof startDevnet>[1],
  seedModel: { hash: string; dir: string } | null,
): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), `commons-${name}-`));
  const redis = await startRedisServer(path.join(dir, 'redis'));
  const devnet = await startDevnet(
    path.join(dir, 'chain'),
    policy,
    seedModel ? { genesis: { hash: seedModel.hash, uri: defaultGenesisUri(seedModel.hash) } } : {},
  );
  if (seedModel) {
    // The shared model store holds the round's base model before any node starts.
    const models = await ModelStore.open(path.join(dir, 'shared', 'models'), { shared: true });
    await models.importFolder(seedModel.dir);
  }
  const nodes: Cluster['nodes'] = [];
  const generators: ChildProcess[] = [];
  const stop = async () => {
    for (const g of generators) g.kill('SIGKILL');
    await Promise.all(
      nodes.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
    await devnet.stop();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 1; i <= nodeCount; i++) {
      const port = await freePort();
      const child = spawn(
        process.execPath,
        [
          NODE_BIN,
          '--redis',
          redis.url,
          '--node-id',
          `n${i}`,
          '--shared-dir',
          path.join(dir, 'shared'),
          '--data-dir',
          path.join(dir, `n${i}`),
          '--port',
          String(port),
          '--rpc',
          devnet.rpcUrl,
          '--addresses',
          devnet.addressesFile,
          '--encoding',
          'int8',
          '--eval-chars',
          '2000',
          '--rounds',
          '1',
          // A light client answers at once, but a thousand invitations queue on 2 cores (as the
          // single-node round bench, benchRound, allows them).
          '--invite-seconds',
          '60',
          '--max-unauthenticated',
          '4096',
          '--log-level',
          'warn',
        ],
        {
          env: {
            ...process.env,
            COMMONS_COORDINATOR_KEY: devnet.keys[0]!,
            COMMONS_LOG_STREAM: 'stderr',
          },
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      const url = `http://127.0.0.1:${port}`;
      nodes.push({ child, url });
      for (let tries = 0; ; tries++) {
        if (child.exitCode !== null) throw new Error(`node n${i} exited with ${child.exitCode}`);
        const ok = await fetch(`${url}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (tries > 600) throw new Error(`node n${i} did not start`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { dir, redis, devnet, nodes, generators, stop };
}

/** One load generator per node, `total` clients split evenly; resolves with their sign-ins. */
function generate(
  cluster: Cluster,
  total: number,
  prebuild: GeneratorInput['prebuild'],
  timeLimitMs: number,
  log: (line: string) => void,
): Promise<{ count: number; seconds: number }> {
  const per = Math.ceil(total / cluster.nodes.length);
  const signed: { count: number; seconds: number }[] = [];
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      resolve({
        count: signed.reduce((n, s) => n + s.count, 0),
        seconds: Math.max(0, ...signed.map((s) => s.seconds)),
      });
    };
    const timer = setTimeout(() => {
      log(`  sign-in time limit (${timeLimitMs / 1000} s) reached`);
      finish();
    }, timeLimitMs);
    cluster.nodes.forEach((node, i) => {
      const from = i * per;
      const count = Math.min(per, total - from);
      const input: GeneratorInput = {
        url: node.url,
        chainId: cluster.devnet.addresses.chainId,
        seed: 7,
        from,
        count,
        concurrency: 64,
        ...(prebuild ? { prebuild } : {}),
      };
      const child = fork(GENERATOR, [JSON.stringify(input)], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      cluster.generators.push(child);
      let errors = 0;
      child.on('message', (message: GeneratorMessage) => {
        if (message.type === 'signedIn') {
          signed.push(message);
          if (signed.length === cluster.nodes.length) finish();
        } else if (message.type === 'error' && ++errors <= 3) {
          log(`  client error: ${message.message}`);
        }
      });
    });
  });
}

async function nodeStats(cluster: Cluster): Promise<{ clients: number }[]> {
  return Promise.all(
    cluster.nodes.map(
      async ({ url }) => (await (await fetch(`${url}/healthz`)).json()) as { clients: number },
    ),
  );
}

/** Peak RSS of a process from /proc (VmHWM), MB; 0 where /proc is missing. */
async function peakRssMb(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : 0;
}

/** Signed-in clients held by 1, 2 and 3 nodes: the same target, spread over the nodes. */
export async function benchScaleOutConnections(
  options: Options & { target?: number; nodeCounts?: number[] },
): Promise<ScaleOutConnectionsRow[]> {
  const target = options.target ?? 10_000;
  const rows: ScaleOutConnectionsRow[] = [];
  for (const nodes of options.nodeCounts ?? [1, 2, 3]) {
    const cluster = await startCluster(
      'scale-out-connections',
      nodes,
      { minClients: 100_000, maxClients: 100_000, adapter: FULL_DELTA },
      null,
    );
    try {
      options.log(`  ${target.toLocaleString('en')} clients over ${nodes} node(s) …`);
      const signed = await generate(cluster, target, undefined, 300_000, options.log);
      // Heartbeat-free count: each node's own /healthz.
      const held = (await nodeStats(cluster)).reduce((n, s) => n + s.clients, 0);
      const rss = await Promise.all(cluster.nodes.map((n) => peakRssMb(n.child.pid)));
      rows.push({
        nodes,
        target,
        connected: held,
        seconds: signed.seconds,
        nodesRssMb: rss.reduce((a, b) => a + b, 0),
      });
    } finally {
      await cluster.stop();
    }
  }
  return rows;
}

/** One round of `clients` light clients across `nodes` nodes, next to the same work on one node. */
export async function benchScaleOutRound(
  options: Options & {
    nodes?: number;
    clients?: number;
    timeLimitMs?: number;
    /** SecAgg+ inside each node's cohort (the clients mask fp32 updates). */
    secure?: boolean;
    /** The model's shape (default ≈1M parameters). */
    model?: typeof ONE_MILLION_MODEL;
    /** Also run the same work on one embedded coordinator (default true). */
    compareSingleNode?: boolean;
  },
): Promise<ScaleOutRoundRow & { partials: ClusterPartial[] }> {
  const nodeCount = options.nodes ?? 3;
  const clients = options.clients ?? 3000;
  const timeLimitMs = options.timeLimitMs ?? 900_000;
  const { log } = options;
  const initDir = await mkdtemp(path.join(tmpdir(), 'commons-scale-out-init-'));
  const init = await writeInitialModel(
    path.join(initDir, 'init'),
    options.model ?? ONE_MILLION_MODEL,
    1,
  );
  const policy: Partial<FederationPolicy> = {
    minClients: clients,
    maxClients: clients,
    sampleRate: 1,
    clipNorm: 1,
    noiseMultiplier: 0,
    secureAggregation: options.secure ?? false,
    adapter: FULL_DELTA,
    aggregationRule: 'fedavg',
    roundDeadlineSeconds: Math.ceil(timeLimitMs / 1000),
  };
  let row: Omit<ScaleOutRoundRow, 'singleNodeSameWorkSeconds' | 'singleNodeOutcome' | 'overhead'>;
  let partials: ClusterPartial[] = [];
  const cluster = await startCluster('scale-out-round', nodeCount, policy, init);
  const redis = new Redis(cluster.redis.url);
  redis.on('error', () => undefined);
  try {
    const rounds = new RoundLog(redis, clusterKeys());
    log(
      `  ${clients} light clients over ${nodeCount} nodes, ${init.params.toLocaleString('en')}-parameter int8 updates …`,
    );
    const signed = await generate(
      cluster,
      clients,
      { modelHash: init.hash, encoding: options.secure ? 'fp32' : 'int8', clipNorm: 1 },
      timeLimitMs,
      log,
    );
    log(`  ${signed.count} signed in after ${signed.seconds.toFixed(1)} s; round running …`);
    // The round's milestones, seen from Redis (every 50 ms).
    const started = performance.now();
    let configured = 0;
    let cohorts = 0;
    let candidate = 0;
    for (;;) {
      if (performance.now() - started > timeLimitMs)
        throw new Error(`no published round within ${timeLimitMs / 1000} s`);
      const record = await rounds.round(1);
      const now = performance.now();
      if (record && configured === 0) configured = now;
      if (record && cohorts === 0) {
        partials = (await rounds.partials(1)).partials;
        if (partials.length === record.nodes.length) cohorts = now;
      }
      if (
        record &&
        (record.state === 'candidate' || record.state === 'published') &&
        candidate === 0
      )
        candidate = now;
      if (record && (record.state === 'published' || record.state === 'failed')) {
        if (cohorts === 0) {
          cohorts = now;
          partials = (await rounds.partials(1)).partials;
        }
        if (candidate === 0) candidate = now;
        const slowest = partials.reduce<ClusterPartial | null>(
          (a, p) => (!a || (p.stageMs?.['cohort'] ?? 0) > (a.stageMs?.['cohort'] ?? 0) ? p : a),
          null,
        );
        row = {
          nodes: nodeCount,
          clients,
          params: init.params,
          outcome:
            record.state === 'published' ? 'published' : `failed: ${record.result?.reason ?? ''}`,
          accepted: record.result?.accepted ?? 0,
          roundSeconds: (now - configured) / 1000,
          cohortsSeconds: (cohorts - configured) / 1000,
          leaderSeconds: (candidate - cohorts) / 1000,
          publishSeconds: (now - candidate) / 1000,
          slowestCohort: Object.fromEntries(
            Object.entries(slowest?.stageMs ?? {}).map(([k, v]) => [k, v / 1000]),
          ),
        };
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    redis.disconnect();
    await cluster.stop();
    await rm(initDir, { recursive: true, force: true });
  }
  if (options.compareSingleNode === false) {
    return {
      ...row!,
      singleNodeSameWorkSeconds: NaN,
      singleNodeOutcome: 'not run',
      overhead: NaN,
      partials,
    };
  }
  log(`  the same ${clients} clients on one embedded coordinator …`);
  const [single] = await benchRound({ log, clients });
  const singleSeconds = single?.outcome === 'published' ? single.seconds : NaN;
  return {
    ...row!,
    singleNodeSameWorkSeconds: singleSeconds,
    singleNodeOutcome: single?.outcome ?? 'no result',
    overhead: row!.roundSeconds / singleSeconds - 1,
    partials,
  };
}

export function formatScaleOutConnections(rows: ScaleOutConnectionsRow[]): string {
  return textTable(
    ['nodes', 'target', 'connected', 'sign-in s', 'nodes peak RSS MB'],
    rows.map((r) => [
      String(r.nodes),
      String(r.target),
      String(r.connected),
      r.seconds.toFixed(1),
      r.nodesRssMb.toFixed(0),
    ]),
  );
}

export function formatScaleOutRound(r: ScaleOutRoundRow): string {
  return textTable(
    [
      'nodes',
      'clients',
      'outcome',
      'accepted',
      'round s',
      'cohorts s',
      'leader s',
      'publish s',
      'one node, same work s',
      'overhead',
    ],
    [
      [
        String(r.nodes),
        String(r.clients),
        r.outcome,
        String(r.accepted),
        r.roundSeconds.toFixed(1),
        r.cohortsSeconds.toFixed(1),
        r.leaderSeconds.toFixed(1),
        r.publishSeconds.toFixed(1),
        Number.isFinite(r.singleNodeSameWorkSeconds)
          ? r.singleNodeSameWorkSeconds.toFixed(1)
          : r.singleNodeOutcome,
        `${(r.overhead * 100).toFixed(0)}%`,
      ],
    ],
  );
}
