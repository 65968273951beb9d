// What a round asks of its clients: the RoundTask sent with every invitation and stored with
// the round (a restarted coordinator re-sends the same one). Built once, when the round is
// configured, from the policy, the strategy's fit config, the base model and the engine's options.
import type { FederationPolicy } from '@commons/chain';
import type { UpdateEncoding } from '@commons/shared/engine';
import { PROTOCOL_VERSION, type RoundTask, frameByteLength } from '@commons/shared/protocol';
import { secureTask } from '../secagg/secure-round.ts';
import type { ClientFitConfig } from '../strategy/strategy.ts';
import type { BaseModel } from './active-round.ts';

/** Upload chunk size announced to clients (each chunk is one Socket.IO message). */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

export interface TaskOptions {
  encoding: UpdateEncoding;
  batchSize: number;
  maxSteps: number;
  /** Caps the policy's deadline (seconds); 0 leaves the policy's. */
  maxRoundSeconds: number;
  /** Base seed; the round's training seed is this plus the round id. */
  seed: number;
}

export interface TaskInput {
  roundId: number;
  strategy: string;
  fit: ClientFitConfig;
  base: BaseModel;
  policy: FederationPolicy;
  policyVersion: number;
  /** C for this round (the policy's, or the adaptive clipper's). */
  clipNorm: number;
  options: TaskOptions;
}

/** The training seed of round `roundId`: also what samples its clients. */
export function roundSeed(seed: number, roundId: number): number {
  return (seed + roundId) >>> 0;
}

export function buildRoundTask(input: TaskInput): RoundTask {
  const { roundId, fit, base, policy, options } = input;
  const deadlineSeconds =
    options.maxRoundSeconds > 0
      ? Math.min(options.maxRoundSeconds, policy.roundDeadlineSeconds)
      : policy.roundDeadlineSeconds;
  return {
    protocolVersion: PROTOCOL_VERSION,
    roundId,
    strategy: input.strategy,
    baseModel: { hash: base.hash, path: `/models/${base.hash}/` },
    policyVersion: input.policyVersion,
    train: {
      localEpochs: fit.localEpochs,
      learningRate: fit.learningRate,
      batchSize: options.batchSize,
      maxSteps: options.maxSteps,
      proxMu: fit.proxMu,
      seed: roundSeed(options.seed, roundId),
    },
    clipNorm: input.clipNorm,
    encoding: options.encoding,
    ...(base.adapter ? { adapter: base.adapter.task } : {}),
    upload: {
      frameBytes: frameByteLength(base.entries, options.encoding),
      chunkBytes: UPLOAD_CHUNK_BYTES,
    },
    // Invitations go out right after this; the deadline covers answering, training and uploading.
    deadline: Date.now() + deadlineSeconds * 1000,
    ...(policy.secureAggregation
      ? {
          secureAggregation: secureTask({
            policy,
            vectorLength: base.layout.size,
            maxSteps: options.maxSteps,
            batchSize: options.batchSize,
            blockSize: base.manifest.config.blockSize,
          }),
        }
      : {}),
  };
}
