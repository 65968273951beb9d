import type { TokenSplit } from './dataset.ts';
import type { Evaluation } from './evaluate.ts';
import { learningRate } from './optimizer.ts';

/** How a run trains: its length, batch, optimiser and schedule (Trainer's DEFAULT_TRAIN). */
export interface TrainConfig {
  steps: number;
  batchSize: number;
  /** Micro-batches per optimiser step (effective batch = batchSize · gradAccum). */
  gradAccum: number;
  maxLr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  /** Global-norm gradient clip; 0 disables. */
  gradClip: number;
  /** Evaluate every N steps (and at the end) when a validation split is given; 0: only at the end. */
  evalEvery: number;
  seed: number;
}

/** What a run reports after each optimiser step. */
/**
 * A short run at one learning rate: no warmup or decay, no weight decay, no periodic
 * evaluation, one micro-batch per step. What a contributor's local update runs, and what the
 * lab's baselines and adapter rounds run beside it.
 */
export function constantRateConfig(run: {
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
}): Partial<TrainConfig> {
  return {
    steps: run.steps,
    batchSize: run.batchSize,
    gradAccum: 1,
    maxLr: run.learningRate,
    minLr: run.learningRate,
    warmupSteps: 0,
    weightDecay: 0,
    evalEvery: 0,
    seed: run.seed,
  };
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  etaSec: number;
  /** Present on steps where validation ran. */
  val?: Evaluation;
}

/** How a run ended. */
export interface TrainResult {
  steps: number;
  finalLoss: number;
  val: Evaluation | null;
  tokensPerSec: number;
  seconds: number;
  cancelled: boolean;
}

/**
 * The outer loop every trainer shares: learning-rate schedule, cancellation, periodic
 * validation, progress with tokens/s and ETA, and the result. A trainer supplies only how
 * one optimiser step is taken (in this thread, or across worker threads) and how to
 * evaluate.
 */
export interface LoopHost {
  readonly config: TrainConfig;
  readonly blockSize: number;
  /** Optimiser steps done so far, counting steps restored from a snapshot. */
  completed(): number;
  /** Take one optimiser step at learning rate `lr`; afterwards completed() is one more. */
  step(train: TokenSplit, lr: number): Promise<{ loss: number; gradNorm: number }>;
  evaluate(val: TokenSplit): Evaluation;
}

export interface RunOptions {
  val?: TokenSplit;
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}

export async function runTrainingLoop(
  host: LoopHost,
  train: TokenSplit,
  options: RunOptions,
): Promise<TrainResult> {
  const { steps, batchSize, gradAccum, evalEvery } = host.config;
  const tokensPerStep = batchSize * gradAccum * host.blockSize;
  const started = performance.now();
  const startStep = host.completed();
  const rate = () =>
    ((host.completed() - startStep) * tokensPerStep) /
    Math.max((performance.now() - started) / 1000, 1e-9);
  let finalLoss = NaN;
  let val: Evaluation | null = null;
  let cancelled = false;

  while (host.completed() < steps) {
    if (options.signal?.aborted) {
      cancelled = true;
      break;
    }
    const lr = learningRate(host.completed(), {
      maxLr: host.config.maxLr,
      minLr: host.config.minLr,
      warmupSteps: host.config.warmupSteps,
      totalSteps: steps,
    });
    const { loss, gradNorm } = await host.step(train, lr);
    finalLoss = loss;
    const step = host.completed();
    const evalNow =
      options.val !== undefined && (step === steps || (evalEvery > 0 && step % evalEvery === 0));
    if (evalNow && options.val) val = host.evaluate(options.val);

    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.({
      step,
      totalSteps: steps,
      loss,
      lr,
      gradNorm,
      tokensPerSec: rate(),
      etaSec: ((steps - step) * seconds) / (step - startStep),
      ...(evalNow && val ? { val } : {}),
    });
    // Let cancellation and UI events in between steps.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return {
    steps: host.completed(),
    finalLoss,
    val,
    tokensPerSec: rate(),
    seconds: (performance.now() - started) / 1000,
    cancelled,
  };
}
