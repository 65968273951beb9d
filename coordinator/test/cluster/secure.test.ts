// A secure round across scale-out nodes: two `commons-coordinator --redis` processes, six light
// clients (the bench's load generator, with the real SecAgg+ participant) signed in three to a
// node. Each node runs SecAgg+ inside its own cohort and hands the leader only its cohort's
// unmasked sum; the leader combines the two and publishes.
import { describe, expect, it } from 'vitest';
import { TINY_MODEL } from '../../lab/simulation/init-model.ts';
import { benchScaleOutRound } from '../../bench/scale-out.ts';

describe('scale-out secure round', () => {
  it('runs SecAgg+ inside each node’s cohort and publishes the combined sum', async () => {
    const run = await benchScaleOutRound({
      nodes: 2,
      clients: 6,
      secure: true,
      model: TINY_MODEL,
      compareSingleNode: false,
      timeLimitMs: 120_000,
      log: () => undefined,
    });
    expect(run.outcome).toBe('published');
    expect(run.accepted).toBe(6);
    // One partial per node, three contributors each, with the SecAgg+ stages timed.
    expect(run.partials.map((p) => p.count)).toEqual([3, 3]);
    for (const partial of run.partials) {
      expect(partial.dropped).toBeUndefined();
      expect(Object.keys(partial.stageMs ?? {})).toEqual(
        expect.arrayContaining(['invite', 'cohort']),
      );
      expect(Object.keys(partial.stageMs ?? {}).length).toBeGreaterThan(3);
    }
  }, 180_000);
});
