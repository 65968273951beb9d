// The federation policy: the rules every training round obeys, as the FederationPolicy contract
// stores them (fixed-point integers) and as the coordinator uses them (numbers).
import { fromMicro, fromWad, toMicro, toWad } from './fixed-point.ts';

/**
 * Aggregation rules, in the order of the contract's `aggregationRule` codes (0 fedavg … 8
 * multi-krum). New rules are appended: a code never changes meaning.
 */
export const AGGREGATION_RULES = [
  'fedavg',
  'fedprox',
  'fedadam',
  'fedmedian',
  'trimmed-mean',
  'krum',
  'fedyogi',
  'fedadagrad',
  'multi-krum',
] as const;

/**
 * What a round trains, in the order of the contract's `adapterRule` codes: the whole model's
 * delta, or a LoRA adapter by FFA-LoRA (A frozen from the round's seed, B averaged: exact) or
 * LoRA-FedAvg (A and B averaged apart). New rules are appended: a code never changes meaning.
 */
export const ADAPTER_RULES = ['full-delta', 'ffa-lora', 'lora-fedavg'] as const;
export type AdapterRule = (typeof ADAPTER_RULES)[number];

/**
 * The projections a LoRA adapter may target, in the order of the bits of the contract's
 * `loraTargets` mask (bit 0 q_proj … bit 6 down_proj); the model engine's PROJECTIONS.
 */
export const LORA_TARGETS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/** The adapter a policy's rounds train: rank, α and targets are 0, 0 and [] with full-delta. */
export interface PolicyAdapter {
  rule: AdapterRule;
  /** r, [1, 256]. */
  rank: number;
  /** α, (0, 1024]: the adapter's output is scaled by α / r. */
  alpha: number;
  /** Which projections carry it (PEFT's target_modules), at least one. */
  targets: LoraTarget[];
}

/** Rounds that train the whole model: the adapter of a full-delta policy. */
export const FULL_DELTA: PolicyAdapter = { rule: 'full-delta', rank: 0, alpha: 0, targets: [] };

/** The largest `maxExamplesPerUpdate` the contract accepts: 2^32 − 1 (a uint32's range). */
export const MAX_EXAMPLES_PER_UPDATE_LIMIT = 2n ** 32n - 1n;

export type AggregationRule = (typeof AGGREGATION_RULES)[number];

export interface FederationPolicy {
  /** L2 norm each client update is clipped to, (0, 1000]. */
  clipNorm: number;
  /** Gaussian noise σ as a multiple of the clip norm, [0, 100]. */
  noiseMultiplier: number;
  /** Fewest surviving clients for a round to count, [1, 100000] (≥ 2 with secure aggregation). */
  minClients: number;
  /** Most clients invited to a round, [minClients, 100000]. */
  maxClients: number;
  /** Fraction of eligible clients sampled per round, (0, 1]. */
  sampleRate: number;
  /** Passes over local data per round, [1, 100]. */
  localEpochs: number;
  /** Client learning rate, (0, 10]. */
  learningRate: number;
  aggregationRule: AggregationRule;
  /** Whether updates must be masked so the server sees only their sum. */
  secureAggregation: boolean;
  /** Per-member lifetime ε budget, (0, 1000]. */
  epsilonBudget: number;
  /** The δ of every (ε, δ) guarantee, (0, 0.001]. */
  delta: number;
  /** Seconds clients have to upload, [10, 604800]. */
  roundDeadlineSeconds: number;
  /**
   * Adaptive clipping (Andrew et al. 2021): the quantile γ of client update norms the clip norm
   * tracks, (0, 1), starting from `clipNorm`; 0 keeps the clip norm fixed.
   */
  clipTargetQuantile: number;
  /**
   * SecAgg+ neighbourhood size including the client itself: odd, [3, 1001]; 0 lets the
   * coordinator choose it from the number of clients (O(log n)).
   */
  secAggNumShares: number;
  /** Fraction of a neighbourhood whose shares reconstruct a dropped client's seed, (0.5, 1]. */
  secAggThreshold: number;
  /**
   * Most examples one upload's FedAvg weight may count, [1, 2^32 − 1]: on rounds without DP noise
   * an update weighs min(its reported numExamples, this cap), so a client reporting 2^53 − 1 cannot
   * make the average its own update. DP rounds weight every update equally and ignore it.
   */
  maxExamplesPerUpdate: number;
  /** What rounds train: the whole model, or a LoRA adapter of this shape by this rule. */
  adapter: PolicyAdapter;
}

/** The contract's `Policy` struct, field for field. */
export interface PolicyStruct {
  clipNormMicro: bigint;
  noiseMultiplierMicro: bigint;
  minClients: bigint;
  maxClients: bigint;
  sampleRateMicro: bigint;
  localEpochs: bigint;
  learningRateMicro: bigint;
  aggregationRule: bigint;
  secureAggregation: boolean;
  epsilonBudgetMicro: bigint;
  deltaWad: bigint;
  roundDeadlineSeconds: bigint;
  clipTargetQuantileMicro: bigint;
  secAggNumShares: bigint;
  secAggThresholdMicro: bigint;
  maxExamplesPerUpdate: bigint;
  adapterRule: bigint;
  loraRank: bigint;
  loraAlphaMicro: bigint;
  loraTargets: bigint;
}

export function encodePolicy(policy: FederationPolicy): PolicyStruct {
  const rule = AGGREGATION_RULES.indexOf(policy.aggregationRule);
  if (rule < 0) throw new Error(`Unknown aggregation rule ${String(policy.aggregationRule)}`);
  return {
    ...encodeAdapter(policy.adapter),
    clipNormMicro: toMicro(policy.clipNorm),
    noiseMultiplierMicro: toMicro(policy.noiseMultiplier),
    minClients: BigInt(policy.minClients),
    maxClients: BigInt(policy.maxClients),
    sampleRateMicro: toMicro(policy.sampleRate),
    localEpochs: BigInt(policy.localEpochs),
    learningRateMicro: toMicro(policy.learningRate),
    aggregationRule: BigInt(rule),
    secureAggregation: policy.secureAggregation,
    epsilonBudgetMicro: toMicro(policy.epsilonBudget),
    deltaWad: toWad(policy.delta),
    roundDeadlineSeconds: BigInt(policy.roundDeadlineSeconds),
    clipTargetQuantileMicro: toMicro(policy.clipTargetQuantile),
    secAggNumShares: BigInt(policy.secAggNumShares),
    secAggThresholdMicro: toMicro(policy.secAggThreshold),
    maxExamplesPerUpdate: BigInt(policy.maxExamplesPerUpdate),
  };
}

export function decodePolicy(raw: PolicyStruct): FederationPolicy {
  const rule = AGGREGATION_RULES[Number(raw.aggregationRule)];
  if (rule === undefined) throw new Error(`Unknown aggregation rule code ${raw.aggregationRule}`);
  return {
    clipNorm: fromMicro(raw.clipNormMicro),
    noiseMultiplier: fromMicro(raw.noiseMultiplierMicro),
    minClients: Number(raw.minClients),
    maxClients: Number(raw.maxClients),
    sampleRate: fromMicro(raw.sampleRateMicro),
    localEpochs: Number(raw.localEpochs),
    learningRate: fromMicro(raw.learningRateMicro),
    aggregationRule: rule,
    secureAggregation: raw.secureAggregation,
    epsilonBudget: fromMicro(raw.epsilonBudgetMicro),
    delta: fromWad(raw.deltaWad),
    roundDeadlineSeconds: Number(raw.roundDeadlineSeconds),
    clipTargetQuantile: fromMicro(raw.clipTargetQuantileMicro),
    secAggNumShares: Number(raw.secAggNumShares),
    secAggThreshold: fromMicro(raw.secAggThresholdMicro),
    maxExamplesPerUpdate: Number(raw.maxExamplesPerUpdate),
    adapter: decodeAdapter(raw),
  };
}

function encodeAdapter(
  adapter: PolicyAdapter,
): Pick<PolicyStruct, 'adapterRule' | 'loraRank' | 'loraAlphaMicro' | 'loraTargets'> {
  const rule = ADAPTER_RULES.indexOf(adapter.rule);
  if (rule < 0) throw new Error(`Unknown adapter rule ${String(adapter.rule)}`);
  if (adapter.rule === 'full-delta') {
    return { adapterRule: 0n, loraRank: 0n, loraAlphaMicro: 0n, loraTargets: 0n };
  }
  if (!Number.isInteger(adapter.rank)) {
    throw new Error(`The adapter's rank must be a whole number, got ${adapter.rank}`);
  }
  let mask = 0;
  for (const target of adapter.targets) {
    const bit = LORA_TARGETS.indexOf(target);
    if (bit < 0) throw new Error(`Unknown LoRA target ${String(target)}`);
    if (mask & (1 << bit)) throw new Error(`LoRA target ${target} is listed twice`);
    mask |= 1 << bit;
  }
  return {
    adapterRule: BigInt(rule),
    loraRank: BigInt(adapter.rank),
    loraAlphaMicro: toMicro(adapter.alpha),
    loraTargets: BigInt(mask),
  };
}

function decodeAdapter(raw: PolicyStruct): PolicyAdapter {
  const rule = ADAPTER_RULES[Number(raw.adapterRule)];
  if (rule === undefined) throw new Error(`Unknown adapter rule code ${raw.adapterRule}`);
  const mask = Number(raw.loraTargets);
  return {
    rule,
    rank: Number(raw.loraRank),
    alpha: fromMicro(raw.loraAlphaMicro),
    targets: LORA_TARGETS.filter((_, bit) => (mask >> bit) & 1),
  };
}

/**
 * A field the contract refuses, as FederationPolicy reports it: outside [min, max]
 * (FederationPolicyOutOfRange), or in range but even where it must be odd
 * (FederationPolicyNotOdd; min and max are then the field's range, which the value is within).
 */
export interface PolicyViolation {
  error: 'FederationPolicyOutOfRange' | 'FederationPolicyNotOdd';
  field: string;
  value: bigint;
  min: bigint;
  max: bigint;
}

/**
 * The first range violation of a policy, checked in the contract's order, or null when the
 * contract will accept it: lets a UI or the coordinator reject a policy before proposing it.
 * FederationPolicy on chain stays the authority; a test keeps the two in agreement.
 */
export function policyViolation(p: PolicyStruct): PolicyViolation | null {
  const range = (field: string, value: bigint, min: bigint, max: bigint): PolicyViolation | null =>
    value < min || value > max
      ? { error: 'FederationPolicyOutOfRange', field, value, min, max }
      : null;
  // A SecAgg+ neighbourhood size: 0 (the coordinator chooses) or odd within [3, 1001].
  const neighbourhood = (field: string, value: bigint): PolicyViolation | null =>
    value === 0n
      ? null
      : (range(field, value, 3n, 1001n) ??
        (value % 2n === 0n
          ? { error: 'FederationPolicyNotOdd', field, value, min: 3n, max: 1001n }
          : null));
  return (
    range('clipNorm', p.clipNormMicro, 1n, 1000_000000n) ??
    range('noiseMultiplier', p.noiseMultiplierMicro, 0n, 100_000000n) ??
    range('minClients', p.minClients, p.secureAggregation ? 2n : 1n, 100_000n) ??
    range('maxClients', p.maxClients, p.minClients, 100_000n) ??
    range('sampleRate', p.sampleRateMicro, 1n, 1_000000n) ??
    range('localEpochs', p.localEpochs, 1n, 100n) ??
    range('learningRate', p.learningRateMicro, 1n, 10_000000n) ??
    range('aggregationRule', p.aggregationRule, 0n, BigInt(AGGREGATION_RULES.length - 1)) ??
    range('epsilonBudget', p.epsilonBudgetMicro, 1n, 1000_000000n) ??
    range('delta', p.deltaWad, 1n, 10n ** 15n) ??
    range('roundDeadline', p.roundDeadlineSeconds, 10n, 7n * 86_400n) ??
    range('clipTargetQuantile', p.clipTargetQuantileMicro, 0n, 1_000000n - 1n) ??
    neighbourhood('secAggNumShares', p.secAggNumShares) ??
    range('secAggThreshold', p.secAggThresholdMicro, 500_000n + 1n, 1_000000n) ??
    range('maxExamplesPerUpdate', p.maxExamplesPerUpdate, 1n, MAX_EXAMPLES_PER_UPDATE_LIMIT) ??
    range('adapterRule', p.adapterRule, 0n, BigInt(ADAPTER_RULES.length - 1)) ??
    adapterShape(p)
  );
}

/** The adapter's rank, α and targets: in range with an adapter rule, all zero with full-delta. */
function adapterShape(p: PolicyStruct): PolicyViolation | null {
  const adapter = p.adapterRule !== 0n;
  const bound = (field: string, value: bigint, max: bigint): PolicyViolation | null => {
    const [min, top] = adapter ? [1n, max] : [0n, 0n];
    return value < min || value > top
      ? { error: 'FederationPolicyOutOfRange', field, value, min, max: top }
      : null;
  };
  return (
    bound('loraRank', p.loraRank, 256n) ??
    bound('loraAlpha', p.loraAlphaMicro, 1024_000000n) ??
    bound('loraTargets', p.loraTargets, BigInt((1 << LORA_TARGETS.length) - 1))
  );
}
