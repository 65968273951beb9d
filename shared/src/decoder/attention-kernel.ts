import {
  F32,
  I32,
  V128,
  f32x4LaneSum,
  op,
  pointerLoop,
  wasmModule,
  type WasmFunction,
} from '../wasm/module.ts';

/**
 * A decoded token's attention over the KV cache in WebAssembly SIMD, with the cache itself in
 * WebAssembly memory that grows by doubling. Through tfjs each decoded token concatenated every
 * layer's whole cache into fresh tensors (Concat: 7.8% of a token at SmolLM2-135M's shape, 640
 * positions) and ran the two products as rank-3 matMuls, which the wasm backend runs as a naive
 * loop (BatchMatMul: 22%, more than the MLP's products). Here a new position's key and value are
 * written in place, and each query row's scores and weighted sum are SIMD loops over
 * contiguous rows. The softmax between them runs in JavaScript (Math.exp, in float64 then
 * rounded as tfjs's is not: results agree with tfjs's to float32 rounding, not bit for bit).
 *
 * Layout: K and V are [layer][kvHead][capacity][headDim] float32, each position's row
 * contiguous, so a query's dot products and the weighted sum walk memory in order.
 */

/** for (i = 0; i < row; i += 16) `body` (which reads the byte offset from local i). */
function rowLoop(i: number, row: number, body: number[]): number[] {
  return [
    ...op.i32Const(0),
    ...op.localSet(i),
    ...op.loop(),
    ...body,
    ...op.localGet(i),
    ...op.i32Const(16),
    ...op.i32Add(),
    ...op.localTee(i),
    ...op.localGet(row),
    ...op.i32LtU(),
    ...op.brIf(0),
    ...op.end(),
  ];
}

// scores(q, k, positions, rowBytes, out, scale): out[p] = scale · q · k[p]
const scores: WasmFunction = (() => {
  const [Q, K, N, ROW, OUT, SCALE, END, I, ACC] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const at = (base: number) => [...op.localGet(base), ...op.localGet(I), ...op.i32Add()];
  return {
    name: 'scores',
    params: [I32, I32, I32, I32, I32, F32],
    locals: [I32, I32, V128],
    body: pointerLoop({
      pointer: OUT,
      count: N,
      shift: 2,
      end: END,
      step: 4,
      body: [
        ...op.f32Const(0),
        ...op.f32x4Splat(),
        ...op.localSet(ACC),
        ...rowLoop(I, ROW, [
          ...op.localGet(ACC),
          ...at(Q),
          ...op.v128Load(0),
          ...at(K),
          ...op.v128Load(0),
          ...op.f32x4Mul(),
          ...op.f32x4Add(),
          ...op.localSet(ACC),
        ]),
        // out = (lanes 0 + 1 + 2 + 3) · scale
        ...op.localGet(OUT),
        ...f32x4LaneSum(ACC),
        ...op.localGet(SCALE),
        ...op.f32Mul(),
        ...op.f32Store(0),
        ...op.localGet(K),
        ...op.localGet(ROW),
        ...op.i32Add(),
        ...op.localSet(K),
      ],
    }),
  };
})();

// weighted(probs, v, positions, rowBytes, out): out += Σ_p probs[p] · v[p]
const weighted: WasmFunction = (() => {
  const [P, V, N, ROW, OUT, END, I, W] = [0, 1, 2, 3, 4, 5, 6, 7];
  const at = (base: number) => [...op.localGet(base), ...op.localGet(I), ...op.i32Add()];
  return {
    name: 'weighted',
    params: [I32, I32, I32, I32, I32],
    locals: [I32, I32, V128],
    body: pointerLoop({
      pointer: P,
      count: N,
      shift: 2,
      end: END,
      step: 4,
      body: [
        ...op.localGet(P),
        ...op.f32Load(0),
        ...op.f32x4Splat(),
        ...op.localSet(W),
        ...rowLoop(I, ROW, [
          ...at(OUT),
          ...at(OUT),
          ...op.v128Load(0),
          ...op.localGet(W),
          ...at(V),
          ...op.v128Load(0),
          ...op.f32x4Mul(),
          ...op.f32x4Add(),
          ...op.v128Store(0),
        ]),
        ...op.localGet(V),
        ...op.localGet(ROW),
        ...op.i32Add(),
        ...op.localSet(V),
      ],
    }),
  };
})();

type Scores = (q: number, k: number, n: number, row: number, out: number, scale: number) => void;
type Weighted = (p: number, v: number, n: number, row: number, out: number) => void;

let compiled: WebAssembly.Module | null | undefined;
function module(): WebAssembly.Module | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(wasmModule([scores, weighted]));
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

const PAGE = 65_536;
const FIRST_CAPACITY = 256;

export interface KvShape {
  numLayers: number;
  numKvHeads: number;
  /** Query heads per KV head. */
  group: number;
  headDim: number;
}

/** One conversation's keys and values in WebAssembly memory, and the attention over them. */
export class KvStore {
  readonly #shape: KvShape;
  #capacity = 0;
  #memory!: WebAssembly.Memory;
  #scores!: Scores;
  #weighted!: Weighted;
  /** Positions held (the same for every layer once a token is through all of them). */
  length = 0;

  private constructor(shape: KvShape) {
    this.#shape = shape;
  }

  /** A store, or null where WebAssembly SIMD is unavailable or the head size is not a multiple of 4. */
  static create(shape: KvShape): KvStore | null {
    if (!module() || shape.headDim % 4 !== 0) return null;
    const store = new KvStore(shape);
    store.#grow(FIRST_CAPACITY);
    return store;
  }

  // Byte layout: q (one head) | out (one head) | probabilities (capacity) | K | V.
  get #qAt(): number {
    return 0;
  }
  get #outAt(): number {
    return this.#shape.headDim * 4;
  }
  get #probsAt(): number {
    return this.#shape.headDim * 8;
  }
  #blockAt(kind: 0 | 1, layer: number, head: number, capacity = this.#capacity): number {
    const { numLayers, numKvHeads, headDim } = this.#shape;
    const block = capacity * headDim * 4;
    const base = this.#shape.headDim * 8 + capacity * 4;
    return base + ((kind * numLayers + layer) * numKvHeads + head) * block;
  }

  /** Room for `positions` positions: a new memory of twice the capacity, blocks copied over. */
  #grow(positions: number): void {
    if (positions <= this.#capacity) return;
    const capacity = Math.max(positions, 2 * this.#capacity, FIRST_CAPACITY);
    const { numLayers, numKvHeads, headDim } = this.#shape;
    const bytes =
      this.#blockAt(0, 0, 0, capacity) + 2 * numLayers * numKvHeads * capacity * headDim * 4;
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / PAGE) });
    if (this.#capacity > 0) {
      const used = this.length * headDim;
      const from = new Float32Array(this.#memory.buffer);
      const to = new Float32Array(memory.buffer);
      for (const kind of [0, 1] as const) {
        for (let l = 0; l < numLayers; l++) {
          for (let h = 0; h < numKvHeads; h++) {
            const src = this.#blockAt(kind, l, h) / 4;
            to.set(from.subarray(src, src + used), this.#blockAt(kind, l, h, capacity) / 4);
          }
        }
      }
    }
    const instance = new WebAssembly.Instance(module() as WebAssembly.Module, { env: { memory } });
    this.#memory = memory;
    this.#scores = instance.exports.scores as Scores;
    this.#weighted = instance.exports.weighted as Weighted;
    this.#capacity = capacity;
  }

  /**
   * Writes positions [from, to) of one layer from tfjs's layout: keys transposed
   * (kvHeads, headDim, length), values (kvHeads, length, headDim), `length` ≥ to.
   */
  write(
    layer: number,
    keysT: Float32Array,
    values: Float32Array,
    length: number,
    from: number,
    to: number,
  ): void {
    this.#grow(to);
    const { numKvHeads, headDim: d } = this.#shape;
    const heap = new Float32Array(this.#memory.buffer);
    for (let h = 0; h < numKvHeads; h++) {
      const k = this.#blockAt(0, layer, h) / 4;
      const v = this.#blockAt(1, layer, h) / 4;
      for (let p = from; p < to; p++) {
        for (let i = 0; i < d; i++) heap[k + p * d + i] = keysT[(h * d + i) * length + p]!;
      }
      heap.set(values.subarray((h * length + from) * d, (h * length + to) * d), v + from * d);
    }
  }

  /** One layer's first `length` positions in tfjs's layout (see {@link write}). */
  read(layer: number, length: number): { keysT: Float32Array; values: Float32Array } {
    const { numKvHeads, headDim: d } = this.#shape;
    const heap = new Float32Array(this.#memory.buffer);
    const keysT = new Float32Array(numKvHeads * d * length);
    const values = new Float32Array(numKvHeads * length * d);
    for (let h = 0; h < numKvHeads; h++) {
      const k = this.#blockAt(0, layer, h) / 4;
      const v = this.#blockAt(1, layer, h) / 4;
      for (let p = 0; p < length; p++) {
        for (let i = 0; i < d; i++) keysT[(h * d + i) * length + p] = heap[k + p * d + i]!;
      }
      values.set(heap.subarray(v, v + length * d), h * length * d);
    }
    return { keysT, values };
  }

  /**
   * Appends one position's key and value (kvHeads × headDim each, rotary embedding applied)
   * at `position`, then attends: softmax(q·Kᵀ · scale) · V over positions 0 … position, for
   * every query head (q: heads × headDim, heads kv·group … kv·group + group − 1 sharing kv).
   */
  attend(
    layer: number,
    position: number,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    scale: number,
  ): Float32Array {
    this.#grow(position + 1);
    const { numKvHeads, group, headDim: d } = this.#shape;
    const n = position + 1;
    const row = d * 4;
    const heap = new Float32Array(this.#memory.buffer);
    const out = new Float32Array(numKvHeads * group * d);
    const probs = heap.subarray(this.#probsAt / 4, this.#probsAt / 4 + n);
    for (let h = 0; h < numKvHeads; h++) {
      const kAt = this.#blockAt(0, layer, h);
      const vAt = this.#blockAt(1, layer, h);
      heap.set(k.subarray(h * d, (h + 1) * d), kAt / 4 + position * d);
      heap.set(v.subarray(h * d, (h + 1) * d), vAt / 4 + position * d);
      for (let g = 0; g < group; g++) {
        const head = h * group + g;
        heap.set(q.subarray(head * d, (head + 1) * d), this.#qAt / 4);
        this.#scores(this.#qAt, kAt, n, row, this.#probsAt, scale);
        let max = -Infinity;
        for (let p = 0; p < n; p++) max = Math.max(max, probs[p]!);
        let sum = 0;
        for (let p = 0; p < n; p++) {
          const e = Math.exp(probs[p]! - max);
          probs[p] = e;
          sum += e;
        }
        const inverse = 1 / sum;
        for (let p = 0; p < n; p++) probs[p] = probs[p]! * inverse;
        heap.fill(0, this.#outAt / 4, this.#outAt / 4 + d);
        this.#weighted(this.#probsAt, vAt, n, row, this.#outAt);
        out.set(heap.subarray(this.#outAt / 4, this.#outAt / 4 + d), head * d);
      }
    }
    return out;
  }
}
