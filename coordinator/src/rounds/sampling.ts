// Which connected clients a round invites: a uniform sample of `sampleRate` of them, at least
// the policy's minimum and at most its maximum — reproducible from the round's seed, so a
// simulation run twice invites the same clients.
import { Rng } from '@commons/shared/engine';

export interface SampleRule {
  sampleRate: number;
  minClients: number;
  maxClients: number;
}

/** How many of `available` clients a round invites (0 when too few are connected). */
export function sampleSize(available: number, rule: SampleRule): number {
  if (available < rule.minClients) return 0;
  const wanted = Math.ceil(rule.sampleRate * available);
  return Math.min(available, rule.maxClients, Math.max(rule.minClients, wanted));
}

/** A uniform sample without replacement (partial Fisher–Yates over a sorted copy). */
export function sampleClients(
  candidates: readonly string[],
  rule: SampleRule,
  seed: number,
): string[] {
  const pool = [...candidates].sort();
  const k = sampleSize(pool.length, rule);
  const rng = new Rng(seed);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(pool.length - i);
    [pool[i], pool[j]] = [pool[j] as string, pool[i] as string];
  }
  return pool.slice(0, k);
}
