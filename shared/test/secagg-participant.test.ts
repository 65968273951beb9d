import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { encodeTensors } from '../src/checkpoint/update-codec.ts';
import { SecAggParticipant } from '../src/federation/secagg-participant.ts';
import type { LocalUpdate } from '../src/federation/local-update.ts';
import type { SecAggParticipantOptions } from '../src/federation/secagg-participant.ts';

function participant(vectorLength: number): SecAggParticipant {
  const wallet = Wallet.createRandom();
  const task = {
    roundId: 3,
    secureAggregation: { vectorLength, maxWeight: 1, noiseStddev: 0, chunkBytes: 1024 },
  } as unknown as SecAggParticipantOptions['task'];
  return new SecAggParticipant({
    task,
    signer: wallet,
    address: wallet.address,
    chainId: 31337,
    sendChunk: () => Promise.resolve(),
  });
}

function localUpdate(sizes: number[]): LocalUpdate {
  const frame = encodeTensors(
    new Map(sizes.map((n, i) => [`t${i}`, { shape: [n], data: new Float32Array(n).fill(0.5) }])),
    'fp32',
  );
  return { frame, numExamples: 4 } as unknown as LocalUpdate;
}

describe('SecAggParticipant: the trained update against the round’s vector', () => {
  it('refuses an update with more or fewer coordinates than the round aggregates, naming both', async () => {
    const signal = new AbortController().signal;
    await expect(participant(10).contribute(localUpdate([6, 6]), signal)).rejects.toThrow(
      /the update has 12 coordinates; the round aggregates 10/,
    );
    await expect(participant(10).contribute(localUpdate([6, 3]), signal)).rejects.toThrow(
      /the update has 9 coordinates; the round aggregates 10/,
    );
    await expect(participant(10).contribute(localUpdate([6, 4, 1]), signal)).rejects.toThrow(
      /the update has 11 coordinates/,
    );
  });
});
