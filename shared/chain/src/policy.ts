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
}

export function encodePolicy(policy: FederationPolicy): PolicyStruct {
  const rule = AGGREGATION_RULES.indexOf(policy.aggregationRule);
  if (rule < 0) throw new Error(`Unknown aggregation rule ${String(policy.aggregationRule)}`);
  return {
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
    range('maxExamplesPerUpdate', p.maxExamplesPerUpdate, 1n, MAX_EXAMPLES_PER_UPDATE_LIMIT)
  );
}
