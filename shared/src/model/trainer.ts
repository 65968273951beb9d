import * as tf from '@tensorflow/tfjs';
import type { TokenSplit } from './dataset.ts';
import { sampleBatch } from './dataset.ts';
import { evaluate } from './evaluate.ts';
import type { LoraAdapter } from './lora.ts';
import { AdamW, clipByGlobalNorm } from './optimizer.ts';
import type { RunOptions, TrainConfig, TrainResult } from './training-loop.ts';
import { runTrainingLoop } from './training-loop.ts';
import { Rng } from './rng.ts';
import type { Transformer } from './transformer.ts';
import { recomputedBlocks } from './transformer.ts';

/** A short run's settings; a caller overrides only what it needs. */
export const DEFAULT_TRAIN: TrainConfig = {
  steps: 200,
  batchSize: 16,
  gradAccum: 1,
  maxLr: 1e-3,
  minLr: 1e-4,
  warmupSteps: 20,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  gradClip: 1,
  evalEvery: 0,
  seed: 1,
};

/**
 * FedProx's proximal term (Li et al. 2020): μ/2 · ‖w − w_anchor‖² is added to the loss, so
 * μ · (w − w_anchor) is added to every gradient before clipping. It keeps a client's local
 * model near the round's global model when clients' data differ. The anchor holds one host
 * tensor per trained parameter, by name (e.g. the base model's `toTensors()`).
 */
export interface ProximalTerm {
  mu: number;
  anchor: Map<string, { shape: number[]; data: Float32Array }>;
}

export interface TrainerOptions {
  /** Add a FedProx proximal term; absent (or μ = 0) trains exactly as without it. */
  proximal?: ProximalTerm;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainerSnapshot {
  step: number;
  rngState: number[];
  optimizerStep: number;
  optimizer: Map<string, { shape: number[]; data: Float32Array }>;
}

/**
 * The training loop, kept apart from the network (nanoGPT's train.py): sample batches,
 * accumulate gradients, clip, AdamW with warmup + cosine, evaluate, report progress.
 * With an adapter, only the adapter's trainable factors train (B alone when A is frozen) and
 * the base weights stay fixed.
 * Deterministic given the seed and backend; cancellable between steps; resumable from
 * `snapshot()` (weights, optimizer moments, step and RNG state). Federated rounds may add
 * FedProx's proximal term (TrainerOptions.proximal).
 */
export class Trainer {
  readonly config: TrainConfig;
  private readonly model: Transformer;
  private readonly params: Map<string, tf.Variable>;
  private readonly optimizer: AdamW;
  private rng: Rng;
  private step = 0;
  private readonly proximal: { mu: number; anchor: Map<string, tf.Tensor> } | null;

  /** Train `model`, or only `adapter` (which must be attached to the model) when given. */
  constructor(
    model: Transformer,
    config: Partial<TrainConfig> = {},
    adapter: LoraAdapter | null = null,
    options: TrainerOptions = {},
  ) {
    this.config = { ...DEFAULT_TRAIN, ...config };
    this.model = model;
    if (adapter && model.adapter !== adapter)
      throw new Error('attach the adapter to the model first');
    this.params = adapter ? adapter.trainable : model.params;
    // The base is frozen while an adapter trains: its kernels then skip the base's gradients
    // (layers.ts), which tfjs would otherwise compute in full and throw away.
    for (const v of model.params.values()) v.trainable = adapter === null;
    // Before the optimizer, so a bad anchor leaves nothing allocated.
    this.proximal =
      options.proximal && options.proximal.mu > 0 ? this.anchor(options.proximal) : null;
    this.optimizer = new AdamW(this.params, adapter ? () => false : (name) => model.decayed(name), {
      beta1: this.config.beta1,
      beta2: this.config.beta2,
      eps: 1e-8,
      weightDecay: this.config.weightDecay,
    });
    this.rng = new Rng(this.config.seed);
  }

  private anchor({ mu, anchor }: ProximalTerm): { mu: number; anchor: Map<string, tf.Tensor> } {
    if (!Number.isFinite(mu)) throw new Error(`proximal mu must be finite, got ${mu}`);
    const tensors = new Map<string, tf.Tensor>();
    for (const [name, p] of this.params) {
      const a = anchor.get(name);
      if (!a || a.data.length !== p.size) {
        for (const t of tensors.values()) t.dispose();
        throw new Error(`the proximal anchor is missing or misshapen for "${name}"`);
      }
      tensors.set(name, tf.tensor(a.data, p.shape));
    }
    return { mu, anchor: tensors };
  }

  get completedSteps(): number {
    return this.step;
  }

  /**
   * Run until `config.steps` optimiser steps are done (counting steps restored from a
   * snapshot), `signal` aborts, or an error. Yields to the event loop between steps.
   */
  async run(train: TokenSplit, options: RunOptions = {}): Promise<TrainResult> {
    const vars = [...this.params.values()];
    const names = [...this.params.keys()];
    const { batchSize, gradAccum } = this.config;
    const T = this.model.config.blockSize;
    return runTrainingLoop(
      {
        config: this.config,
        blockSize: T,
        completed: () => this.step,
        step: async (split, lr) => {
          const r = this.trainStep(split.tokens, batchSize, T, gradAccum, lr, vars, names);
          this.step += 1;
          return r;
        },
        evaluate: (val) => evaluate(this.model, val),
      },
      train,
      options,
    );
  }

  private trainStep(
    tokens: Int32Array,
    B: number,
    T: number,
    accum: number,
    lr: number,
    vars: tf.Variable[],
    names: string[],
  ): { loss: number; gradNorm: number } {
    let lossSum = 0;
    const summed = new Map<string, tf.Tensor>();
    // Where every block's activations would not fit, the fewest blocks that make room run
    // again in the backward.
    const recompute = recomputedBlocks(this.model.config, B, T);
    try {
      for (let micro = 0; micro < accum; micro++) {
        const { batch, targets } = sampleBatch(tokens, B, T, this.rng);
        const dropoutSeed = this.rng.nextU32();
        const { value, grads } = tf.variableGrads(
          () => this.model.loss(batch, targets, { training: true, dropoutSeed, recompute }),
          vars,
        );
        lossSum += value.dataSync()[0]!;
        value.dispose();
        vars.forEach((v, i) => {
          const g = grads[v.name]!;
          const name = names[i]!;
          const prev = summed.get(name);
          if (prev) {
            summed.set(name, tf.add(prev, g));
            prev.dispose();
            g.dispose();
          } else {
            summed.set(name, g);
          }
        });
      }
      if (accum > 1) {
        for (const [name, g] of summed) {
          summed.set(name, tf.div(g, accum));
          g.dispose();
        }
      }
      if (this.proximal) {
        const { mu, anchor } = this.proximal;
        for (const [name, g] of summed) {
          const w = this.params.get(name)!;
          // ∇ μ/2‖w − w₀‖² = μ(w − w₀)
          summed.set(
            name,
            tf.tidy(() => tf.add(g, tf.mul(tf.sub(w, anchor.get(name)!), mu))),
          );
          g.dispose();
        }
      }
      const { grads, norm } = clipByGlobalNorm(summed, this.config.gradClip);
      this.optimizer.apply(grads, lr);
      if (grads !== summed) for (const g of grads.values()) g.dispose();
      return { loss: lossSum / accum, gradNorm: norm };
    } finally {
      for (const g of summed.values()) g.dispose();
    }
  }

  snapshot(): TrainerSnapshot {
    return {
      step: this.step,
      rngState: this.rng.state,
      optimizerStep: this.optimizer.step,
      optimizer: this.optimizer.stateTensors(),
    };
  }

  /** Continue from a snapshot taken by `snapshot()` on a trainer with the same parameters. */
  restore(s: TrainerSnapshot): void {
    this.optimizer.restore(s.optimizerStep, s.optimizer);
    this.rng = Rng.fromState(s.rngState);
    this.step = s.step;
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const t of this.proximal?.anchor.values() ?? []) t.dispose();
  }
}
