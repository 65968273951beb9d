// Client-level DP on the coordinator: the noised mean carries exactly σ·C/n of Gaussian noise
// and ignores example counts; rules that cannot be made private by noise on a mean are refused;
// the accountant composes each round once, survives a restart, and agrees with the RDP maths;
// and a published candidate carries that (ε, δ) in ModelRegistry.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, type Devnet } from '@commons/contracts';
import { type FederationPolicy, CommonsClient, FULL_DELTA } from '@commons/chain';
import {
  readCheckpoint,
  type NamedTensors,
  encodeTensors,
  readCorpus,
  splitText,
} from '@commons/shared/engine';
import {
  RdpAccountant,
  computeRdp,
  rdpToEpsilon,
  DEFAULT_ORDERS,
  PrivacyLedger,
} from '@commons/shared/privacy';
import { FederatedClient } from '@commons/shared/contributor';
import type { RoundResult, RoundTask } from '@commons/shared/protocol';
import { layoutOf } from '../src/aggregation/layout.ts';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { startFederation, type Federation } from './fixtures/federation.ts';
import { NoisyMeanAggregator } from '../src/privacy/noisy-mean.ts';
import {
  AdaptiveClipping,
  CLIP_LEARNING_RATE,
  type RoundClipping,
} from '../src/privacy/adaptive-clipping.ts';
import {
  configureRoundPrivacy,
  PrivacyAccounting,
  RoundConfigError,
  roundAggregator,
} from '../src/privacy/round-privacy.ts';
import { CoordinatorDatabase } from '../src/store/database.ts';
import { createStrategy } from '../src/strategy/index.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

const SHAPE = [200, 500]; // 100,000 parameters: enough coordinates to estimate a stddev well
const layout = layoutOf([{ name: 'w', shape: SHAPE }]);

function constantUpdate(value: number): NamedTensors {
  return new Map([['w', { shape: SHAPE, data: new Float32Array(100_000).fill(value) }]]);
}

function privatePolicy(overrides: Partial<FederationPolicy> = {}): FederationPolicy {
  return {
    ...DEFAULT_POLICY,
    clipNorm: 2,
    noiseMultiplier: 1.5,
    secureAggregation: false,
    adapter: FULL_DELTA,
    ...overrides,
  };
}

/** The policy's C and z, fixed (no adaptive clipping). */
function fixedClipping(policy: FederationPolicy): RoundClipping {
  return {
    clipNorm: policy.clipNorm,
    noiseMultiplier: policy.noiseMultiplier,
    adaptive: false,
    bitNoiseStddev: 0,
  };
}

const noNoise = { sampleRate: 1, accountedNoiseMultiplier: 0 };

describe('noised mean (DP-FedAvg on the server)', () => {
  it('adds N(0, (σC/n)²) to the equal-weight mean, whatever the example counts', () => {
    const noisy = new NoisyMeanAggregator(createStrategy('fedavg').createAggregator(layout), {
      clipNorm: 2,
      noiseMultiplier: 1.5,
    });
    // Weights 1 and 9 would give a mean of 0.9; equal weights give 0.5.
    noisy.add(encodeTensors(constantUpdate(0), 'fp32'), 1);
    noisy.add(encodeTensors(constantUpdate(1), 'fp32'), 9);
    const result = noisy.result()!;
    let sum = 0;
    let sumSq = 0;
    for (const v of result) {
      sum += v - 0.5;
      sumSq += (v - 0.5) ** 2;
    }
    const n = result.length;
    const mean = sum / n;
    const std = Math.sqrt(sumSq / n - mean * mean);
    const expected = (1.5 * 2) / 2;
    expect(noisy.meanNoiseStddev).toBe(expected);
    // Standard error of the sample std is σ/√(2n) ≈ 0.22% of σ here: 3% is > 10 SE.
    expect(std / expected).toBeGreaterThan(0.97);
    expect(std / expected).toBeLessThan(1.03);
    // Mean of the noise: SE σ/√n ≈ 0.0047; 0.03 is > 6 SE.
    expect(Math.abs(mean)).toBeLessThan(0.03);
  });

  it('wraps only averaging rules, and only when updates arrive in the clear', () => {
    const layoutSmall = layoutOf([{ name: 'w', shape: [4] }]);
    expect(roundAggregator(createStrategy('fedavg'), layoutSmall, privatePolicy())).toBeInstanceOf(
      NoisyMeanAggregator,
    );
    expect(roundAggregator(createStrategy('fedadam'), layoutSmall, privatePolicy())).toBeInstanceOf(
      NoisyMeanAggregator,
    );
    expect(
      roundAggregator(createStrategy('fedavg'), layoutSmall, privatePolicy({ noiseMultiplier: 0 })),
    ).not.toBeInstanceOf(NoisyMeanAggregator);
    // With secure aggregation the clients add the noise; the server must not add it twice.
    expect(
      roundAggregator(
        createStrategy('fedavg'),
        layoutSmall,
        privatePolicy({ secureAggregation: true, minClients: 3 }),
      ),
    ).not.toBeInstanceOf(NoisyMeanAggregator);
    for (const rule of ['krum', 'fedmedian', 'trimmed-mean']) {
      expect(() => roundAggregator(createStrategy(rule), layoutSmall, privatePolicy())).toThrow(
        RoundConfigError,
      );
    }
  });
});

describe('privacy accounting', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'commons-privacy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('composes each round once, survives a restart, and matches the RDP maths', () => {
    const file = path.join(dir, 'accounting.db');
    const policy = privatePolicy({ noiseMultiplier: 1.1, delta: 1e-5 });
    // 10 of 100 eligible clients sampled: q = 0.1.
    const tenth = configureRoundPrivacy(policy, fixedClipping(policy), 10, 100);
    let db = CoordinatorDatabase.open(file);
    let accounting = new PrivacyAccounting(db);
    const first = accounting.account(1, tenth, policy.delta);
    expect(first.sampleRate).toBe(0.1);
    // A round resumed after a crash is accounted again: no change.
    expect(accounting.account(1, tenth, policy.delta).epsilon).toBe(first.epsilon);
    db.close();

    db = CoordinatorDatabase.open(file);
    accounting = new PrivacyAccounting(db);
    const second = accounting.account(2, tenth, policy.delta);
    // A round that sampled everyone: no amplification.
    const all = configureRoundPrivacy(policy, fixedClipping(policy), 10, 10);
    const third = accounting.account(3, all, policy.delta);
    db.close();

    const rdp = computeRdp({ sampleRate: 0.1, noiseMultiplier: 1.1, steps: 2 });
    const full = computeRdp({ sampleRate: 1, noiseMultiplier: 1.1, steps: 1 });
    const combined = rdp.map((v, i) => v + full[i]!);
    expect(second.epsilon).toBeCloseTo(rdpToEpsilon(rdp, DEFAULT_ORDERS, 1e-5).epsilon, 9);
    expect(third.epsilon).toBeCloseTo(rdpToEpsilon(combined, DEFAULT_ORDERS, 1e-5).epsilon, 9);
    expect(first.epsilon).toBeLessThan(second.epsilon);
    expect(second.epsilon).toBeLessThan(third.epsilon);
  });

  it('reports ε = ∞ for a round without noise', () => {
    const db = CoordinatorDatabase.open(path.join(dir, 'no-noise.db'));
    const spent = new PrivacyAccounting(db).account(1, noNoise, 1e-5);
    db.close();
    expect(spent.epsilon).toBe(Infinity);
  });

  it('reloads after a round without noise: ε = ∞ is saved explicitly, and old files still load', () => {
    const file = path.join(dir, 'no-noise-restart.db');
    let db = CoordinatorDatabase.open(file);
    new PrivacyAccounting(db).account(1, noNoise, 1e-5);
    db.close();
    db = CoordinatorDatabase.open(file);
    const spent = new PrivacyAccounting(db).account(
      2,
      { sampleRate: 1, accountedNoiseMultiplier: 1.1 },
      1e-5,
    );
    db.close();
    expect(spent.epsilon).toBe(Infinity);

    // What JSON.stringify made of +∞ before: null, read back only where the history gives +∞.
    const noiseless = new RdpAccountant();
    noiseless.step({ sampleRate: 1, noiseMultiplier: 0 });
    const legacy = JSON.parse(JSON.stringify({ ...noiseless.toJSON(), rdp: [...noiseless.rdp] }));
    expect(legacy.rdp[0]).toBeNull();
    expect(RdpAccountant.fromJSON(legacy).epsilon(1e-5)).toBe(Infinity);
    const noisy = new RdpAccountant();
    noisy.step({ sampleRate: 1, noiseMultiplier: 1.1 });
    const forged = { ...noisy.toJSON(), rdp: noisy.toJSON().rdp.map(() => null) };
    expect(() => RdpAccountant.fromJSON(forged)).toThrow(/CORRUPT_STATE.*is null/);
  });
});

describe('a private round on chain', () => {
  let federation: Federation | undefined;
  let devnet: Devnet;
  let coordinator: Coordinator;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    federation = await startFederation(
      'private-round',
      { noiseMultiplier: 0.8, delta: 1e-5 },
      {
        encoding: 'int8',
        evalChars: 1000,
        // The noise (σC/n = 0.4 a coordinate) wrecks this tiny model; publish it anyway.
        publishMarginBpc: 100,
        maxRounds: 1,
      },
    );
    ({ devnet, coordinator } = federation);
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await federation?.stop();
  });

  it('publishes a noised candidate whose (ε, δ) is recorded in ModelRegistry', async () => {
    const base = (await readCheckpoint(GENESIS_DIR)).tensors;
    const result = new Promise<RoundResult>((resolve) =>
      coordinator.engine.once('result', resolve),
    );
    const wallets = devnet.keys.slice(1, 3).map((key) => new Wallet(key));
    // Both sign in before either is invited: the round waits for the policy's two clients.
    for (const wallet of wallets) clients.push(await connectRaw(coordinator.url, wallet));
    for (const [i, wallet] of wallets.entries()) {
      const task = await clients[i]!.nextInvite();
      const frame = encodeTensors(randomUpdate(base, i + 1, 0.5), task.encoding);
      const ack = await uploadFrame(clients[i]!, wallet, task, devnet.addresses.chainId, frame);
      expect(ack.ok).toBe(true);
    }
    const published = await result;
    expect(published.outcome).toBe('published');
    // Both eligible clients were sampled (q = 1), one step of σ = 0.8.
    const expected = rdpToEpsilon(
      computeRdp({ sampleRate: 1, noiseMultiplier: 0.8, steps: 1 }),
      DEFAULT_ORDERS,
      1e-5,
    ).epsilon;
    expect(published.candidate!.epsilon).toBeCloseTo(expected, 9);
    const version = await coordinator.chain.modelVersion(published.candidate!.hash);
    expect(version.epsilon).toBeCloseTo(expected, 5);
    expect(version.delta).toBe(1e-5);
  });
});

describe("the member's privacy ledger", () => {
  let federation: Federation | undefined;
  let dir: string;
  let devnet: Devnet;
  let coordinator: Coordinator;
  let member: FederatedClient | null = null;
  let raw: RawClient | null = null;

  beforeAll(async () => {
    // σ = 2: one round costs the member ε ≈ 2.17 at δ = 1e-5, two ≈ 3.19 — over a budget of 3.
    federation = await startFederation(
      'ledger',
      { noiseMultiplier: 2, delta: 1e-5, epsilonBudget: 3 },
      {
        encoding: 'int8',
        batchSize: 2,
        maxSteps: 1,
        evalChars: 500,
        publishMarginBpc: 100,
        maxRounds: 2,
        roundIntervalMs: 0,
      },
    );
    ({ dir, devnet, coordinator } = federation);
  });

  afterAll(async () => {
    await member?.close();
    raw?.close();
    await federation?.stop();
  });

  it('joins while the budget allows, records the round, then declines and says why', async () => {
    const ledgerFile = path.join(dir, 'member', 'privacy-ledger.json');
    const ledger = await PrivacyLedger.open(ledgerFile);
    const chain = await CommonsClient.connect({
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addresses,
    });
    const invites: { roundId: number; accepted: boolean; reason?: string }[] = [];
    const results: RoundResult[] = [];
    coordinator.engine.on('result', (r) => results.push(r));
    try {
      member = new FederatedClient({
        coordinator: coordinator.url,
        signer: new Wallet(devnet.keys[1]!),
        data: splitText(readCorpus()).train.slice(0, 5_000),
        consent: true,
        privacy: { ledger, policies: chain },
      });
      member.on('invite', ({ task, accepted, reason }) =>
        invites.push({ roundId: task.roundId, accepted, ...(reason ? { reason } : {}) }),
      );
      const uploaded = member.once('uploaded');
      member.connect();
      const rawWallet = new Wallet(devnet.keys[2]!);
      raw = await connectRaw(coordinator.url, rawWallet);
      const base = (await readCheckpoint(GENESIS_DIR)).tensors;
      for (const roundId of [1, 2]) {
        const task = await new Promise<RoundTask>((resolve) => {
          const found = raw!.invites.find((t) => t.roundId === roundId);
          if (found) resolve(found);
          else raw!.socket.on('round:invite', (t) => t.roundId === roundId && resolve(t));
        });
        if (roundId === 1) {
          const frame = encodeTensors(randomUpdate(base, roundId, 0.5), task.encoding);
          const ack = await uploadFrame(raw, rawWallet, task, devnet.addresses.chainId, frame);
          expect(ack.ok).toBe(true);
        }
        if (roundId === 1) await uploaded;
        await new Promise<void>((resolve) => {
          const done = () => results.some((r) => r.roundId === roundId) && resolve();
          done();
          coordinator.engine.on('result', done);
        });
      }
    } finally {
      chain.destroy();
    }
    expect(results.find((r) => r.roundId === 1)?.outcome).toBe('published');
    // Round 2 could not reach its minimum: the member declined it.
    expect(results.find((r) => r.roundId === 2)?.outcome).toBe('failed');
    expect(invites.find((i) => i.roundId === 1)?.accepted).toBe(true);
    const declined = invites.find((i) => i.roundId === 2);
    expect(declined?.accepted).toBe(false);
    expect(declined?.reason).toMatch(
      /round 2 would bring your privacy loss to ε=3\.\d+.*budget of 3/,
    );
    // The ledger on disk holds exactly the round the member contributed to.
    const reopened = await PrivacyLedger.open(ledgerFile);
    expect(reopened.entries.map((e) => e.roundId)).toEqual([1]);
    expect(reopened.spent(1e-5).epsilon).toBeCloseTo(2.1657, 3);
  });
});

describe('a secure, private round', () => {
  let federation: Federation | undefined;
  let dir: string;
  let devnet: Devnet;
  let coordinator: Coordinator;
  const members: FederatedClient[] = [];

  beforeAll(async () => {
    federation = await startFederation(
      'secure-private',
      {
        minClients: 3,
        noiseMultiplier: 1,
        delta: 1e-5,
        epsilonBudget: 100,
        secureAggregation: true,
      },
      { batchSize: 2, maxSteps: 1, evalChars: 500, publishMarginBpc: 100, maxRounds: 1 },
    );
    ({ dir, devnet, coordinator } = federation);
  });

  afterAll(async () => {
    await Promise.all(members.map((m) => m.close()));
    await federation?.stop();
  });

  it("publishes with the clients' noise shares, and ε reaches the chain and every member's ledger", async () => {
    const chain = await CommonsClient.connect({
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addresses,
    });
    const result = new Promise<RoundResult>((resolve) =>
      coordinator.engine.once('result', resolve),
    );
    const ledgers: PrivacyLedger[] = [];
    const text = splitText(readCorpus()).train;
    try {
      for (let i = 0; i < 3; i++) {
        const ledger = await PrivacyLedger.open(path.join(dir, `member-${i}`, 'ledger.json'));
        ledgers.push(ledger);
        const member = new FederatedClient({
          coordinator: coordinator.url,
          signer: new Wallet(devnet.keys[i + 1]!),
          data: text.slice(i * 4_000, (i + 1) * 4_000),
          consent: true,
          privacy: { ledger, policies: chain },
        });
        members.push(member);
        member.connect();
      }
      const published = await result;
      expect(published.outcome).toBe('published');
      expect(published.accepted).toBe(3);
      const expected = rdpToEpsilon(
        computeRdp({ sampleRate: 1, noiseMultiplier: 1, steps: 1 }),
        DEFAULT_ORDERS,
        1e-5,
      ).epsilon;
      expect(published.candidate!.epsilon).toBeCloseTo(expected, 9);
      expect((await chain.modelVersion(published.candidate!.hash)).epsilon).toBeCloseTo(
        expected,
        5,
      );
      // Each member's own ledger counts the round (recorded as its masked input was taken).
      for (const ledger of ledgers) {
        expect(ledger.entries.map((e) => e.roundId)).toEqual([1]);
        expect(ledger.spent(1e-5).epsilon).toBeCloseTo(expected, 9);
      }
    } finally {
      chain.destroy();
    }
  });
});

describe('adaptive clipping (Andrew et al. 2021)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'commons-adaptive-clip-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('moves C towards the target quantile once per round, and splits z between bits and update', () => {
    const db = CoordinatorDatabase.open(path.join(dir, 'clip.db'));
    const clipping = new AdaptiveClipping(db);
    const policy = privatePolicy({ clipNorm: 2, noiseMultiplier: 0, clipTargetQuantile: 0.5 });
    const first = clipping.forRound(policy, 4);
    expect(first).toMatchObject({ clipNorm: 2, adaptive: true, noiseMultiplier: 0 });
    // Every update fitted under C: C was too generous, so it shrinks by exp(−η·(1 − γ)).
    for (let i = 0; i < 4; i++) clipping.recordBit(1, true);
    const next = clipping.finishRound(1, policy, first, 4)!;
    expect(next).toBeCloseTo(2 * Math.exp(-CLIP_LEARNING_RATE * 0.5), 12);
    expect(clipping.finishRound(1, policy, first, 4)).toBe(next); // a resumed round: once only
    expect(clipping.forRound(policy, 4).clipNorm).toBe(next);
    // None fitted: C grows.
    const second = clipping.forRound(policy, 4);
    for (let i = 0; i < 4; i++) clipping.recordBit(2, false);
    expect(clipping.finishRound(2, policy, second, 4)!).toBeCloseTo(
      next * Math.exp(CLIP_LEARNING_RATE * 0.5),
      12,
    );
    // Governance changes γ: C starts again from the policy's clip norm.
    expect(clipping.forRound({ ...policy, clipTargetQuantile: 0.9 }, 4).clipNorm).toBe(2);
    // Fixed clipping, or a secure round, keeps the policy's C.
    expect(clipping.forRound({ ...policy, clipTargetQuantile: 0 }, 4).adaptive).toBe(false);
    expect(clipping.forRound({ ...policy, secureAggregation: true }, 4).adaptive).toBe(false);
    // With DP the bits get σ_b = max(m/20, z) and the update keeps z_Δ = (z⁻² − (2σ_b)⁻²)^−½.
    const dp = clipping.forRound({ ...policy, noiseMultiplier: 1 }, 4);
    expect(dp.bitNoiseStddev).toBe(1);
    expect(dp.noiseMultiplier).toBeCloseTo((1 - 1 / 4) ** -0.5, 12);
    db.close();
  });

  it("announces the adapted clip norm in the next round's task", async () => {
    const federation = await startFederation(
      'adaptive-round',
      { clipTargetQuantile: 0.5 },
      { encoding: 'int8', evalChars: 500, publishMarginBpc: 100, maxRounds: 2, roundIntervalMs: 0 },
    );
    const { devnet, coordinator } = federation;
    const clients: RawClient[] = [];
    try {
      const base = (await readCheckpoint(GENESIS_DIR)).tensors;
      const wallets = devnet.keys.slice(1, 3).map((key) => new Wallet(key));
      for (const wallet of wallets) clients.push(await connectRaw(coordinator.url, wallet));
      const tasks = await Promise.all(clients.map((c) => c.nextInvite()));
      expect(tasks[0]!.clipNorm).toBe(1);
      for (const [i, wallet] of wallets.entries()) {
        // Both updates had to be clipped (their norm before clipping was above C).
        const frame = encodeTensors(randomUpdate(base, i + 1, 0.9), tasks[i]!.encoding);
        const ack = await uploadFrame(
          clients[i]!,
          wallet,
          tasks[i]!,
          devnet.addresses.chainId,
          frame,
          {
            clipBit: false,
          },
        );
        expect(ack.ok).toBe(true);
      }
      const second = await new Promise<RoundTask>((resolve) =>
        clients[0]!.socket.on('round:invite', (t) => t.roundId === 2 && resolve(t)),
      );
      expect(second.clipNorm).toBeCloseTo(Math.exp(CLIP_LEARNING_RATE * 0.5), 9);
    } finally {
      for (const client of clients) client.close();
      await federation.stop();
    }
  });
});
