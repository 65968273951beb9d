// Where the built renderer lives and how a request path maps onto it, for both servers of the
// page (Electron's commons:// protocol and web mode's HTTP). Only files inside the build folder
// are ever resolved.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** desktop/dist/renderer, the output of `vite build`. */
export const RENDERER_DIR = fileURLToPath(new URL('../../dist/renderer', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';
}

/** The file a URL path names inside `root`, or null when it would leave it or is malformed. */
export function resolveInside(root: string, urlPathname: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const base = path.resolve(root);
  const relative = decoded === '/' || decoded === '' ? 'index.html' : decoded.replace(/^\/+/, '');
  const file = path.resolve(base, relative);
  return file.startsWith(base + path.sep) ? file : null;
}

/** Hashed asset names never change content; everything else must be revalidated. */
export function cacheControlFor(root: string, file: string): string {
  return path.relative(root, file).startsWith(`assets${path.sep}`)
    ? 'public, max-age=31536000, immutable'
    : 'no-cache';
}
