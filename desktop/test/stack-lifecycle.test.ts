// `npm start` as a member runs it: the launcher in its own process (--no-app, free ports, a
// temporary data folder), state changes through CommonsClient (a delegation, a registered model,
// a proposal), Ctrl-C, a second start that must find them all; then a tampered journal,
// --reset, a port in use, and a launcher killed outright.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonRpcProvider, Wallet } from 'ethers';
import { afterAll, describe, expect, it } from 'vitest';
import { DEV_ACCOUNT_KEYS, freePort } from '@commons/contracts';
import { readAddressesFile, CommonsClient } from '@commons/chain';
import { parseStackArgs } from '../src/stack/options.ts';

const BIN = fileURLToPath(new URL('../bin/commons-stack.ts', import.meta.url));
const dataDir = mkdtempSync(path.join(tmpdir(), 'commons-stack-'));
const running = new Set<ChildProcess>();

interface Launch {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function launch(args: string[]): Launch {
  const child = spawn(process.execPath, [BIN, '--no-app', '--data-dir', dataDir, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return { child, output: () => text, exit };
}

async function ready(run: Launch): Promise<void> {
  const outcome = await Promise.race([
    run.exit.then((code) => `exited ${code}`),
    new Promise<string>((resolve) => {
      const check = setInterval(() => {
        if (run.output().includes('Ready.')) {
          clearInterval(check);
          resolve('ready');
        }
      }, 100);
      void run.exit.then(() => clearInterval(check));
    }),
  ]);
  expect(outcome, run.output()).toBe('ready');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function holdPort(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

// Even when an assertion fails mid-test, nothing is left running: each launcher still up gets
// Ctrl-C (so it stops its children), and whatever a launcher left behind is killed by group.
afterAll(async () => {
  for (const child of running) {
    child.kill('SIGINT');
    const exited = await Promise.race([
      new Promise((resolve) => child.once('exit', () => resolve(true))),
      new Promise((resolve) => setTimeout(() => resolve(false), 30_000)),
    ]);
    if (!exited) child.kill('SIGKILL');
  }
  const runFile = path.join(dataDir, 'stack.json');
  if (existsSync(runFile)) {
    const run = JSON.parse(readFileSync(runFile, 'utf8')) as { processes: { pid: number }[] };
    for (const { pid } of run.processes) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('commons-stack', () => {
  // Four full starts: on a loaded two-core CI runner each can take a minute.
  it(
    'starts, stops on SIGINT leaving no process, and resumes the same chain',
    { timeout: 480_000 },
    async () => {
      const chainPort = await freePort();
      const coordinatorPort = await freePort();
      const ports = [
        '--chain-port',
        String(chainPort),
        '--coordinator-port',
        String(coordinatorPort),
      ];

      const first = launch(ports);
      await ready(first);
      const rpcUrl = `http://127.0.0.1:${chainPort}`;
      expect(first.output()).toContain(`Chain         ${rpcUrl}`);
      expect(first.output()).toContain('deployed now');
      const run = JSON.parse(readFileSync(path.join(dataDir, 'stack.json'), 'utf8')) as {
        processes: { name: string; pid: number }[];
      };
      expect(run.processes.map((p) => p.name)).toEqual(['chain', 'coordinator']);
      expect(statSync(path.join(dataDir, 'coordinator.key')).mode & 0o777).toBe(0o600);
      const health = await fetch(`http://127.0.0.1:${coordinatorPort}/healthz`);
      expect(((await health.json()) as { chainId: number }).chainId).toBe(31337);

      // A state change: development account 1 delegates its votes to account 2, after a jump in
      // time, so the journal holds both a transaction and a time change.
      const addresses = await readAddressesFile(path.join(dataDir, 'chain/addresses.json'));
      const provider = new JsonRpcProvider(rpcUrl, undefined, { cacheTimeout: -1 });
      await provider.send('evm_increaseTime', [3600]);
      const [, key1, key2] = DEV_ACCOUNT_KEYS as [string, string, string];
      const account2 = new Wallet(key2).address;
      const client = new CommonsClient(provider, addresses).withSigner(new Wallet(key1, provider));
      await client.delegate(account2);
      const votesBefore = await client.votes(account2);
      // …and a model: the coordinator's account registers a candidate, account 1 proposes it.
      const [key0] = DEV_ACCOUNT_KEYS as [string];
      const genesis = await client.activeModel();
      const candidateHash = createHash('sha256').update('a candidate').digest('hex');
      await client.withSigner(new Wallet(key0, provider)).registerCandidate({
        contentHash: candidateHash,
        parentHash: genesis.contentHash,
        uri: `sha256:${candidateHash}`,
        roundId: 999,
        valBpc: 2.5,
        epsilon: 1,
        delta: 1e-5,
      });
      const proposalId = await client.proposeActivateModel(candidateHash, 'activate the candidate');
      // Blocks mined by a timer could not be journaled: refused, with the reason.
      await expect(provider.send('evm_setIntervalMining', [1000])).rejects.toThrow(
        /refused by the Commons stack: interval mining/,
      );
      const headBefore = await provider.getBlock('latest');
      provider.destroy();

      first.child.kill('SIGINT');
      expect(await first.exit, first.output()).toBe(0);
      expect(first.output()).toContain('Commons: stopped.');
      for (const { pid } of run.processes) expect(alive(pid)).toBe(false);
      expect(existsSync(path.join(dataDir, 'stack.json'))).toBe(false);

      const second = launch(ports);
      await ready(second);
      expect(second.output()).toMatch(/resumed: \d+ journaled calls replayed/);
      expect(second.output()).toContain('existing deployment');
      const provider2 = new JsonRpcProvider(rpcUrl, undefined, { cacheTimeout: -1 });
      const replayedHead = await provider2.getBlock(headBefore!.number);
      expect(replayedHead?.hash).toBe(headBefore!.hash);
      const client2 = new CommonsClient(provider2, addresses);
      expect(await client2.delegates(new Wallet(key1).address)).toBe(account2);
      expect(await client2.votes(account2)).toBe(votesBefore);
      expect(await client2.isRegistered(candidateHash)).toBe(true);
      const proposals = await client2.listProposals();
      expect(proposals.map((p) => p.id)).toContain(proposalId);
      // The coordinator found its deployment again (it refuses to start on another one).
      const health2 = await fetch(`http://127.0.0.1:${coordinatorPort}/healthz`);
      expect(health2.ok).toBe(true);
      provider2.destroy();
      second.child.kill('SIGTERM');
      expect(await second.exit, second.output()).toBe(0);

      // A damaged line in the middle of the journal stops the start at that entry, rather than
      // resuming the chain without it and everything after it; the journal is left as it was.
      const journal = path.join(dataDir, 'chain/journal.jsonl');
      const intact = readFileSync(journal, 'utf8');
      const lines = intact.trimEnd().split('\n');
      const middle = Math.floor(lines.length / 2);
      const damaged = lines.map((line, i) => (i === middle ? line.slice(0, -5) : line));
      writeFileSync(journal, damaged.join('\n') + '\n');
      const truncating = launch(ports);
      expect(await truncating.exit, truncating.output()).toBe(1);
      expect(truncating.output()).toContain(`damaged at entry ${middle} (line ${middle + 1})`);
      expect(truncating.output()).toContain('--reset');
      expect(truncating.output()).not.toContain('Ready.');
      expect(readFileSync(journal, 'utf8')).toBe(damaged.join('\n') + '\n');
      writeFileSync(journal, intact);

      // A journal that no longer replays to its recorded head is refused, naming --reset.
      const last = JSON.parse(lines.at(-1)!) as { head: { hash: string } };
      last.head.hash = `0x${'ab'.repeat(32)}`;
      writeFileSync(journal, [...lines.slice(0, -1), JSON.stringify(last)].join('\n') + '\n');
      const tampered = launch(ports);
      expect(await tampered.exit).toBe(1);
      expect(tampered.output()).toMatch(/diverged at entry \d+/);
      expect(tampered.output()).toContain('--reset');

      // --reset starts a new chain (and clears the coordinator data bound to the old one).
      const reset = launch([...ports, '--reset']);
      await ready(reset);
      expect(reset.output()).toContain('deployed now');
      reset.child.kill('SIGINT');
      expect(await reset.exit, reset.output()).toBe(0);
    },
  );

  it('refuses a port in use before starting anything, naming the port and its flag', async () => {
    const port = await freePort();
    const server = await holdPort(port);
    try {
      const blocked = launch(['--chain-port', String(port), '--coordinator-port', '0', '--reset']);
      expect(await blocked.exit).toBe(1);
      expect(blocked.output()).toContain(`Port ${port} (the local chain) is already in use`);
      expect(blocked.output()).toContain('--chain-port');
      // Nothing was started or changed: not even --reset ran.
      expect(existsSync(path.join(dataDir, 'stack.json'))).toBe(false);
      expect(blocked.output()).not.toContain('Reset:');
    } finally {
      server.close();
    }
  });

  it(
    'stops what a launcher killed outright (kill -9) left running, on the next start',
    { timeout: 300_000 },
    async () => {
      const ports = ['--chain-port', String(await freePort()), '--coordinator-port', '0'];
      const crashed = launch(ports);
      await ready(crashed);
      const run = JSON.parse(readFileSync(path.join(dataDir, 'stack.json'), 'utf8')) as {
        processes: { name: string; pid: number }[];
      };
      crashed.child.kill('SIGKILL');
      await crashed.exit;
      // Its children outlive it (each runs in its own process group)…
      for (const { pid } of run.processes) expect(alive(pid)).toBe(true);

      // A write torn by the crash (the call it records never answered) is cut off on the next start.
      const journal = path.join(dataDir, 'chain/journal.jsonl');
      const recorded = readFileSync(journal, 'utf8');
      appendFileSync(journal, '{"method":"eth_sendRawTransaction","params":["0x02f8');

      // …until the next start, which stops them before checking its ports.
      const next = launch(ports);
      await ready(next);
      expect(next.output()).toMatch(/resumed: \d+ journaled calls replayed/);
      const after = readFileSync(journal, 'utf8');
      expect(after.startsWith(recorded)).toBe(true);
      for (const line of after.trimEnd().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
      for (const { name, pid } of run.processes) {
        expect(next.output()).toContain(`Stopped the ${name} (pid ${pid})`);
        expect(alive(pid)).toBe(false);
      }
      next.child.kill('SIGINT');
      expect(await next.exit, next.output()).toBe(0);
    },
  );

  it('reads flags over environment variables and checks them', () => {
    const options = parseStackArgs(
      ['--chain-port', '9545', '--no-app'],
      { COMMONS_CHAIN_PORT: '7545', COMMONS_COORDINATOR_PORT: '4100', COMMONS_STACK_DIR: 'x' },
      '/tmp',
    );
    expect(options).toMatchObject({
      chainPort: 9545,
      coordinatorPort: 4100,
      appPort: 0,
      dataDir: '/tmp/x',
      app: false,
      reset: false,
    });
    expect(parseStackArgs(['--help'])).toBeNull();
    expect(() => parseStackArgs(['--chain-port', 'http'])).toThrow(/--chain-port must be a port/);
    expect(() => parseStackArgs(['--rpc', 'localhost:8545'])).toThrow(/--rpc must be an http/);
  });
});
