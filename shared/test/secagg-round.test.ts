import { Wallet } from 'ethers';
import { beforeAll, describe, expect, it } from 'vitest';
import { SecAggError } from '../src/privacy/secagg/errors.ts';
import { neighbourGraph } from '../src/privacy/secagg/graph.ts';
import { runLocalRound, type ReplyStage } from '../src/privacy/secagg/local-round.ts';
import type { KeyAdvertisement, UnmaskResponse } from '../src/privacy/secagg/messages.ts';
import { quantizationErrorBound } from '../src/privacy/secagg/quantization.ts';
import type { SecAggResult } from '../src/privacy/secagg/server.ts';
import { getBytes } from 'ethers';

// 10 clients, 1000 coordinates, neighbourhoods of 7 with threshold 4: every neighbourhood
// keeps ≥ 4 members when any 3 clients drop.
const N = 10;
const L = 1000;
const settings = { numShares: 7, clippingRange: 1, quantizationRange: 2 ** 20 };
const roundSeed = new Uint8Array(32).fill(42);
let signers: Wallet[];
let updates: Float32Array[];

beforeAll(() => {
  signers = Array.from(
    { length: N },
    (_, i) => new Wallet('0x' + (i + 1).toString(16).padStart(64, '0')),
  );
  updates = Array.from({ length: N }, (_, i) =>
    Float32Array.from({ length: L }, (_, k) => Math.sin(i * 7 + k) * 0.9),
  );
});

function expectSumOf(result: SecAggResult, contributors: number[], weights?: number[]): void {
  expect(result.contributors.map((c) => c.nodeId)).toEqual(contributors);
  expect(result.count).toBe(contributors.length);
  const w = (id: number) => weights?.[id - 1] ?? 1;
  expect(result.totalWeight).toBeCloseTo(
    contributors.reduce((s, id) => s + w(id), 0),
    4,
  );
  const maxW = Math.max(...contributors.map(w));
  const bound =
    quantizationErrorBound({ ...settings, maxWeight: maxW }, contributors.length) + 1e-4;
  let worst = 0;
  for (let k = 0; k < L; k++) {
    const exact = contributors.reduce((s, id) => s + w(id) * (updates[id - 1]?.[k] as number), 0);
    worst = Math.max(worst, Math.abs((result.weightedSum[k] as number) - exact));
  }
  expect(worst).toBeLessThan(bound);
}

const all = Array.from({ length: N }, (_, i) => i + 1);
const dropSets: Record<string, number[]> = { '0%': [], '10%': [4], '30%': [2, 5, 9] };
const stages: ReplyStage[] = ['advertise-keys', 'share-keys', 'collect-masked-input', 'unmask'];

describe('SecAgg+ round: the unmasked sum equals the plaintext sum of contributors', () => {
  for (const stage of stages) {
    for (const [label, dropped] of Object.entries(dropSets)) {
      if (label === '0%' && stage !== 'advertise-keys') continue; // one no-dropout round suffices
      it(`${label} of clients dropped at ${label === '0%' ? 'no stage' : stage}`, async () => {
        const { result, refusals } = await runLocalRound({
          roundId: 1,
          signers,
          updates,
          settings,
          roundSeed,
          dropouts: { [stage]: dropped },
        });
        expect(refusals).toEqual([]);
        // A client gone at unmask already uploaded: it is in the sum, its b rebuilt by neighbours.
        const contributors = stage === 'unmask' ? all : all.filter((id) => !dropped.includes(id));
        expectSumOf(result, contributors);
        expect(result.dropped.map((d) => d.nodeId)).toEqual(stage === 'unmask' ? [] : dropped);
        if (stage === 'collect-masked-input')
          expect(result.reconstructed.maskKeys).toEqual(dropped);
        else expect(result.reconstructed.maskKeys).toEqual([]);
      });
    }
  }

  it('weights: returns Σw·x and Σw, so the weighted mean is their ratio', async () => {
    const weights = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const { result } = await runLocalRound({
      roundId: 2,
      signers,
      updates,
      weights,
      settings: { ...settings, maxWeight: 10 },
      roundSeed,
      dropouts: { 'collect-masked-input': [3] },
    });
    expectSumOf(
      result,
      all.filter((id) => id !== 3),
      weights,
    );
  });

  it('masked vectors handed over as the chunks they arrived in sum as whole ones do', async () => {
    // Segments of 4, 400 and the rest of the 1001 words (the coordinator keeps chunks as they came).
    const { result, refusals } = await runLocalRound({
      roundId: 5,
      signers,
      updates,
      settings,
      roundSeed,
      dropouts: { 'collect-masked-input': [6] },
      tamper: (stage, _id, reply) => {
        if (stage !== 'collect-masked-input') return reply;
        const { vector } = reply as { vector: Uint8Array };
        return {
          ...(reply as object),
          vector: [vector.subarray(0, 16), vector.subarray(16, 1616), vector.subarray(1616)],
        };
      },
    });
    expect(refusals).toEqual([]);
    expectSumOf(
      result,
      all.filter((id) => id !== 6),
    );
  });

  it('refuses a segmented vector of the wrong total size or with a ragged segment, naming it', async () => {
    const { refusals } = await runLocalRound({
      roundId: 6,
      signers,
      updates,
      settings,
      roundSeed,
      tamper: (stage, id, reply) => {
        if (stage !== 'collect-masked-input' || id > 2) return reply;
        const { vector } = reply as { vector: Uint8Array };
        const segments =
          id === 1
            ? [vector.subarray(0, 16), vector.subarray(20)]
            : [vector.subarray(0, 6), vector.subarray(6)];
        return { ...(reply as object), vector: segments };
      },
    });
    expect(refusals.map((r) => [r.nodeId, r.error.code])).toEqual([
      [1, 'MALFORMED_MESSAGE'],
      [2, 'MALFORMED_MESSAGE'],
    ]);
    expect(refusals[0]?.error.message).toMatch(/uploaded 4000 bytes; the round expects 4004/);
    expect(refusals[1]?.error.message).toMatch(/whole 32-bit words/);
  });

  it('a sparse graph: neighbourhoods of 5 among 12 clients', async () => {
    const many = Array.from(
      { length: 12 },
      (_, i) => new Wallet('0x' + (i + 100).toString(16).padStart(64, '0')),
    );
    const ups = Array.from({ length: 12 }, (_, i) =>
      Float32Array.from({ length: 200 }, (_, k) => Math.cos(i + k)),
    );
    const { result, server } = await runLocalRound({
      roundId: 3,
      signers: many,
      updates: ups,
      settings: { numShares: 5, clippingRange: 1 },
      roundSeed,
      dropouts: { 'share-keys': [1], 'collect-masked-input': [7] },
    });
    expect(server.neighboursOf(2)).toHaveLength(5);
    const contributors = Array.from({ length: 12 }, (_, i) => i + 1).filter(
      (id) => id !== 1 && id !== 7,
    );
    for (let k = 0; k < 200; k++) {
      const exact = contributors.reduce((s, id) => s + (ups[id - 1]?.[k] as number), 0);
      expect(Math.abs((result.weightedSum[k] as number) - exact)).toBeLessThan(1e-4);
    }
  });
});

describe('SecAgg+ round: aborts', () => {
  async function abortCode(
    options: Partial<Parameters<typeof runLocalRound>[0]>,
  ): Promise<SecAggError> {
    try {
      await runLocalRound({ roundId: 1, signers, updates, settings, roundSeed, ...options });
    } catch (err) {
      expect(err).toBeInstanceOf(SecAggError);
      return err as SecAggError;
    }
    throw new Error('the round returned a sum');
  }

  it('aborts when a needed node keeps fewer neighbours than the threshold, naming it', async () => {
    const hood = neighbourGraph(all, 7, roundSeed).get(1) as number[];
    const victims = hood.filter((id) => id !== 1).slice(0, 4); // 7 − 4 = 3 < threshold 4
    const err = await abortCode({ dropouts: { 'collect-masked-input': victims } });
    expect(err.code).toBe('BELOW_THRESHOLD');
    expect(err.message).toMatch(
      /has 3 of its 7 neighbourhood left after masked input; 4 are needed/,
    );
    const unmaskErr = await abortCode({ dropouts: { unmask: victims } });
    expect(unmaskErr.code).toBe('BELOW_THRESHOLD');
    expect(unmaskErr.message).toMatch(/shares of node \d+ .* arrived at unmask; 4 are needed/);
  });

  it('aborts below the minimum number of clients', async () => {
    const err = await abortCode({
      settings: { ...settings, minClients: 8 },
      dropouts: { 'share-keys': [1, 2, 3] },
    });
    expect(err.code).toBe('TOO_FEW_CLIENTS');
    expect(err.message).toMatch(/7 clients remain after share keys; the minimum is 8/);
  });
});

describe('SecAgg+ round: misbehaving clients are named', () => {
  it('a bad key signature names and excludes the client; the others still aggregate', async () => {
    const impostor = Wallet.createRandom();
    const { result } = await runLocalRound({
      roundId: 1,
      signers,
      updates,
      settings,
      roundSeed,
      tamper: (stage, nodeId, reply) => {
        if (stage !== 'advertise-keys' || nodeId !== 6) return reply;
        const ad = reply as KeyAdvertisement;
        return { ...ad, signature: getBytes(impostor.signMessageSync(new Uint8Array(32))) };
      },
    });
    expect(result.faults).toEqual([
      expect.objectContaining({ nodeId: 6, address: signers[5]?.address, reason: 'bad-signature' }),
    ]);
    expectSumOf(
      result,
      all.filter((id) => id !== 6),
    );
  });

  it('an inconsistent revealed share names the holder; the secret is rebuilt from the rest', async () => {
    const { result } = await runLocalRound({
      roundId: 1,
      signers,
      updates,
      settings,
      roundSeed,
      tamper: (stage, nodeId, reply) => {
        if (stage !== 'unmask' || nodeId !== 3) return reply;
        const res = reply as UnmaskResponse;
        const shares = res.shares.map((s, i) =>
          i === 0 ? { ...s, share: s.share.map((b, j) => (j === 31 ? b ^ 1 : b)) } : s,
        );
        return { ...res, shares };
      },
    });
    expect(result.faults).toHaveLength(1);
    expect(result.faults[0]).toMatchObject({ nodeId: 3, reason: 'inconsistent-share' });
    expectSumOf(result, all);
  });

  it('a share packet its receiver cannot open names the sender; the round still completes', async () => {
    const { result } = await runLocalRound({
      roundId: 1,
      signers,
      updates,
      settings,
      roundSeed,
      tamper: (stage, nodeId, reply) => {
        if (stage !== 'share-keys' || nodeId !== 8) return reply;
        const res = reply as { shares: { to: number; ciphertext: Uint8Array }[] };
        // Re-address packet 0 to packet 1's receiver: the associated data (sender, receiver) no longer matches.
        const [a, b, ...rest] = res.shares;
        return {
          ...res,
          shares: [
            { to: a!.to, ciphertext: b!.ciphertext },
            { to: b!.to, ciphertext: a!.ciphertext },
            ...rest,
          ],
        };
      },
    });
    expect(result.faults.map((f) => [f.nodeId, f.reason])).toEqual([
      [8, 'unreadable-share-packet'],
      [8, 'unreadable-share-packet'],
    ]);
    expectSumOf(result, all);
  });

  it('a dealer whose shares do not match its commitment aborts the round, named', async () => {
    // Node 5 uploads but every share it dealt is replaced by shares of another secret.
    const err = await (async () => {
      try {
        await runLocalRound({
          roundId: 1,
          signers,
          updates,
          settings,
          roundSeed,
          tamper: (stage, _nodeId, reply) => {
            if (stage !== 'unmask') return reply;
            const res = reply as UnmaskResponse;
            return {
              ...res,
              shares: res.shares.map((s) =>
                s.owner === 5 ? { ...s, share: new Uint8Array(32).fill(res.nodeId) } : s,
              ),
            };
          },
        });
      } catch (e) {
        return e as SecAggError;
      }
      throw new Error('the round returned a sum');
    })();
    expect(err.code).toBe('INCONSISTENT_SHARES');
    expect(err.nodes).toEqual([5]);
    expect(err.message).toMatch(/node 5 .* do not reconstruct the secret it committed to/);
  });
});
