import * as tf from '@tensorflow/tfjs';
import type { LoraConfig, ModelConfig } from './config.ts';
import { loraConfigSchema, PROJECTION_MODULE, projectionShapes } from './config.ts';
import { linear } from './layers.ts';
import { Rng } from './rng.ts';
import { LORA_A_SUFFIX, LORA_B_SUFFIX, factorTrains } from '../checkpoint/lora-merge.ts';
import type { NamedTensors } from '../checkpoint/tensors.ts';

/**
 * What merging needs of a model (a Transformer): its base weights by name. Named by shape rather than
 * by class, so that the adapter does not import the transformer that imports it.
 */
export interface BaseWeights {
  readonly params: ReadonlyMap<string, tf.Variable>;
}

/**
 * Low-rank adapters (Hu et al. 2021) on a model's block projections: a projection
 * y = x·Wᵀ becomes y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ with A (r, in) and B (out, r). B starts at
 * zero, so a fresh adapter leaves the model unchanged; only A and B train, so a personal
 * adapter is small to save and the shared weights stay untouched.
 *
 * Names and layouts are PEFT's, so an adapter is what `peft` saves and loads:
 * `model.layers.0.self_attn.q_proj.lora_A.weight` (r, in) and `….lora_B.weight` (out, r).
 */
const LORA_A = LORA_A_SUFFIX;
const LORA_B = LORA_B_SUFFIX;

export class LoraAdapter {
  readonly config: LoraConfig;
  readonly params: Map<string, tf.Variable>;
  /** Off: the model runs as if no adapter were attached (chat's on/off switch). */
  enabled = true;
  /**
   * The factors that train: all of them, or only the B factors when A is frozen (FFA-LoRA,
   * Sun et al. 2024: with A fixed and shared, the average of the clients' B is exactly the
   * adapter of the average, which averaging A and B separately is not).
   */
  readonly trainable: Map<string, tf.Variable>;

  private constructor(config: LoraConfig, params: Map<string, tf.Variable>, freezeA = false) {
    this.config = config;
    this.params = params;
    this.trainable = new Map([...params].filter(([name]) => factorTrains(name, freezeA)));
  }

  /** Whether A stays as it was drawn (only B trains). */
  get frozenA(): boolean {
    return this.trainable.size < this.params.size;
  }

  /** α / r: the scale of the low-rank product. */
  get scale(): number {
    return this.config.alpha / this.config.rank;
  }

  /** Names and shapes of the adapter tensors for a model config. */
  static shapes(model: ModelConfig, lora: LoraConfig): Map<string, number[]> {
    const shapes = new Map<string, number[]>();
    const dims = projectionShapes(model);
    for (let i = 0; i < model.nLayer; i++) {
      for (const target of lora.targets) {
        const [fanIn, fanOut] = dims[target];
        const base = `model.layers.${i}.${PROJECTION_MODULE[target]}.${target}`;
        shapes.set(`${base}${LORA_A}`, [lora.rank, fanIn]);
        shapes.set(`${base}${LORA_B}`, [fanOut, lora.rank]);
      }
    }
    return shapes;
  }

  /**
   * A fresh adapter: A ~ N(0, 1/in) (Kaiming-like) from `seed`, B = 0. With `freezeA` only B
   * trains, and every holder of the same seed draws the same A (a federated round announces it).
   */
  static create(
    model: ModelConfig,
    config: LoraConfig,
    seed: number,
    options: { freezeA?: boolean } = {},
  ): LoraAdapter {
    return LoraAdapter.fromTensors(
      model,
      config,
      LoraAdapter.initialTensors(model, config, seed),
      options,
    );
  }

  /**
   * The factors of a fresh adapter as host arrays, without tfjs: A ~ N(0, 1/in) from `seed`,
   * B = 0. The coordinator draws the same A as every client of an FFA-LoRA round from the
   * seed the round announces, and starts its average from these.
   */
  static initialTensors(model: ModelConfig, config: LoraConfig, seed: number): NamedTensors {
    const cfg = loraConfigSchema.parse(config);
    const rng = new Rng(seed);
    const tensors: NamedTensors = new Map();
    for (const [name, shape] of LoraAdapter.shapes(model, cfg)) {
      const data = new Float32Array(shape[0]! * shape[1]!);
      if (name.endsWith(LORA_A)) {
        const std = 1 / Math.sqrt(shape[1]!);
        for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
      }
      tensors.set(name, { shape, data });
    }
    return tensors;
  }

  static fromTensors(
    model: ModelConfig,
    config: LoraConfig,
    tensors: Map<string, { shape: number[]; data: Float32Array }>,
    options: { freezeA?: boolean } = {},
  ): LoraAdapter {
    const cfg = loraConfigSchema.parse(config);
    const expected = LoraAdapter.shapes(model, cfg);
    for (const name of tensors.keys()) {
      if (!expected.has(name)) throw new Error(`unexpected adapter tensor "${name}"`);
    }
    const params = new Map<string, tf.Variable>();
    try {
      for (const [name, shape] of expected) {
        const t = tensors.get(name);
        if (!t) throw new Error(`missing adapter tensor "${name}"`);
        if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
          throw new Error(`adapter tensor "${name}" has shape [${t.shape}], expected [${shape}]`);
        }
        const frozen = !factorTrains(name, options.freezeA === true);
        const value = tf.tensor2d(t.data, shape as [number, number]);
        params.set(name, tf.variable(value, !frozen));
        value.dispose();
      }
    } catch (err) {
      for (const v of params.values()) v.dispose();
      throw err;
    }
    return new LoraAdapter(cfg, params, options.freezeA);
  }

  /** Overwrite the factors in place (same names and shapes), e.g. with a round's new B. */
  assign(tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    for (const [name, v] of this.params) {
      const t = tensors.get(name);
      if (!t) throw new Error(`missing adapter tensor "${name}"`);
      tf.tidy(() => v.assign(tf.tensor(t.data, v.shape)));
    }
  }

  toTensors(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.params) {
      out.set(name, { shape: [...v.shape], data: new Float32Array(v.dataSync()) });
    }
    return out;
  }

  /** The adapter's contribution (α/r)·(x·Aᵀ)·Bᵀ for projection `name`, or null if none. */
  forward(name: string, x: tf.Tensor2D): tf.Tensor2D | null {
    if (!this.enabled) return null;
    const a = this.params.get(`${name}${LORA_A}`);
    const b = this.params.get(`${name}${LORA_B}`);
    if (!a || !b) return null;
    const low = linear(x, a as tf.Tensor2D); // (N, r)
    return tf.mul(linear(low, b as tf.Tensor2D), this.scale) as tf.Tensor2D; // (N, out)
  }

  /** W ← W + (α/r)·B·A for every adapted projection, and switch the adapter off. */
  merge(model: BaseWeights): void {
    this.fold(model, +1);
    this.enabled = false;
  }

  /** Undo `merge`: W ← W − (α/r)·B·A, and switch the adapter back on. */
  unmerge(model: BaseWeights): void {
    this.fold(model, -1);
    this.enabled = true;
  }

  private fold(model: BaseWeights, sign: 1 | -1): void {
    for (const name of this.params.keys()) {
      if (!name.endsWith(LORA_A)) continue;
      const base = name.slice(0, -LORA_A.length);
      const w = model.params.get(`${base}.weight`);
      if (!w) throw new Error(`model has no projection "${base}" to merge into`);
      const a = this.params.get(`${base}${LORA_A}`)!;
      const b = this.params.get(`${base}${LORA_B}`)!;
      tf.tidy(() => w.assign(tf.add(w, tf.mul(tf.matMul(b, a), sign * this.scale))));
    }
  }

  numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}
