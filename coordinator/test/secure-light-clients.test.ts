// The bench's secure light clients at small size: five of them in one forked load-generator
// process take part in a real secure round (a Hardhat devnet whose policy sets
// secureAggregation, the coordinator in-process, a tiny model), with the real SecAgg+
// participant and their prebuilt fp32 updates. The round must publish with all five in the
// sum, every stage answered by all five, and five masked vectors of the round's size received.
import { describe, expect, it } from 'vitest';
import { TINY_MODEL } from '../lab/simulation/init-model.ts';
import { runLightRound } from '../bench/capacity.ts';

describe('secure light clients (coordinator bench)', () => {
  it('take part in every SecAgg+ stage and the secure round publishes with all of them', async () => {
    const clients = 5;
    const run = await runLightRound({
      secure: true,
      clients,
      processes: 1,
      model: TINY_MODEL,
      timeLimitMs: 120_000,
      inviteTimeoutMs: 30_000,
      log: () => undefined,
    });
    expect(run.outcome).toBe('published');
    expect(run.accepted).toBe(clients);
    // Neighbourhood: every client with every other at this size (chooseNumShares(5) = 5).
    expect(run.numShares).toBe(clients);
    expect(run.stages.map((s) => [s.stage, s.answered, s.refused])).toEqual([
      ['secagg:setup', clients, 0],
      ['secagg:share-keys', clients, 0],
      ['secagg:masked-input', clients, 0],
      ['secagg:unmask', clients, 0],
    ]);
    // Each masked vector is the round's update plus its weight coordinate, 4 bytes a word.
    expect(run.bytesIn).toBe(clients * (run.params + 1) * 4);
    // The stages came in order, inside the round.
    const firsts = run.stages.map((s) => s.firstRequestSeconds);
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
    expect(run.stages.at(-1)!.lastAnswerSeconds).toBeLessThanOrEqual(run.seconds);
  });
});
