// Why a journal: `hardhat node` keeps its chain in memory and Hardhat 3 / EDR cannot dump or
// load it (hardhat#3599 and edr#409, open; the EDR binary has no `*_dumpState` method), yet the
// coordinator's SQLite and the desktop's settings outlive a restart and are bound to one
// deployment. So the stack owns the chain's front door: a loopback JSON-RPC proxy that forwards
// every call to the node and appends every state-changing one to `journal.jsonl`, with the head
// block it produced. Every Commons client signs locally with ethers, so transactions arrive as
// `eth_sendRawTransaction` and replay byte for byte. On the next start a fresh node with the
// same genesis date replays the journal: before each call that mined, the recorded timestamp is
// set (`evm_setNextBlockTimestamp`), so blocks, and therefore hashes, come out identical
// (EDR's prevRandao is derived deterministically). After each entry the replayed head must equal
// the recorded one; any difference stops the start with the entry that diverged and `--reset`.
import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  truncateSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorMessage } from '@commons/shared/errors';

interface JsonRpcRequest {
  jsonrpc: '2.0';
  id?: number | string | null;
  method: string;
  params?: unknown[];
}

interface JsonRpcResponse {
  jsonrpc: '2.0';
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/** The first line of a journal: what the node must be started with to replay it. */
export interface JournalHeader {
  kind: 'commons-chain-journal';
  version: 1;
  /** Genesis date (ISO, whole seconds) given to the node as `initialDate`. */
  genesisDate: string;
  chainId: number;
  genesisHash: string;
}

/** One state-changing call and the head it left. */
export interface JournalEntry {
  method: string;
  params: unknown[];
  /** Timestamp of the first block this call mined, when it mined any. */
  minedTimestamp?: number;
  head: { number: number; hash: string };
}

/** Calls that change the chain: journaled and replayed in order. */
const STATE_CHANGING = new Set([
  'eth_sendRawTransaction',
  'eth_sendTransaction',
  'evm_mine',
  'evm_increaseTime',
  'evm_setNextBlockTimestamp',
  'evm_snapshot',
  'evm_revert',
  'evm_setAutomine',
  'evm_setBlockGasLimit',
  'hardhat_mine',
  'hardhat_setBalance',
  'hardhat_setCode',
  'hardhat_setNonce',
  'hardhat_setStorageAt',
  'hardhat_setCoinbase',
  'hardhat_setNextBlockBaseFeePerGas',
  'hardhat_setPrevRandao',
  'hardhat_setMinGasPrice',
  'hardhat_dropTransaction',
  'hardhat_impersonateAccount',
  'hardhat_stopImpersonatingAccount',
]);

/** Calls whose effect no journal can capture: refused with the reason. */
const REFUSED: Record<string, string> = {
  evm_setIntervalMining:
    'interval mining makes blocks outside any call, which the stack cannot journal and replay',
  hardhat_reset:
    'resetting the node would desynchronise it from the journal; stop the stack and start it with --reset',
};

export class JournalMismatchError extends Error {}

export async function rpcCall(
  url: string,
  method: string,
  params: unknown[] = [],
): Promise<JsonRpcResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return (await response.json()) as JsonRpcResponse;
}

async function rpcResult<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await rpcCall(url, method, params);
  if (response.error) throw new Error(`${method} failed on ${url}: ${response.error.message}`);
  return response.result as T;
}

interface Block {
  number: string;
  hash: string;
  timestamp: string;
}

async function block(url: string, tag: string | number): Promise<Block> {
  const param = typeof tag === 'number' ? `0x${tag.toString(16)}` : tag;
  return rpcResult<Block>(url, 'eth_getBlockByNumber', [param, false]);
}

export async function readHead(url: string): Promise<{ number: number; hash: string }> {
  const latest = await block(url, 'latest');
  return { number: Number(latest.number), hash: latest.hash };
}

/**
 * Reads a journal file: its header and entries; null when it has no complete header line (the
 * crash came before anything was recorded). Every write is one whole line, so the only damage a
 * crash can leave is a last line without its newline: that line is dropped, as the writer cuts it
 * off (the call it records never answered its client). Any other line that is not an entry stops
 * the start with its entry number: skipping it, or everything after it, would resume a chain
 * without transactions that were acknowledged, and the next start would lose them again.
 */
export function readJournal(
  file: string,
): { header: JournalHeader; entries: JournalEntry[] } | null {
  const lines = readFileSync(file, 'utf8').split('\n');
  // The text after the last newline: empty, or the line a crash tore.
  lines.pop();
  if (lines.length === 0) return null;
  let header: JournalHeader | undefined;
  try {
    header = JSON.parse(lines[0] ?? '') as JournalHeader;
  } catch {
    // no complete header: handled below
  }
  if (header?.kind !== 'commons-chain-journal' || header.version !== 1) {
    throw new JournalMismatchError(
      `${file} is not a Commons chain journal (version 1). Start with --reset to begin a new chain.`,
    );
  }
  const entries: JournalEntry[] = [];
  for (const [index, line] of lines.slice(1).entries()) {
    const entry = parseEntry(line);
    if (!entry) {
      throw new JournalMismatchError(
        `The chain journal ${file} is damaged at entry ${index + 1} (line ${index + 2}): ` +
          'it is not a journaled call. The saved chain cannot be restored past it; restore the ' +
          'file from a backup, or start with --reset to begin a new chain (this discards ' +
          'proposals, votes and models on it).',
      );
    }
    entries.push(entry);
  }
  return { header, entries };
}

function parseEntry(line: string): JournalEntry | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  const entry = value as Partial<JournalEntry> | null;
  const wellFormed =
    typeof entry === 'object' &&
    entry !== null &&
    typeof entry.method === 'string' &&
    Array.isArray(entry.params) &&
    (entry.minedTimestamp === undefined || Number.isSafeInteger(entry.minedTimestamp)) &&
    Number.isSafeInteger(entry.head?.number) &&
    typeof entry.head?.hash === 'string';
  return wellFormed ? (entry as JournalEntry) : null;
}

/** Appends entries durably (fsync): an acknowledged transaction survives a crash. */
class JournalWriter {
  private readonly fd: number;
  /** Opens `file` for appending; a new (or empty) journal starts with `header`. */
  constructor(file: string, header: JournalHeader) {
    let size = 0;
    if (existsSync(file)) {
      // A line torn by a crash is cut off, so that what follows starts on a line of its own.
      const text = readFileSync(file, 'utf8');
      size = Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1));
      if (size !== Buffer.byteLength(text)) truncateSync(file, size);
    }
    this.fd = openSync(file, 'a', 0o600);
    if (size === 0) this.write(header);
  }
  write(line: JournalHeader | JournalEntry): void {
    appendFileSync(this.fd, `${JSON.stringify(line)}\n`);
    fsyncSync(this.fd);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Replays `entries` into the fresh node at `nodeUrl`, checking the head after each. Throws a
 * JournalMismatchError naming the first entry whose head differs.
 */
export async function replayJournal(
  nodeUrl: string,
  file: string,
  entries: readonly JournalEntry[],
): Promise<void> {
  for (const [index, entry] of entries.entries()) {
    if (entry.minedTimestamp !== undefined) {
      await rpcResult(nodeUrl, 'evm_setNextBlockTimestamp', [entry.minedTimestamp]);
    }
    await rpcCall(nodeUrl, entry.method, entry.params); // its own outcome is what the head shows
    const head = await readHead(nodeUrl);
    if (head.number !== entry.head.number || head.hash !== entry.head.hash) {
      throw new JournalMismatchError(
        `Replaying the chain journal ${file} diverged at entry ${index + 1} (${entry.method}): ` +
          `block ${head.number} ${head.hash}, recorded block ${entry.head.number} ${entry.head.hash}. ` +
          'The saved chain cannot be restored (was the journal edited, or Hardhat upgraded?). ' +
          'Start with --reset to begin a new chain; this discards proposals, votes and models on it.',
      );
    }
  }
}

export interface JournalProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves JSON-RPC on 127.0.0.1:`port`, forwarding to `nodeUrl` and journaling state changes
 * into `file` (created with `header` when new).
 */
export async function startJournalProxy(options: {
  nodeUrl: string;
  port: number;
  file: string;
  header: JournalHeader;
}): Promise<JournalProxy> {
  const { nodeUrl } = options;
  const journal = new JournalWriter(options.file, options.header);
  // State changes run one at a time, so the head read after a call is the head it produced.
  let queue: Promise<unknown> = Promise.resolve();

  const forward = async (request: JsonRpcRequest): Promise<JsonRpcResponse> => {
    const response = await rpcCall(nodeUrl, request.method, request.params ?? []);
    return { ...response, jsonrpc: '2.0', id: request.id ?? null };
  };

  const journaled = async (request: JsonRpcRequest): Promise<JsonRpcResponse> => {
    const before = await readHead(nodeUrl);
    const response = await forward(request);
    const head = await readHead(nodeUrl);
    const entry: JournalEntry = { method: request.method, params: request.params ?? [], head };
    if (head.number > before.number) {
      entry.minedTimestamp = Number((await block(nodeUrl, before.number + 1)).timestamp);
    }
    journal.write(entry);
    return response;
  };

  const handleOne = async (request: JsonRpcRequest): Promise<JsonRpcResponse> => {
    const id = request.id ?? null;
    if (typeof request.method !== 'string') {
      return { jsonrpc: '2.0', id, error: { code: -32600, message: 'Invalid request' } };
    }
    const refusal = REFUSED[request.method];
    if (refusal) {
      return {
        jsonrpc: '2.0',
        id,
        error: {
          code: -32601,
          message: `${request.method} is refused by the Commons stack: ${refusal}`,
        },
      };
    }
    if (!STATE_CHANGING.has(request.method)) return forward(request);
    const run = queue.then(() => journaled(request));
    queue = run.catch(() => {});
    return run;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', 'content-type');
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end('JSON-RPC over POST only\n');
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      const error = { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(error));
      return;
    }
    // Batches (ethers sends them) are answered in order, one call after another.
    let answer: JsonRpcResponse | JsonRpcResponse[];
    if (Array.isArray(body)) {
      answer = [];
      for (const request of body as JsonRpcRequest[]) answer.push(await handleOne(request));
    } else {
      answer = await handleOne(body as JsonRpcRequest);
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const message = errorMessage(error);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`Commons chain proxy: the node did not answer (${message})\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await queue;
      journal.close();
    },
  };
}
