import {
  computeDelta,
  decodeTensors,
  encodeTensors,
  l2Norm,
  sha256Hex,
  type NamedTensors,
  type UpdateEncoding,
} from '../checkpoint/index.ts';
import { Trainer } from '../model/trainer.ts';
import {
  constantRateConfig,
  type TrainConfig,
  type TrainProgress,
} from '../model/training-loop.ts';
import { Transformer } from '../model/transformer.ts';
import { LoraAdapter } from '../model/lora.ts';
import type { AdapterTask, TrainingTask } from '../protocol/messages.ts';
import type { BaseModel } from './base-model.ts';

/**
 * A contributor's update for one round: train the base model locally on the contributor's
 * tokens as the round's task says, take the delta (new − base), clip it to the round's L2
 * bound and encode it as the round asks. Nothing here touches the network.
 */

/** The contributor's data: text (several texts are joined like `commons train` joins files) or token ids. */
export type ContributorData = string | readonly string[] | Int32Array;

/** The data as token ids of the base model's tokenizer; ids from elsewhere are range-checked. */
export function tokenize(data: ContributorData, base: Pick<BaseModel, 'tokenizer'>): Int32Array {
  if (data instanceof Int32Array) {
    const vocab = base.tokenizer.vocabSize;
    const bad = data.find((id) => id < 0 || id >= vocab);
    if (bad !== undefined) {
      throw new RangeError(`token id ${bad} is outside the model's vocabulary of ${vocab}`);
    }
    return data;
  }
  const text = typeof data === 'string' ? data : data.join('\n\n');
  return Int32Array.from(base.tokenizer.encodeText(text));
}

/**
 * The local training run a task asks for. One local epoch is as many optimiser steps as it
 * takes for batchSize random windows of blockSize tokens per step to cover the data once (in
 * expectation); the round's maxSteps caps the total. The learning rate is constant (no warmup
 * or decay within a short local run) and there is no weight decay, so the delta reflects the
 * contributor's data and the proximal term only.
 */
export function localTrainConfig(
  task: TrainingTask,
  numTokens: number,
  blockSize: number,
): Partial<TrainConfig> {
  const stepsPerEpoch = Math.max(1, Math.ceil(numTokens / (task.batchSize * blockSize)));
  return constantRateConfig({
    steps: Math.min(task.maxSteps, task.localEpochs * stepsPerEpoch),
    batchSize: task.batchSize,
    learningRate: task.learningRate,
    seed: task.seed,
  });
}

/** The delta scaled down to L2 norm `maxNorm` when it is longer (unchanged otherwise). */
export function clipToNorm(
  delta: NamedTensors,
  maxNorm: number,
): { delta: NamedTensors; norm: number } {
  const norm = l2Norm(delta);
  return { delta: norm > maxNorm ? scaled(delta, maxNorm / norm) : delta, norm };
}

/**
 * Encodes a clipped delta so that what the coordinator decodes is within `clipNorm` too.
 * Rounding to float32/fp16 or to int8 steps can lengthen a vector slightly, so the frame is
 * decoded and measured exactly as the coordinator will; if it is over, the delta is scaled by
 * clipNorm / decoded norm less a margin that grows each try (fp16 needs about 2^-11; int8
 * scales per tensor, so its values follow a rescale exactly) and encoded again.
 */
export function encodeWithinNorm(
  delta: NamedTensors,
  encoding: UpdateEncoding,
  clipNorm: number,
): { frame: Uint8Array; norm: number } {
  let current = delta;
  for (let attempt = 0; attempt < 6; attempt++) {
    const frame = encodeTensors(current, encoding);
    const norm = l2Norm(decodeTensors(frame));
    if (norm <= clipNorm) return { frame, norm };
    current = scaled(current, (clipNorm / norm) * (1 - 1e-6 * 16 ** attempt));
  }
  throw new Error(`could not encode the update within the clip norm ${clipNorm} as ${encoding}`);
}

export interface LocalUpdateOptions {
  base: BaseModel;
  tokens: Int32Array;
  task: TrainingTask;
  /**
   * Adapter rounds: train the round's fresh LoRA adapter on the frozen base instead of the
   * base itself; the update is the change of its trainable factors (B alone under FFA-LoRA).
   */
  adapter?: AdapterTask | null;
  clipNorm: number;
  encoding: UpdateEncoding;
  /** Stops training between steps; what was trained so far still makes the update. */
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}

export interface LocalUpdate {
  /** The encoded delta (update-codec frame). */
  frame: Uint8Array;
  sha256: string;
  encoding: UpdateEncoding;
  /** L2 norm of the decoded frame: what the coordinator measures, ≤ clipNorm. */
  norm: number;
  /** L2 norm of the delta before clipping. */
  rawNorm: number;
  /** FedAvg weight: the number of tokens the contributor trained on. */
  numExamples: number;
  steps: number;
  plannedSteps: number;
  finalLoss: number;
  /** Training stopped early (signal); the update holds the steps that were done. */
  stoppedEarly: boolean;
}

/**
 * Trains, clips and encodes one round's update. Returns null when not a single step was
 * taken (stopped before the first one). The model and trainer live only inside this call.
 */
export async function trainLocalUpdate(options: LocalUpdateOptions): Promise<LocalUpdate | null> {
  const { base, tokens, task, clipNorm, encoding } = options;
  const T = base.config.blockSize;
  if (tokens.length <= T) {
    throw new RangeError(
      `the contributor's data is too short to train on (${tokens.length} tokens; need more than ${T})`,
    );
  }
  const config = localTrainConfig(task, tokens.length, T);
  const model = Transformer.fromTensors(base.config, base.tensors);
  const plan = options.adapter ?? null;
  const adapter = plan
    ? LoraAdapter.create(base.config, plan.lora, plan.seed, { freezeA: plan.rule === 'ffa-lora' })
    : null;
  // What the update is the change of: the trainable factors as drawn, or the base weights.
  const start = adapter ? trainedPart(adapter.toTensors(), adapter.trainable) : base.tensors;
  if (adapter) model.adapter = adapter;
  const trainer = new Trainer(
    model,
    config,
    adapter,
    // FedProx's proximal term pulls the trained weights towards where they started.
    task.proxMu > 0 ? { proximal: { mu: task.proxMu, anchor: start } } : {},
  );
  try {
    const result = await trainer.run(
      { tokens, chars: 0 },
      {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      },
    );
    if (result.steps === 0) return null;
    const trained = adapter
      ? trainedPart(adapter.toTensors(), adapter.trainable)
      : model.toTensors();
    const { delta, norm: rawNorm } = clipToNorm(computeDelta(start, trained), clipNorm);
    const { frame, norm } = encodeWithinNorm(delta, encoding, clipNorm);
    return {
      frame,
      sha256: sha256Hex(frame),
      encoding,
      norm,
      rawNorm,
      numExamples: tokens.length,
      steps: result.steps,
      plannedSteps: config.steps!,
      finalLoss: result.finalLoss,
      stoppedEarly: result.cancelled,
    };
  } finally {
    trainer.dispose();
    model.dispose();
    adapter?.dispose();
  }
}

/** The tensors named in `names`, in `names`' order (the adapter's trainable factors). */
function trainedPart(tensors: NamedTensors, names: ReadonlyMap<string, unknown>): NamedTensors {
  return new Map([...names.keys()].map((name) => [name, tensors.get(name)!]));
}

function scaled(tensors: NamedTensors, factor: number): NamedTensors {
  const out: NamedTensors = new Map();
  for (const [name, { shape, data }] of tensors) {
    const values = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) values[i] = (data[i] ?? 0) * factor;
    out.set(name, { shape: [...shape], data: values });
  }
  return out;
}
