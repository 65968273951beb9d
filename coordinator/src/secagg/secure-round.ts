// What the round engine calls when a round's policy asks for secure aggregation. The engine
// keeps its states and its publishing; this supplies the parts that differ: which strategies
// can work on a sum, what the round task tells clients, the SecAgg+ parameters taken from the
// policy, the driver run in place of plain uploads, and the aggregate delta it yields. Secure
// aggregation wraps the strategy (as Flower's SecAgg+ workflow wraps FedAvg): the strategy
// still configures the round and applies the delta; only the mean comes from the masked sum.
import type { FederationPolicy } from '@commons/chain';
import {
  SECAGG_DEFAULTS,
  chooseNumShares,
  majorityThreshold,
  type SecAggSettings,
  splitNoiseStddev,
} from '@commons/shared/privacy';
import { type SecureAggregationTask, DEFAULT_CHUNK_BYTES } from '@commons/shared/protocol';
import type { Logger } from 'pino';
import { averagingStrategyNames } from '../strategy/index.ts';
import type { Strategy } from '../strategy/strategy.ts';
import {
  runSecureAggregation,
  type SecureAggregationOutcome,
  type SecureContributor,
} from './driver.ts';
import type { SecAggTransport } from './transport.ts';

/** Why a recovered secure round fails instead of resuming. */
export const SECURE_ROUND_NOT_RESUMABLE =
  'the coordinator restarted during a secure-aggregation round: the masked sum, the key ' +
  'advertisements and the revealed shares lived only in its memory (by design, nothing ' +
  'unmaskable is written to disk), so the round cannot resume';

/**
 * Why `strategy` cannot run under secure aggregation, or null when it can: a rule whose
 * aggregate is a weighted mean of the updates (Strategy.averages) needs only their sum.
 */
export function secureAggregationRefusal(strategy: Strategy): string | null {
  if (strategy.averages) return null;
  return (
    `${strategy.name} needs individual updates, which secure aggregation hides; with secure ` +
    `aggregation use ${averagingStrategyNames().join(', ')}`
  );
}

/**
 * What a secure round's task tells clients. maxWeight bounds the weight coordinate of the
 * ring vector: a client weighs its update by min(examples, maxWeight), with maxWeight the tokens
 * one round of local training can read (maxSteps × batchSize × blockSize). Why a cap: the
 * weight is quantised as a fraction of maxWeight and the update's resolution shrinks with that
 * fraction, so maxWeight must be near the weights actually used; a client holding more text
 * than it can train on in one round gains no extra weight from it.
 */
export function secureTask(options: {
  policy: FederationPolicy;
  vectorLength: number;
  maxSteps: number;
  batchSize: number;
  blockSize: number;
}): SecureAggregationTask {
  return {
    vectorLength: options.vectorLength,
    maxWeight: options.maxSteps * options.batchSize * options.blockSize,
    chunkBytes: DEFAULT_CHUNK_BYTES,
    // The server never sees an update, so the policy's noise is added by the clients, split so
    // that any round the coordinator releases (≥ minClients survivors) carries all of it.
    noiseStddev:
      options.policy.noiseMultiplier > 0
        ? splitNoiseStddev({
            noiseMultiplier: options.policy.noiseMultiplier,
            clipNorm: options.policy.clipNorm,
            minSurvivors: Math.max(3, options.policy.minClients),
          })
        : 0,
  };
}

/**
 * SecAgg+ parameters for `n` clients under `policy`. Each coordinate of an update clipped to
 * L2 norm C lies in [−C, C], so clippingRange = C loses nothing (plus room for noise shares); the quantisation range is the
 * largest power of two (up to Flower's 2^22) for which n quantised vectors cannot wrap the
 * 2^32 ring. The neighbourhood size (0: chosen from n) and the threshold fraction come from
 * the policy; they are read defensively for policies written before those fields existed.
 */
export function secAggSettingsFor(
  policy: FederationPolicy,
  numClients: number,
  task: SecureAggregationTask,
  stageTimeoutMs: number,
): SecAggSettings {
  const asked = Number((policy as Partial<FederationPolicy>).secAggNumShares ?? 0);
  const numShares =
    asked > 0 ? Math.min(asked, numClients) : chooseNumShares(Math.max(3, numClients));
  const fraction = Number((policy as Partial<FederationPolicy>).secAggThreshold ?? 2 / 3);
  const reconstructionThreshold = Math.min(
    numShares,
    Math.max(majorityThreshold(numShares), Math.ceil(fraction * numShares - 1e-9)),
  );
  const modulusRange = SECAGG_DEFAULTS.modulusRange;
  const fits = 2 ** Math.floor(Math.log2(modulusRange / Math.max(1, numClients)));
  return {
    numShares,
    reconstructionThreshold,
    // Noise shares must not be clipped (that would bound the noise): 8 σ of room, beyond which a
    // Gaussian coordinate falls with probability ~1e-15.
    clippingRange: policy.clipNorm + 8 * task.noiseStddev,
    quantizationRange: Math.min(SECAGG_DEFAULTS.quantizationRange, fits),
    modulusRange,
    maxWeight: task.maxWeight,
    minClients: Math.max(3, policy.minClients),
    timeout: stageTimeoutMs / 1000,
  };
}

export interface SecureRound {
  /** The weighted mean of the contributors' updates (Σ w·x / Σ w), flat in the round's layout. */
  delta: Float32Array;
  contributors: SecureContributor[];
  outcome: SecureAggregationOutcome;
}

export interface SecureRoundInput {
  roundId: number;
  baseModel: string;
  chainId: number;
  policy: FederationPolicy;
  task: { deadline: number; secureAggregation: SecureAggregationTask };
  participants: readonly string[];
  transport: SecAggTransport;
  stageTimeoutMs: number;
  signal: AbortSignal;
  log: Logger;
}

/** Runs the SecAgg+ stages with the accepted participants and returns the round's mean delta. */
export async function runSecureRound(input: SecureRoundInput): Promise<SecureRound> {
  const { secureAggregation } = input.task;
  const outcome = await runSecureAggregation({
    roundId: input.roundId,
    baseModel: input.baseModel,
    chainId: input.chainId,
    participants: input.participants,
    vectorLength: secureAggregation.vectorLength,
    settings: secAggSettingsFor(
      input.policy,
      input.participants.length,
      secureAggregation,
      input.stageTimeoutMs,
    ),
    transport: input.transport,
    stageTimeoutMs: input.stageTimeoutMs,
    maskedInputDeadline: input.task.deadline,
    signal: input.signal,
    log: input.log,
  });
  if (!(outcome.totalWeight > 0)) {
    throw new Error(`round ${input.roundId}: the secure sum carries no weight`);
  }
  const delta = new Float32Array(outcome.weightedSum.length);
  for (let i = 0; i < delta.length; i++) {
    delta[i] = (outcome.weightedSum[i] as number) / outcome.totalWeight;
  }
  input.log.info(
    {
      round: input.roundId,
      contributors: outcome.contributors.length,
      dropped: outcome.dropped.map((d) => ({ address: d.address, stage: d.stage })),
      faults: outcome.faults.length,
      numShares: outcome.config.numShares,
      threshold: outcome.config.reconstructionThreshold,
      stageMs: outcome.stageMs,
    },
    'secure aggregation complete',
  );
  return { delta, contributors: outcome.contributors, outcome };
}
