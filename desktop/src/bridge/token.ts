// The per-launch secret that proves a WebSocket client was given the URL we printed. Any page
// in any browser on this machine can reach 127.0.0.1, so the port alone is no protection.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 random bits, base64url: valid inside a WebSocket subprotocol and a URL fragment. */
export function newLaunchToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Constant-time comparison. Both sides are hashed first so that neither the length nor the
 * first differing byte of a guess changes how long the check takes.
 */
export function tokensMatch(expected: string, presented: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, b);
}
