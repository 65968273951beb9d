import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { filledTensor, readValues } from '../backend/host-values.ts';
import { formatShape, sameShape, transposeMatrix, type HostTensor } from '../checkpoint/tensors.ts';
import { ModelFormatError } from '../formats/errors.ts';
import { decoderTensorShapes, type DecoderConfig } from './config.ts';
import { dequantizeRowsTransposedInt8, quantizeRowsInt8, type Int8Rows } from './int8.ts';
import { Int8Arena, type ArenaRows, type Int8KernelKind } from './int8-kernel.ts';
import { F32Arena } from './f32-kernel.ts';
import { Int8Staging } from './int8-staging.ts';
import type { HeldMatrix, KernelArena } from './kernel-arena.ts';
import { hostSlices } from '../model/layers.ts';
import { inverseFrequencies, rotaryTables } from './rope.ts';
import { KvStore } from './attention-kernel.ts';

/**
 * The Hugging Face Llama forward pass (and Qwen2's, the same with q/k/v biases), computed as
 * transformers computes it: pre-norm blocks x + attn(rms(x)), x + mlp(rms(x)); RMSNorm in
 * float32; rotary embeddings in the rotate_half layout; grouped-query attention with a
 * causal mask; a SwiGLU MLP, down(silu(gate(x)) · up(x)); a final RMSNorm and the LM head.
 * Keys and values of past positions are kept in a KvCache, so decoding a token costs one
 * position's work.
 */

/** How the large matrices are held: float32 tensors, or int8 in WebAssembly memory
 * (int8.ts, int8-kernel.ts). Norms and biases are float32 either way. */
export type WeightsMode = 'f32' | 'int8';

/** Rows of the tied LM head dequantised at a time: bounds the transient float32 copy of the
 * embedding table (8192 × hidden) instead of materialising all of it. */
const HEAD_CHUNK_ROWS = 8192;

/**
 * With the relaxed-SIMD kernel (int8-kernel.ts) every int8 product is the kernel's: it takes
 * a prompt 64 positions per call, a thread's rows staying in cache across them (SmolLM2-135M,
 * 512-token prompt: 11.5 → 8.2 ms/token against dequantising for tfjs's matMul). With the
 * SIMD128 kernel only up to this many positions are: past it (a long prompt) the matrix is
 * dequantised once and tfjs's float32 matMul shares it across the positions.
 */
const KERNEL_MAX_POSITIONS = 16;

interface Linear {
  /** float32: [in, out], PyTorch's [out, in] transposed once at load, since an untransposed
   * 2-D matMul is the fast path on the wasm backend. int8: PyTorch's [out, in] as it is, one
   * row per output, which is what a matrix–vector kernel reads in order. */
  w: tf.Tensor2D | HeldMatrix;
  b: tf.Tensor1D | null;
}

interface Block {
  inputNorm: tf.Tensor1D;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  postNorm: tf.Tensor1D;
  gate: Linear;
  up: Linear;
  down: Linear;
}

/**
 * Keys and values of the positions seen so far, per layer: keys transposed,
 * [numKvHeads, headDim, length], values [numKvHeads, length, headDim], so both attention
 * products are untransposed matMuls (wasm runs a transposed one 5–8× slower).
 */
export class KvCache {
  readonly keys: (tf.Tensor3D | null)[];
  readonly values: (tf.Tensor3D | null)[];
  length = 0;
  /** Positions the tensors hold: fewer than `length` after tokens decoded in the store. */
  tensorLength = 0;
  /** The same cache in WebAssembly memory, where decoded tokens attend (attention-kernel.ts). */
  store: KvStore | null = null;

  constructor(numLayers: number) {
    this.keys = Array.from({ length: numLayers }, () => null);
    this.values = Array.from({ length: numLayers }, () => null);
  }

  /** Forgets every position from `length` on (a new prompt that diverges there). */
  truncate(length: number): void {
    if (length >= this.length) return;
    if (this.tensorLength > length) {
      for (const [list, size] of [
        [this.keys, [-1, -1, length]],
        [this.values, [-1, length, -1]],
      ] as const) {
        list.forEach((t, i) => {
          if (t === null) return;
          list[i] = length === 0 ? null : tf.slice(t, [0, 0, 0], [...size]);
          t.dispose();
        });
      }
      this.tensorLength = length;
    }
    if (this.store) this.store.length = Math.min(this.store.length, length);
    this.length = length;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(null);
    this.values.fill(null);
    this.length = 0;
    this.tensorLength = 0;
    this.store = null;
  }
}

/** Reads one tensor by its Hugging Face name; loaders stream it from the model's files. */
export type TensorSource = (name: string, expectedShape: readonly number[]) => Promise<HostTensor>;

export class Decoder {
  readonly config: DecoderConfig;
  /** A tensor [hidden, vocab]; held in the arena, [vocab, hidden]. */
  readonly #embed: tf.Tensor2D | HeldMatrix;
  readonly #blocks: Block[];
  readonly #norm: tf.Tensor1D;
  /** A tensor [hidden, vocab]; held, [vocab, hidden]; null when tied to the embedding. */
  readonly #head: tf.Tensor2D | HeldMatrix | null;
  readonly #inv: Float64Array;
  /** The large matrices' memory and kernel (int8, or float32 where the engine has SIMD);
   * null where they are tfjs tensors. */
  readonly #arena: KernelArena | null;
  /** Long prompts' int8 products through the float32 kernel (int8-staging.ts), made on the
   * first such prompt where the int8 kernel is the SIMD128 one; null until then. */
  #staging: Int8Staging | null = null;
  /**
   * Where a decoded token (one position) attends: 'wasm', the KV cache in WebAssembly memory
   * and a SIMD kernel (attention-kernel.ts), or 'tfjs', the cache as tensors. A prompt always
   * runs through tfjs; the cache is carried between the two as needed.
   */
  decodeAttention: 'wasm' | 'tfjs' = 'wasm';

  private constructor(
    config: DecoderConfig,
    embed: tf.Tensor2D | HeldMatrix,
    blocks: Block[],
    norm: tf.Tensor1D,
    head: tf.Tensor2D | HeldMatrix | null,
    arena: KernelArena | null,
  ) {
    this.config = config;
    this.#embed = embed;
    this.#blocks = blocks;
    this.#norm = norm;
    this.#head = head;
    this.#arena = arena;
    this.#inv = inverseFrequencies(config);
    const matrices = blocks.flatMap((b) =>
      [b.q, b.k, b.v, b.o, b.gate, b.up, b.down].map((l) => l.w),
    );
    matrices.push(head ?? embed);
    this.#kernelsTakeAll =
      arena !== null && matrices.every((w) => !(w instanceof tf.Tensor) && arena.fits(w.cols));
  }

  /**
   * Builds the model from a source of host tensors, one tensor at a time (each host copy is
   * dropped once it is on the backend). Every tensor's shape is checked against the config
   * before it is used. With `weights: 'int8'` the large matrices are quantised per output
   * row as they arrive, copied into the model's WebAssembly arena and never become tensors.
   * `int8Kernel` forces the int8 kernel (default: the faster here, `fastestInt8Kernel`).
   */
  static async load(
    config: DecoderConfig,
    source: TensorSource,
    weights: WeightsMode = 'f32',
    options: { int8Kernel?: Int8KernelKind } = {},
  ): Promise<Decoder> {
    const shapes = decoderTensorShapes(config);
    const owned: tf.Tensor[] = [];
    const read = async (name: string): Promise<HostTensor> => {
      const expected = shapes.get(name)!;
      const host = await source(name, expected);
      if (!sameShape(host.shape, expected)) {
        throw new ModelFormatError(
          'SHAPE_MISMATCH',
          `tensor "${name}" is ${formatShape(host.shape)} but the config implies ${formatShape(expected)}`,
        );
      }
      return host;
    };
    const get = async (name: string): Promise<tf.Tensor> => {
      const host = await read(name);
      const t = tf.tensor(host.data, host.shape);
      owned.push(t);
      return t;
    };
    // The host path needs every product's input in whole blocks of the kernel (#kernelsTakeAll).
    const inputs = [config.hiddenSize, config.numHeads * config.headDim, config.intermediateSize];
    let arena: Int8Arena | F32Arena | null = null;
    if (weights === 'int8') {
      arena = new Int8Arena({
        threads: decodeThreads(inputs.every((n) => Int8Arena.fits(n))),
        kernel: options.int8Kernel,
      });
    } else if (F32Arena.available() && inputs.every((n) => F32Arena.fits(n))) {
      arena = new F32Arena({ threads: decodeThreads(true) });
    }
    const held = async (name: string): Promise<HeldMatrix> => {
      const host = await read(name);
      const [rows, cols] = host.shape as [number, number];
      return arena instanceof Int8Arena
        ? arena.hold(quantizeRowsInt8(host.data, rows, cols))
        : (arena as F32Arena).hold(host.data, rows, cols);
    };
    /** A float32 matrix as [in, out]: PyTorch's [out, in] transposed on the host (tfjs's
     * wasm transpose takes ~25 ns an element, a second for a 135M model). */
    const transposed = async (name: string): Promise<tf.Tensor2D> => {
      const host = await read(name);
      const [rows, cols] = host.shape as [number, number];
      const t = tf.tensor2d(transposeMatrix(host.data, rows, cols), [cols, rows]);
      owned.push(t);
      return t;
    };
    const matrix = async (name: string): Promise<tf.Tensor2D | HeldMatrix> =>
      arena ? held(name) : transposed(name);
    const linear = async (prefix: string, bias: boolean): Promise<Linear> => ({
      w: await matrix(`${prefix}.weight`),
      b: bias ? ((await get(`${prefix}.bias`)) as tf.Tensor1D) : null,
    });
    try {
      const c = config;
      // As a tensor: [hidden, vocab], the tied head's untransposed operand; a lookup gathers
      // columns. Held: [vocab, hidden], a lookup copies rows.
      const embed = await matrix('model.embed_tokens.weight');
      const blocks: Block[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const p = `model.layers.${i}`;
        blocks.push({
          inputNorm: (await get(`${p}.input_layernorm.weight`)) as tf.Tensor1D,
          q: await linear(`${p}.self_attn.q_proj`, c.qkvBias),
          k: await linear(`${p}.self_attn.k_proj`, c.qkvBias),
          v: await linear(`${p}.self_attn.v_proj`, c.qkvBias),
          o: await linear(`${p}.self_attn.o_proj`, c.outputBias),
          postNorm: (await get(`${p}.post_attention_layernorm.weight`)) as tf.Tensor1D,
          gate: await linear(`${p}.mlp.gate_proj`, c.mlpBias),
          up: await linear(`${p}.mlp.up_proj`, c.mlpBias),
          down: await linear(`${p}.mlp.down_proj`, c.mlpBias),
        });
      }
      const norm = (await get('model.norm.weight')) as tf.Tensor1D;
      const head = c.tiedEmbeddings ? null : await matrix('lm_head.weight');
      return new Decoder(config, embed, blocks, norm, head, arena);
    } catch (error) {
      for (const t of owned) if (!t.isDisposed) t.dispose();
      arena?.dispose();
      throw error;
    }
  }

  newCache(): KvCache {
    return new KvCache(this.config.numLayers);
  }

  /**
   * Runs `tokens` at the positions after those already in `cache`, appends their keys and
   * values to it, and returns the logits: (tokens.length, vocab), or (1, vocab) for the last
   * position only when `lastOnly` (what decoding needs).
   */
  forward(tokens: readonly number[], cache: KvCache, lastOnly = false): tf.Tensor2D {
    const c = this.config;
    if (tokens.length === 0) throw new Error('forward needs at least one token');
    if (cache.length + tokens.length > c.maxPositions) {
      throw new RangeError(
        `${cache.length + tokens.length} positions exceed the model's context of ${c.maxPositions}`,
      );
    }
    for (const id of tokens) {
      if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) {
        throw new RangeError(`token id ${id} is outside the vocabulary of ${c.vocabSize}`);
      }
    }
    const start = cache.length;
    const count = tokens.length;
    if (this.#onHost() && this.#syncStore(cache)) {
      const logits = this.#forwardOnHost(tokens, cache, lastOnly);
      return tf.tensor2d(logits, [lastOnly ? 1 : count, c.vocabSize]);
    }
    const inStore = count === 1 && this.decodeAttention === 'wasm' && this.#syncStore(cache);
    if (!inStore) this.#syncTensors(cache);
    const { cos, sin } = rotaryTables(this.#inv, start, count);
    const rope = {
      cos: tf.tensor2d(cos, [count, c.headDim]),
      sin: tf.tensor2d(sin, [count, c.headDim]),
    };
    const mask = tf.tensor2d(causalMask(start, count, c.numHeads / c.numKvHeads), [
      (count * c.numHeads) / c.numKvHeads,
      start + count,
    ]);
    try {
      const embed = this.#embed;
      let x = tf.tidy(() =>
        embed instanceof tf.Tensor
          ? (tf.transpose(
              tf.gather(embed, tf.tensor1d(tokens as number[], 'int32'), 1),
            ) as tf.Tensor2D)
          : tf.tensor2d(this.#arena!.gather(embed, tokens), [count, embed.cols]),
      );
      this.#blocks.forEach((block, layer) => {
        const next = tf.tidy(() => {
          const h = rmsNorm(x, block.inputNorm, c.rmsNormEps);
          const { out, keys, values } = this.#attention(
            block,
            h,
            cache,
            layer,
            rope,
            mask,
            inStore,
          );
          const afterAttn = tf.add<tf.Tensor2D>(x, out);
          const m = rmsNorm(afterAttn, block.postNorm, c.rmsNormEps);
          const gate = this.#apply(block.gate, m);
          // SiLU(g) = g·σ(g), times the up projection (SwiGLU).
          const mlp = this.#apply(
            block.down,
            tf.mul(tf.mul(gate, tf.sigmoid(gate)), this.#apply(block.up, m)),
          );
          return { x: tf.add(afterAttn, mlp) as tf.Tensor2D, keys, values };
        });
        x.dispose();
        x = next.x;
        if (next.keys && next.values) {
          cache.keys[layer]?.dispose();
          cache.values[layer]?.dispose();
          cache.keys[layer] = next.keys;
          cache.values[layer] = next.values;
        }
      });
      cache.length += count;
      if (inStore) (cache.store as KvStore).length = cache.length;
      else cache.tensorLength = cache.length;
      const hidden = x;
      const logits = tf.tidy((): tf.Tensor2D => {
        const last = lastOnly ? tf.slice(hidden, [count - 1, 0], [1, -1]) : hidden;
        const normed = rmsNorm(last, this.#norm, c.rmsNormEps);
        if (this.#head !== null) return this.#matMul(normed, this.#head);
        return this.#matMul(normed, embed);
      });
      hidden.dispose();
      return logits;
    } finally {
      rope.cos.dispose();
      rope.sin.dispose();
      mask.dispose();
    }
  }

  /** The norms' and biases' values on the host, read once, for {@link #forwardOnHost}. */
  #host: {
    inputNorm: Float32Array[];
    postNorm: Float32Array[];
    norm: Float32Array;
    bias: Map<tf.Tensor1D, Float32Array>;
  } | null = null;

  /** Whether prompts and decoded tokens run with no tfjs op ({@link #forwardOnHost}). */
  get runsOnHost(): boolean {
    return this.#onHost();
  }

  /**
   * Whether the forward pass can run on the host: the weights in a kernel arena, every
   * product's input a whole number of the kernel's blocks (else the int8 tensor path
   * dequantises). Fixed at load.
   */
  readonly #kernelsTakeAll: boolean;

  #onHost(): boolean {
    return this.#kernelsTakeAll && this.decodeAttention === 'wasm';
  }

  /**
   * Whether an int8 product over `count` positions runs through the float32 kernel instead:
   * for long prompts where the int8 kernel is the SIMD128 one (the relaxed one, with
   * AVX-VNNI, beat float32 on prompts: SmolLM2-360M 96.5 against 78.8 tokens/s).
   */
  #stages(w: HeldMatrix, count: number): boolean {
    const arena = this.#arena;
    return (
      arena instanceof Int8Arena &&
      arena.kernel === 'simd128' &&
      Int8Staging.takes(w as ArenaRows, count)
    );
  }

  /**
   * A prompt or a decoded token with the weights in the arena, with no tfjs op at all: the
   * products are the SIMD kernel's on two threads (int8-kernel.ts, f32-kernel.ts), attention
   * is the store's (attention-kernel.ts), one position after another so each sees those
   * before it, and the vector work between them (RMSNorm, RoPE, SwiGLU, residuals) is plain
   * loops here. Through tfjs a decoded token was ~40 small ops per layer, whose dispatch cost
   * as much as the products, and a prompt's attention, norms and activations ran on one
   * thread. Returns the logits: the last position's, or every position's.
   */
  #forwardOnHost(tokens: readonly number[], cache: KvCache, lastOnly: boolean): Float32Array {
    const c = this.config;
    const arena = this.#arena as KernelArena;
    const store = cache.store as KvStore;
    const host = (this.#host ??= {
      inputNorm: this.#blocks.map((b) => b.inputNorm.dataSync() as Float32Array),
      postNorm: this.#blocks.map((b) => b.postNorm.dataSync() as Float32Array),
      norm: this.#norm.dataSync() as Float32Array,
      bias: new Map(
        this.#blocks
          .flatMap((b) => [b.q, b.k, b.v, b.o, b.gate, b.up, b.down])
          .flatMap((l) => (l.b ? [[l.b, l.b.dataSync() as Float32Array] as const] : [])),
      ),
    });
    const count = tokens.length;
    const product = (l: Linear, x: Float32Array): Float32Array => {
      const y = this.#stages(l.w as HeldMatrix, count)
        ? (this.#staging ??= new Int8Staging(arena.threads)).matmul(l.w as ArenaRows, x, count)
        : arena.matmul(l.w as HeldMatrix, x, count);
      const b = l.b ? (host.bias.get(l.b) as Float32Array) : null;
      if (b) {
        for (let at = 0; at < y.length; at += b.length) {
          for (let j = 0; j < b.length; j++) y[at + j] = y[at + j]! + b[j]!;
        }
      }
      return y;
    };
    const start = cache.length;
    // Every position's key and value is written as it is reached: room for all of them first,
    // so the store does not grow (and copy only what it counts as held) halfway through.
    store.reserve(start + count);
    const { cos, sin } = rotaryTables(this.#inv, start, count);
    const d = c.headDim;
    const rotateRows = (m: Float32Array) => {
      const width = m.length / count;
      for (let t = 0; t < count; t++) {
        rotateHost(
          m.subarray(t * width, (t + 1) * width),
          d,
          cos.subarray(t * d, (t + 1) * d),
          sin.subarray(t * d, (t + 1) * d),
        );
      }
      return m;
    };
    const scale = 1 / Math.sqrt(d);
    const x = arena.gather(this.#embed as HeldMatrix, tokens);
    this.#blocks.forEach((block, layer) => {
      const h = rmsNormRows(x, count, host.inputNorm[layer]!, c.rmsNormEps);
      const q = rotateRows(product(block.q, h));
      const k = rotateRows(product(block.k, h));
      const v = product(block.v, h);
      // Position by position: each attends to the ones before it and itself (causal).
      const [qw, kw] = [q.length / count, k.length / count];
      const attended = new Float32Array(q.length);
      for (let t = 0; t < count; t++) {
        const row = (m: Float32Array, w: number) => m.subarray(t * w, (t + 1) * w);
        attended.set(
          store.attend(layer, start + t, row(q, qw), row(k, kw), row(v, kw), scale),
          t * qw,
        );
      }
      const out = product(block.o, attended);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + out[i]!;
      const m = rmsNormRows(x, count, host.postNorm[layer]!, c.rmsNormEps);
      const gate = product(block.gate, m);
      const up = product(block.up, m);
      swigluRows(gate, up);
      const mlp = product(block.down, gate);
      for (let i = 0; i < x.length; i++) x[i] = x[i]! + mlp[i]!;
    });
    cache.length = start + count;
    store.length = cache.length;
    const rows = lastOnly ? 1 : count;
    const last = x.subarray((count - rows) * c.hiddenSize);
    const normed = rmsNormRows(last, rows, host.norm, c.rmsNormEps);
    const head = (this.#head ?? this.#embed) as HeldMatrix;
    return arena.matmul(head, normed, rows);
  }

  /**
   * Brings the store up to the cache's length from the tensors (after a prompt); false where
   * no store can be made here (no WebAssembly SIMD), so the token goes through tfjs.
   */
  #syncStore(cache: KvCache): boolean {
    const c = this.config;
    cache.store ??= KvStore.create({
      numLayers: c.numLayers,
      numKvHeads: c.numKvHeads,
      group: c.numHeads / c.numKvHeads,
      headDim: c.headDim,
    });
    const store = cache.store;
    if (!store) return false;
    if (store.length < cache.length) {
      this.#syncTensors(cache);
      for (let layer = 0; layer < c.numLayers; layer++) {
        const keys = cache.keys[layer] as tf.Tensor3D;
        const values = cache.values[layer] as tf.Tensor3D;
        store.write(
          layer,
          keys.dataSync() as Float32Array,
          values.dataSync() as Float32Array,
          cache.length,
          store.length,
          cache.length,
        );
      }
      store.length = cache.length;
    }
    return true;
  }

  /** Brings the tensors up to the cache's length from the store (a prompt after decoding). */
  #syncTensors(cache: KvCache): void {
    if (cache.tensorLength >= cache.length) return;
    const c = this.config;
    const store = cache.store as KvStore;
    const length = cache.length;
    for (let layer = 0; layer < c.numLayers; layer++) {
      const { keysT, values } = store.read(layer, length);
      cache.keys[layer]?.dispose();
      cache.values[layer]?.dispose();
      cache.keys[layer] = tf.tensor3d(keysT, [c.numKvHeads, c.headDim, length]);
      cache.values[layer] = tf.tensor3d(values, [c.numKvHeads, length, c.headDim]);
    }
    cache.tensorLength = length;
  }

  #attention(
    block: Block,
    h: tf.Tensor2D,
    cache: KvCache,
    layer: number,
    rope: { cos: tf.Tensor2D; sin: tf.Tensor2D },
    mask: tf.Tensor2D,
    inStore: boolean,
  ): { out: tf.Tensor2D; keys?: tf.Tensor3D; values?: tf.Tensor3D } {
    const c = this.config;
    const count = h.shape[0];
    const d = c.headDim;
    const group = c.numHeads / c.numKvHeads;
    // (T, heads·d) → (heads, T, d)
    const heads = (t: tf.Tensor2D, n: number) =>
      tf.transpose(tf.reshape(t, [count, n, d]), [1, 0, 2]) as tf.Tensor3D;
    const q = rotate(heads(this.#apply(block.q, h), c.numHeads), rope);
    const k = rotate(heads(this.#apply(block.k, h), c.numKvHeads), rope);
    const v = heads(this.#apply(block.v, h), c.numKvHeads);
    if (inStore) {
      // One position: q (heads, 1, d), k and v (kvHeads, 1, d) read out in head order.
      const attended = (cache.store as KvStore).attend(
        layer,
        cache.length,
        q.dataSync() as Float32Array,
        k.dataSync() as Float32Array,
        v.dataSync() as Float32Array,
        1 / Math.sqrt(d),
      );
      const merged = tf.tensor2d(attended, [1, c.numHeads * d]);
      return { out: this.#apply(block.o, merged) };
    }
    const pastK = cache.keys[layer];
    const pastV = cache.values[layer];
    const kT = tf.transpose(k, [0, 2, 1]);
    const keys = pastK ? tf.concat([pastK, kT], 2) : kT;
    const values = pastV ? tf.concat([pastV, v], 1) : v;
    // Query heads kv·group … kv·group+group−1 share kv head `kv` (transformers' repeat_kv), and
    // they are adjacent, so (heads, T, d) regroups as (kvHeads, group·T, d) against the cache
    // without copying keys per query head.
    const grouped = tf.reshape(q, [c.numKvHeads, group * count, d]) as tf.Tensor3D;
    const scores = tf.add(tf.mul(perHead(grouped, keys), 1 / Math.sqrt(d)), mask);
    const attended = perHead(tf.softmax(scores) as tf.Tensor3D, values);
    const merged = tf.reshape(
      tf.transpose(tf.reshape(attended, [c.numHeads, count, d]), [1, 0, 2]),
      [count, c.numHeads * d],
    ) as tf.Tensor2D;
    return { out: this.#apply(block.o, merged), keys: tf.keep(keys), values: tf.keep(values) };
  }

  #apply(l: Linear, x: tf.Tensor2D): tf.Tensor2D {
    const y = this.#matMul(x, l.w);
    return l.b === null ? y : (tf.add(y, l.b) as tf.Tensor2D);
  }

  /** x · w. A held w goes through the arena's SIMD kernel, except an int8 one under the
   * SIMD128 kernel for more than a few positions (or one not in whole blocks): that is
   * dequantised a bounded number of rows at a time for tfjs's matMul and freed straight
   * after, so only one chunk is float32 at a time however many the enclosing tidy runs. */
  #matMul(x: tf.Tensor2D, w: tf.Tensor2D | HeldMatrix): tf.Tensor2D {
    if (w instanceof tf.Tensor) return tf.matMul(x, w);
    const count = x.shape[0];
    const arena = this.#arena!;
    const dequantize =
      arena instanceof Int8Arena &&
      (!arena.fits(w.cols) || (count > KERNEL_MAX_POSITIONS && arena.kernel !== 'relaxed'));
    if (dequantize) return matMulDequantized(x, w as ArenaRows);
    return tf.tensor2d(arena.matmul(w, x.dataSync() as Float32Array, count), [count, w.rows]);
  }

  dispose(): void {
    this.#arena?.dispose();
    this.#staging?.dispose();
    this.#staging = null;
    const drop = (w: object | null) => {
      if (w instanceof tf.Tensor) w.dispose();
    };
    drop(this.#embed);
    this.#norm.dispose();
    drop(this.#head);
    for (const b of this.#blocks) {
      for (const t of [b.inputNorm, b.postNorm]) t.dispose();
      for (const l of [b.q, b.k, b.v, b.o, b.gate, b.up, b.down]) {
        drop(l.w);
        l.b?.dispose();
      }
    }
  }
}

/** x · mᵀ for int8 rows m [out, in], HEAD_CHUNK_ROWS rows dequantised at a time, the
 * outputs concatenated. */
function matMulDequantized(x: tf.Tensor2D, m: Int8Rows): tf.Tensor2D {
  const parts: tf.Tensor2D[] = [];
  for (let first = 0; first < m.rows; first += HEAD_CHUNK_ROWS) {
    const count = Math.min(HEAD_CHUNK_ROWS, m.rows - first);
    const columns = tf.tensor2d(dequantizeRowsTransposedInt8(m, first, count), [m.cols, count]);
    parts.push(tf.matMul(x, columns));
    columns.dispose();
  }
  return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
}

/**
 * Threads for int8 products while decoding: COMMONS_DECODE_THREADS (1 or 2). By default 2
 * where a decoded token runs on the host (every product's input whole blocks of 32) and the
 * machine has a second core, else 1. Measured at SmolLM2-135M's shape after a 512-token
 * prompt, 2-core machine: with the host path, 2 threads decode at 23.6–25.9 ms/token against
 * 31.8–33.1 on one. Before the host path, when tfjs ran the small ops between the products, a
 * second thread made decoding slower (19.7–23.1 against 28.8 tokens/s): it competed with
 * them for the same cores.
 */
function decodeThreads(hostable: boolean): number {
  const asked = process.env.COMMONS_DECODE_THREADS;
  if (asked === undefined || asked === '') return hostable && availableParallelism() > 1 ? 2 : 1;
  if (asked !== '1' && asked !== '2') {
    throw new RangeError(`COMMONS_DECODE_THREADS=${asked}: use 1 or 2`);
  }
  return Number(asked);
}

/** Positions at most this many use one rank-3 matMul (decoding); more, one 2-D per head. */
const BATCHED_MAX_ROWS = 64;

/**
 * a (n, m, k) · b (n, k, p). wasm runs a rank-3 matMul through a naive loop (~1 GFLOP/s) and
 * a 2-D one through XNNPACK, so a prompt's attention is n 2-D products; a decoded token's
 * (a few rows) costs less as one kernel than as n slices.
 */
function perHead(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (a.shape[1] <= BATCHED_MAX_ROWS || tf.getBackend() !== 'wasm') return tf.matMul(a, b);
  // Slices cut on the host (one read, n uploads): tf.unstack's slice kernels took 11–27% of a
  // prompt's time.
  const bs = hostSlices(b);
  return tf.stack(hostSlices(a).map((x, i) => tf.matMul(x, bs[i]!))) as tf.Tensor3D;
}

/** Values from which σ goes through tfjs's sigmoid (XNNPACK's, vectorised on wasm) rather
 * than Math.exp: 2.5 M values (a 512-token prompt at Qwen2.5-0.5B's MLP) took 37 ms in
 * JavaScript against 14 ms with the copies in and out. */
const TFJS_SIGMOID_MIN = 1 << 16;

/** SwiGLU's gate on the host, in place: gate ← SiLU(gate) · up, SiLU(g) = g·σ(g). */
function swigluRows(gate: Float32Array, up: Float32Array): void {
  if (gate.length < TFJS_SIGMOID_MIN) {
    for (let i = 0; i < gate.length; i++) {
      const g = gate[i]!;
      gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
    }
    return;
  }
  const sigmoid = tf.tidy(() => tf.sigmoid(filledTensor([gate.length], (g) => g.set(gate))));
  const s = readValues(sigmoid);
  for (let i = 0; i < gate.length; i++) gate[i] = gate[i]! * s[i]! * up[i]!;
  sigmoid.dispose();
}

/** {@link rmsNorm} on the host for `rows` rows of x laid end to end (float64 sums, stored as
 * float32). */
function rmsNormRows(x: Float32Array, rows: number, w: Float32Array, eps: number): Float32Array {
  const width = x.length / rows;
  const out = new Float32Array(x.length);
  for (let at = 0; at < x.length; at += width) {
    let sum = 0;
    for (let i = at; i < at + width; i++) sum += x[i]! * x[i]!;
    const scale = 1 / Math.sqrt(Math.fround(sum / width) + eps);
    for (let i = 0; i < width; i++) out[at + i] = Math.fround(x[at + i]! * scale) * w[i]!;
  }
  return out;
}

/** {@link rotate} in place for one position's heads laid end to end (head size d). */
function rotateHost(
  x: Float32Array,
  d: number,
  cos: Float32Array,
  sin: Float32Array,
): Float32Array {
  const half = d / 2;
  for (let at = 0; at < x.length; at += d) {
    for (let i = 0; i < half; i++) {
      const x1 = x[at + i]!;
      const x2 = x[at + half + i]!;
      x[at + i] = x1 * cos[i]! - x2 * sin[i]!;
      x[at + half + i] = x2 * cos[half + i]! + x1 * sin[half + i]!;
    }
  }
  return x;
}

/** x · rsqrt(mean(x²) + eps) · w over the last axis, all in float32 as transformers does. */
function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), w);
}

/** x·cos + rotate_half(x)·sin for x (heads, T, d); rotate_half(x) = [−x₂, x₁]. */
function rotate(x: tf.Tensor3D, rope: { cos: tf.Tensor2D; sin: tf.Tensor2D }): tf.Tensor3D {
  const half = x.shape[2] / 2;
  const [x1, x2] = tf.split(x, [half, half], 2);
  const rotated = tf.concat([tf.neg(x2!), x1!], 2);
  return tf.add(tf.mul(x, rope.cos), tf.mul(rotated, rope.sin));
}

/**
 * Additive mask (group·count, start+count): row r is query position start + (r mod count)
 * of one query head in the group; it sees every key at or before its own position.
 */
function causalMask(start: number, count: number, group: number): Float32Array {
  const width = start + count;
  const mask = new Float32Array(group * count * width);
  for (let r = 0; r < group * count; r++) {
    const position = start + (r % count);
    for (let s = position + 1; s < width; s++) mask[r * width + s] = -Infinity;
  }
  return mask;
}
