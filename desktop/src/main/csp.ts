// The Content-Security-Policy every renderer page gets, in Electron (session headers) and in
// web mode (HTTP headers); index.html carries the same rules in a meta tag as a second line of
// defence. Only our own scripts and styles run: no inline script, no eval, nothing remote.

/** The policy for a page whose API connection goes to `connectSrc` (beyond 'self'). */
export function contentSecurityPolicy(connectSrc: readonly string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${["'self'", ...connectSrc].join(' ')}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "worker-src 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers that go with every page and asset, in both modes. */
export function securityHeaders(connectSrc: readonly string[] = []): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy(connectSrc),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'X-Frame-Options': 'DENY',
  };
}
