import * as tf from '@tensorflow/tfjs';
import { elementCount } from '../checkpoint/tensors.ts';
import { KernelWeights } from './kernel-weights.ts';
import { inverseFrequencies, rotaryTables } from '../decoder/rope.ts';
import type { ModelConfig, ModelDims, Projection } from './config.ts';
import {
  decoderConfig,
  layerName,
  modelConfigSchema,
  modelDims,
  parameterShapes,
} from './config.ts';
import {
  addBias,
  attention,
  crossEntropy,
  embed,
  linear,
  rotary,
  rmsNorm,
  swiglu,
} from './layers.ts';
import type { LoraAdapter } from './lora.ts';
import { Rng } from './rng.ts';

/**
 * The trainable decoder: the Hugging Face Llama forward pass (and Qwen2's, with q/k/v bias),
 * written in tfjs so it trains as well as runs. Token embedding → nLayer pre-RMSNorm blocks
 * (rotary causal self-attention with grouped-query heads, SwiGLU MLP) → final RMSNorm →
 * output head (tied to the embedding or its own matrix).
 *
 * Parameter names and layouts are transformers' own (`model.layers.0.self_attn.q_proj.weight`,
 * (out, in)), so a model saves as a Hugging Face folder and the inference engine, llama.cpp's
 * converter or PyTorch read it as they read SmolLM2 or Qwen2.5. Activations stay 2-D,
 * (B·T, C), between blocks: the one matmul shape the wasm backend runs fast.
 */

/**
 * Gradients of f() · dy with respect to xs, taken while tfjs is already back-propagating
 * (inside a custom gradient). tfjs's tape is one engine-wide list that a top-level gradient
 * computation replaces and clears when it ends, so the outer pass's tape is put back after.
 * A variable the block did not reach gets a zero gradient.
 */
function rerunGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const engine = tf.engine();
  const outer = engine.state.activeTape;
  try {
    const { value, grads } = engine.gradients(f, xs, dy, true);
    value.dispose();
    return xs.map((x, i) => grads[i] ?? tf.zerosLike(x));
  } finally {
    engine.state.activeTape = outer;
  }
}

/**
 * How many of a training step's blocks (the first ones) `config`'s model over B rows of T
 * positions should recompute (ForwardOptions.recompute): the fewest that keep the weights tfjs
 * holds and the other blocks' kept activations within TRAINING_MEMORY_BUDGET; 0 when all fit.
 * The per-position figure was measured at SmolLM2-135M's shape (about 57 MB a block over 256
 * positions: the projections' outputs, the norms', SwiGLU's four (T, intermediate) tensors,
 * attention's (heads, T, T) weights); at Qwen2.5-0.5B's it overestimates (64 MB measured
 * against 99), which leaves room for the recomputed blocks' inputs and the one block
 * recomputed at a time. Measured wasm heap over 256 positions, at the count chosen (all
 * recomputed): SmolLM2-360M 11 of 32, 2.86 GB (1.70); Qwen2.5-0.5B 12 of 24, 3.16 GB (2.39).
 */
export function recomputedBlocks(config: ModelConfig, B: number, T: number): number {
  const { heads, intermediate, hidden } = modelDims(config);
  let parameters = 0;
  for (const shape of parameterShapes(config).values()) parameters += elementCount(shape);
  const perBlock = 4 * B * T * (40 * hidden + 8 * intermediate + 6 * heads * T);
  const kept = Math.max(0, Math.floor((TRAINING_MEMORY_BUDGET - 4 * parameters) / perBlock));
  return Math.max(0, config.nLayer - kept);
}

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
  /**
   * Activation checkpointing (PyTorch's torch.utils.checkpoint, transformers'
   * gradient_checkpointing): keep only a block's input for the backward and run the block
   * again there. `true` for every block, a number for the first that many (the rest keep
   * their intermediates). Each recomputed block costs its forward again; its memory between
   * the passes is its input alone (see `recomputedBlocks`).
   */
  recompute?: boolean | number;
}

/**
 * What the weights held by tfjs and one training step's kept activations may take before
 * blocks are recomputed in the backward: wasm's heap stops at 4 GB, and the step's other
 * tensors (logits over the vocabulary, gradients, the optimiser) need the rest.
 */
const TRAINING_MEMORY_BUDGET = 3 * 2 ** 30;

/** A forward pass's rotary tables, (T, headDim) each. */
interface Positions {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
}

/** Per-layer cached keys and values, each (nKvHead, t, headSize) before the heads are shared. */
export interface KVCache {
  keys: tf.Tensor3D[];
  values: tf.Tensor3D[];
  /** Tokens already in the cache (the next token's position). */
  length: number;
}

export class Transformer {
  readonly config: ModelConfig;
  /** Every base weight, by name, in checkpoint order. */
  readonly params: Map<string, tf.Variable>;
  /** A personal adapter layered on the projections, when one is attached and enabled. */
  adapter: LoraAdapter | null = null;
  /** Every size, defaults filled in. */
  readonly dims: ModelDims;
  /** (T, T) additive causal masks by T, built once: 0 on and below the diagonal, −1e9 above. */
  private masks = new Map<number, tf.Tensor2D>();
  /** The rotary inverse frequencies. */
  private readonly inverseFrequencies: Float64Array;

  private constructor(config: ModelConfig, params: Map<string, tf.Variable>) {
    this.config = config;
    this.params = params;
    this.dims = modelDims(config);
    this.inverseFrequencies = inverseFrequencies(decoderConfig(config));
  }

  /**
   * A fresh model: weights N(0, 0.02) as transformers initialises Llama, with the two
   * projections that write into the residual stream (o_proj, down_proj) scaled by
   * 1/√(2·nLayer) as GPT-2 does, which keeps a deep stack's activations in range at the
   * start. Norm gains 1, biases 0.
   */
  static create(config: ModelConfig, seed: number): Transformer {
    const cfg = modelConfigSchema.parse(config);
    const rng = new Rng(seed);
    const params = new Map<string, tf.Variable>();
    for (const [name, shape] of parameterShapes(cfg)) {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      if (name.endsWith('.bias')) {
        // zeros
      } else if (name.endsWith('norm.weight') || name.endsWith('layernorm.weight')) {
        data.fill(1);
      } else {
        const residual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
        const std = residual ? 0.02 / Math.sqrt(2 * cfg.nLayer) : 0.02;
        for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
      }
      params.set(name, tf.variable(tf.tensor(data, shape), true));
    }
    return new Transformer(cfg, params);
  }

  /** A model from host tensors (e.g. a verified checkpoint); names and shapes must match. */
  static fromTensors(
    config: ModelConfig,
    tensors: Map<string, { shape: number[]; data: Float32Array }>,
  ): Transformer {
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
    return new Transformer(cfg, params);
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
   * RMSNorm gains do not (nanoGPT's optimiser grouping).
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
    const name = layerName(layer, proj);
    let y = linear(x, this.p(`${name}.weight`) as tf.Tensor2D, this.kernelProducts());
    const b = this.maybe(`${name}.bias`);
    if (b) y = addBias(y, b as tf.Tensor1D);
    const delta = this.adapter?.forward(name, x);
    return delta ? tf.add(y, delta) : y;
  }

  private norm(name: string, x: tf.Tensor2D): tf.Tensor2D {
    return rmsNorm(x, this.p(name) as tf.Tensor1D, this.dims.rmsNormEps);
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
   * The cos and sin tables of positions start … start+T−1, (T, headDim) each: made once per
   * forward pass and shared by every layer's queries and keys.
   */
  private positions(start: number, T: number): Positions {
    const { cos, sin } = rotaryTables(this.inverseFrequencies, start, T);
    const hd = this.dims.headDim;
    return { cos: tf.tensor2d(cos, [T, hd]), sin: tf.tensor2d(sin, [T, hd]) };
  }

  /** Rotary positions on x (N, T, headDim), in transformers' rotate_half layout. */
  private rotary(x: tf.Tensor3D, positions: Positions): tf.Tensor3D {
    return rotary(x, positions.cos, positions.sin);
  }

  /** (B·T, heads·hd) → (B·heads, T, hd). */
  private splitHeads(x: tf.Tensor2D, B: number, T: number, heads: number): tf.Tensor3D {
    const hd = this.dims.headDim;
    return tf.reshape(tf.transpose(tf.reshape(x, [B, T, heads, hd]), [0, 2, 1, 3]), [
      B * heads,
      T,
      hd,
    ]);
  }

  /** Each of B·kvHeads key/value heads repeated for the query heads that share it (repeat_kv). */
  private shareHeads(x: tf.Tensor3D, B: number): tf.Tensor3D {
    const { heads, kvHeads } = this.dims;
    if (heads === kvHeads) return x;
    const [, t, hd] = x.shape;
    const rep = heads / kvHeads;
    return tf.reshape(tf.tile(tf.reshape(x, [B * kvHeads, 1, t, hd]), [1, rep, 1, 1]), [
      B * heads,
      t,
      hd,
    ]);
  }

  /**
   * Causal self-attention over x (B·T, C) at `positions`, with grouped-query heads. With
   * `cache`, the new keys/values are appended to layer `layer`'s cache and the queries attend
   * over everything cached (incremental decoding).
   */
  private attention(
    layer: number,
    x: tf.Tensor2D,
    B: number,
    T: number,
    positions: Positions,
    opts: ForwardOptions,
    cache?: KVCache,
  ): tf.Tensor2D {
    const { heads, kvHeads, headDim: hd } = this.dims;
    const q = this.rotary(
      this.splitHeads(this.project(layer, 'q_proj', x), B, T, heads),
      positions,
    );
    let k = this.rotary(
      this.splitHeads(this.project(layer, 'k_proj', x), B, T, kvHeads),
      positions,
    );
    let v = this.splitHeads(this.project(layer, 'v_proj', x), B, T, kvHeads);
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
    // softmax(q·kᵀ/√hd + mask) (B·heads, T, t), dropped out, times v → (B·heads, T, hd).
    const drop = this.dropoutMultiplier([B * heads, T, k.shape[1]], opts, 2 * layer);
    const y = attention(
      q,
      this.shareHeads(k, B),
      this.shareHeads(v, B),
      mask,
      1 / Math.sqrt(hd),
      drop,
      this.kernelProducts(),
    );
    const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, heads, T, hd]), [0, 2, 1, 3]), [
      B * T,
      heads * hd,
    ]) as tf.Tensor2D;
    return this.dropout(this.project(layer, 'o_proj', merged), opts, 2 * layer + 1) as tf.Tensor2D;
  }

  /** SwiGLU: down(silu(gate(x)) · up(x)). */
  private mlp(layer: number, x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const h = swiglu(
      this.project(layer, 'gate_proj', x),
      this.project(layer, 'up_proj', x),
    ) as tf.Tensor2D; // (B·T, intermediate)
    return this.dropout(this.project(layer, 'down_proj', h), opts, 1000 + layer) as tf.Tensor2D;
  }

  /** Hidden states after the final RMSNorm, (B·T, C). Positions start at `start`. */
  private hidden(batch: Batch, opts: ForwardOptions, cache?: KVCache, start = 0): tf.Tensor2D {
    const { ids, B, T } = batch;
    if (ids.length !== B * T)
      throw new Error(`batch has ${ids.length} ids, expected B·T = ${B * T}`);
    if (start + T > this.config.blockSize) {
      throw new Error(`sequence of ${start + T} tokens exceeds blockSize ${this.config.blockSize}`);
    }
    for (const id of ids) {
      if (id < 0 || id >= this.config.vocabSize)
        throw new Error(`token id ${id} is outside the vocabulary`);
    }
    let x = embed(this.p('model.embed_tokens.weight') as tf.Tensor2D, ids); // (B·T, C)
    const positions = this.positions(start, T);
    x = this.dropout(x, opts, 999) as tf.Tensor2D;
    // Only a training pass recomputes: `true` is every block, a number the first that many.
    const recompute = opts.training === true && !cache ? (opts.recompute ?? 0) : 0;
    const recomputed = recompute === true ? this.config.nLayer : Number(recompute);
    for (let i = 0; i < this.config.nLayer; i++) {
      x =
        i < recomputed
          ? this.recomputedBlock(i, x, B, T, positions, opts)
          : this.block(i, x, B, T, positions, opts, cache);
    }
    return this.norm('model.norm.weight', x);
  }

  /** Block `layer`: x + attention(norm(x)), then + mlp(norm(·)). */
  private block(
    layer: number,
    x: tf.Tensor2D,
    B: number,
    T: number,
    positions: Positions,
    opts: ForwardOptions,
    cache?: KVCache,
  ): tf.Tensor2D {
    const h = `model.layers.${layer}`;
    const norm1 = this.norm(`${h}.input_layernorm.weight`, x);
    const mid = tf.add(x, this.attention(layer, norm1, B, T, positions, opts, cache));
    const norm2 = this.norm(`${h}.post_attention_layernorm.weight`, mid as tf.Tensor2D);
    return tf.add(mid, this.mlp(layer, norm2, opts)) as tf.Tensor2D;
  }

  /**
   * `block` as one differentiable op that keeps only x: its forward runs untaped (tfjs runs a
   * custom gradient's forward off the tape, in a tidy scope), and its gradient runs the block
   * again on the tape and back-propagates dy through it. The weights it trains are explicit
   * inputs, so their gradients leave through this op. Dropout masks are seeded, so the second
   * run is the first one again, value for value.
   */
  private recomputedBlock(
    layer: number,
    x: tf.Tensor2D,
    B: number,
    T: number,
    positions: Positions,
    opts: ForwardOptions,
  ): tf.Tensor2D {
    const trained = this.blockTrainables(layer);
    const op = tf.customGrad(((...args: unknown[]) => {
      const save = args.pop() as tf.GradSaveFunc;
      const input = args[0] as tf.Tensor2D;
      // The rotary tables too: the forward pass's scope has ended by the time this runs again.
      save([input, positions.cos, positions.sin]);
      return {
        value: this.block(layer, input, B, T, positions, opts),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [kept, cos, sin] = saved as tf.Tensor2D[];
          const again = () => this.block(layer, kept!, B, T, { cos: cos!, sin: sin! }, opts);
          return tf.tidy(() => rerunGradients(again, [kept!, ...trained], dy));
        },
      };
    }) as never) as (...inputs: tf.Tensor[]) => tf.Tensor2D;
    return op(x, ...trained);
  }

  /** The variables of block `layer` that train now: its base weights, its adapter factors. */
  private blockTrainables(layer: number): tf.Variable[] {
    const prefix = `model.layers.${layer}.`;
    const out: tf.Variable[] = [];
    for (const [name, v] of this.params) if (v.trainable && name.startsWith(prefix)) out.push(v);
    if (this.adapter?.enabled) {
      for (const [name, v] of this.adapter.params) {
        if (v.trainable && name.startsWith(prefix)) out.push(v);
      }
    }
    return out;
  }

  private head(x: tf.Tensor2D): tf.Tensor2D {
    const w = this.config.tiedHead ? this.p('model.embed_tokens.weight') : this.p('lm_head.weight');
    return linear(x, w as tf.Tensor2D, this.kernelProducts()); // (N, V)
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

  /** Kernel copies of the projection matrices, made on the first product on wasm. */
  private kernel: KernelWeights | null | undefined;

  private kernelProducts(): KernelWeights | null {
    if (tf.getBackend() !== 'wasm') return null;
    if (this.kernel === undefined) this.kernel = KernelWeights.create();
    return this.kernel;
  }

  dispose(): void {
    this.kernel?.dispose();
    this.kernel = undefined;
    for (const v of this.params.values()) v.dispose();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
    this.adapter = null;
  }
}
