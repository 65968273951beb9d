// The federation policy: the rules every training round obeys, as the FederationPolicy contract
// stores them (fixed-point integers) and as the coordinator uses them (numbers).
import { fromMicro, fromWad, toMicro, toWad } from './fixed-point.ts';

/** Aggregation rules, in the order of the contract's `aggregationRule` codes. */
export const AGGREGATION_RULES = [
  'fedavg',
  'fedprox',
  'fedadam',
  'fedmedian',
  'trimmed-mean',
  'krum',
] as const;

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
  };
}
