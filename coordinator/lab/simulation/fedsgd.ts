// FedSGD as McMahan et al. 2017 compare FedAvg against ("Communication-Efficient Learning of
// Deep Networks from Decentralized Data", §2): in every round each client computes the gradient
// of its loss on its batch at the current global model and sends it, taking no optimiser step
// of its own; the server averages the gradients weighted by the clients' example counts and
// takes one plain SGD step, w ← w − η·Σₖ nₖ·gₖ / Σₖ nₖ, with a server learning rate η.
//
// It runs in this process rather than through the coordinator, because the production client's
// only update is a delta after local AdamW steps (a one-step AdamW delta is about −lr·sign(g),
// which is what the old baseline measured). The rounds are otherwise the simulation's: the same
// clients' data, the same initial model, the same held-out scoring (CandidateEvaluator), so the
// rounds-to-target it counts can be set against a FedAvg simulation's. There is no transport:
// gradients are exact float32, which only helps FedSGD.
import * as tf from '@tensorflow/tfjs';
import {
  type Manifest,
  type NamedTensors,
  sampleBatch,
  Rng,
  Transformer,
} from '@commons/shared/engine';
import type { CandidateEvaluator } from '../../src/rounds/evaluator.ts';

export interface FedSgdOptions {
  /** The initial model (its manifest carries the config and tokenizer for scoring). */
  manifest: Manifest;
  tensors: NamedTensors;
  /** Each client's token stream. */
  data: readonly Int32Array[];
  /** Windows of blockSize tokens in each client's batch (its whole batch: one gradient). */
  batchSize: number;
  /** η > 0, the server's SGD learning rate. */
  serverLearningRate: number;
  rounds: number;
  seed: number;
  evaluator: CandidateEvaluator;
  /** Stop once a round's validation loss is at or below this. */
  targetLoss?: number;
  onRound?: (round: number, valLoss: number) => void;
}

export interface FedSgdResult {
  /** Validation loss after each round (round 1 first). Stops early at the target or at NaN. */
  losses: number[];
  /** The first round at or below the target; null when none was. */
  reachedAt: number | null;
  /** The run blew up (a loss above twice the initial model's, or not finite): η was too large. */
  diverged: boolean;
}

/**
 * One client's part of a round: ∇ of the mean next-token loss on `batchSize` random windows
 * of its tokens, at the model's current weights, as host vectors by parameter name.
 */
export function clientGradient(
  model: Transformer,
  tokens: Int32Array,
  batchSize: number,
  rng: Rng,
): Map<string, Float32Array> {
  const { batch, targets } = sampleBatch(tokens, batchSize, model.config.blockSize, rng);
  const vars = [...model.params.values()];
  const { value, grads } = tf.variableGrads(() => model.loss(batch, targets), vars);
  value.dispose();
  const out = new Map<string, Float32Array>();
  for (const [name, variable] of model.params) {
    const g = grads[variable.name]!;
    out.set(name, new Float32Array(g.dataSync()));
    g.dispose();
  }
  return out;
}

/**
 * The server's step: w − η·Σₖ nₖ·gₖ / Σₖ nₖ, in fresh arrays (`weights` is not changed).
 * Weights nₖ must be positive and finite, as FedAvg's are.
 */
export function sgdStep(
  weights: NamedTensors,
  gradients: readonly Map<string, Float32Array>[],
  examples: readonly number[],
  learningRate: number,
): NamedTensors {
  if (gradients.length === 0 || gradients.length !== examples.length) {
    throw new Error(
      `need one example count per gradient, got ${examples.length} for ${gradients.length}`,
    );
  }
  if (examples.some((n) => !(Number.isFinite(n) && n > 0))) {
    throw new Error(`example counts must be positive and finite, got ${examples.join(', ')}`);
  }
  const total = examples.reduce((a, b) => a + b, 0);
  const next: NamedTensors = new Map();
  for (const [name, { shape, data }] of weights) {
    const sum = new Float64Array(data.length);
    gradients.forEach((g, k) => {
      const values = g.get(name);
      if (values?.length !== data.length) {
        throw new Error(`gradient ${k} has no ${data.length} values for "${name}"`);
      }
      const w = examples[k]! / total;
      for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + w * values[i]!;
    });
    const updated = new Float32Array(data.length);
    for (let i = 0; i < updated.length; i++) updated[i] = data[i]! - learningRate * sum[i]!;
    next.set(name, { shape: [...shape], data: updated });
  }
  return next;
}

/** Runs FedSGD for up to `rounds` rounds, scoring the global model after each. */
export function runFedSgd(options: FedSgdOptions): FedSgdResult {
  const { manifest, data, batchSize, serverLearningRate, evaluator } = options;
  if (!(serverLearningRate > 0 && Number.isFinite(serverLearningRate))) {
    throw new Error(`the server learning rate must be positive, got ${serverLearningRate}`);
  }
  // Every client weighs by all the tokens it holds, as its FedAvg update does (numExamples).
  const examples = data.map((tokens) => tokens.length);
  const rngs = data.map((_, k) => new Rng(options.seed * 1009 + k + 1));
  let weights = options.tensors;
  const model = Transformer.fromTensors(manifest.config, weights);
  const losses: number[] = [];
  // Past twice the untrained model's loss, a run does not come back within any useful cap.
  const ceiling = 2 * evaluator.evaluate(manifest, weights).loss;
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const gradients = data.map((tokens, k) => clientGradient(model, tokens, batchSize, rngs[k]!));
      weights = sgdStep(weights, gradients, examples, serverLearningRate);
      model.assign(weights);
      const valLoss = evaluator.evaluate(manifest, weights).loss;
      losses.push(valLoss);
      options.onRound?.(round, valLoss);
      if (!(valLoss <= ceiling)) return { losses, reachedAt: null, diverged: true };
      if (options.targetLoss !== undefined && valLoss <= options.targetLoss) {
        return { losses, reachedAt: round, diverged: false };
      }
    }
    return { losses, reachedAt: null, diverged: false };
  } finally {
    model.dispose();
  }
}
