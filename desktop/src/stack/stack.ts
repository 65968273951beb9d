// startStack: the whole local community — chain (with the DAO deployed or resumed), the
// coordinator and the desktop app — each in its own process, stopped together.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
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
  coordinatorUrl: string;
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
  /** Stops every process (app, coordinator, chain) and waits until they are gone. */
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

/**
 * Starts the stack. `log` receives the start-up log, one line at a time (default: stdout).
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

  if (options.reset) {
    rmSync(chainDir, { recursive: true, force: true });
    rmSync(coordinatorDir, { recursive: true, force: true });
    log(`Reset: removed ${chainDir} and ${coordinatorDir}`);
  }
  mkdirSync(logsDir, { recursive: true });

  const children: StackChild[] = [];
  // Written as each process starts, so a launcher killed outright (kill -9) leaves a record
  // from which the next start stops what it left behind.
  const record = (ready: { rpcUrl: string; coordinatorUrl: string } | null) => {
    const processes = children.map(({ name, pid, script }) => ({ name, pid, script }));
    const run: RunRecord = { pid: process.pid, processes, ...ready };
    writeFileSync(runFile, `${JSON.stringify(run, null, 2)}\n`);
  };
  let chain: LocalChain | undefined;
  let stopped: Promise<void> | undefined;
  const stopAll = (): Promise<void> =>
    (stopped ??= (async () => {
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
    if (
      !resumed &&
      !options.coordinatorUrl &&
      existsSync(coordinatorDir) &&
      readdirSync(coordinatorDir).length > 0
    ) {
      throw new StackError(
        `The contracts were deployed anew, but the coordinator's data in ${coordinatorDir} belongs to ` +
          'the previous deployment. Start with --reset to clear it (or move it away).',
      );
    }

    signal?.throwIfAborted();
    // 3. The coordinator.
    let coordinatorUrl: string;
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
    return {
      rpcUrl,
      chainId,
      addressesFile,
      addresses,
      resumed,
      coordinatorUrl,
      ...(appUrl ? { appUrl } : {}),
      ...(appMode ? { appMode } : {}),
      keys: DEV_ACCOUNT_KEYS,
      processes,
      exited: Promise.race(
        children.map((child) => child.exited.then((code) => ({ name: child.name, code }))),
      ),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
