// Scale-out fixtures: a real redis-server on a free port, a Hardhat devnet, and coordinator
// nodes (in this process, or as real child processes for the fault tests) sharing both.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Wallet } from 'ethers';
import { startDevnet } from '@commons/contracts';
import type { FederationPolicy } from '@commons/chain';
import type { RoundResult } from '@commons/shared/protocol';
import { startRedisServer, type RedisServer } from '../../src/cluster/redis-server.ts';
import { TEST_POLICY } from '../fixtures/federation.ts';
import { connectRaw, type RawClient } from '../fixtures/protocol-client.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Devnet } from '@commons/contracts';
import type { CoordinatorConfigInput } from '../../src/config.ts';
import { startScaleOutNode, type ScaleOutNode } from '../../src/cluster/node.ts';

const BIN = fileURLToPath(new URL('../../bin/commons-coordinator.ts', import.meta.url));

export type NodeOptions = Omit<
  CoordinatorConfigInput,
  'rpcUrl' | 'addressesFile' | 'privateKey' | 'dataDir' | 'redis' | 'nodeId' | 'sharedDir'
>;

/** Test-speed defaults: short lease and heartbeat, quick rounds, no logs. */
export const FAST: NodeOptions = {
  port: 0,
  leaseTtlMs: 1_500,
  nodeTtlMs: 1_500,
  encoding: 'int8',
  evalChars: 500,
  publishMarginBpc: 100,
  roundIntervalMs: 0,
  inviteTimeoutMs: 5_000,
  reconnectGraceMs: 1_000,
  logLevel: 'silent',
};

export function startNode(
  devnet: Devnet,
  dir: string,
  redis: string,
  nodeId: string,
  options: NodeOptions = {},
): Promise<ScaleOutNode> {
  return startScaleOutNode({
    ...FAST,
    ...options,
    redis,
    nodeId,
    dataDir: path.join(dir, nodeId),
    sharedDir: path.join(dir, 'shared'),
    rpcUrl: devnet.rpcUrl,
    addressesFile: devnet.addressesFile,
    privateKey: devnet.keys[0]!,
  });
}

export interface NodeProcess {
  nodeId: string;
  url: string;
  child: ChildProcess;
  /** Everything it wrote to stderr (its logs, at warn and above). */
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
}

/**
 * A node as its own process (`commons-coordinator --redis ...`), on `port`; resolves once its
 * /healthz answers. `env` adds to its environment (libfaketime, for the clock-skew test).
 */
export async function spawnNode(
  devnet: Devnet,
  dir: string,
  redis: string,
  nodeId: string,
  port: number,
  extra: string[] = [],
  env: Record<string, string> = {},
): Promise<NodeProcess> {
  const args = [
    BIN,
    '--redis',
    redis,
    '--node-id',
    nodeId,
    '--shared-dir',
    path.join(dir, 'shared'),
    '--data-dir',
    path.join(dir, nodeId),
    '--port',
    String(port),
    '--rpc',
    devnet.rpcUrl,
    '--addresses',
    devnet.addressesFile,
    '--lease-seconds',
    '2',
    '--encoding',
    'int8',
    '--eval-chars',
    '500',
    '--publish-margin',
    '100',
    '--log-level',
    'warn',
    ...extra,
  ];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      ...env,
      COMMONS_COORDINATOR_KEY: devnet.keys[0]!,
      COMMONS_LOG_STREAM: 'stderr',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`node ${nodeId} exited ${child.exitCode}: ${stderr}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > 60_000) throw new Error(`node ${nodeId} did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { nodeId, url, child, stderr: () => stderr, exited };
}

/** GET /healthz as JSON. */
export async function health(url: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
}

/** Polls until `check` passes or `ms` pass (then throws with `what`). */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | null | false>,
  ms = 30_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface TwoNodes {
  dir: string;
  redis: RedisServer;
  devnet: Devnet;
  nodes: ScaleOutNode[];
  clients: RawClient[];
  wallets: Wallet[];
  /** Closes clients and nodes, stops the chain and Redis, removes the folder. */
  stop(): Promise<void>;
}

/** Redis, a devnet under `policy`, nodes `a` and `b` in this process, four raw clients (2 + 2). */
export async function twoNodes(
  name: string,
  policy: Partial<FederationPolicy>,
  options: NodeOptions = {},
): Promise<TwoNodes> {
  const dir = await mkdtemp(path.join(tmpdir(), `commons-scale-out-${name}-`));
  const redis = await startRedisServer(path.join(dir, 'redis'));
  const devnet = await startDevnet(path.join(dir, 'chain'), { ...TEST_POLICY, ...policy });
  const nodes = [
    await startNode(devnet, dir, redis.url, 'a', { maxRounds: 1, ...options }),
    await startNode(devnet, dir, redis.url, 'b', { maxRounds: 1, ...options }),
  ];
  const wallets = devnet.keys.slice(1, 5).map((k) => new Wallet(k));
  const clients = await Promise.all(wallets.map((w, i) => connectRaw(nodes[i % 2]!.url, w)));
  const setup: TwoNodes = {
    dir,
    redis,
    devnet,
    nodes,
    clients,
    wallets,
    stop: async () => {
      for (const client of setup.clients) client.close();
      for (const node of setup.nodes) await node.close();
      await devnet.stop();
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return setup;
}

/** Resolves with `client`'s round:result for `roundId`. */
export function resultOf(client: RawClient, roundId: number): Promise<RoundResult> {
  return new Promise((resolve) => {
    client.socket.on('round:result', (result) => {
      if (result.roundId === roundId) resolve(result);
    });
  });
}
