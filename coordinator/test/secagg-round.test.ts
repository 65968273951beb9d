// Secure aggregation in a real round: a Hardhat devnet whose policy sets secureAggregation, the
// coordinator in-process, and five real FederatedClients training the genesis model on a few
// hundred characters each (2 local steps). Each client reports, on its own side, the clipped
// update and weight it masked; the published candidate must equal base + Σ w·x / Σ w of those
// within the quantisation bound, although the coordinator only ever saw masked vectors. Then:
// a client that drops after advertising its keys still leaves a correct sum; two of four
// dropping aborts the round with the SecAgg+ reason and nothing reaches the chain; a robust
// rule (krum) is refused at configuration; and a secure round found unfinished at start-up
// fails instead of resuming.
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Devnet } from '@commons/contracts';
import { buildMerkleTree } from '@commons/chain';
import { readCheckpoint, type NamedTensors, readCorpus, splitText } from '@commons/shared/engine';
import { fetchBaseModel, FederatedClient, type MaskedReceipt } from '@commons/shared/contributor';
import { quantizationErrorBound, SECAGG_DEFAULTS } from '@commons/shared/privacy';
import type { RoundResult, RoundStatus, RoundTask } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { coordinatorOn, startFederation, type Federation } from './fixtures/federation.ts';
import { SECURE_ROUND_NOT_RESUMABLE } from '../src/secagg/secure-round.ts';
import { BlobStore } from '../src/store/blobs.ts';
import { CoordinatorDatabase } from '../src/store/database.ts';

const CLIP_NORM = 1;
const BATCH_SIZE = 2;
const MAX_STEPS = 2;

let federation: Federation | undefined;
let dir: string;
let devnet: Devnet;
let coordinator: Coordinator;
let base: NamedTensors;
let blockSize: number;
const results: RoundResult[] = [];
const statuses: (RoundStatus & { at: number })[] = [];
/** Every client ever started, for the final close. */
const allClients: FederatedClient[] = [];
/** Masked receipts by round, as each client saw its own contribution. */
const masked = new Map<number, MaskedReceipt[]>();
/** Clients that close themselves once they have advertised keys in the given round. */
const dropAfterSetup = new Map<FederatedClient, number>();

/** Characters of training text per client: different sizes, so the weights differ. */
const SLICES = [300, 450, 600, 750, 1200];

function resultOf(c: Coordinator, roundId: number): Promise<RoundResult> {
  return new Promise((resolve) => {
    const found = results.find((r) => r.roundId === roundId);
    if (found) return resolve(found);
    const listener = (result: RoundResult) => {
      if (result.roundId !== roundId) return;
      c.engine.off('result', listener);
      resolve(result);
    };
    c.engine.on('result', listener);
  });
}

function startClient(url: string, keyIndex: number, text: string): FederatedClient {
  const client = new FederatedClient({
    coordinator: url,
    signer: new Wallet(devnet.keys[keyIndex]!),
    data: text,
    consent: true,
    // The test checks the published mean against each client's masked vector.
    keepMaskedUpdates: true,
    socket: { reconnectionDelay: 200, reconnectionDelayMax: 1_000 },
  });
  client.on('masked', (receipt) => {
    const list = masked.get(receipt.roundId) ?? [];
    list.push(receipt);
    masked.set(receipt.roundId, list);
  });
  client.on('secagg', ({ roundId, stage, ok }) => {
    // A real dropout: the client goes away after its keys were advertised.
    if (stage === 'secagg:setup' && ok && dropAfterSetup.get(client) === roundId) {
      void client.close();
    }
  });
  if (process.env.SECAGG_TEST_LOG) {
    client.on('error', (e) => console.error(`client ${keyIndex}:`, e.message));
    client.on('state', (st) => console.error(`client ${keyIndex} state:`, JSON.stringify(st)));
    client.on('dropped', (d) => console.error(`client ${keyIndex} dropped:`, d.reason));
  }
  client.connect();
  allClients.push(client);
  return client;
}

function online(client: FederatedClient): Promise<void> {
  if (client.state.connection === 'online') return Promise.resolve();
  return new Promise((resolve) => {
    const stop = client.on('state', (s) => {
      if (s.connection === 'online') {
        stop();
        resolve();
      }
    });
  });
}

function flat(tensors: NamedTensors): Float32Array {
  const size = [...tensors.values()].reduce((n, t) => n + t.data.length, 0);
  const out = new Float32Array(size);
  let at = 0;
  for (const { data } of tensors.values()) {
    out.set(data, at);
    at += data.length;
  }
  return out;
}

/**
 * Checks candidate = base + Σ w·x / Σ w over the receipts, coordinate by coordinate, within what
 * SecAgg+ quantisation can cost: stochastic rounding of the n weighted updates (Σ over clients of
 * one quantum, quantizationErrorBound), the weights' own rounding to the ring, and float32.
 */
async function expectCandidateIsWeightedMean(
  candidateHash: string,
  receipts: MaskedReceipt[],
  task: RoundTask,
): Promise<{ maxError: number; tolerance: number; maxDelta: number }> {
  const candidate = await fetchBaseModel(coordinator.url, {
    hash: candidateHash,
    path: `/models/${candidateHash}/`,
  });
  const baseFlat = flat(base);
  const got = flat(candidate.tensors);
  const n = receipts.length;
  const totalWeight = receipts.reduce((s, r) => s + r.weight, 0);
  const maxWeight = task.secureAggregation!.maxWeight;
  const Q = SECAGG_DEFAULTS.quantizationRange; // 2^22 fits 5 clients in the 2^32 ring
  const config = { clippingRange: CLIP_NORM, quantizationRange: Q, maxWeight };
  const roundingBound = quantizationErrorBound(config, n) / totalWeight;
  // Each weight is carried as round(w / maxWeight · (Q − 1)): off by ≤ maxWeight / (2(Q − 1)).
  const weightBound = (2 * n * CLIP_NORM * (maxWeight / (2 * (Q - 1)))) / totalWeight;
  let maxError = 0;
  let maxDelta = 0;
  let tolerance = 0;
  for (let i = 0; i < got.length; i++) {
    let sum = 0;
    for (const r of receipts) sum += r.weight * r.update![i]!;
    const expected = baseFlat[i]! + sum / totalWeight;
    const tol = roundingBound + weightBound + 4 * Math.abs(expected) * 2 ** -23 + 1e-9;
    const error = Math.abs(got[i]! - expected);
    if (error > tol) {
      throw new Error(
        `coordinate ${i}: candidate ${got[i]} vs expected ${expected} (|Δ| ${error} > ${tol})`,
      );
    }
    maxError = Math.max(maxError, error);
    tolerance = Math.max(tolerance, tol);
    maxDelta = Math.max(maxDelta, Math.abs(sum / totalWeight));
  }
  return { maxError, tolerance, maxDelta };
}

beforeAll(async () => {
  const genesis = await readCheckpoint(GENESIS_DIR);
  base = genesis.tensors;
  blockSize = genesis.manifest.config.blockSize;
  federation = await startFederation(
    'secagg',
    {
      minClients: 3,
      clipNorm: CLIP_NORM,
      secureAggregation: true,
      learningRate: 0.01,
      roundDeadlineSeconds: 600,
    },
    {
      encoding: 'int8',
      batchSize: BATCH_SIZE,
      maxSteps: MAX_STEPS,
      evalChars: 2000,
      publishMarginBpc: 1,
      maxRoundSeconds: 120,
      inviteTimeoutMs: 10_000,
      roundIntervalMs: 0,
      logLevel: (process.env.SECAGG_TEST_LOG as 'info' | undefined) ?? 'silent',
    },
  );
  ({ dir, devnet, coordinator } = federation);
  coordinator.engine.on('result', (r) => results.push(r));
  coordinator.engine.on('status', (s) => statuses.push({ ...s, at: Date.now() }));
}, 120_000);

afterAll(async () => {
  await Promise.all(allClients.map((c) => c.close()));
  await federation?.stop();
});

describe('secure aggregation over a real round', () => {
  const { train } = splitText(readCorpus());
  const texts = SLICES.map((n, i) => train.slice(i * 2000, i * 2000 + n));
  let clients: FederatedClient[] = [];
  const tasks: RoundTask[] = [];

  it('publishes base + the weighted mean of the clipped updates the clients masked', async () => {
    const genesis = (await coordinator.chain.activeModel()).contentHash.replace(/^0x/, '');
    clients = texts.map((text, i) => startClient(coordinator.url, i + 1, text));
    // Dropouts are planned now: rounds 2 and 3 follow round 1 at once (no pause between rounds).
    dropAfterSetup.set(clients[4]!, 2);
    dropAfterSetup.set(clients[2]!, 3);
    dropAfterSetup.set(clients[3]!, 3);
    for (const c of clients) c.on('invite', ({ task }) => tasks.push(task));
    await Promise.all(clients.map(online));

    const result = await resultOf(coordinator, 1);
    expect(result.reason).toBeUndefined();
    expect(result.outcome).toBe('published');
    const receipts = masked.get(1) ?? [];
    // The first round may start before all five are signed in; every participant contributed.
    const invited = coordinator.db.participants(1);
    expect(receipts.length).toBe(invited.length);
    expect(receipts.length).toBeGreaterThanOrEqual(3);
    expect(result.accepted).toBe(receipts.length);
    const task = tasks.find((t) => t.roundId === 1)!;
    expect(task.secureAggregation).toMatchObject({ maxWeight: MAX_STEPS * BATCH_SIZE * blockSize });
    for (const r of receipts) {
      expect(r.norm).toBeLessThanOrEqual(CLIP_NORM * (1 + 1e-6));
      expect(r.weight).toBe(Math.min(r.numExamples, task.secureAggregation!.maxWeight));
    }
    const check = await expectCandidateIsWeightedMean(result.candidate!.hash, receipts, task);
    // The delta is far above the tolerance: a sum that lost an update could not pass.
    expect(check.maxDelta).toBeGreaterThan(100 * check.tolerance);
    console.log(
      `secure round 1: ${receipts.length} contributors, max |error| ${check.maxError.toExponential(2)} ` +
        `(bound ${check.tolerance.toExponential(2)}), max |Δ| ${check.maxDelta.toExponential(2)}`,
    );

    // On chain: the candidate's lineage and the commitments of exactly these contributors.
    const version = await coordinator.chain.modelVersion(result.candidate!.hash);
    expect(version.roundId).toBe(1);
    expect(version.parentHash?.replace(/^0x/, '')).toBe(genesis);
    expect(version.contributorsRoot).toBe(buildMerkleTree(receipts.map((r) => r.commitment)).root);

    // The coordinator kept no plain update: no submission rows, no blobs.
    expect(coordinator.db.submissions(1)).toEqual([]);
    const blobs = await BlobStore.open(path.join(dir, 'coordinator', 'blobs'));
    expect(await blobs.list()).toEqual([]);
  }, 240_000);

  it('still sums correctly when a client drops after advertising its keys', async () => {
    const roundId = 2;
    const leaver = clients[4]!;
    const result = await resultOf(coordinator, roundId);
    expect(result.reason).toBeUndefined();
    expect(result.outcome).toBe('published');
    const participants = coordinator.db.participants(roundId);
    expect(participants).toHaveLength(5);
    const statusOf = (c: FederatedClient) =>
      participants.find((p) => p.address.toLowerCase() === c.address!.toLowerCase())?.status;
    expect(statusOf(leaver)).toBe('dropped');
    const receipts = masked.get(roundId) ?? [];
    expect(receipts).toHaveLength(4);
    expect(result.accepted).toBe(4);
    const task = tasks.find((t) => t.roundId === roundId)!;
    await expectCandidateIsWeightedMean(result.candidate!.hash, receipts, task);
    expect(coordinator.db.submissions(roundId)).toEqual([]);
  }, 240_000);

  it('aborts with the SecAgg+ reason when too many drop, and registers nothing', async () => {
    const roundId = 3;
    const activeBefore = (await coordinator.chain.activeModel()).contentHash;
    const result = await resultOf(coordinator, roundId);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toMatch(
      /round 3 aborted: 2 clients remain after share keys; the minimum is 3/,
    );
    expect(result.candidate).toBeUndefined();
    expect(coordinator.db.getRound(roundId)?.state).toBe('failed');
    expect((await coordinator.chain.listModels()).map((m) => m.roundId)).not.toContain(roundId);
    expect((await coordinator.chain.activeModel()).contentHash).toBe(activeBefore);
    expect(masked.get(roundId) ?? []).toEqual([]);
    expect(coordinator.db.submissions(roundId)).toEqual([]);
  }, 240_000);
});

describe('secure aggregation refusals', () => {
  it('refuses a robust rule at configuration: krum needs individual updates', async () => {
    const krum = await coordinatorOn(devnet, dir, {
      dataDir: path.join(dir, 'krum'),
      strategy: 'krum',
      roundIntervalMs: 60_000,
    });
    try {
      const failed = new Promise<RoundResult>((resolve) => krum.engine.once('result', resolve));
      const { train } = splitText(readCorpus());
      const invites: RoundTask[] = [];
      for (const i of [5, 6, 7]) {
        startClient(krum.url, i, train.slice(0, 300)).on('invite', ({ task }) =>
          invites.push(task),
        );
      }
      const result = await failed;
      expect(result.outcome).toBe('failed');
      expect(result.reason).toMatch(
        /^krum needs individual updates, which secure aggregation hides/,
      );
      expect(krum.db.getRound(result.roundId)?.failureReason).toBe(result.reason);
      // Refused before anyone was invited.
      expect(invites).toEqual([]);
      expect(krum.db.participants(result.roundId)).toEqual([]);
    } finally {
      await krum.close();
    }
  }, 120_000);

  it('fails a secure round left unfinished by a crash instead of resuming it', async () => {
    // The database as a kill -9 during a secure round's training leaves it.
    const dataDir = path.join(dir, 'crashed');
    const first = await coordinatorOn(devnet, dir, { dataDir, roundIntervalMs: 60_000 });
    const baseHash = (await first.chain.activeModel()).contentHash.replace(/^0x/, '');
    const { version } = await first.chain.policy();
    await first.close();
    const db = CoordinatorDatabase.open(path.join(dataDir, 'coordinator.db'));
    db.createRound({
      id: 1,
      baseModel: baseHash,
      policyVersion: version,
      strategy: 'fedavg',
      task: { roundId: 1, secureAggregation: { vectorLength: 10, maxWeight: 1, chunkBytes: 1 } },
      minClients: 3,
      deadlineMs: Date.now() + 60_000,
    });
    db.setRoundState(1, 'configuring');
    db.setRoundState(1, 'training');
    db.close();

    const restarted = await coordinatorOn(devnet, dir, { dataDir, roundIntervalMs: 60_000 });
    try {
      const row = restarted.db.getRound(1);
      expect(row?.state).toBe('failed');
      expect(row?.failureReason).toBe(SECURE_ROUND_NOT_RESUMABLE);
    } finally {
      await restarted.close();
    }
  }, 120_000);
});
