import * as tf from '@tensorflow/tfjs';
import type { ModelConfig, Projection } from './config.ts';
import { modelConfigSchema, projectionShapes } from './config.ts';
import { addBias, attention, crossEntropy, embed, gelu, layerNorm, matmul } from './layers.ts';
import type { LoraAdapter } from './lora.ts';
import { Rng } from './rng.ts';

/**
 * A GPT-style decoder-only transformer (after nanoGPT's model.py): token + learned position
 * embeddings → nLayer pre-LayerNorm blocks (causal self-attention, GELU MLP) → final
 * LayerNorm → output head (tied to the token embedding or its own matrix).
 *
 * Weights are stored (in, out) so every projection is x · W, the one matmul shape the wasm
 * backend runs fast. Activations are kept 2-D as (B·T, C) between blocks for the same reason.
 * Parameter names are stable: they are the tensor names in checkpoints and adapters.
 */

/** Host-side token batch: B rows of T ids, row-major. */
export interface Batch {
  ids: Int32Array;
  B: number;
  T: number;
}

export interface ForwardOptions {
  training?: boolean;
  /** Seed for this step's dropout masks (dropout is off when not training). */
  dropoutSeed?: number;
}

/** Per-layer cached keys and values, each (nHead, t, headSize), for incremental decoding. */
export interface KVCache {
  keys: tf.Tensor3D[];
  values: tf.Tensor3D[];
  /** Tokens already in the cache (the next token's position). */
  length: number;
}

/** Names and shapes of every parameter for a config, in checkpoint order. */
export function parameterShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, blockSize: T, nEmbd: C, nLayer, bias } = config;
  const shapes = new Map<string, number[]>();
  shapes.set('wte', [V, C]);
  shapes.set('wpe', [T, C]);
  for (let i = 0; i < nLayer; i++) {
    const h = `h.${i}`;
    shapes.set(`${h}.ln_1.weight`, [C]);
    if (bias) shapes.set(`${h}.ln_1.bias`, [C]);
    for (const [proj, dims] of Object.entries(projectionShapes(config))) {
      shapes.set(`${h}.${proj}.weight`, dims);
      if (bias) shapes.set(`${h}.${proj}.bias`, [dims[1]!]);
    }
    shapes.set(`${h}.ln_2.weight`, [C]);
    if (bias) shapes.set(`${h}.ln_2.bias`, [C]);
  }
  shapes.set('ln_f.weight', [C]);
  if (bias) shapes.set('ln_f.bias', [C]);
  if (!config.tiedHead) shapes.set('lm_head.weight', [C, V]);
  return shapes;
}

export class GPT {
  readonly config: ModelConfig;
  /** Every base weight, by name, in checkpoint order. */
  readonly params: Map<string, tf.Variable>;
  /** A personal adapter layered on the projections, when one is attached and enabled. */
  adapter: LoraAdapter | null = null;
  /** (T, T) additive causal masks by T, built once: 0 on and below the diagonal, −1e9 above. */
  private masks = new Map<number, tf.Tensor2D>();

  private constructor(config: ModelConfig, params: Map<string, tf.Variable>) {
    this.config = config;
    this.params = params;
  }

  /** A fresh model, initialised as GPT-2: N(0, 0.02), residual projections scaled by 1/√(2·nLayer). */
  static create(config: ModelConfig, seed: number): GPT {
    const cfg = modelConfigSchema.parse(config);
    const rng = new Rng(seed);
    const params = new Map<string, tf.Variable>();
    for (const [name, shape] of parameterShapes(cfg)) {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      if (name.endsWith('.bias')) {
        // zeros
      } else if (name.includes('ln_')) {
        data.fill(1);
      } else {
        const std = name.endsWith('proj.weight') ? 0.02 / Math.sqrt(2 * cfg.nLayer) : 0.02;
        for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
      }
      params.set(name, tf.variable(tf.tensor(data, shape), true));
    }
    return new GPT(cfg, params);
  }

  /** A model from host tensors (e.g. a verified checkpoint); names and shapes must match. */
  static fromTensors(
    config: ModelConfig,
    tensors: Map<string, { shape: number[]; data: Float32Array }>,
  ): GPT {
    const cfg = modelConfigSchema.parse(config);
    const expected = parameterShapes(cfg);
    for (const name of tensors.keys()) {
      if (!expected.has(name)) throw new Error(`unexpected tensor "${name}" for this model config`);
    }
    const params = new Map<string, tf.Variable>();
    try {
      for (const [name, shape] of expected) {
        const t = tensors.get(name);
        if (!t) throw new Error(`missing tensor "${name}"`);
        if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
          throw new Error(`tensor "${name}" has shape [${t.shape}], expected [${shape}]`);
        }
        params.set(name, tf.variable(tf.tensor(t.data, shape), true));
      }
    } catch (err) {
      // Nothing half-built stays in memory.
      for (const v of params.values()) v.dispose();
      throw err;
    }
    return new GPT(cfg, params);
  }

  /** Host copies of every weight, in checkpoint order. */
  toTensors(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.params) {
      // Copy: some backends hand out their internal buffer.
      out.set(name, { shape: [...v.shape], data: new Float32Array(v.dataSync()) });
    }
    return out;
  }

  /** Overwrite the weights in place (same names and shapes), e.g. after a federated round. */
  assign(tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    for (const [name, v] of this.params) {
      const t = tensors.get(name);
      if (!t) throw new Error(`missing tensor "${name}"`);
      v.assign(tf.tensor(t.data, v.shape));
    }
  }

  numParams(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /**
   * Names of weights that get weight decay: matrices and embeddings do, biases and
   * LayerNorm gains do not (nanoGPT's optimiser grouping).
   */
  decayed(name: string): boolean {
    return this.params.get(name)?.rank === 2;
  }

  private p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`no parameter "${name}"`);
    return v;
  }

  private maybe(name: string): tf.Variable | null {
    return this.params.get(name) ?? null;
  }

  /** x (N, in) → (N, out) through a block projection, plus its adapter when one is on. */
  private project(layer: number, proj: Projection, x: tf.Tensor2D): tf.Tensor2D {
    const name = `h.${layer}.${proj}`;
    let y = matmul(x, this.p(`${name}.weight`) as tf.Tensor2D);
    const b = this.maybe(`${name}.bias`);
    if (b) y = addBias(y, b as tf.Tensor1D);
    const delta = this.adapter?.forward(name, x);
    return delta ? tf.add(y, delta) : y;
  }

  private norm(prefix: string, x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(
      x,
      this.p(`${prefix}.weight`) as tf.Tensor1D,
      this.maybe(`${prefix}.bias`) as tf.Tensor1D | null,
    );
  }

  private dropout(x: tf.Tensor, opts: ForwardOptions, salt: number): tf.Tensor {
    const rate = this.config.dropout;
    if (!opts.training || rate === 0) return x;
    return tf.dropout(x, rate, undefined, (opts.dropoutSeed ?? 0) * 7919 + salt);
  }

  /** What `dropout` multiplies by, for a tensor of `shape` (null when dropout is off). */
  private dropoutMultiplier(
    shape: [number, number, number],
    opts: ForwardOptions,
    salt: number,
  ): tf.Tensor3D | null {
    if (!opts.training || this.config.dropout === 0) return null;
    return this.dropout(tf.ones(shape), opts, salt) as tf.Tensor3D;
  }

  /**
   * Additive causal mask (T, past + T): query i sees keys j ≤ past + i (0), not later ones
   * (−1e9). The training shape (past = 0) is built once and kept.
   */
  private causalMask(T: number, past: number): tf.Tensor2D {
    const cached = past === 0 ? this.masks.get(T) : undefined;
    if (cached) return cached;
    const width = past + T;
    const data = new Float32Array(T * width);
    for (let i = 0; i < T; i++)
      for (let j = past + i + 1; j < width; j++) data[i * width + j] = -1e9;
    const m = tf.tensor2d(data, [T, width]);
    if (past === 0) this.masks.set(T, tf.keep(m));
    return m;
  }

  /**
   * Causal self-attention over x (B·T, C). With `cache`, the new keys/values are appended to
   * layer `layer`'s cache and the queries attend over everything cached (incremental decoding).
   */
  private attention(
    layer: number,
    x: tf.Tensor2D,
    B: number,
    T: number,
    opts: ForwardOptions,
    cache?: KVCache,
  ): tf.Tensor2D {
    const { nHead: nh, nEmbd: C } = this.config;
    const hs = C / nh;
    const qkv = this.project(layer, 'attn.qkv', x); // (B·T, 3C)
    // Split heads with only transposes wasm does fast (a column split of qkv is ~10× slower):
    // (B·T, 3C) → (B·T, 3, C) → (3, B·T, C) → (3B, T, nh, hs) → (3B, nh, T, hs) → 3 × (B·nh, T, hs).
    const split = tf.transpose(tf.reshape(qkv, [B * T, 3, C]), [1, 0, 2]);
    const perHead = tf.transpose(tf.reshape(split, [3 * B, T, nh, hs]), [0, 2, 1, 3]);
    const [q, kNew, vNew] = tf
      .split(tf.reshape(perHead, [3 * B * nh, T, hs]), 3, 0)
      .map((t) => t as tf.Tensor3D);
    let k = kNew!;
    let v = vNew!;
    const past = cache?.keys[layer]?.shape[1] ?? 0;
    // A single new query may attend to every earlier position: no mask needed then.
    const mask = T === 1 ? null : this.causalMask(T, past);
    if (cache) {
      const pastK = cache.keys[layer];
      const pastV = cache.values[layer];
      if (pastK && pastV) {
        k = tf.concat([pastK, k], 1);
        v = tf.concat([pastV, v], 1);
      }
      cache.keys[layer] = tf.keep(k);
      cache.values[layer] = tf.keep(v);
      pastK?.dispose();
      pastV?.dispose();
    }
    // softmax(q·kᵀ/√hs + mask) (B·nh, T, t), dropped out, times v → (B·nh, T, hs).
    const drop = this.dropoutMultiplier([B * nh, T, k.shape[1]], opts, 2 * layer);
    const y = attention(q!, k, v, mask, 1 / Math.sqrt(hs), drop);
    const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, nh, T, hs]), [0, 2, 1, 3]), [
      B * T,
      C,
    ]) as tf.Tensor2D;
    return this.dropout(
      this.project(layer, 'attn.proj', merged),
      opts,
      2 * layer + 1,
    ) as tf.Tensor2D;
  }

  private mlp(layer: number, x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const h = gelu(this.project(layer, 'mlp.fc', x)) as tf.Tensor2D; // (B·T, 4C)
    return this.dropout(this.project(layer, 'mlp.proj', h), opts, 1000 + layer) as tf.Tensor2D;
  }

  /** Hidden states after the final LayerNorm, (B·T, C). Positions start at `start`. */
  private hidden(batch: Batch, opts: ForwardOptions, cache?: KVCache, start = 0): tf.Tensor2D {
    const { ids, B, T } = batch;
    if (ids.length !== B * T)
      throw new Error(`batch has ${ids.length} ids, expected B·T = ${B * T}`);
    if (start + T > this.config.blockSize) {
      throw new Error(`sequence of ${start + T} tokens exceeds blockSize ${this.config.blockSize}`);
    }
    const positions = new Int32Array(B * T);
    for (let i = 0; i < B * T; i++) positions[i] = start + (i % T);
    for (const id of ids) {
      if (id < 0 || id >= this.config.vocabSize)
        throw new Error(`token id ${id} is outside the vocabulary`);
    }
    let x = tf.add(
      embed(this.p('wte') as tf.Tensor2D, ids),
      embed(this.p('wpe') as tf.Tensor2D, positions),
    ) as tf.Tensor2D; // (B·T, C)
    x = this.dropout(x, opts, 999) as tf.Tensor2D;
    for (let i = 0; i < this.config.nLayer; i++) {
      x = tf.add(x, this.attention(i, this.norm(`h.${i}.ln_1`, x), B, T, opts, cache));
      x = tf.add(x, this.mlp(i, this.norm(`h.${i}.ln_2`, x), opts));
    }
    return this.norm('ln_f', x);
  }

  private head(x: tf.Tensor2D): tf.Tensor2D {
    const w = this.config.tiedHead
      ? (tf.transpose(this.p('wte')) as tf.Tensor2D)
      : (this.p('lm_head.weight') as tf.Tensor2D);
    return matmul(x, w); // (N, V)
  }

  /** Logits for every position: (B·T, vocabSize). */
  forward(batch: Batch, opts: ForwardOptions = {}): tf.Tensor2D {
    return this.head(this.hidden(batch, opts));
  }

  /** Mean next-token cross-entropy (nats) of `targets` (B·T ids) given `batch`. */
  loss(batch: Batch, targets: Int32Array, opts: ForwardOptions = {}): tf.Scalar {
    if (targets.length !== batch.ids.length) throw new Error('targets and inputs differ in length');
    return crossEntropy(this.forward(batch, opts), targets);
  }

  /** An empty KV cache for incremental decoding. */
  newCache(): KVCache {
    return { keys: [], values: [], length: 0 };
  }

  /**
   * Feed `ids` (one sequence) through the model, appending to `cache`, and return the
   * logits for the last position on the host. With an empty cache this is the prefill.
   */
  decode(ids: readonly number[], cache: KVCache): Float32Array {
    const T = ids.length;
    if (T === 0) throw new Error('decode needs at least one token');
    const logits = tf.tidy(() => {
      const h = this.hidden({ ids: Int32Array.from(ids), B: 1, T }, {}, cache, cache.length);
      const last = tf.slice(h, [T - 1, 0], [1, this.config.nEmbd]) as tf.Tensor2D;
      return this.head(last);
    });
    cache.length += T;
    const out = logits.dataSync() as Float32Array;
    logits.dispose();
    return out;
  }

  disposeCache(cache: KVCache): void {
    for (const t of [...cache.keys, ...cache.values]) t.dispose();
    cache.keys = [];
    cache.values = [];
    cache.length = 0;
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
    this.adapter = null;
  }
}
