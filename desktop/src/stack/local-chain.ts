// The stack's local chain: `hardhat node` on a private loopback port behind the journaling
// proxy (chain-journal.ts explains why), resumed from the journal when there is one.
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, probeChain } from '@commons/contracts';
import {
  JournalMismatchError,
  readHead,
  readJournal,
  replayJournal,
  rpcCall,
  startJournalProxy,
  type JournalHeader,
} from './chain-journal.ts';
import { spawnChild, type StackChild } from './children.ts';

const HARDHAT_CONFIG = fileURLToPath(new URL('hardhat.config.ts', import.meta.url));

export interface LocalChain {
  /** The proxy's URL: what every client uses. */
  rpcUrl: string;
  chainId: number;
  journalFile: string;
  /** Journal entries replayed at start (0 on a new chain). */
  replayed: number;
  node: StackChild;
  stop(): Promise<void>;
}

export async function startLocalChain(options: {
  chainDir: string;
  port: number;
  logFile: string;
}): Promise<LocalChain> {
  mkdirSync(options.chainDir, { recursive: true });
  const journalFile = path.join(options.chainDir, 'journal.jsonl');
  const saved = existsSync(journalFile) ? readJournal(journalFile) : null;
  // Whole seconds: block timestamps are, and the replayed genesis must be bit-identical.
  const genesisDate =
    saved?.header.genesisDate ?? new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();

  const nodePort = await freePort();
  const nodeUrl = `http://127.0.0.1:${nodePort}`;
  const hardhatCli = path.join(
    path.dirname(createRequire(import.meta.url).resolve('hardhat/package.json')),
    'dist/src/cli.js',
  );
  const node = spawnChild({
    name: 'chain',
    command: process.execPath,
    args: [
      hardhatCli,
      '--config',
      HARDHAT_CONFIG,
      'node',
      '--hostname',
      '127.0.0.1',
      '--port',
      String(nodePort),
    ],
    cwd: path.dirname(HARDHAT_CONFIG),
    env: {
      ...process.env,
      COMMONS_CHAIN_GENESIS_DATE: genesisDate,
      COMMONS_CHAIN_CACHE_DIR: path.join(options.chainDir, 'hardhat-cache'),
    },
    logFile: options.logFile,
  });
  try {
    let chainId: number | null = null;
    const started = Date.now();
    while (chainId === null) {
      if (Date.now() - started > 120_000) {
        throw new Error(`hardhat node did not answer within 120 s; see ${options.logFile}`);
      }
      const exited = await Promise.race([node.exited.then(() => true), sleep(250)]);
      if (exited === true) {
        throw new Error(`hardhat node exited during start-up:\n${node.tail()}`);
      }
      chainId = await probeChain(nodeUrl);
    }
    const genesis = await rpcCall(nodeUrl, 'eth_getBlockByNumber', ['0x0', false]);
    const genesisHash = (genesis.result as { hash: string }).hash;
    if (saved) {
      if (saved.header.genesisHash !== genesisHash || saved.header.chainId !== chainId) {
        throw new JournalMismatchError(
          `The chain journal ${journalFile} starts from genesis ${saved.header.genesisHash} ` +
            `(chain ${saved.header.chainId}) but the node built ${genesisHash} (chain ${chainId}). ` +
            'Start with --reset to begin a new chain.',
        );
      }
      await replayJournal(nodeUrl, journalFile, saved.entries);
      const last = saved.entries.at(-1);
      if (last && (await readHead(nodeUrl)).hash !== last.head.hash) {
        throw new JournalMismatchError(`Replayed head differs from ${journalFile}; use --reset`);
      }
    }
    const header: JournalHeader = {
      kind: 'commons-chain-journal',
      version: 1,
      genesisDate,
      chainId,
      genesisHash,
    };
    const proxy = await startJournalProxy({
      nodeUrl,
      port: options.port,
      file: journalFile,
      header,
    });
    return {
      rpcUrl: proxy.url,
      chainId,
      journalFile,
      replayed: saved?.entries.length ?? 0,
      node,
      stop: async () => {
        await proxy.close();
        await node.stop();
      },
    };
  } catch (error) {
    await node.stop();
    throw error;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
