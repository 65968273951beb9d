import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local HTTP server that answers the way huggingface.co does for the calls a pull
 * makes: the tree API (paginated with a Link header, 401 for gated repos without a
 * token), resolve URLs that redirect LFS files to a CDN path with X-Linked-Etag /
 * X-Linked-Size / X-Repo-Commit, ETag on small files, and Range requests on the CDN.
 * It can cut a response short once, to test resuming.
 */
export interface FakeRepo {
  files: Record<string, Buffer>;
  /** Files stored in LFS (redirected, sha256 oid). */
  lfs: Set<string>;
  gatedToken?: string;
}

export interface FakeHub {
  url: string;
  requests: { method: string; url: string; range: string | undefined }[];
  /** Cut the next CDN response for `sha256` after this many bytes. */
  cutNext: Map<string, number>;
  /** Serve this content instead of the real one for a sha256 (a corrupt CDN). */
  corrupt: Set<string>;
  close(): Promise<void>;
}

const COMMIT = 'a'.repeat(40);

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const requests: FakeHub['requests'] = [];
  const cutNext = new Map<string, number>();
  const corrupt = new Set<string>();
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const gitOid = (b: Buffer) =>
    createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
  const byHash = new Map<string, Buffer>();
  for (const repo of Object.values(repos))
    for (const f of Object.values(repo.files)) byHash.set(sha256(f), f);

  const authorised = (req: IncomingMessage, repo: FakeRepo) =>
    repo.gatedToken === undefined || req.headers.authorization === `Bearer ${repo.gatedToken}`;

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    requests.push({ method: req.method ?? 'GET', url: url.pathname, range: req.headers.range });
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (tree) {
      const repo = repos[tree[1]!];
      if (!repo)
        return void res.writeHead(404).end(JSON.stringify({ error: 'Repository not found' }));
      if (!authorised(req, repo))
        return void res.writeHead(401).end(JSON.stringify({ error: 'gated' }));
      const all = Object.entries(repo.files).map(([path, content]) => ({
        type: 'file',
        path,
        size: repo.lfs.has(path) ? 134 : content.length,
        oid: repo.lfs.has(path) ? 'f'.repeat(40) : gitOid(content),
        ...(repo.lfs.has(path)
          ? { lfs: { oid: sha256(content), size: content.length, pointerSize: 134 } }
          : {}),
      }));
      // Two pages, as the hub paginates long listings.
      const cursor = url.searchParams.get('cursor');
      const half = Math.ceil(all.length / 2);
      const page = cursor === null ? all.slice(0, half) : all.slice(half);
      if (cursor === null) {
        const next = new URL(
          url.href.replace(
            'http://hub',
            `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          ),
        );
        next.searchParams.set('cursor', '2');
        res.setHeader('Link', `<${next.href}>; rel="next"`);
      }
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(page));
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const repo = repos[resolve[1]!];
      const path = decodeURIComponent(resolve[3]!);
      const content = repo?.files[path];
      if (!repo || !content) return void res.writeHead(404).end('Entry not found');
      if (!authorised(req, repo)) return void res.writeHead(401).end('gated');
      if (repo.lfs.has(path)) {
        return void res
          .writeHead(302, {
            location: `/cdn/${sha256(content)}`,
            'x-linked-etag': `"${sha256(content)}"`,
            'x-linked-size': String(content.length),
            'x-repo-commit': COMMIT,
          })
          .end();
      }
      return void serve(req, res, content, `"${gitOid(content)}"`);
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn && byHash.has(cdn[1]!)) {
      let content = byHash.get(cdn[1]!)!;
      if (corrupt.has(cdn[1]!)) content = Buffer.from(content.map((b) => b ^ 1));
      return void serve(req, res, content, `"${cdn[1]}"`, cutNext, cdn[1]!);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    cutNext,
    corrupt,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function serve(
  req: IncomingMessage,
  res: ServerResponse,
  content: Buffer,
  etag: string,
  cutNext?: Map<string, number>,
  key?: string,
): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const body = content.subarray(start);
  res.writeHead(range ? 206 : 200, {
    etag,
    'x-repo-commit': COMMIT,
    'accept-ranges': 'bytes',
    'content-length': String(body.length),
    ...(range ? { 'content-range': `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
  });
  if (req.method === 'HEAD') return void res.end();
  const cut = key === undefined ? undefined : cutNext?.get(key);
  if (cut !== undefined) {
    cutNext!.delete(key!);
    // Send part of the body, then close the connection mid-transfer. Not at once: a fetch body
    // that errors drops the chunks still queued in it, and the test needs the cut to leave
    // exactly these bytes on the client's disk. Server and client share this event loop, so
    // once the timer runs the client has read what arrived.
    res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 250));
    return;
  }
  res.end(body);
}
