// Canaries for the Secret Sharer test (Carlini et al. 2019): sentences of a fixed template
// with a random secret, planted in one contributor's private data. A canary's exposure is
// measured against other secrets of the same template (exposure.ts), so everything here is
// about drawing secrets uniformly and planting sentences where local training will see them.
import { Rng } from '@commons/shared/engine';

/**
 * One template per canary: its own owner's name, so the canaries of one run are independent
 * measurements (sharing a prefix, they would compete for the same next-token distribution).
 * Plain lower-case words: they tokenise like the corpus, while digits never occur in the
 * training text (one stray "3"), so the secret part is the only thing a canary adds.
 */
const OWNERS = [
  'alice',
  'bob',
  'carol',
  'dave',
  'erin',
  'frank',
  'grace',
  'heidi',
  'ivan',
  'judy',
  'mallory',
  'oscar',
  'peggy',
  'trent',
  'victor',
  'walter',
] as const;

export interface Canary {
  /** The text before the secret, the same for the canary and all of its candidates. */
  prefix: string;
  /** The secret: `digits` decimal digits. */
  secret: string;
  /** prefix + secret: the sentence planted in the data. */
  text: string;
}

export interface CanaryTemplate {
  /** Digits in each secret; the secret space holds 10^digits sentences. */
  digits: number;
}

/** `count` canaries, each with its own owner and a uniformly random secret. */
export function makeCanaries(count: number, template: CanaryTemplate, seed: number): Canary[] {
  if (!Number.isInteger(count) || count < 1 || count > OWNERS.length) {
    throw new RangeError(`between 1 and ${OWNERS.length} canaries, got ${count}`);
  }
  checkDigits(template.digits);
  const rng = new Rng(seed);
  return OWNERS.slice(0, count).map((owner) => {
    const prefix = `the secret code of ${owner} is `;
    const secret = randomSecret(template.digits, rng);
    return { prefix, secret, text: prefix + secret };
  });
}

/**
 * `count` other sentences of the canary's template: distinct secrets drawn uniformly from the
 * space without the canary's own, so the canary's rank among them is uniform when the model
 * has learnt nothing about it.
 */
export function candidateSentences(canary: Canary, count: number, seed: number): string[] {
  const space = 10 ** canary.secret.length;
  if (!Number.isInteger(count) || count < 1 || count > (space - 1) / 2) {
    // Rejection sampling of distinct secrets slows down as the sample nears the space.
    throw new RangeError(`1 to ${Math.floor((space - 1) / 2)} candidates, got ${count}`);
  }
  const rng = new Rng(seed);
  const seen = new Set([canary.secret]);
  const out: string[] = [];
  while (out.length < count) {
    const secret = randomSecret(canary.secret.length, rng);
    if (seen.has(secret)) continue;
    seen.add(secret);
    out.push(canary.prefix + secret);
  }
  return out;
}

/**
 * The text with each canary inserted `repeats` times as a line of its own, at line breaks
 * drawn uniformly (seeded), so random training windows meet them all through the shard as
 * they would meet a secret someone typed into their notes now and then.
 */
export function plantCanaries(
  text: string,
  canaries: readonly Canary[],
  repeats: number,
  seed: number,
): string {
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new RangeError(`repeats must be a positive whole number, got ${repeats}`);
  }
  const lines = text.split('\n');
  // inserts[i]: canary lines that go before line i (i = lines.length: at the end).
  const inserts = new Map<number, string[]>();
  const rng = new Rng(seed);
  for (let r = 0; r < repeats; r++) {
    for (const canary of canaries) {
      const at = rng.int(lines.length + 1);
      const list = inserts.get(at) ?? [];
      list.push(canary.text);
      inserts.set(at, list);
    }
  }
  const out: string[] = [];
  for (let i = 0; i <= lines.length; i++) {
    out.push(...(inserts.get(i) ?? []));
    if (i < lines.length) out.push(lines[i]!);
  }
  return out.join('\n');
}

function randomSecret(digits: number, rng: Rng): string {
  let s = '';
  for (let i = 0; i < digits; i++) s += String(rng.int(10));
  return s;
}

function checkDigits(digits: number): void {
  // 15 digits keep every secret exactly representable and the space within Number's range.
  if (!Number.isInteger(digits) || digits < 2 || digits > 15) {
    throw new RangeError(`secrets of 2 to 15 digits, got ${digits}`);
  }
}
