// A contributor that reports 2^53 − 1 examples does not dictate FedAvg: on a round without DP
// noise each update weighs min(its numExamples, the policy's maxExamplesPerUpdate). Before, the
// published change was the attacker's update (cosine 1.0 with it, ≈ 0 with the honest mean).
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Devnet } from '@commons/contracts';
import {
  decodeCheckpoint,
  readCheckpoint,
  type NamedTensors,
  encodeTensors,
} from '@commons/shared/engine';
import type { RoundResult } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { startFederation, type Federation } from './fixtures/federation.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

const CAP = 100;

let federation: Federation | undefined;
let devnet: Devnet;
let coordinator: Coordinator;
const clients: RawClient[] = [];

function flat(tensors: NamedTensors, names: readonly string[]): Float64Array {
  const parts = names.map((name) => tensors.get(name)!.data);
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) for (const v of part) out[at++] = v;
  return out;
}

function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(aa * bb);
}

beforeAll(async () => {
  federation = await startFederation(
    'example-cap',
    { minClients: 3, maxExamplesPerUpdate: CAP },
    { encoding: 'fp32', evalChars: 500, publishMarginBpc: 100, maxRounds: 1 },
  );
  ({ devnet, coordinator } = federation);
});

afterAll(async () => {
  for (const client of clients) client.close();
  await federation?.stop();
});

describe('self-reported example counts', () => {
  it('are capped by the policy: an attacker claiming 2^53 − 1 examples weighs as much as the cap', async () => {
    const base = (await readCheckpoint(GENESIS_DIR)).tensors;
    const names = [...base.keys()];
    const wallets = devnet.keys.slice(1, 4).map((key) => new Wallet(key));
    for (const wallet of wallets) clients.push(await connectRaw(coordinator.url, wallet));
    const result = new Promise<RoundResult>((resolve) =>
      coordinator.engine.once('result', resolve),
    );
    const tasks = await Promise.all(clients.map((client) => client.nextInvite()));
    // Two honest contributors at the cap, then the attacker.
    const updates = [1, 2, 3].map((seed) => randomUpdate(base, seed, 0.5));
    const claims = [CAP, CAP, Number.MAX_SAFE_INTEGER];
    for (const [i, wallet] of wallets.entries()) {
      const frame = encodeTensors(updates[i]!, 'fp32');
      const ack = await uploadFrame(
        clients[i]!,
        wallet,
        tasks[i]!,
        devnet.addresses.chainId,
        frame,
        {
          numExamples: claims[i]!,
        },
      );
      expect(ack.ok).toBe(true);
    }
    const published = await result;
    expect(published.outcome).toBe('published');

    const hash = published.candidate!.hash;
    const bytes = async (file: string) =>
      new Uint8Array(
        await (await fetch(`${coordinator.url}/models/${hash}/${file}`)).arrayBuffer(),
      );
    const candidate = decodeCheckpoint(await bytes('manifest.json'), await bytes('weights.bin'), {
      expectedHash: hash,
    }).tensors;
    const baseFlat = flat(base, names);
    const change = flat(candidate, names).map((v, i) => v - baseFlat[i]!);
    const [honestA, honestB, attacker] = updates.map((u) => flat(u, names));
    const honestMean = honestA!.map((v, i) => (v + honestB![i]!) / 2);
    // Three equal weights: (h₁ + h₂ + a) / 3, whose cosine with the honest mean is √(2/3).
    expect(cosine(change, honestMean)).toBeGreaterThan(0.75);
    expect(cosine(change, attacker!)).toBeLessThan(0.65);
    let worst = 0;
    for (let i = 0; i < change.length; i++) {
      const expected = (honestA![i]! + honestB![i]! + attacker![i]!) / 3;
      worst = Math.max(worst, Math.abs(change[i]! - expected));
    }
    expect(worst).toBeLessThan(1e-6);
  });
});
