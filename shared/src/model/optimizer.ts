import * as tf from '@tensorflow/tfjs';

/**
 * AdamW (Loshchilov & Hutter 2019): Adam moments with weight decay applied to the weights
 * directly (decoupled), not added to the gradient; only parameters the model marks as
 * decayed (matrices, embeddings) are decayed. Moments are tf.Variables updated in place, so a
 * step allocates nothing that outlives it.
 */
export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW {
  readonly config: AdamWConfig;
  /** Steps taken so far (for bias correction). */
  step = 0;
  private readonly params: Map<string, tf.Variable>;
  private readonly decayed: (name: string) => boolean;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    params: Map<string, tf.Variable>,
    decayed: (name: string) => boolean,
    config: AdamWConfig = DEFAULT_ADAMW,
  ) {
    this.params = params;
    this.decayed = decayed;
    this.config = config;
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One update with learning rate `lr` from gradients keyed by parameter name. */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (!g) throw new Error(`no gradient for parameter "${name}"`);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        const decay = this.decayed(name) ? 1 - lr * weightDecay : 1;
        p.assign(tf.sub(decay === 1 ? p : tf.mul(p, decay), tf.mul(update, lr)));
      }
    });
  }

  /** Moments as host tensors (`m.<name>`, `v.<name>`) to save with a training checkpoint. */
  stateTensors(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [prefix, moments] of [
      ['m', this.m],
      ['v', this.v],
    ] as const) {
      for (const [name, t] of moments) {
        out.set(`${prefix}.${name}`, { shape: [...t.shape], data: new Float32Array(t.dataSync()) });
      }
    }
    return out;
  }

  /** Restore moments saved by `stateTensors` and the step count. */
  restore(step: number, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    for (const [prefix, moments] of [
      ['m', this.m],
      ['v', this.v],
    ] as const) {
      for (const [name, t] of moments) {
        const saved = tensors.get(`${prefix}.${name}`);
        if (!saved || saved.data.length !== t.size) {
          throw new Error(`optimizer state is missing or misshapen for "${prefix}.${name}"`);
        }
        t.assign(tf.tensor(saved.data, t.shape));
      }
    }
    this.step = step;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/**
 * Scale gradients so their global L2 norm is at most `maxNorm` (no-op when already under).
 * Returns the norm before clipping. Non-finite norms are an error: a NaN step would poison
 * the weights silently.
 */
export function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { grads: Map<string, tf.Tensor>; norm: number } {
  const norm = tf.tidy(() => {
    const squares = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    return tf.sqrt(tf.addN(squares));
  });
  const n = norm.dataSync()[0]!;
  norm.dispose();
  if (!Number.isFinite(n)) throw new Error(`gradient norm is ${n}; refusing to update the weights`);
  if (maxNorm <= 0 || n <= maxNorm) return { grads, norm: n };
  const scale = maxNorm / (n + 1e-6);
  const clipped = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) clipped.set(name, tf.mul(g, scale));
  return { grads: clipped, norm: n };
}

export interface Schedule {
  maxLr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
}

/** Linear warmup to maxLr, then cosine decay to minLr at totalSteps (nanoGPT's get_lr). */
export function learningRate(step: number, s: Schedule): number {
  if (step < s.warmupSteps) return (s.maxLr * (step + 1)) / s.warmupSteps;
  if (step >= s.totalSteps) return s.minLr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const ratio = (step - s.warmupSteps) / span;
  return s.minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (s.maxLr - s.minLr);
}
