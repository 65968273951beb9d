import type { IncomingMessage, ServerResponse } from 'node:http';
import { getAddress, isAddress } from 'ethers';
import { buildRewardTree, type RewardEntry } from '@commons/chain';
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

import { isErrorCode } from '../store/durable-fs.ts';
import { isSha256Hex } from '../store/errors.ts';
import { MODEL_FILES, type ModelFileName, type ModelStore } from '../store/models.ts';

/**
 * The coordinator's plain HTTP side, sharing one http.Server with Socket.IO:
 *
 *   GET|HEAD /models/<hash>/manifest.json   a published checkpoint's files: immutable, so
 *   GET|HEAD /models/<hash>/weights.bin     cached forever, with ETag and byte ranges
 *   GET|HEAD /healthz                        health() as JSON; 503 when its status is 'dead'
 *   GET|HEAD /metrics                        Prometheus text
 *   GET|HEAD /rewards/<round>/<address>      a contributor's reward claim (index, amount, proof)
 *
 * The handler answers only these paths and returns false for anything else, so the caller
 * can hand the request on (engine.io answers its own path before any other listener runs).
 */
export interface HttpRoutesOptions {
  models: ModelStore;
  /** A round's reward entries, as posted on chain (the order fixes each claim's index). */
  rewards?: (roundId: number) => readonly RewardEntry[] | undefined;
  health: () => object | Promise<object>;
  metrics: Registry;
  /** Where failures inside a route are reported; they become a 500 for the client. */
  log?: Pick<Logger, 'error'>;
}

export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

const MODELS_PREFIX = '/models/';
const REWARDS_PREFIX = '/rewards/';
const ALLOWED_METHODS = 'GET, HEAD';
/** A content hash names exactly one content: caches may keep the bytes forever. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
const CONTENT_TYPES: Readonly<Record<ModelFileName, string>> = {
  'manifest.json': 'application/json; charset=utf-8',
  'weights.bin': 'application/octet-stream',
};

export function createHttpHandler(opts: HttpRoutesOptions): HttpHandler {
  return (req, res) => {
    // The raw path, undecoded and unnormalised: "/models/../x" must reach the hash check
    // as written rather than be resolved into some other path first.
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    let route: () => Promise<void>;
    if (path === '/healthz') {
      route = () => serveHealth(req, res, opts.health);
    } else if (path === '/metrics') {
      route = () => serveMetrics(req, res, opts.metrics);
    } else if (path.startsWith(REWARDS_PREFIX) && opts.rewards) {
      const rewards = opts.rewards;
      route = () => serveRewardClaim(res, rewards, path.slice(REWARDS_PREFIX.length));
    } else if (path.startsWith(MODELS_PREFIX)) {
      route = () => serveModelFile(req, res, opts.models, path.slice(MODELS_PREFIX.length));
    } else {
      return false;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(
        res,
        405,
        { error: `${req.method ?? '?'} is not allowed here` },
        {
          Allow: ALLOWED_METHODS,
        },
      );
      return true;
    }
    route().catch((error: unknown) => {
      opts.log?.error({ err: error, path }, 'http route failed');
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { error: 'internal error' });
    });
    return true;
  };
}

async function serveHealth(
  _req: IncomingMessage,
  res: ServerResponse,
  health: HttpRoutesOptions['health'],
): Promise<void> {
  const body = await health();
  // A process that is up but can no longer do its job (its round loop died) is unhealthy.
  const dead = (body as { status?: unknown }).status === 'dead';
  sendJson(res, dead ? 503 : 200, body, { 'Cache-Control': 'no-store' });
}

async function serveMetrics(
  _req: IncomingMessage,
  res: ServerResponse,
  registry: Registry,
): Promise<void> {
  const text = await registry.metrics();
  res.writeHead(200, {
    'Content-Type': registry.contentType,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

/**
 * GET /rewards/<roundId>/<address>: the contributor's claim on a round's rewards — index,
 * amount and Merkle proof against the root posted to ContributionRewards. Public data (the
 * root is on chain, the entries are what it commits to), so no authentication: a claim pays
 * only the account it names, whoever submits it.
 */
async function serveRewardClaim(
  res: ServerResponse,
  rewards: NonNullable<HttpRoutesOptions['rewards']>,
  rest: string,
): Promise<void> {
  const [round = '', address = '', ...extra] = rest.split('/');
  if (!/^[1-9]\d{0,9}$/.test(round) || !isAddress(address) || extra.length > 0) {
    sendJson(res, 400, { error: 'a claim is /rewards/<round id>/<0x address>' });
    return;
  }
  const entries = rewards(Number(round));
  if (entries === undefined) {
    sendJson(res, 404, { error: `round ${round} has no rewards posted` });
    return;
  }
  const tree = buildRewardTree(entries);
  const claim = tree.claims.find((c) => c.account === getAddress(address));
  if (claim === undefined) {
    sendJson(res, 404, { error: `${getAddress(address)} has no reward in round ${round}` });
    return;
  }
  sendJson(
    res,
    200,
    {
      roundId: Number(round),
      root: tree.root,
      index: claim.index,
      account: claim.account,
      amount: claim.amount.toString(),
      proof: claim.proof,
    },
    { 'Cache-Control': 'no-store' },
  );
}

async function serveModelFile(
  req: IncomingMessage,
  res: ServerResponse,
  models: ModelStore,
  rest: string,
): Promise<void> {
  const [hash = '', name, ...extra] = rest.split('/');
  // Only 64 lowercase hex digits ever reach the file system: no dots, slashes or escapes.
  if (!isSha256Hex(hash)) {
    sendJson(res, 400, { error: 'a model is named by its sha256: 64 lowercase hex digits' });
    return;
  }
  if (extra.length > 0 || !isModelFileName(name)) {
    sendJson(res, 404, { error: `a model has only ${MODEL_FILES.join(' and ')}` });
    return;
  }
  const file = await models.file(hash, name);
  const handle = file === undefined ? undefined : await openOrUndefined(file.path);
  if (handle === undefined) {
    sendJson(res, 404, { error: `model ${hash} is not published here` });
    return;
  }

  let streaming = false;
  try {
    const size = (await handle.stat()).size;
    const etag = `"${hash}-${name}"`;
    const headers: Record<string, string | number> = {
      ETag: etag,
      'Cache-Control': IMMUTABLE,
      'Accept-Ranges': 'bytes',
      'Content-Type': CONTENT_TYPES[name],
      'X-Content-Type-Options': 'nosniff',
    };
    if (matchesIfNoneMatch(req.headers['if-none-match'], etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const ifRange = req.headers['if-range'];
    // If-Range: the client's partial copy is of another version, so it needs the whole file.
    const range =
      ifRange === undefined || ifRange === etag
        ? parseRange(req.headers.range, size)
        : { kind: 'whole' as const };
    if (range.kind === 'unsatisfiable') {
      sendJson(
        res,
        416,
        { error: `no byte of the range lies within ${size} bytes` },
        {
          ...headers,
          'Content-Range': `bytes */${size}`,
        },
      );
      return;
    }
    const { start, end } = range.kind === 'part' ? range : { start: 0, end: size - 1 };
    if (range.kind === 'part') {
      res.writeHead(206, {
        ...headers,
        'Content-Range': `bytes ${start}-${end}/${size}`,
        'Content-Length': end - start + 1,
      });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': size });
    }
    if (req.method === 'HEAD' || end < start) {
      res.end();
      return;
    }
    streaming = true;
    // The stream owns and closes the handle; bytes go from disk to socket in chunks.
    await pipeline(handle.createReadStream({ start, end }), res).catch((error: unknown) => {
      // A client that hangs up mid-download is normal, not a server failure.
      if (!res.destroyed && !isErrorCode(error, 'ERR_STREAM_PREMATURE_CLOSE')) throw error;
    });
  } finally {
    if (!streaming) await handle.close();
  }
}

type RangeRequest =
  { kind: 'whole' } | { kind: 'part'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * One byte range of RFC 9110 §14.1.2: "bytes=a-b", "bytes=a-" or the suffix "bytes=-n".
 * Anything else (other units, several ranges, garbage) is ignored and the whole file sent,
 * which the RFC allows; a well-formed range with no byte inside the file is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'whole' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    const length = Number(last);
    if (length === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'part', start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Number(last);
  if (start >= size || end < start) return { kind: 'unsatisfiable' };
  return { kind: 'part', start, end: Math.min(end, size - 1) };
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2): W/ prefixes are ignored. */
function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag);
}

function isModelFileName(name: string | undefined): name is ModelFileName {
  return (MODEL_FILES as readonly (string | undefined)[]).includes(name);
}

async function openOrUndefined(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if (isErrorCode(error, 'ENOENT')) return undefined;
    throw error;
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
