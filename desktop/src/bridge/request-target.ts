// The path an HTTP request line asks for. Node hands the request target over exactly as it
// arrived, before anyone has checked it; a browser only ever sends origin-form ("/path?query"),
// so anything else is refused rather than guessed at. Resolving "//x:99999" against a base reads
// it as a host with an out-of-range port and throws, and a thrown URL error inside a request or
// upgrade handler takes the whole bridge down.

/** The pathname of an origin-form request target, or null when the target is not one. */
export function requestPathname(target: string | undefined): string | null {
  if (target === undefined || !target.startsWith('/')) return null;
  // "//host" and "/\host" (a backslash counts as a slash in http URLs) name a host, not a path.
  if (target[1] === '/' || target[1] === '\\') return null;
  return URL.parse(target, 'http://127.0.0.1')?.pathname ?? null;
}
