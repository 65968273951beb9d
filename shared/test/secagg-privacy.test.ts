import { Wallet } from 'ethers';
import { beforeAll, describe, expect, it } from 'vitest';
import { SecAggClient } from '../src/privacy/secagg/client.ts';
import type { SecAggError } from '../src/privacy/secagg/errors.ts';
import { runLocalRound } from '../src/privacy/secagg/local-round.ts';
import type {
  MaskedInput,
  ShareKeysRequest,
  UnmaskRequest,
  UnmaskResponse,
} from '../src/privacy/secagg/messages.ts';
import { quantizeWeighted } from '../src/privacy/secagg/quantization.ts';
import { ringVectorFromBytes } from '../src/privacy/secagg/ring.ts';
import { SecAggServer } from '../src/privacy/secagg/server.ts';

// What the server sees of one client must say nothing about that client's update: its masked
// vector is uniform in the ring and uncorrelated with the input, and the server never holds
// both secrets (b and s_sk) of any node, which is what unmasking one update would take.
const N = 8;
const L = 4000;
const settings = { numShares: 5, clippingRange: 1, quantizationRange: 2 ** 20 };
let signers: Wallet[];

beforeAll(() => {
  signers = Array.from(
    { length: N },
    (_, i) => new Wallet('0x' + (i + 7).toString(16).padStart(64, '0')),
  );
});

/** Pearson correlation of two equally long sequences. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0,
    mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] as number;
    mb += b[i] as number;
  }
  ma /= n;
  mb /= n;
  let sab = 0,
    saa = 0,
    sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = (a[i] as number) - ma,
      db = (b[i] as number) - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('SecAgg+ privacy of one client', () => {
  it('a masked vector is uniform over the ring and uncorrelated with the input', async () => {
    // A highly structured input: a ramp, so any leak would correlate.
    const updates = Array.from({ length: N }, () =>
      Float32Array.from({ length: L }, (_, k) => -1 + (2 * k) / L),
    );
    const seen: MaskedInput[] = [];
    const { result } = await runLocalRound({
      roundId: 9,
      signers,
      updates,
      settings,
      tamper: (stage, _id, reply) => {
        if (stage === 'collect-masked-input') seen.push(reply as MaskedInput);
        return reply;
      },
    });
    expect(result.count).toBe(N);
    const y = ringVectorFromBytes((seen[0] as MaskedInput).vector as Uint8Array);
    const x = quantizeWeighted(updates[0] as Float32Array, 1, { ...settings, maxWeight: 1 });
    expect(correlation(x.subarray(1), y.subarray(1))).toBeLessThan(4 / Math.sqrt(L));
    expect(correlation(x.subarray(1), y.subarray(1))).toBeGreaterThan(-4 / Math.sqrt(L));
    // χ² over 16 equal bins of the ring, 15 degrees of freedom: 99.9% quantile ≈ 37.7.
    const bins = new Array<number>(16).fill(0);
    for (const v of y) bins[v >>> 28] = (bins[v >>> 28] as number) + 1;
    const expected = y.length / 16;
    const chi2 = bins.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(37.7);
    // The input alone, unmasked, is far from uniform (so the test can tell).
    const xBins = new Array<number>(16).fill(0);
    for (const v of x.subarray(1)) xBins[v >>> 28] = (xBins[v >>> 28] as number) + 1;
    expect(xBins[0]).toBe(L);
  });

  it('across dropouts at every stage, the server rebuilds b or s_sk of a node, never both', async () => {
    const updates = Array.from({ length: N }, (_, i) =>
      Float32Array.from({ length: 50 }, (_, k) => Math.sin(i + k)),
    );
    for (const dropouts of [
      { 'collect-masked-input': [2, 6] },
      { 'share-keys': [3], unmask: [5] },
      {},
    ]) {
      // Every share the server receives, by owner and kind.
      const kinds = new Map<number, Set<string>>();
      const { result } = await runLocalRound({
        roundId: 10,
        signers,
        updates,
        settings,
        dropouts,
        tamper: (stage, _id, reply) => {
          if (stage === 'unmask') {
            for (const s of (reply as UnmaskResponse).shares) {
              kinds.set(s.owner, (kinds.get(s.owner) ?? new Set()).add(s.kind));
            }
          }
          return reply;
        },
      });
      for (const [owner, k] of kinds) expect({ owner, kinds: k.size }).toEqual({ owner, kinds: 1 });
      const { selfMasks, maskKeys } = result.reconstructed;
      expect(selfMasks.filter((id) => maskKeys.includes(id))).toEqual([]);
      expect(selfMasks).toEqual(result.contributors.map((c) => c.nodeId));
    }
  });

  it('a client refuses to reveal both secrets of a node, or to answer unmask twice', async () => {
    const server = new SecAggServer({
      roundId: 11,
      participants: signers.map((s) => s.address),
      vectorLength: 10,
      settings,
    });
    const clients = signers.map((signer) => new SecAggClient({ signer }));
    const setup = server.setupRequest();
    for (const c of clients) server.receiveKeyAdvertisement(await c.onSetup(setup));
    for (const r of server.closeKeyAdvertisement())
      server.receiveShareKeys(clients[r.nodeId - 1]!.onShareKeys(r));
    for (const r of server.closeShareKeys()) {
      server.receiveMaskedInput(
        clients[r.nodeId - 1]!.onMaskedInputRequest(r, new Float32Array(10), 1),
      );
    }
    const requests = server.closeMaskedInput();
    const first = requests[0] as UnmaskRequest;
    const client = clients[first.nodeId - 1] as SecAggClient;
    const other = first.survivors.find((id) => id !== first.nodeId) as number;
    const refuse = (request: unknown) => {
      try {
        client.onUnmask(request);
      } catch (err) {
        return (err as SecAggError).code;
      }
      return 'answered';
    };
    // A survivor also named dropped: refused by the schema; its own key: refused by the client.
    expect(refuse({ ...first, dropped: [other] })).toBe('MALFORMED_MESSAGE');
    expect(
      refuse({
        ...first,
        dropped: [first.nodeId],
        survivors: first.survivors.filter((i) => i !== first.nodeId),
      }),
    ).toBe('PROTOCOL_VIOLATION');
    expect(refuse(first)).toBe('answered');
    // A second request naming the survivor as dropped would hand over its mask key too.
    expect(refuse({ ...first, survivors: [first.nodeId], dropped: [other] })).toBe('WRONG_STAGE');
  });

  it('a client refuses forwarded keys that its neighbour did not sign', async () => {
    const server = new SecAggServer({
      roundId: 12,
      participants: signers.map((s) => s.address),
      vectorLength: 10,
      settings,
    });
    const clients = signers.map((signer) => new SecAggClient({ signer }));
    const setup = server.setupRequest();
    for (const c of clients) server.receiveKeyAdvertisement(await c.onSetup(setup));
    const request = server.closeKeyAdvertisement()[0] as ShareKeysRequest;
    const swapped = request.neighbours.map((n, i) =>
      i === 0 ? { ...n, maskingKey: new Uint8Array(32).fill(1) } : n,
    );
    const err = (() => {
      try {
        clients[request.nodeId - 1]!.onShareKeys({ ...request, neighbours: swapped });
      } catch (e) {
        return e as SecAggError;
      }
      throw new Error('accepted');
    })();
    expect(err.code).toBe('BAD_SIGNATURE');
    expect(err.nodes).toEqual([request.neighbours[0]?.nodeId]);
  });

  it('a client refuses a setup whose parameters would let the server unmask it', async () => {
    const server = new SecAggServer({
      roundId: 13,
      participants: signers.map((s) => s.address),
      vectorLength: 10,
      settings,
    });
    const setup = server.setupRequest();
    const client = new SecAggClient({ signer: signers[0] as Wallet });
    await expect(
      client.onSetup({ ...setup, config: { ...setup.config, reconstructionThreshold: 2 } }),
    ).rejects.toThrow(/not more than half of numShares 5/);
  });
});
