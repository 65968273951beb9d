// Privacy across cohorts, and what scale-out mode refuses: a DP round over two nodes is noised
// once, by the leader, and accounted with the sampling rate of all nodes together; a rule that
// needs every update in one place (the median) fails by name.
import { afterEach, describe, expect, it } from 'vitest';
import { readCheckpoint, encodeTensors } from '@commons/shared/engine';
import type { RoundTask } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../../src/config.ts';
import { randomUpdate, uploadFrame } from '../fixtures/updates.ts';
import { resultOf, twoNodes as start, type TwoNodes } from './fixtures.ts';

let setup: TwoNodes | null = null;

afterEach(async () => {
  await setup?.stop();
  setup = null;
});

async function twoNodes(
  ...args: Parameters<typeof start> extends [string, ...infer R] ? R : never
) {
  setup = await start('privacy', ...args);
  return setup;
}

describe('scale-out privacy', () => {
  it('noises a DP round once, on the leader, and accounts it with every node’s sample', async () => {
    const s = await twoNodes({ minClients: 4, noiseMultiplier: 1, clipNorm: 1 }, { noiseSeed: 5 });
    const base = (await readCheckpoint(GENESIS_DIR)).tensors;
    const result = resultOf(s.clients[0]!, 1);
    const tasks: RoundTask[] = await Promise.all(s.clients.map((c) => c.nextInvite()));
    await Promise.all(
      tasks.map(async (task, i) => {
        const frame = encodeTensors(randomUpdate(base, 30 + i, 0.5), task.encoding);
        const ack = await uploadFrame(
          s.clients[i]!,
          s.wallets[i]!,
          task,
          s.devnet.addresses.chainId,
          frame,
        );
        expect(ack.ok).toBe(true);
      }),
    );
    const published = await result;
    expect(published.outcome).toBe('published');
    expect(published.accepted).toBe(4);
    // A finite ε: the noise was added and accounted (ε = ∞ / null means no noise).
    expect(published.candidate?.epsilon).toBeGreaterThan(0);
    expect(Number.isFinite(published.candidate?.epsilon)).toBe(true);
    // Each node's partial is an un-noised mean of its clipped updates, weighted by their count
    // (DP rounds weigh every update 1), and the accountant composed exactly one release at
    // q = 4 sampled / 4 eligible.
    const rounds = s.nodes[0]!.rounds;
    const { partials } = await rounds.partials(1);
    expect(partials.map((p) => [p.weight, p.count])).toEqual([
      [2, 2],
      [2, 2],
    ]);
    const stored = JSON.parse((await rounds.read(rounds.keys.accountant))!) as {
      releases: string[];
      accountant: { history: { sampleRate: number }[] } | unknown;
    };
    expect(stored.releases).toHaveLength(1);
    expect(stored.releases[0]).toMatch(/^1@\d+$/);
  }, 120_000);

  it('refuses a rule that needs every update in one place, by name', async () => {
    const s = await twoNodes({ minClients: 2 }, { strategy: 'fedmedian' });
    const result = await resultOf(s.clients[0]!, 1);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toMatch(/SCALE_OUT_NEEDS_AVERAGING: fedmedian/);
  }, 120_000);
});
