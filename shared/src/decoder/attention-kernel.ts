import {
  F32,
  I32,
  V128,
  f32x4LaneSum,
  op,
  pointerLoop,
  wasmModule,
  type ValueType,
  type WasmFunction,
} from '../wasm/module.ts';

/**
 * A decoded token's attention over the KV cache in WebAssembly SIMD, with the cache itself in
 * WebAssembly memory that grows by doubling. Through tfjs each decoded token concatenated every
 * layer's whole cache into fresh tensors (Concat: 7.8% of a token at SmolLM2-135M's shape, 640
 * positions) and ran the two products as rank-3 matMuls, which the wasm backend runs as a naive
 * loop (BatchMatMul: 22%, more than the MLP's products). Here a new position's key and value are
 * written in place, and each query row's scores, their exponentials and the weighted sum are
 * SIMD loops over contiguous rows (exp as a polynomial, normalised once at the end: results
 * agree with tfjs's to float32 rounding, not bit for bit).
 *
 * Layout: K and V are [layer][kvHead][capacity][headDim] float32, each position's row
 * contiguous, so a query's dot products and the weighted sum walk memory in order.
 */

/**
 * The kernels are generated for one head size: every load has a constant offset and the loops
 * over a row are unrolled, so the only loop is over positions. A head of 64 values is 16
 * vectors: the score is two interleaved sums of 8 products (two dependency chains), and the
 * weighted sum keeps 8 vectors of the output in locals across all positions, one pass per 32
 * values of the head. Measured at SmolLM2-135M's shape (3 KV heads, 9 query heads, 30 layers,
 * 600 positions): 4.7 → 3.4 ms a token against loops over a runtime row length, then 1.9 with
 * the softmax's exponentials in SIMD rather than Math.exp (SmolLM2-135M int8 decoding:
 * 22.3 → 20.2 ms a token).
 */

// scores(q, k, positions, _, out, scale) → max: out[p] = scale · q · k[p]; returns the largest.
function scoresFor(headDim: number): WasmFunction {
  const [Q, K, N, , OUT, SCALE, END, ACC0, ACC1, SCORE, MAX] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const vectors = headDim / 4;
  const product = (i: number) => [
    ...op.localGet(Q),
    ...op.v128Load(16 * i),
    ...op.localGet(K),
    ...op.v128Load(16 * i),
    ...op.f32x4Mul(),
  ];
  const sums: number[] = [];
  for (let i = 0; i < vectors; i++) {
    const acc = i % 2 === 0 ? ACC0 : ACC1;
    sums.push(...product(i));
    if (i >= 2) sums.push(...op.localGet(acc), ...op.f32x4Add());
    sums.push(...op.localSet(acc));
  }
  if (vectors === 1) sums.push(...op.f32Const(0), ...op.f32x4Splat(), ...op.localSet(ACC1));
  return {
    name: 'scores',
    params: [I32, I32, I32, I32, I32, F32],
    results: [F32],
    locals: [I32, V128, V128, F32, F32],
    body: [
      ...op.f32Const(-Infinity),
      ...op.localSet(MAX),
      ...pointerLoop({
        pointer: OUT,
        count: N,
        shift: 2,
        end: END,
        step: 4,
        body: [
          ...sums,
          ...op.localGet(ACC0),
          ...op.localGet(ACC1),
          ...op.f32x4Add(),
          ...op.localSet(ACC0),
          // out = (lanes 0 + 1 + 2 + 3) · scale
          ...f32x4LaneSum(ACC0),
          ...op.localGet(SCALE),
          ...op.f32Mul(),
          ...op.localSet(SCORE),
          ...op.localGet(OUT),
          ...op.localGet(SCORE),
          ...op.f32Store(0),
          ...op.localGet(SCORE),
          ...op.localGet(MAX),
          ...op.f32Max(),
          ...op.localSet(MAX),
          ...op.localGet(K),
          ...op.i32Const(headDim * 4),
          ...op.i32Add(),
          ...op.localSet(K),
        ],
      }),
      ...op.localGet(MAX),
    ],
  };
}

/**
 * exps(scores, groups, max) → sum: scores[i] = exp(scores[i] − max) for 4·groups values, and
 * their sum. exp as Cephes's expf: n = ⌊x·log₂e + ½⌋, r = x − n·ln 2 (in two parts), a degree-5
 * polynomial in r, times 2ⁿ built in the exponent bits; within 2 ulp of float32's exp over the
 * range used here (x ≤ 0, clamped at −87.3 where exp is below float32's normal range anyway).
 */
const exps: WasmFunction = (() => {
  const [PTR, GROUPS, MAX, END, X, N, Y, SUM] = [0, 1, 2, 3, 4, 5, 6, 7];
  const splat = (value: number) => [...op.f32Const(value), ...op.f32x4Splat()];
  const poly = [
    1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
    5.0000001201e-1,
  ];
  return {
    name: 'exps',
    params: [I32, I32, F32],
    results: [F32],
    locals: [I32, V128, V128, V128, V128],
    body: [
      ...splat(0),
      ...op.localSet(SUM),
      ...pointerLoop({
        pointer: PTR,
        count: GROUPS,
        shift: 4,
        end: END,
        step: 16,
        body: [
          // x = max(s − max, −87.3)
          ...op.localGet(PTR),
          ...op.v128Load(0),
          ...op.localGet(MAX),
          ...op.f32x4Splat(),
          ...op.f32x4Sub(),
          ...splat(-87.3),
          ...op.f32x4Max(),
          ...op.localSet(X),
          // n = floor(x · log2(e) + 0.5)
          ...op.localGet(X),
          ...splat(Math.LOG2E),
          ...op.f32x4Mul(),
          ...splat(0.5),
          ...op.f32x4Add(),
          ...op.f32x4Floor(),
          ...op.localSet(N),
          // r = x − n · 0.693359375 − n · (−2.12194440e−4)
          ...op.localGet(X),
          ...op.localGet(N),
          ...splat(0.693359375),
          ...op.f32x4Mul(),
          ...op.f32x4Sub(),
          ...op.localGet(N),
          ...splat(-2.1219444e-4),
          ...op.f32x4Mul(),
          ...op.f32x4Sub(),
          ...op.localSet(X),
          // y = ((((p0·r + p1)·r + p2)·r + p3)·r + p4)·r + p5; y = y·r² + r + 1
          ...splat(poly[0]!),
          ...poly
            .slice(1)
            .flatMap((c) => [...op.localGet(X), ...op.f32x4Mul(), ...splat(c), ...op.f32x4Add()]),
          ...op.localGet(X),
          ...op.localGet(X),
          ...op.f32x4Mul(),
          ...op.f32x4Mul(),
          ...op.localGet(X),
          ...op.f32x4Add(),
          ...splat(1),
          ...op.f32x4Add(),
          // · 2ⁿ: (n + 127) << 23 as float32 bits
          ...op.localGet(N),
          ...op.i32x4TruncSatF32x4S(),
          ...op.i32Const(127),
          ...op.i32x4Splat(),
          ...op.i32x4Add(),
          ...op.i32Const(23),
          ...op.i32x4Shl(),
          ...op.f32x4Mul(),
          ...op.localSet(Y),
          ...op.localGet(PTR),
          ...op.localGet(Y),
          ...op.v128Store(0),
          ...op.localGet(SUM),
          ...op.localGet(Y),
          ...op.f32x4Add(),
          ...op.localSet(SUM),
        ],
      }),
      ...f32x4LaneSum(SUM),
    ],
  };
})();

/** Output vectors a weighted-sum pass keeps in locals. */
const WEIGHTED_VECTORS = 8;

// weighted(probs, v, positions, _, out): out += Σ_p probs[p] · v[p]
function weightedFor(headDim: number): WasmFunction {
  const [P, V, N, , OUT, END, PP, VP] = [0, 1, 2, 3, 4, 5, 6, 7];
  const ACC = Array.from({ length: WEIGHTED_VECTORS }, (_, i) => 8 + i);
  const W = 8 + WEIGHTED_VECTORS;
  const vectors = headDim / 4;
  const body: number[] = [];
  for (let first = 0; first < vectors; first += WEIGHTED_VECTORS) {
    const count = Math.min(WEIGHTED_VECTORS, vectors - first);
    const slots = ACC.slice(0, count);
    slots.forEach((acc, i) =>
      body.push(...op.localGet(OUT), ...op.v128Load(16 * (first + i)), ...op.localSet(acc)),
    );
    body.push(...op.localGet(P), ...op.localSet(PP), ...op.localGet(V), ...op.localSet(VP));
    const step: number[] = [
      ...op.localGet(PP),
      ...op.v128Load32Splat(0),
      ...op.localSet(W),
      ...slots.flatMap((acc, i) => [
        ...op.localGet(W),
        ...op.localGet(VP),
        ...op.v128Load(16 * (first + i)),
        ...op.f32x4Mul(),
        ...op.localGet(acc),
        ...op.f32x4Add(),
        ...op.localSet(acc),
      ]),
      ...op.localGet(VP),
      ...op.i32Const(headDim * 4),
      ...op.i32Add(),
      ...op.localSet(VP),
    ];
    body.push(...pointerLoop({ pointer: PP, count: N, shift: 2, end: END, step: 4, body: step }));
    slots.forEach((acc, i) =>
      body.push(...op.localGet(OUT), ...op.localGet(acc), ...op.v128Store(16 * (first + i))),
    );
  }
  return {
    name: 'weighted',
    params: [I32, I32, I32, I32, I32],
    locals: [I32, I32, I32, ...ACC.map((): ValueType => V128), V128],
    body,
  };
}

type Scores = (q: number, k: number, n: number, row: number, out: number, scale: number) => number;
type Exps = (scores: number, groups: number, max: number) => number;
type Weighted = (p: number, v: number, n: number, row: number, out: number) => void;

const compiled = new Map<number, WebAssembly.Module | null>();
/** The kernels for one head size; null where WebAssembly SIMD is unavailable. */
function module(headDim: number): WebAssembly.Module | null {
  if (!compiled.has(headDim)) {
    try {
      compiled.set(
        headDim,
        new WebAssembly.Module(wasmModule([scoresFor(headDim), weightedFor(headDim), exps])),
      );
    } catch {
      compiled.set(headDim, null);
    }
  }
  return compiled.get(headDim) ?? null;
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
  #exps!: Exps;
  /** Positions held (the same for every layer once a token is through all of them). */
  length = 0;

  private constructor(shape: KvShape) {
    this.#shape = shape;
  }

  /** A store, or null where WebAssembly SIMD is unavailable or the head size is not a multiple of 4. */
  static create(shape: KvShape): KvStore | null {
    if (shape.headDim % 4 !== 0 || !module(shape.headDim)) return null;
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
    const instance = new WebAssembly.Instance(module(headDim) as WebAssembly.Module, {
      env: { memory },
    });
    this.#memory = memory;
    this.#scores = instance.exports.scores as Scores;
    this.#weighted = instance.exports.weighted as Weighted;
    this.#exps = instance.exports.exps as Exps;
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

  /** Room for `positions` positions in every layer (what is held so far is kept). */
  reserve(positions: number): void {
    this.#grow(positions);
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
        const max = this.#scores(this.#qAt, kAt, n, row, this.#probsAt, scale);
        // exp(s − max) in SIMD for whole groups of 4, the rest here; normalised at the end.
        const whole = n & ~3;
        let sum = this.#exps(this.#probsAt, whole >> 2, max);
        for (let p = whole; p < n; p++) {
          const e = Math.fround(Math.exp(probs[p]! - max));
          probs[p] = e;
          sum += e;
        }
        heap.fill(0, this.#outAt / 4, this.#outAt / 4 + d);
        this.#weighted(this.#probsAt, vAt, n, row, this.#outAt);
        const inverse = 1 / sum;
        const attended = heap.subarray(this.#outAt / 4, this.#outAt / 4 + d);
        for (let i = 0; i < d; i++) attended[i] = attended[i]! * inverse;
        out.set(heap.subarray(this.#outAt / 4, this.#outAt / 4 + d), head * d);
      }
    }
    return out;
  }
}
