// FederationPolicy: versioning and range checks, including a property test against the client's
// mirror of the ranges (policyViolation) over random policies.
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ZeroHash, type Contract } from 'ethers';
import {
  ADAPTER_RULES,
  AGGREGATION_RULES,
  LORA_TARGETS,
  encodePolicy,
  policyViolation,
  type FederationPolicy,
  type PolicyStruct,
} from '@commons/chain';
import { DEFAULT_POLICY } from '../src/deploy.ts';
import { deployFixture, expectRevert, type Fixture } from './fixture.ts';
import { random } from './random.ts';

let f: Fixture;
let policy: Contract;
beforeAll(async () => {
  f = await deployFixture();
});
beforeEach(async () => {
  await f.reset();
  // Range checks are exercised directly as the timelock; governance.test.ts covers the vote path.
  policy = f.client.contracts.federationPolicy.connect(await f.impersonateTimelock()) as Contract;
});

const base = encodePolicy(DEFAULT_POLICY);

describe('FederationPolicy', () => {
  it('starts at version 1 with the deployment policy', async () => {
    expect(await f.client.policy()).toEqual({ version: 1, policy: DEFAULT_POLICY });
    await expectRevert(f.client.policyAt(0), 'FederationPolicyUnknownVersion', [0n, 1n]);
    await expectRevert(f.client.policyAt(2), 'FederationPolicyUnknownVersion', [2n, 1n]);
  });

  it('keeps every version and emits PolicyChanged', async () => {
    const next = { ...base, minClients: 10n, maxClients: 20n };
    const receipt = await (await policy.getFunction('setPolicy').send(next)).wait();
    const event = receipt?.logs
      .map((log) => policy.interface.parseLog(log))
      .find((parsed) => parsed?.name === 'PolicyChanged');
    expect(event?.args[0]).toBe(2n);
    expect((await f.client.policy()).policy.minClients).toBe(10);
    expect((await f.client.policyAt(1)).minClients).toBe(DEFAULT_POLICY.minClients);
  });

  const edges: [string, Partial<PolicyStruct>, bigint, bigint, bigint][] = [
    ['clipNorm', { clipNormMicro: 0n }, 0n, 1n, 1000_000000n],
    ['clipNorm', { clipNormMicro: 1000_000001n }, 1000_000001n, 1n, 1000_000000n],
    ['noiseMultiplier', { noiseMultiplierMicro: 100_000001n }, 100_000001n, 0n, 100_000000n],
    ['minClients', { minClients: 0n, secureAggregation: false }, 0n, 1n, 100_000n],
    ['minClients', { minClients: 1n, secureAggregation: true }, 1n, 2n, 100_000n],
    ['maxClients', { minClients: 5n, maxClients: 4n }, 4n, 5n, 100_000n],
    ['maxClients', { maxClients: 100_001n }, 100_001n, 3n, 100_000n],
    ['sampleRate', { sampleRateMicro: 0n }, 0n, 1n, 1_000000n],
    ['sampleRate', { sampleRateMicro: 1_000001n }, 1_000001n, 1n, 1_000000n],
    ['localEpochs', { localEpochs: 101n }, 101n, 1n, 100n],
    ['learningRate', { learningRateMicro: 0n }, 0n, 1n, 10_000000n],
    ['aggregationRule', { aggregationRule: 9n }, 9n, 0n, 8n],
    ['epsilonBudget', { epsilonBudgetMicro: 0n }, 0n, 1n, 1000_000000n],
    ['delta', { deltaWad: 0n }, 0n, 1n, 10n ** 15n],
    ['delta', { deltaWad: 10n ** 15n + 1n }, 10n ** 15n + 1n, 1n, 10n ** 15n],
    ['roundDeadline', { roundDeadlineSeconds: 9n }, 9n, 10n, 604_800n],
    ['roundDeadline', { roundDeadlineSeconds: 604_801n }, 604_801n, 10n, 604_800n],
    ['clipTargetQuantile', { clipTargetQuantileMicro: 1_000000n }, 1_000000n, 0n, 999_999n],
    ['secAggNumShares', { secAggNumShares: 1n }, 1n, 3n, 1001n],
    ['secAggNumShares', { secAggNumShares: 2n }, 2n, 3n, 1001n],
    ['secAggNumShares', { secAggNumShares: 1003n }, 1003n, 3n, 1001n],
    ['secAggThreshold', { secAggThresholdMicro: 0n }, 0n, 500_001n, 1_000000n],
    ['secAggThreshold', { secAggThresholdMicro: 500_000n }, 500_000n, 500_001n, 1_000000n],
    ['secAggThreshold', { secAggThresholdMicro: 1_000001n }, 1_000001n, 500_001n, 1_000000n],
    ['maxExamplesPerUpdate', { maxExamplesPerUpdate: 0n }, 0n, 1n, 2n ** 32n - 1n],
    ['maxExamplesPerUpdate', { maxExamplesPerUpdate: 2n ** 32n }, 2n ** 32n, 1n, 2n ** 32n - 1n],
    // The attack of issue 11 item 16: a weight of 2^53 − 1 cannot even be set as the cap.
    [
      'maxExamplesPerUpdate',
      { maxExamplesPerUpdate: 2n ** 53n - 1n },
      2n ** 53n - 1n,
      1n,
      2n ** 32n - 1n,
    ],
  ];

  it.each(edges)('rejects %s out of range (%o)', async (field, patch, value, min, max) => {
    await expectRevert(
      policy.getFunction('setPolicy').send({ ...base, ...patch }),
      'FederationPolicyOutOfRange',
      [field, value, min, max],
    );
  });

  it.each([4n, 1000n])('rejects an even SecAgg+ neighbourhood (%s)', async (shares) => {
    const next = { ...base, secAggNumShares: shares };
    expect(policyViolation(next)).toMatchObject({
      error: 'FederationPolicyNotOdd',
      field: 'secAggNumShares',
      value: shares,
    });
    await expectRevert(policy.getFunction('setPolicy').send(next), 'FederationPolicyNotOdd', [
      'secAggNumShares',
      shares,
    ]);
  });

  it('accepts every aggregation rule code and stores the privacy knobs', async () => {
    expect(await policy.getFunction('AGGREGATION_RULE_COUNT').staticCall()).toBe(
      BigInt(AGGREGATION_RULES.length),
    );
    expect(AGGREGATION_RULES.slice(6)).toEqual(['fedyogi', 'fedadagrad', 'multi-krum']);
    for (const [code, rule] of AGGREGATION_RULES.entries()) {
      const next = {
        ...DEFAULT_POLICY,
        aggregationRule: rule,
        clipTargetQuantile: 0.5,
        secAggNumShares: 2 * code + 3,
        secAggThreshold: 0.75,
      };
      await (await policy.getFunction('setPolicy').send(encodePolicy(next))).wait();
      expect(await f.client.policy()).toEqual({ version: code + 2, policy: next });
    }
  });

  it('refuses setPolicy from any account but the timelock, leaving the policy unchanged', async () => {
    const next = encodePolicy({
      ...DEFAULT_POLICY,
      aggregationRule: 'multi-krum',
      secAggNumShares: 5,
    });
    const { deployer, coordinator, alice, outsider } = f.accounts;
    for (const caller of [deployer, coordinator, alice, outsider]) {
      const asCaller = f.client.contracts.federationPolicy.connect(caller) as Contract;
      await expectRevert(
        asCaller.getFunction('setPolicy').send(next),
        'AccessControlUnauthorizedAccount',
        [caller.address, ZeroHash],
      );
    }
    expect(await f.client.policy()).toEqual({ version: 1, policy: DEFAULT_POLICY });
  });

  it('accepts the boundary values', async () => {
    const lowest = {
      ...base,
      clipNormMicro: 1n,
      noiseMultiplierMicro: 0n,
      minClients: 1n,
      maxClients: 1n,
      secureAggregation: false,
      sampleRateMicro: 1n,
      localEpochs: 1n,
      learningRateMicro: 1n,
      aggregationRule: 0n,
      epsilonBudgetMicro: 1n,
      deltaWad: 1n,
      roundDeadlineSeconds: 10n,
      clipTargetQuantileMicro: 0n,
      secAggNumShares: 0n,
      secAggThresholdMicro: 500_001n,
      maxExamplesPerUpdate: 1n,
    };
    const smallestNeighbourhood = { ...lowest, clipTargetQuantileMicro: 1n, secAggNumShares: 3n };
    const highest = {
      ...base,
      clipNormMicro: 1000_000000n,
      noiseMultiplierMicro: 100_000000n,
      minClients: 100_000n,
      maxClients: 100_000n,
      sampleRateMicro: 1_000000n,
      localEpochs: 100n,
      learningRateMicro: 10_000000n,
      aggregationRule: BigInt(AGGREGATION_RULES.length - 1),
      epsilonBudgetMicro: 1000_000000n,
      deltaWad: 10n ** 15n,
      roundDeadlineSeconds: 604_800n,
      clipTargetQuantileMicro: 999_999n,
      secAggNumShares: 1001n,
      secAggThresholdMicro: 1_000000n,
      maxExamplesPerUpdate: 2n ** 32n - 1n,
    };
    for (const p of [lowest, smallestNeighbourhood, highest]) {
      expect(policyViolation(p)).toBeNull();
      await (await policy.getFunction('setPolicy').send(p)).wait();
    }
    expect((await f.client.policy()).version).toBe(4);
  });

  it('property: the contract accepts exactly the policies policyViolation accepts', async () => {
    const rng = random(0xc0ffee);
    // Each field is drawn around its range so that about half of the policies are valid.
    const around = (min: bigint, max: bigint): bigint => {
      const roll = rng.next();
      if (roll < 0.1) return min === 0n ? 0n : min - 1n;
      if (roll < 0.2) return max + 1n;
      return min + rng.bigint(max - min + 1n);
    };
    let accepted = 0;
    let notOdd = 0;
    for (let i = 0; i < 200; i++) {
      const p: PolicyStruct = {
        clipNormMicro: rng.next() < 0.9 ? base.clipNormMicro : around(1n, 1000_000000n),
        noiseMultiplierMicro:
          rng.next() < 0.9 ? base.noiseMultiplierMicro : around(0n, 100_000000n),
        minClients: rng.next() < 0.8 ? base.minClients : around(1n, 100_000n),
        maxClients: rng.next() < 0.8 ? base.maxClients : around(1n, 100_000n),
        sampleRateMicro: rng.next() < 0.9 ? base.sampleRateMicro : around(1n, 1_000000n),
        localEpochs: rng.next() < 0.9 ? base.localEpochs : around(1n, 100n),
        learningRateMicro: rng.next() < 0.9 ? base.learningRateMicro : around(1n, 10_000000n),
        aggregationRule: rng.next() < 0.8 ? base.aggregationRule : around(0n, 8n),
        secureAggregation: rng.next() < 0.5,
        epsilonBudgetMicro: rng.next() < 0.9 ? base.epsilonBudgetMicro : around(1n, 1000_000000n),
        deltaWad: rng.next() < 0.9 ? base.deltaWad : around(1n, 10n ** 15n),
        roundDeadlineSeconds: rng.next() < 0.9 ? base.roundDeadlineSeconds : around(10n, 604_800n),
        clipTargetQuantileMicro:
          rng.next() < 0.9 ? base.clipTargetQuantileMicro : around(0n, 999_999n),
        // 0 (choose), or around [3, 1001]: even values exercise FederationPolicyNotOdd.
        secAggNumShares:
          rng.next() < 0.85 ? base.secAggNumShares : rng.next() < 0.2 ? 0n : around(3n, 1001n),
        secAggThresholdMicro:
          rng.next() < 0.9 ? base.secAggThresholdMicro : around(500_001n, 1_000000n),
        maxExamplesPerUpdate:
          rng.next() < 0.9 ? base.maxExamplesPerUpdate : around(1n, 2n ** 32n - 1n),
        // The adapter: usually a consistent shape for its rule, sometimes a field out of range
        // (or a shape left on a full-delta rule).
        ...(() => {
          const rule = rng.next() < 0.9 ? BigInt(Math.floor(rng.next() * 3)) : around(0n, 2n);
          const adapter = rule !== 0n;
          const field = (max: bigint, typical: bigint) =>
            rng.next() < 0.9
              ? adapter
                ? typical
                : 0n
              : around(adapter ? 1n : 0n, adapter ? max : 0n);
          return {
            adapterRule: rule,
            loraRank: field(256n, 8n),
            loraAlphaMicro: field(1024_000000n, 16_000000n),
            loraTargets: field(127n, 5n),
          };
        })(),
      };
      const violation = policyViolation(p);
      const call = policy.getFunction('setPolicy').staticCall(p);
      if (violation?.error === 'FederationPolicyNotOdd') {
        await expectRevert(call, violation.error, [violation.field, violation.value]);
        notOdd++;
      } else if (violation) {
        await expectRevert(call, violation.error, [
          violation.field,
          violation.value,
          violation.min,
          violation.max,
        ]);
      } else {
        await call;
        accepted++;
      }
    }
    // Both outcomes were exercised.
    expect(accepted).toBeGreaterThan(20);
    expect(accepted).toBeLessThan(170);
    expect(notOdd).toBeGreaterThan(0);
  });
});

describe('FederationPolicy adapter rule and shape', () => {
  // Whatever the deployment default, each case states its rule and whole shape.
  const ffa = { adapterRule: 1n, loraRank: 8n, loraAlphaMicro: 16_000000n, loraTargets: 0b101n };
  const loraFedAvg = { ...ffa, adapterRule: 2n };
  const fullDelta = { adapterRule: 0n, loraRank: 0n, loraAlphaMicro: 0n, loraTargets: 0n };

  const adapterEdges: [string, Partial<PolicyStruct>, bigint, bigint, bigint][] = [
    ['adapterRule', { ...ffa, adapterRule: 3n }, 3n, 0n, 2n],
    ['loraRank', { ...ffa, loraRank: 0n }, 0n, 1n, 256n],
    ['loraRank', { ...ffa, loraRank: 257n }, 257n, 1n, 256n],
    ['loraRank', { ...loraFedAvg, loraRank: 0n }, 0n, 1n, 256n],
    ['loraAlpha', { ...ffa, loraAlphaMicro: 0n }, 0n, 1n, 1024_000000n],
    ['loraAlpha', { ...ffa, loraAlphaMicro: 1024_000001n }, 1024_000001n, 1n, 1024_000000n],
    ['loraTargets', { ...ffa, loraTargets: 0n }, 0n, 1n, 127n],
    ['loraTargets', { ...loraFedAvg, loraTargets: 128n }, 128n, 1n, 127n],
    // full-delta trains no adapter: any shape left on it is refused, field by field.
    ['loraRank', { ...fullDelta, loraRank: 8n }, 8n, 0n, 0n],
    ['loraAlpha', { ...fullDelta, loraAlphaMicro: 1n }, 1n, 0n, 0n],
    ['loraTargets', { ...fullDelta, loraTargets: 1n }, 1n, 0n, 0n],
  ];

  it.each(adapterEdges)('rejects %s out of range (%o)', async (field, patch, value, min, max) => {
    const next = { ...base, ...patch };
    expect(policyViolation(next)).toEqual({
      error: 'FederationPolicyOutOfRange',
      field,
      value,
      min,
      max,
    });
    await expectRevert(policy.getFunction('setPolicy').send(next), 'FederationPolicyOutOfRange', [
      field,
      value,
      min,
      max,
    ]);
  });

  it('numbers the rules as ADAPTER_RULES does', async () => {
    expect(await policy.getFunction('ADAPTER_RULE_COUNT').staticCall()).toBe(
      BigInt(ADAPTER_RULES.length),
    );
  });

  it('accepts each rule at the edges of its shape, and stores it as the client reads it', async () => {
    const accepted = [
      fullDelta,
      { adapterRule: 1n, loraRank: 1n, loraAlphaMicro: 1n, loraTargets: 1n },
      { adapterRule: 2n, loraRank: 256n, loraAlphaMicro: 1024_000000n, loraTargets: 127n },
    ];
    for (const patch of accepted) {
      const next = { ...base, ...patch };
      expect(policyViolation(next)).toBeNull();
      await (await policy.getFunction('setPolicy').send(next)).wait();
    }
    expect((await f.client.policy()).policy.adapter).toEqual({
      rule: 'lora-fedavg',
      rank: 256,
      alpha: 1024,
      targets: [...LORA_TARGETS],
    });
    expect((await f.client.policyAt(3)).adapter).toEqual({
      rule: 'ffa-lora',
      rank: 1,
      alpha: 0.000001,
      targets: ['q_proj'],
    });
    expect((await f.client.policyAt(2)).adapter).toEqual({
      rule: 'full-delta',
      rank: 0,
      alpha: 0,
      targets: [],
    });
  });

  it('round-trips an adapter policy proposed through governance', async () => {
    const next: FederationPolicy = {
      ...DEFAULT_POLICY,
      adapter: {
        rule: 'ffa-lora',
        rank: 16,
        alpha: 32,
        targets: ['q_proj', 'k_proj', 'down_proj'],
      },
    };
    await f.pass(await f.as(f.accounts.alice).proposePolicy(next, 'Train FFA-LoRA adapters'));
    expect(await f.client.policy()).toEqual({ version: 2, policy: next });
  });
});
