import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  baseModelReason,
  hasData,
  privacyAdmission,
  readinessReason,
  type ClientReadiness,
  type PrivacyTerms,
} from '../src/federation/admission.ts';
import { splitNoiseStddev } from '../src/privacy/dp/calibration.ts';
import { PrivacyLedger } from '../src/privacy/dp/ledger.ts';
import { PROTOCOL_VERSION, type RoundTask } from '../src/protocol/messages.ts';

// The client's decision to join a round, straight on its pure functions (admission.ts), with a
// real privacy ledger. The socket conversation around it is in federation-client-ledger.test.ts
// and coordinator/test.

const NOW = Date.UTC(2026, 0, 1);
const HASH = 'ab'.repeat(32);

const TASK: RoundTask = {
  protocolVersion: PROTOCOL_VERSION,
  roundId: 4,
  strategy: 'fedavg',
  baseModel: { hash: HASH, path: `/models/${HASH}/` },
  policyVersion: 1,
  train: { localEpochs: 1, learningRate: 1e-2, batchSize: 2, maxSteps: 3, proxMu: 0, seed: 1 },
  clipNorm: 1,
  encoding: 'int8',
  upload: { frameBytes: 1000, chunkBytes: 256 },
  deadline: NOW + 60_000,
};

const READY: ClientReadiness = {
  closing: false,
  signedIn: true,
  contributed: new Set(),
  data: 'some text',
  now: NOW,
};

const TERMS: PrivacyTerms = {
  clipNorm: 1,
  noiseMultiplier: 2,
  minClients: 3,
  sampleRate: 0.5,
  epsilonBudget: 3,
  delta: 1e-5,
};

const dir = mkdtempSync(join(tmpdir(), 'commons-admission-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readiness', () => {
  it('accepts a round a signed-in client with data can take', () => {
    expect(readinessReason(TASK, READY)).toBeNull();
  });

  it('names the first thing that rules the round out', () => {
    expect(readinessReason(TASK, { ...READY, closing: true, signedIn: false })).toBe(
      'the client is closing',
    );
    expect(readinessReason({ ...TASK, protocolVersion: PROTOCOL_VERSION + 1 }, READY)).toBe(
      `protocol ${PROTOCOL_VERSION + 1} is not supported (this client speaks ${PROTOCOL_VERSION})`,
    );
    expect(readinessReason(TASK, { ...READY, signedIn: false })).toBe('not signed in');
    expect(readinessReason(TASK, { ...READY, contributed: new Set([4]) })).toBe(
      'already contributed to this round',
    );
    expect(readinessReason(TASK, { ...READY, now: TASK.deadline })).toBe('the deadline has passed');
    expect(readinessReason(TASK, { ...READY, data: '' })).toBe('no training data');
  });

  it('counts text, documents and tokens as data only when there is some', () => {
    expect(hasData('x')).toBe(true);
    expect(hasData(['', 'x'])).toBe(true);
    expect(hasData(Int32Array.of(1))).toBe(true);
    expect(hasData('')).toBe(false);
    expect(hasData(['', ''])).toBe(false);
    expect(hasData([])).toBe(false);
    expect(hasData(new Int32Array(0))).toBe(false);
  });
});

describe('base model', () => {
  it("matches the chain's active model whatever its case and 0x prefix", () => {
    expect(baseModelReason(TASK, `0x${HASH.toUpperCase()}`)).toBeNull();
    expect(baseModelReason(TASK, 'cd'.repeat(32))).toBe(
      `base model ${HASH} is not the active model on chain (${'cd'.repeat(32)})`,
    );
  });
});

describe('privacy', () => {
  it('joins within the budget, with the ledger round the policy describes', async () => {
    const ledger = await PrivacyLedger.open(join(dir, 'within.json'));
    expect(privacyAdmission(TASK, TERMS, ledger)).toEqual({
      join: true,
      round: { roundId: 4, sampleRate: 0.5, noiseMultiplier: 2, delta: 1e-5 },
    });
  });

  it("declines with the ledger's sentence once the budget would be passed", async () => {
    // σ = 2 costs ε ≈ 2.17 a round at δ = 1e-5 (unamplified): a second round passes 3.
    const ledger = await PrivacyLedger.open(join(dir, 'over.json'));
    await ledger.record({ roundId: 1, sampleRate: 0.5, noiseMultiplier: 2, delta: 1e-5 });
    const decision = privacyAdmission(TASK, TERMS, ledger);
    expect(decision.join).toBe(false);
    expect(!decision.join && decision.reason).toMatch(
      /^joining round 4 would bring your privacy loss to ε=3\.\d+, above the community budget of 3$/,
    );
  });

  it('declines a round already in the ledger', async () => {
    const ledger = await PrivacyLedger.open(join(dir, 'again.json'));
    await ledger.record({ roundId: 4, sampleRate: 0.5, noiseMultiplier: 2, delta: 1e-5 });
    expect(privacyAdmission(TASK, { ...TERMS, epsilonBudget: 100 }, ledger)).toEqual({
      join: false,
      reason: 'you already contributed to round 4; a round is joined once',
    });
  });

  it('declines a secure round that asks for less noise than the policy requires', async () => {
    const ledger = await PrivacyLedger.open(join(dir, 'secure.json'));
    const terms = { ...TERMS, epsilonBudget: 100 };
    const required = splitNoiseStddev({ noiseMultiplier: 2, clipNorm: 1, minSurvivors: 3 });
    const secure = (noiseStddev: number): RoundTask => ({
      ...TASK,
      secureAggregation: { vectorLength: 10, maxWeight: 1, chunkBytes: 256, noiseStddev },
    });
    expect(privacyAdmission(secure(required), terms, ledger).join).toBe(true);
    expect(privacyAdmission(secure(required * 0.9), terms, ledger)).toEqual({
      join: false,
      reason: `the round asks for noise of stddev ${required * 0.9}, less than the ${required} the community's policy requires`,
    });
  });
});
