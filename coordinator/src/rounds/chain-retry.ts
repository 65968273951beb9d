// Chain reads the round loop cannot do without (the policy, the active model), retried through
// an RPC outage instead of ending the loop: exponential backoff, every retry logged, bounded in
// total so that a chain gone for good still ends in a dead loop that /healthz reports.
import { errorMessage } from '@commons/shared/errors';
import type { Logger } from 'pino';

/** Errors of a node that did not answer (connection refused or reset, timeouts, 5xx). */
const TRANSIENT_CODES = new Set([
  // Node's sockets
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  // ethers
  'NETWORK_ERROR',
  'SERVER_ERROR',
  'TIMEOUT',
]);

/** Whether `error` (or an error it wraps) says the RPC node could not be reached. */
export function isTransientChainError(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    e = (e as { cause?: unknown; error?: unknown }).cause ?? (e as { error?: unknown }).error;
  }
  return false;
}

export interface ChainRetryOptions {
  log: Logger;
  /** Give up once the chain has failed for this long without a success (ms). */
  limitMs: number;
  /** First pause; each next one doubles, up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Waits `ms` (or less, when the engine is stopping). */
  sleep: (ms: number) => Promise<void>;
  /** True once the engine is stopping: the retry ends with the last error. */
  stopping: () => boolean;
  /** Told when retries begin (the error) and end (null), so health can say so. */
  onOutage?: (error: unknown) => void;
}

/** Runs `read`, retrying transient chain errors until it succeeds or `limitMs` has passed. */
export async function retryChain<T>(
  what: string,
  read: () => Promise<T>,
  options: ChainRetryOptions,
): Promise<T> {
  const { log, limitMs, initialDelayMs = 500, maxDelayMs = 15_000 } = options;
  const began = Date.now();
  let delay = initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await read();
      if (attempt > 1) {
        log.info({ what, attempts: attempt }, 'chain reachable again');
        options.onOutage?.(null);
      }
      return value;
    } catch (error) {
      const waited = Date.now() - began;
      if (!isTransientChainError(error) || waited >= limitMs || options.stopping()) throw error;
      options.onOutage?.(error);
      log.warn(
        { what, attempt, retryInMs: delay, err: errorMessage(error) },
        'chain unreachable; retrying',
      );
      await options.sleep(Math.min(delay, limitMs - waited));
      delay = Math.min(delay * 2, maxDelayMs);
    }
  }
}
