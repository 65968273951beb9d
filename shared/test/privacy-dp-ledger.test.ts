import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_ORDERS,
  PrivacyLedger,
  computeRdp,
  logErfc,
  rdpToEpsilon,
} from '../src/privacy/dp/index.ts';
import type { LedgerRound } from '../src/privacy/dp/index.ts';

let folder: string;
let path: string;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'commons-ledger-'));
  path = join(folder, 'privacy', 'ledger.json');
});

afterEach(async () => {
  await rm(folder, { recursive: true, force: true });
});

const round = (roundId: number, noiseMultiplier = 3): LedgerRound => ({
  roundId,
  sampleRate: 0.01,
  noiseMultiplier,
  delta: 1e-5,
});

/** Φ(x), the standard normal CDF, from logErfc: Φ(x) = ½·erfc(−x/√2). */
const normalCdf = (x: number): number => 0.5 * Math.exp(logErfc(-x / Math.SQRT2));

describe('PrivacyLedger', () => {
  it('starts empty when the file does not exist, and spends nothing', async () => {
    const ledger = await PrivacyLedger.open(path);
    expect(ledger.entries).toEqual([]);
    expect(ledger.spent(1e-5).epsilon).toBe(0);
  });

  it('persists rounds and composes them unamplified (q = 1), whatever rate was announced', async () => {
    const ledger = await PrivacyLedger.open(path);
    const when = new Date('2025-03-01T12:00:00.000Z');
    await ledger.record(round(3), when);
    await ledger.record({ ...round(7), steps: 2 }, when);
    await ledger.record(round(12, 1.5), when);

    const reopened = await PrivacyLedger.open(path);
    expect(reopened.entries).toEqual([
      { ...round(3), steps: 1, timestamp: '2025-03-01T12:00:00.000Z' },
      { ...round(7), steps: 2, timestamp: '2025-03-01T12:00:00.000Z' },
      { ...round(12, 1.5), steps: 1, timestamp: '2025-03-01T12:00:00.000Z' },
    ]);
    // Gaussian RDP, written out: α/(2z²) per release: 3 releases at z = 3, one at z = 1.5.
    const closedForm = DEFAULT_ORDERS.map((a) => (3 * a) / (2 * 9) + a / (2 * 2.25));
    expect(reopened.spent(1e-5)).toEqual(rdpToEpsilon(closedForm, DEFAULT_ORDERS, 1e-5));
    // The running total after each entry: the first is one release at z = 3, the last is all.
    const running = reopened.spentAfterEach(1e-5);
    expect(running.map((r) => r.roundId)).toEqual([3, 7, 12]);
    expect(running[0]!.epsilon).toBe(
      rdpToEpsilon(
        DEFAULT_ORDERS.map((a) => a / 18),
        DEFAULT_ORDERS,
        1e-5,
      ).epsilon,
    );
    expect(running[2]!.epsilon).toBe(reopened.spent(1e-5).epsilon);
    expect(running[0]!.epsilon).toBeLessThan(running[1]!.epsilon);
    // Conservative next to the amplified accounting of the same rounds at q = 0.01.
    const atThree = computeRdp({ sampleRate: 0.01, noiseMultiplier: 3, steps: 3 });
    const atOneHalf = computeRdp({ sampleRate: 0.01, noiseMultiplier: 1.5, steps: 1 });
    const amplified = rdpToEpsilon(
      atThree.map((r, k) => r + atOneHalf[k]!),
      DEFAULT_ORDERS,
      1e-5,
    );
    expect(reopened.spent(1e-5).epsilon).toBeGreaterThan(amplified.epsilon);
  });

  it("reports a sound ε: the composed Gaussian's exact δ at that ε is within δ", async () => {
    // k joined rounds at noise z compose to one Gaussian mechanism with μ = √k/z, whose exact
    // privacy profile is δ(ε) = Φ(μ/2 − ε/μ) − e^ε·Φ(−μ/2 − ε/μ) (Balle & Wang 2018). The
    // RDP bound must sit above the exact ε, and the order grid keeps it within 30% of it.
    const ledger = await PrivacyLedger.open(path);
    for (let id = 1; id <= 10; id++) await ledger.record(round(id, 2));
    const mu = Math.sqrt(10) / 2;
    const exactDelta = (eps: number) =>
      normalCdf(mu / 2 - eps / mu) - Math.exp(eps) * normalCdf(-mu / 2 - eps / mu);
    const { epsilon } = ledger.spent(1e-5);
    expect(exactDelta(epsilon)).toBeLessThanOrEqual(1e-5);
    expect(exactDelta(epsilon / 1.3)).toBeGreaterThan(1e-5);
  });

  it('refuses, in plain words, a round that would exceed the budget', async () => {
    const ledger = await PrivacyLedger.open(path);
    for (let id = 1; id <= 21; id++) await ledger.record(round(id));
    // At z = 3 (δ = 1e-5): 22 rounds spend ε ≈ 7.97, 23 rounds ε ≈ 8.19.
    const fits = ledger.check({ budget: 8, delta: 1e-5, round: round(22) });
    expect(fits.allowed).toBe(true);
    expect(fits.message).toBe(
      'joining round 22 would bring your privacy loss to ε=7.97, within the community budget of 8',
    );
    // A budget the two-decimal ε would seem to meet (7.97 ≤ 7.971) gets enough digits to
    // see why the round is refused.
    const tight = ledger.check({ budget: 7.971, delta: 1e-5, round: round(22) });
    expect(tight.allowed).toBe(false);
    expect(tight.message).toMatch(/ε=7\.9711, above the community budget of 7\.971$/);
    await ledger.record(round(22));
    const over = ledger.check({ budget: 8, delta: 1e-5, round: round(23) });
    expect(over.allowed).toBe(false);
    expect(over.epsilonBefore).toBeCloseTo(fits.epsilonAfter, 12);
    expect(over.epsilonAfter).toBeGreaterThan(8);
    expect(over.message).toBe(
      'joining round 23 would bring your privacy loss to ε=8.19, above the community budget of 8',
    );
  });

  it('refuses a round already joined, and never records it twice', async () => {
    const ledger = await PrivacyLedger.open(path);
    await ledger.record(round(5));
    const again = ledger.check({ budget: 100, delta: 1e-5, round: round(5) });
    expect(again.allowed).toBe(false);
    expect(again.message).toBe('you already contributed to round 5; a round is joined once');
    await expect(ledger.record(round(5))).rejects.toThrow(/DUPLICATE_ROUND/);
    expect((await PrivacyLedger.open(path)).entries).toHaveLength(1);
  });

  it('writes atomically: a complete JSON file and no temporary files left behind', async () => {
    const ledger = await PrivacyLedger.open(path);
    await Promise.all([ledger.record(round(1)), ledger.record(round(2)), ledger.record(round(3))]);
    const files = await readdir(join(folder, 'privacy'));
    expect(files).toEqual(['ledger.json']);
    const stored = JSON.parse(await readFile(path, 'utf8')) as { entries: unknown[] };
    expect(stored).toMatchObject({ format: 'commons-privacy-ledger', version: 1 });
    expect(stored.entries).toHaveLength(3);
  });

  it('refuses a corrupt or unknown file with a clear error and leaves it untouched', async () => {
    const ledger = await PrivacyLedger.open(path);
    await ledger.record(round(1));
    const good = await readFile(path, 'utf8');
    const cases: [string, RegExp][] = [
      ['', /CORRUPT_STATE: .* is not valid JSON; it was not reset/],
      [good.slice(0, good.length / 2), /not valid JSON/],
      ['{"hello": 1}', /is not a Commons privacy ledger/],
      [good.replace('"version": 1', '"version": 2'), /UNSUPPORTED_VERSION: .* has version 2/],
      [
        good.replace('"noiseMultiplier": 3', '"noiseMultiplier": -3'),
        /damaged: .*noiseMultiplier/s,
      ],
      [good.replace('"entries": [', `"entries": [${JSON.stringify(ledger.entries[0])},`), /twice/],
    ];
    for (const [text, error] of cases) {
      await writeFile(path, text);
      await expect(PrivacyLedger.open(path), JSON.stringify(text.slice(0, 40))).rejects.toThrow(
        error,
      );
      expect(await readFile(path, 'utf8')).toBe(text);
    }
  });

  it('refuses bad rounds and budgets, naming the field', async () => {
    const ledger = await PrivacyLedger.open(path);
    await expect(ledger.record({ ...round(1), noiseMultiplier: -1 })).rejects.toThrow(
      /noiseMultiplier/,
    );
    await expect(ledger.record({ ...round(0) })).rejects.toThrow(/roundId/);
    expect(() => ledger.check({ budget: 0, delta: 1e-5, round: round(1) })).toThrow(/budget/);
    // A round with no noise is infinitely costly, and said so.
    const noNoise = ledger.check({ budget: 8, delta: 1e-5, round: round(1, 0) });
    expect(noNoise.allowed).toBe(false);
    expect(noNoise.message).toContain('ε=∞');
  });
});
