// Serves the built renderer (vite build output) read-only over HTTP, with the same security
// headers as Electron. Paths that leave the build folder get a 404; a request target that is not
// a path gets a 400.
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cacheControlFor, contentTypeOf, resolveInside } from '../main/renderer-files.ts';
import { requestPathname } from './request-target.ts';

export function createStaticHandler(rootDir: string, headers: Record<string, string>) {
  return async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
      return;
    }
    const pathname = requestPathname(req.url);
    if (pathname === null) {
      res.writeHead(400, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Bad request: the request target is not a path.');
      return;
    }
    const file = resolveInside(rootDir, pathname);
    try {
      if (!file || !(await stat(file)).isFile()) throw new Error('not a file');
      const body = await readFile(file);
      res.writeHead(200, {
        ...headers,
        'Content-Type': contentTypeOf(file),
        'Content-Length': String(body.length),
        'Cache-Control': cacheControlFor(rootDir, file),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Not found');
    }
  };
}
