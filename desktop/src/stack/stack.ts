// startStack: the whole local community — chain (with the DAO deployed or resumed), the
// coordinator (or, with --nodes N, Redis, N scale-out nodes and a front door) and the desktop
// app — each in its own process, stopped together.
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonRpcProvider } from 'ethers';
import {
  DEV_ACCOUNT_KEYS,
  DEVNET_CHAIN_ID,
  deployToRpc,
  freePort,
  probeChain,
  resolveGenesis,
} from '@commons/contracts';
import { readAddressesFile, type CommonsAddresses, CommonsClient } from '@commons/chain';
import { errorMessage } from '@commons/shared/errors';
import { RENDERER_DIR } from '../main/renderer-files.ts';
import { spawnChild, type StackChild } from './children.ts';
import { startLocalChain, type LocalChain } from './local-chain.ts';
import type { StackOptions } from './options.ts';

const desktopDir = fileURLToPath(new URL('../..', import.meta.url));
const repoDir = path.dirname(desktopDir);

export interface Stack {
  /** JSON-RPC URL every part uses (the local chain's, or `--rpc`). */
  rpcUrl: string;
  chainId: number;
  addressesFile: string;
  addresses: CommonsAddresses;
  /** Whether the deployment was found on the chain (true on every start after the first). */
  resumed: boolean;
  /** The coordinator's URL; with --nodes N, the front door's. */
  coordinatorUrl: string;
  /** With --nodes N (N ≥ 2): the scale-out cluster behind `coordinatorUrl`. */
  cluster?: {
    redisUrl: string;
    nodes: { id: string; url: string; dataDir: string; logFile: string }[];
    /** The node holding the lease when the stack was ready (null: none yet). */
    leader: string | null;
  };
  /** Web mode: the app's address with this launch's token (keep it private). */
  appUrl?: string;
  appMode?: 'web' | 'electron';
  /** Development account keys (public Hardhat keys; [0] deployed and is the coordinator). */
  keys: readonly string[];
  /** The processes the stack started. */
  processes: { name: string; pid: number; logFile: string }[];
  /**
   * Resolves when the first of them exits: on its own (a crash, the Electron window closed) or,
   * after `stop()`, as it is stopped.
   */
  exited: Promise<{ name: string; code: number | null }>;
  /** Stops every process (app, coordinator(s), Redis, chain) and waits until they are gone. */
  stop(): Promise<void>;
}

export class StackError extends Error {}

const PORT_FLAGS = {
  chain: ['--chain-port', 'COMMONS_CHAIN_PORT', 'the local chain'],
  coordinator: ['--coordinator-port', 'COMMONS_COORDINATOR_PORT', 'the coordinator'],
  app: ['--app-port', 'COMMONS_APP_PORT', 'the desktop app'],
} as const;

async function assertPortFree(port: number, part: keyof typeof PORT_FLAGS): Promise<void> {
  const [flag, env, what] = PORT_FLAGS[part];
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new StackError(
          error.code === 'EADDRINUSE'
            ? `Port ${port} (${what}) is already in use on 127.0.0.1. Stop what is using it, ` +
                `or choose another port with ${flag} <n> (or ${env}).`
            : `Cannot listen on 127.0.0.1:${port} for ${what}: ${error.message}. Choose another port with ${flag} <n>.`,
        ),
      );
    });
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What `<data-dir>/stack.json` holds while a stack runs. */
interface RunRecord {
  pid: number;
  processes: { name: string; pid: number; script: string }[];
  rpcUrl?: string;
  coordinatorUrl?: string;
}

/**
 * Stops the processes a crashed launcher left running. A process is stopped only if it still
 * runs the recorded script (read from /proc), so a recycled process id is never signalled.
 */
async function stopOrphans(previous: RunRecord, log: (line: string) => void): Promise<void> {
  for (const { name, pid, script } of previous.processes ?? []) {
    let commandLine: string;
    try {
      commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone (or no /proc: nothing can be checked, so nothing is signalled)
    }
    if (!commandLine.includes(script)) continue;
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // not a group leader any more, or already gone
      }
    }
    // Its ports are free once it is gone.
    for (let i = 0; i < 50 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    log(`Stopped the ${name} (pid ${pid}) left running by a stack that did not shut down`);
  }
}

/** Builds the desktop UI when it has not been built (first start of a fresh checkout). */
function ensureDesktopBuilt(log: (line: string) => void): void {
  const preload = path.join(desktopDir, 'dist/electron/preload.cjs');
  if (existsSync(path.join(RENDERER_DIR, 'index.html')) && existsSync(preload)) return;
  log('Building the desktop UI (first start only)…');
  const vite = path.join(
    path.dirname(createRequire(import.meta.url).resolve('vite/package.json')),
    'bin/vite.js',
  );
  for (const args of [['build'], ['build', '--mode', 'electron-preload']]) {
    const build = spawnSync(process.execPath, [vite, ...args], {
      cwd: desktopDir,
      encoding: 'utf8',
    });
    if (build.status !== 0) {
      throw new StackError(
        `Building the desktop UI failed (vite ${args.join(' ')}):\n${build.stderr || build.stdout}\n` +
          'Run npm run build -w desktop to see why, or start with --no-app.',
      );
    }
  }
}

async function waitFor<T>(
  child: StackChild,
  what: string,
  probe: () => Promise<T | undefined>,
  signal: AbortSignal | undefined,
  timeoutMs = 180_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    signal?.throwIfAborted();
    const value = await probe();
    if (value !== undefined) return value;
    const exited = await Promise.race([
      child.exited.then((code) => ({ code })),
      new Promise((resolve) => setTimeout(resolve, 250)),
    ]);
    if (exited !== undefined) {
      throw new StackError(
        `${child.name} exited (code ${(exited as { code: number | null }).code}) before ${what}. ` +
          `Its log (${child.logFile}) ends:\n${child.tail()}`,
      );
    }
    if (Date.now() - started > timeoutMs) {
      throw new StackError(
        `${child.name} did not become ready (${what}) in time; see ${child.logFile}`,
      );
    }
  }
}

/** GET `<url>/healthz` as JSON; undefined while it does not answer 200. */
async function healthz(url: string): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
    return response.ok ? ((await response.json()) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The executable `name` on PATH, as an absolute path; undefined when there is none. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.resolve(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether a Redis answers PING on 127.0.0.1:`port` (it accepts commands, not only connections). */
function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** What starting the coordinator(s) needs from startStack. */
interface CoordinatorContext {
  dataDir: string;
  logsDir: string;
  rpcUrl: string;
  addressesFile: string;
  keyFile: string;
  children: StackChild[];
  record: () => void;
  log: (line: string) => void;
  signal: AbortSignal | undefined;
}

/**
 * Scale-out on one machine: a redis-server, `count` coordinator nodes sharing it and one
 * folder, and the front door on `port` that spreads client connections over them. Resolves
 * once the front door answers /healthz from a node.
 */
async function startScaleOut(
  context: CoordinatorContext,
  count: number,
  port: number,
  redisServer: string,
): Promise<{ url: string; cluster: NonNullable<Stack['cluster']>; nodes: StackChild[] }> {
  const { dataDir, logsDir, children, record, log, signal } = context;
  const redisDir = path.join(dataDir, 'redis');
  const nodesDir = path.join(dataDir, 'coordinator-nodes');
  const sharedDir = path.join(nodesDir, 'shared');
  // Free ports are found one at a time; a port handed out twice would fail a node's start.
  const taken = new Set([port]);
  const nextPort = async (): Promise<number> => {
    for (;;) {
      const candidate = await freePort();
      if (!taken.has(candidate)) {
        taken.add(candidate);
        return candidate;
      }
    }
  };

  // Redis: the lease, the heartbeats and the rounds every node shares. Its data stays in the
  // data folder (append-only, fsync on every write) so the fencing counter survives restarts.
  mkdirSync(redisDir, { recursive: true });
  const redisPort = await nextPort();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  // Its first argument is its config file, so the run record's script (a path of this data
  // folder) recognizes this stack's Redis in /proc after a crash; for that its process title is
  // left as started. The settings are the flags, as in coordinator/src/cluster/redis-server.ts.
  const redisConf = path.join(redisDir, 'redis.conf');
  writeFileSync(
    redisConf,
    '# Started by commons-stack (npm start -- --nodes N) with its settings as flags;\n' +
      '# this file only names the Redis of this data folder.\n',
  );
  const redis = spawnChild({
    name: 'redis',
    command: redisServer,
    args: [
      redisConf,
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--dir',
      redisDir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--daemonize',
      'no',
      '--set-proc-title',
      'no',
    ],
    cwd: redisDir,
    logFile: path.join(logsDir, 'redis.log'),
  });
  children.push(redis);
  record();
  await waitFor(
    redis,
    `answering PING on port ${redisPort}`,
    async () => ((await redisAnswers(redisPort)) ? true : undefined),
    signal,
  );
  log(`Redis         ${redisUrl} (data ${redisDir}; log ${redis.logFile})`);

  // The nodes, started together (each takes seconds to load its chain view and models). Each
  // tells members the front door's URL, through which they reach whichever node is up.
  const url = `http://127.0.0.1:${port}`;
  const nodes: { id: string; url: string; dataDir: string; logFile: string; port: number }[] = [];
  const started: StackChild[] = [];
  for (let k = 1; k <= count; k++) {
    const id = `n${k}`;
    const nodePort = await nextPort();
    const nodeDir = path.join(nodesDir, id);
    const node = spawnChild({
      name: `coordinator-${id}`,
      command: process.execPath,
      args: [
        path.join(repoDir, 'coordinator/bin/commons-coordinator.ts'),
        '--redis',
        redisUrl,
        '--node-id',
        id,
        '--shared-dir',
        sharedDir,
        '--data-dir',
        nodeDir,
        '--host',
        '127.0.0.1',
        '--port',
        String(nodePort),
        '--public-url',
        url,
        '--rpc',
        context.rpcUrl,
        '--addresses',
        context.addressesFile,
        '--key-file',
        context.keyFile,
      ],
      cwd: repoDir,
      logFile: path.join(logsDir, `coordinator-${id}.log`),
    });
    children.push(node);
    started.push(node);
    nodes.push({
      id,
      url: `http://127.0.0.1:${nodePort}`,
      dataDir: nodeDir,
      logFile: node.logFile,
      port: nodePort,
    });
  }
  record();
  await Promise.all(
    nodes.map((node, i) =>
      waitFor(started[i]!, `answering ${node.url}/healthz`, () => healthz(node.url), signal),
    ),
  );
  for (const node of nodes) {
    log(
      `Node ${node.id.padEnd(8)} ${node.url} (health: ${node.url}/healthz; data ${node.dataDir}; log ${node.logFile})`,
    );
  }
  log(`Shared        ${sharedDir} (models and partial sums every node reads)`);

  // The front door: where the app and members connect. Ready once /healthz through it is
  // answered by a node, i.e. it forwards.
  const door = spawnChild({
    name: 'front-door',
    command: process.execPath,
    args: [
      path.join(repoDir, 'coordinator/bin/commons-front-door.ts'),
      '--port',
      String(port),
      ...nodes.flatMap((node) => ['--node', `127.0.0.1:${node.port}`]),
    ],
    cwd: repoDir,
    logFile: path.join(logsDir, 'front-door.log'),
  });
  children.push(door);
  record();
  await waitFor(
    door,
    `forwarding ${url}/healthz to a node`,
    async () => ((await healthz(url))?.mode === 'scale-out' ? true : undefined),
    signal,
  );
  log(
    `Coordinator   ${url} (front door over ${count} nodes, each connection to the next node; ` +
      `health: ${url}/healthz; log ${door.logFile})`,
  );

  // The leader: whichever node took the lease first. Each node tries at once on start, so it
  // is known within moments; the watch in startStack logs it later otherwise, and any change.
  let leader: string | null = null;
  for (let i = 0; i < 20 && leader === null; i++) {
    signal?.throwIfAborted();
    const health = await healthz(url);
    if (typeof health?.leader === 'string') leader = health.leader;
    else await new Promise((resolve) => setTimeout(resolve, 250));
  }
  log(
    leader === null
      ? 'Leader        not elected yet (see "leader" in /healthz)'
      : `Leader        ${leader} (holds the lease: opens the rounds and publishes the models)`,
  );
  return {
    url,
    cluster: {
      redisUrl,
      nodes: nodes.map(({ id, url, dataDir, logFile }) => ({ id, url, dataDir, logFile })),
      leader,
    },
    nodes: started,
  };
}

/**
 * Starts the stack. `log` receives the start-up log, one line at a time (default: stdout), and
 * with --nodes N, once started, a line when a node exits or the lease changes hands.
 * On failure, or when `signal` aborts (Ctrl-C during start-up), whatever had started is stopped
 * before the error is thrown.
 */
export async function startStack(
  options: StackOptions,
  log: (line: string) => void = (line) => console.log(line),
  signal?: AbortSignal,
): Promise<Stack> {
  const { dataDir } = options;
  const chainDir = path.join(dataDir, 'chain');
  const coordinatorDir = path.join(dataDir, 'coordinator');
  // Scale-out (--nodes N): the nodes' folders and the Redis they share.
  const nodesDir = path.join(dataDir, 'coordinator-nodes');
  const redisDir = path.join(dataDir, 'redis');
  const scaleOut = !options.coordinatorUrl && options.nodes > 1;
  const logsDir = path.join(dataDir, 'logs');
  const runFile = path.join(dataDir, 'stack.json');

  // Refuse before starting anything: another stack on this folder, or a port taken.
  if (existsSync(runFile)) {
    const previous = JSON.parse(readFileSync(runFile, 'utf8')) as RunRecord;
    if (previous.pid !== process.pid && isAlive(previous.pid)) {
      throw new StackError(
        `Another Commons stack (pid ${previous.pid}) is running with the data folder ${dataDir}. ` +
          'Stop it (Ctrl-C in its terminal), or use another --data-dir.',
      );
    }
    await stopOrphans(previous, log);
    rmSync(runFile, { force: true });
  }
  if (!options.rpcUrl) await assertPortFree(options.chainPort, 'chain');
  if (!options.coordinatorUrl && options.coordinatorPort !== 0) {
    await assertPortFree(options.coordinatorPort, 'coordinator');
  }
  if (options.app && options.appPort !== 0) await assertPortFree(options.appPort, 'app');
  const redisServer = scaleOut ? onPath('redis-server') : undefined;
  if (scaleOut && !redisServer) {
    throw new StackError(
      `--nodes ${options.nodes} runs the coordinator nodes against a local Redis, but redis-server ` +
        'is not on PATH. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server), or ' +
        'start without --nodes for the single coordinator.',
    );
  }

  if (options.reset) {
    const removed = [chainDir, coordinatorDir, nodesDir, redisDir];
    for (const dir of removed) rmSync(dir, { recursive: true, force: true });
    log(`Reset: removed ${removed.slice(0, -1).join(', ')} and ${removed.at(-1)}`);
  }
  mkdirSync(logsDir, { recursive: true });

  const children: StackChild[] = [];
  // Written as each process starts, so a launcher killed outright (kill -9) leaves a record
  // from which the next start stops what it left behind.
  const record = (ready: { rpcUrl: string; coordinatorUrl: string } | null = null) => {
    const processes = children.map(({ name, pid, script }) => ({ name, pid, script }));
    const run: RunRecord = { pid: process.pid, processes, ...ready };
    writeFileSync(runFile, `${JSON.stringify(run, null, 2)}\n`);
  };
  let chain: LocalChain | undefined;
  let stopped: Promise<void> | undefined;
  let leaderWatch: NodeJS.Timeout | undefined;
  const stopAll = (): Promise<void> =>
    (stopped ??= (async () => {
      clearInterval(leaderWatch);
      for (const child of [...children].reverse()) {
        if (child !== chain?.node) await child.stop();
      }
      await chain?.stop();
      rmSync(runFile, { force: true });
    })());

  try {
    // 1. The chain.
    let rpcUrl: string;
    let chainId: number;
    if (options.rpcUrl) {
      const id = await probeChain(options.rpcUrl);
      if (id === null) {
        throw new StackError(
          `No JSON-RPC chain answers at ${options.rpcUrl} (--rpc). Is it running?`,
        );
      }
      rpcUrl = options.rpcUrl;
      chainId = id;
      log(`Chain         ${rpcUrl} (chain id ${chainId}, given with --rpc)`);
    } else {
      chain = await startLocalChain({
        chainDir,
        port: options.chainPort,
        logFile: path.join(logsDir, 'chain.log'),
      });
      children.push(chain.node);
      record(null);
      rpcUrl = chain.rpcUrl;
      chainId = chain.chainId;
      log(
        `Chain         ${rpcUrl} (chain id ${chainId}, Hardhat node, ` +
          (chain.replayed > 0
            ? `resumed: ${chain.replayed} journaled calls replayed`
            : 'new chain') +
          `; journal ${chain.journalFile})`,
      );
    }

    signal?.throwIfAborted();
    // 2. The contracts.
    const devnet = chainId === DEVNET_CHAIN_ID;
    const addressesFile = options.addressesFile ?? path.join(chainDir, 'addresses.json');
    let addresses: CommonsAddresses;
    let resumed: boolean;
    if (options.coordinatorUrl && !existsSync(addressesFile)) {
      throw new StackError(
        `${addressesFile} does not exist. With --coordinator, pass --addresses <file>: the ` +
          `deployment the coordinator at ${options.coordinatorUrl} works with.`,
      );
    }
    if (devnet) {
      ({ addresses, reused: resumed } = await deployToRpc({
        rpcUrl,
        out: addressesFile,
        reuse: true,
        genesis: await resolveGenesis({}),
      }));
    } else {
      if (!existsSync(addressesFile)) {
        throw new StackError(
          `Chain ${chainId} is not the devnet and ${addressesFile} does not exist. Deploy first ` +
            '(npm run deploy -w contracts -- --rpc <url> --key <deployer key> --out <file>) and pass --addresses <file>.',
        );
      }
      addresses = await readAddressesFile(addressesFile);
      const client = new CommonsClient(new JsonRpcProvider(rpcUrl), addresses);
      try {
        await client.assertDeployed();
      } finally {
        client.destroy();
      }
      resumed = true;
    }
    log(
      `Contracts     ${addressesFile} (${resumed ? 'existing deployment' : 'deployed now: genesis model registered, development accounts funded and delegated'})`,
    );
    // Coordinator data (single or scale-out, and the rounds in Redis) is bound to a deployment.
    const stale = [coordinatorDir, nodesDir, redisDir].filter(
      (dir) => existsSync(dir) && readdirSync(dir).length > 0,
    );
    if (!resumed && !options.coordinatorUrl && stale.length > 0) {
      throw new StackError(
        `The contracts were deployed anew, but the coordinator's data in ${stale.join(' and ')} ` +
          'belongs to the previous deployment. Start with --reset to clear it (or move it away).',
      );
    }

    signal?.throwIfAborted();
    // 3. The coordinator.
    let coordinatorUrl: string;
    let cluster: Stack['cluster'];
    let nodeChildren: StackChild[] = [];
    if (options.coordinatorUrl) {
      coordinatorUrl = options.coordinatorUrl;
      const health = await fetch(`${coordinatorUrl}/healthz`, {
        signal: AbortSignal.timeout(5000),
      }).then(
        (response) => (response.ok ? 'answers /healthz' : `/healthz answered ${response.status}`),
        (error: unknown) => `not answering now: ${errorMessage(error)}`,
      );
      log(
        `Coordinator   ${coordinatorUrl} (given with --coordinator, not started here; ${health})`,
      );
    } else {
      let keyFile = options.coordinatorKeyFile;
      if (!keyFile) {
        if (!devnet) {
          throw new StackError(
            `On chain ${chainId} the coordinator needs its account's key: pass --coordinator-key-file <file> (mode 0600), or --coordinator <url>.`,
          );
        }
        keyFile = path.join(dataDir, 'coordinator.key');
        writeFileSync(keyFile, `${DEV_ACCOUNT_KEYS[0]}\n`, { mode: 0o600 });
        chmodSync(keyFile, 0o600);
      }
      const port = options.coordinatorPort || (await freePort());
      if (scaleOut) {
        ({
          url: coordinatorUrl,
          cluster,
          nodes: nodeChildren,
        } = await startScaleOut(
          { dataDir, logsDir, rpcUrl, addressesFile, keyFile, children, record, log, signal },
          options.nodes,
          port,
          redisServer!,
        ));
      } else {
        coordinatorUrl = `http://127.0.0.1:${port}`;
        const coordinator = spawnChild({
          name: 'coordinator',
          command: process.execPath,
          args: [
            path.join(repoDir, 'coordinator/bin/commons-coordinator.ts'),
            '--host',
            '127.0.0.1',
            '--port',
            String(port),
            '--data-dir',
            coordinatorDir,
            '--rpc',
            rpcUrl,
            '--addresses',
            addressesFile,
            '--key-file',
            keyFile,
          ],
          cwd: repoDir,
          logFile: path.join(logsDir, 'coordinator.log'),
        });
        children.push(coordinator);
        record(null);
        const url = coordinatorUrl;
        await waitFor(
          coordinator,
          `answering ${url}/healthz`,
          async () => {
            try {
              const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
              return response.ok ? true : undefined;
            } catch {
              return undefined;
            }
          },
          signal,
        );
        log(
          `Coordinator   ${coordinatorUrl} (health: ${coordinatorUrl}/healthz; data ${coordinatorDir}; log ${coordinator.logFile})`,
        );
      }
    }

    signal?.throwIfAborted();
    // 4. The desktop app.
    let appUrl: string | undefined;
    let appMode: 'web' | 'electron' | undefined;
    if (options.app) {
      ensureDesktopBuilt(log);
      let seen: { mode: 'web' | 'electron'; url?: string } | undefined;
      let webReason = 'web mode';
      const app = spawnChild({
        name: 'app',
        command: process.execPath,
        args: [
          path.join(desktopDir, 'bin/commons-desktop.ts'),
          ...(options.appMode === 'web' ? ['--web'] : []),
          '--data-dir',
          path.join(dataDir, 'desktop'),
          '--coordinator',
          coordinatorUrl,
          '--rpc',
          rpcUrl,
          '--addresses',
          addressesFile,
          ...(options.appPort !== 0 ? ['--port', String(options.appPort)] : []),
        ],
        cwd: repoDir,
        logFile: path.join(logsDir, 'app.log'),
        onLine: (line) => {
          const url = /^\s*(http:\/\/127\.0\.0\.1:\d+\/#token=\S+)/.exec(line)?.[1];
          const why = /running in web mode \((.*)\)\./.exec(line)?.[1];
          if (why) webReason = why;
          if (url) seen = { mode: 'web', url };
          else if (line.includes('(Electron)')) seen = { mode: 'electron' };
        },
      });
      children.push(app);
      record(null);
      const ready = await waitFor(
        app,
        'showing its window or web address',
        async () => seen,
        signal,
      );
      appMode = ready.mode;
      appUrl = ready.url;
      log(
        appMode === 'web'
          ? `App           web mode (${webReason}): open ${appUrl} (holds this launch's token; do not share it)`
          : 'App           Electron window',
      );
    } else {
      log('App           not started (--no-app)');
    }

    signal?.throwIfAborted();
    const processes = children.map(({ name, pid, logFile }) => ({ name, pid, logFile }));
    record({ rpcUrl, coordinatorUrl });
    if (cluster) {
      // The lease moves when its holder stops or stalls: say so, for whoever watches failover.
      let leader = cluster.leader;
      const doorUrl = coordinatorUrl;
      leaderWatch = setInterval(() => {
        void healthz(doorUrl).then((health) => {
          const now = typeof health?.leader === 'string' ? health.leader : null;
          if (now === null || now === leader || stopped) return;
          log(
            `Leader        ${now} (` +
              (leader === null ? 'holds the lease' : `took the lease over from ${leader}`) +
              ')',
          );
          leader = now;
        });
      }, 1000);
      leaderWatch.unref();
    }
    return {
      rpcUrl,
      chainId,
      addressesFile,
      addresses,
      resumed,
      coordinatorUrl,
      ...(cluster ? { cluster } : {}),
      ...(appUrl ? { appUrl } : {}),
      ...(appMode ? { appMode } : {}),
      keys: DEV_ACCOUNT_KEYS,
      processes,
      // Scale-out carries on while a node is down (that is what it is for: stop one and watch
      // the others take its clients and the lease), so only the last node's exit counts.
      exited: new Promise((resolve) => {
        let nodesUp = nodeChildren.length;
        for (const child of children) {
          void child.exited.then((code) => {
            if (nodeChildren.includes(child) && --nodesUp > 0) {
              if (!stopped) {
                log(
                  `${child.name} exited (code ${code}); the other ${nodesUp} nodes carry on ` +
                    `and the front door skips it. Its log: ${child.logFile}`,
                );
              }
              return;
            }
            resolve({ name: child.name, code });
          });
        }
      }),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
