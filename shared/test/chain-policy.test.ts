// The TypeScript mirror of FederationPolicy: numbers ↔ the contract's fixed-point struct, and the
// range checks a UI or the coordinator applies before proposing (contracts/test keeps them equal
// to the contract's own).
import { describe, expect, it } from 'vitest';
import {
  ADAPTER_RULES,
  AGGREGATION_RULES,
  LORA_TARGETS,
  MAX_EXAMPLES_PER_UPDATE_LIMIT,
  decodePolicy,
  encodePolicy,
  policyViolation,
  type FederationPolicy,
  type PolicyStruct,
} from '@commons/chain';
import { PROJECTIONS } from '../src/model/config.ts';

const POLICY: FederationPolicy = {
  clipNorm: 1,
  noiseMultiplier: 1,
  minClients: 3,
  maxClients: 100,
  sampleRate: 1,
  localEpochs: 1,
  learningRate: 0.001,
  aggregationRule: 'fedavg',
  secureAggregation: true,
  epsilonBudget: 10,
  delta: 1e-5,
  roundDeadlineSeconds: 600,
  clipTargetQuantile: 0,
  secAggNumShares: 0,
  secAggThreshold: 0.666667,
  maxExamplesPerUpdate: 10_000,
  adapter: { rule: 'full-delta', rank: 0, alpha: 0, targets: [] },
};

describe('encodePolicy / decodePolicy', () => {
  it('encodes the privacy knobs as fixed point and back', () => {
    const adaptive = {
      ...POLICY,
      clipTargetQuantile: 0.9,
      secAggNumShares: 7,
      secAggThreshold: 0.75,
    };
    const raw = encodePolicy(adaptive);
    expect(raw).toMatchObject({
      clipTargetQuantileMicro: 900_000n,
      secAggNumShares: 7n,
      secAggThresholdMicro: 750_000n,
    });
    expect(decodePolicy(raw)).toEqual(adaptive);
  });

  it('keeps the default two-thirds threshold exact', () => {
    const raw = encodePolicy(POLICY);
    expect(raw.secAggThresholdMicro).toBe(666_667n);
    expect(raw.clipTargetQuantileMicro).toBe(0n);
    expect(raw.secAggNumShares).toBe(0n);
    expect(decodePolicy(raw)).toEqual(POLICY);
    expect(policyViolation(raw)).toBeNull();
  });

  it('gives fedyogi, fedadagrad and multi-krum the codes 6, 7, 8 and knows no code 9', () => {
    const codes = (['fedyogi', 'fedadagrad', 'multi-krum'] as const).map(
      (rule) => encodePolicy({ ...POLICY, aggregationRule: rule }).aggregationRule,
    );
    expect(codes).toEqual([6n, 7n, 8n]);
    for (const [code, rule] of AGGREGATION_RULES.entries()) {
      expect(decodePolicy({ ...encodePolicy(POLICY), aggregationRule: BigInt(code) })).toEqual({
        ...POLICY,
        aggregationRule: rule,
      });
    }
    const nine = { ...encodePolicy(POLICY), aggregationRule: 9n };
    expect(() => decodePolicy(nine)).toThrow(/Unknown aggregation rule code 9/);
    expect(policyViolation(nine)).toEqual({
      error: 'FederationPolicyOutOfRange',
      field: 'aggregationRule',
      value: 9n,
      min: 0n,
      max: 8n,
    });
  });
});

describe('the adapter a policy trains', () => {
  it('names the projections in the engine order, one bit each', () => {
    expect([...LORA_TARGETS]).toEqual([...PROJECTIONS]);
    expect([...ADAPTER_RULES]).toEqual(['full-delta', 'ffa-lora', 'lora-fedavg']);
  });

  it('encodes rule, rank, α and targets, and decodes them back', () => {
    const ffa = {
      ...POLICY,
      adapter: {
        rule: 'ffa-lora' as const,
        rank: 8,
        alpha: 16,
        targets: ['q_proj' as const, 'v_proj' as const],
      },
    };
    const raw = encodePolicy(ffa);
    expect(raw).toMatchObject({
      adapterRule: 1n,
      loraRank: 8n,
      loraAlphaMicro: 16_000000n,
      loraTargets: 0b101n,
    });
    expect(decodePolicy(raw)).toEqual(ffa);
    expect(policyViolation(raw)).toBeNull();
    const all = {
      ...ffa,
      adapter: { ...ffa.adapter, rule: 'lora-fedavg' as const, targets: [...LORA_TARGETS] },
    };
    expect(encodePolicy(all)).toMatchObject({ adapterRule: 2n, loraTargets: 127n });
    expect(decodePolicy(encodePolicy(all))).toEqual(all);
  });

  it('stores a full-delta policy with no shape, whatever shape it was given', () => {
    const raw = encodePolicy({
      ...POLICY,
      adapter: { rule: 'full-delta', rank: 8, alpha: 16, targets: ['q_proj'] },
    });
    expect(raw).toMatchObject({
      adapterRule: 0n,
      loraRank: 0n,
      loraAlphaMicro: 0n,
      loraTargets: 0n,
    });
    expect(decodePolicy(raw).adapter).toEqual({
      rule: 'full-delta',
      rank: 0,
      alpha: 0,
      targets: [],
    });
  });

  it('refuses by name an unknown rule or target, and a shape out of range', () => {
    expect(() =>
      encodePolicy({ ...POLICY, adapter: { ...POLICY.adapter, rule: 'dora' as 'ffa-lora' } }),
    ).toThrow(/Unknown adapter rule dora/);
    expect(() =>
      encodePolicy({
        ...POLICY,
        adapter: { rule: 'ffa-lora', rank: 8, alpha: 16, targets: ['lm_head' as 'q_proj'] },
      }),
    ).toThrow(/Unknown LoRA target lm_head/);
    expect(() =>
      encodePolicy({
        ...POLICY,
        adapter: { rule: 'ffa-lora', rank: 8, alpha: 16, targets: ['q_proj', 'q_proj'] },
      }),
    ).toThrow(/LoRA target q_proj is listed twice/);
    expect(() =>
      encodePolicy({
        ...POLICY,
        adapter: { rule: 'ffa-lora', rank: 2.5, alpha: 16, targets: ['q_proj'] },
      }),
    ).toThrow(/rank must be a whole number, got 2.5/);
    const ffa = encodePolicy({
      ...POLICY,
      adapter: { rule: 'ffa-lora', rank: 8, alpha: 16, targets: ['q_proj'] },
    });
    const out = (field: string, value: bigint, min: bigint, max: bigint) => ({
      error: 'FederationPolicyOutOfRange',
      field,
      value,
      min,
      max,
    });
    expect(policyViolation({ ...ffa, loraRank: 0n })).toEqual(out('loraRank', 0n, 1n, 256n));
    expect(policyViolation({ ...ffa, loraRank: 257n })).toEqual(out('loraRank', 257n, 1n, 256n));
    expect(policyViolation({ ...ffa, loraAlphaMicro: 0n })).toEqual(
      out('loraAlpha', 0n, 1n, 1024_000000n),
    );
    expect(policyViolation({ ...ffa, loraTargets: 128n })).toEqual(
      out('loraTargets', 128n, 1n, 127n),
    );
    expect(policyViolation({ ...ffa, adapterRule: 3n })).toEqual(out('adapterRule', 3n, 0n, 2n));
    // A full-delta rule with a shape left over is refused: the shape would mean nothing.
    const full = encodePolicy(POLICY);
    expect(policyViolation({ ...full, loraRank: 8n })).toEqual(out('loraRank', 8n, 0n, 0n));
    expect(() => decodePolicy({ ...full, adapterRule: 3n })).toThrow(/Unknown adapter rule code 3/);
  });
});

describe('policyViolation', () => {
  const base = encodePolicy(POLICY);
  const check = (patch: Partial<PolicyStruct>) => policyViolation({ ...base, ...patch });
  const outOfRange = (field: string, value: bigint, min: bigint, max: bigint) => ({
    error: 'FederationPolicyOutOfRange',
    field,
    value,
    min,
    max,
  });

  it('bounds the clip target quantile to [0, 1): 0 is fixed clipping', () => {
    for (const value of [0n, 1n, 999_999n])
      expect(check({ clipTargetQuantileMicro: value })).toBeNull();
    expect(check({ clipTargetQuantileMicro: 1_000000n })).toEqual(
      outOfRange('clipTargetQuantile', 1_000000n, 0n, 999_999n),
    );
  });

  it('accepts 0 or an odd neighbourhood in [3, 1001]', () => {
    for (const value of [0n, 3n, 5n, 1001n]) expect(check({ secAggNumShares: value })).toBeNull();
    for (const value of [1n, 2n, 1002n, 1003n]) {
      expect(check({ secAggNumShares: value })).toEqual(
        outOfRange('secAggNumShares', value, 3n, 1001n),
      );
    }
    for (const value of [4n, 1000n]) {
      expect(check({ secAggNumShares: value })).toEqual({
        error: 'FederationPolicyNotOdd',
        field: 'secAggNumShares',
        value,
        min: 3n,
        max: 1001n,
      });
    }
  });

  it('needs a threshold above one half of the neighbourhood, at most all of it', () => {
    for (const value of [500_001n, 1_000000n])
      expect(check({ secAggThresholdMicro: value })).toBeNull();
    for (const value of [0n, 500_000n, 1_000001n]) {
      expect(check({ secAggThresholdMicro: value })).toEqual(
        outOfRange('secAggThreshold', value, 500_001n, 1_000000n),
      );
    }
  });

  it('caps the FedAvg weight of one upload within [1, 2^32 − 1]', () => {
    const limit = 2n ** 32n - 1n;
    expect(MAX_EXAMPLES_PER_UPDATE_LIMIT).toBe(limit);
    for (const value of [1n, 10_000n, limit])
      expect(check({ maxExamplesPerUpdate: value })).toBeNull();
    for (const value of [0n, limit + 1n, 2n ** 53n - 1n]) {
      expect(check({ maxExamplesPerUpdate: value })).toEqual(
        outOfRange('maxExamplesPerUpdate', value, 1n, limit),
      );
    }
    const capped = { ...POLICY, maxExamplesPerUpdate: 250 };
    expect(encodePolicy(capped).maxExamplesPerUpdate).toBe(250n);
    expect(decodePolicy(encodePolicy(capped))).toEqual(capped);
  });

  it('reports the first violation in the contract order', () => {
    expect(
      check({ roundDeadlineSeconds: 1n, secAggNumShares: 2n, secAggThresholdMicro: 0n })?.field,
    ).toBe('roundDeadline');
    expect(check({ secAggNumShares: 2n, secAggThresholdMicro: 0n })?.field).toBe('secAggNumShares');
  });
});
