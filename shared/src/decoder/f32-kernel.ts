import {
  I32,
  V128,
  engineAccepts,
  f32x4LaneSum,
  i32MinU,
  op,
  wasmModule,
  type WasmFunction,
} from '../wasm/module.ts';
import { KernelArena, MAX_PAGES, type HeldMatrix } from './kernel-arena.ts';

/**
 * Float32 matrix products in WebAssembly SIMD, for a decoder with float32 weights, on two
 * threads (kernel-arena.ts). tfjs's wasm backend runs its matMul on one thread in Node, and
 * for one position (decoding) it reads a [in, out] weight column-wise; here each weight row is
 * read in order, two rows at a time, and a prompt's positions are taken four at a time so each
 * weight loaded feeds eight multiply-adds from registers. Measured on one core of this
 * project's 2-core machine, a 1536×576 matrix against 64 positions: 10 GFLOPS a row and a
 * position at a time, 25 with 2×2 tiles, 40 with 2×4 (tfjs's matMul: about 21).
 *
 * Where the engine has relaxed SIMD, each multiply-add is f32x4.relaxed_madd (one fused
 * instruction where the machine has FMA); else a multiply then an add. Either way the sums
 * run in float32 in a different order from tfjs's, so results agree to float32 rounding.
 */

// matmul(w, block, rows, cols, x, _, out, count, outStride): out[t][r] = Σ_c w[r, c] · x[t][c],
// w float32 [rows, cols] (cols a multiple of 4), x float32 [count, cols], byte addresses. The
// rows go `block` at a time, each block against every position, so a block is read from
// memory once per call rather than once per 4 positions (an LM head of 49,152 rows is 113 MB).
const [W, BLOCK, ROWS, COLS, X, OUT, COUNT, OUT_STRIDE] = [0, 1, 2, 3, 4, 6, 7, 8];

function matmulFunction(fused: boolean): WasmFunction {
  const locals: number[] = [];
  const local = (type: number) => 9 + locals.push(type) - 1;
  const [W0, ROWS0, OUT0, ROW_BYTES, END] = [I32, I32, I32, I32, I32].map(local) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const [WB, LEFT, XB, OB, CB] = [I32, I32, I32, I32, I32].map(local) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const rowAt = [local(I32), local(I32), local(I32), local(I32)] as const; // a tile's rows (0 walks W)
  const xAt = [local(I32), local(I32), local(I32), local(I32)] as const;
  const acc = Array.from({ length: 8 }, () => local(V128));
  const wv = [local(V128), local(V128)] as const;
  const xv = local(V128);

  const set = (target: number, value: number[]) => [...value, ...op.localSet(target)];
  const get = op.localGet;
  const add = (local: number, by: number[]) => set(local, [...get(local), ...by, ...op.i32Add()]);
  const multiplyAdd = (a: number, b: number, into: number) =>
    fused
      ? [...get(a), ...get(b), ...get(into), ...op.f32x4RelaxedMadd(), ...op.localSet(into)]
      : [
          ...get(a),
          ...get(b),
          ...op.f32x4Mul(),
          ...get(into),
          ...op.f32x4Add(),
          ...op.localSet(into),
        ];

  // One tile: `rows` rows from W against `positions` positions from X; leaves W at the next
  // row and OUT at the next row's outputs.
  const tile = (rows: 1 | 2, positions: 1 | 4) => {
    const a = (r: number, p: number) => acc[r * 4 + p]!;
    const body: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let p = 0; p < positions; p++)
        body.push(...set(a(r, p), [...op.f32Const(0), ...op.f32x4Splat()]));
    }
    body.push(...set(END, [...get(W), ...get(ROW_BYTES), ...op.i32Add()]));
    if (rows === 2) body.push(...set(rowAt[1], get(END)));
    for (let p = 0; p < positions; p++) {
      body.push(
        ...set(xAt[p]!, [
          ...get(X),
          ...get(ROW_BYTES),
          ...op.i32Const(p),
          ...op.i32Mul(),
          ...op.i32Add(),
        ]),
      );
    }
    body.push(...op.loop());
    for (let r = 0; r < rows; r++)
      body.push(...set(wv[r]!, [...get(r === 0 ? W : rowAt[1]), ...op.v128Load(0)]));
    for (let p = 0; p < positions; p++) {
      body.push(...set(xv, [...get(xAt[p]!), ...op.v128Load(0)]));
      for (let r = 0; r < rows; r++) body.push(...multiplyAdd(wv[r]!, xv, a(r, p)));
      body.push(...add(xAt[p]!, op.i32Const(16)));
    }
    if (rows === 2) body.push(...add(rowAt[1], op.i32Const(16)));
    body.push(
      ...get(W),
      ...op.i32Const(16),
      ...op.i32Add(),
      ...op.localTee(W),
      ...get(END),
      ...op.i32LtU(),
      ...op.brIf(0),
      ...op.end(),
    );
    for (let p = 0; p < positions; p++) {
      for (let r = 0; r < rows; r++) {
        body.push(
          ...get(OUT),
          ...get(OUT_STRIDE),
          ...op.i32Const(p),
          ...op.i32Mul(),
          ...op.i32Add(),
          ...f32x4LaneSum(a(r, p)),
          ...op.f32Store(4 * r),
        );
      }
    }
    if (rows === 2) body.push(...set(W, get(rowAt[1])));
    body.push(...add(OUT, op.i32Const(4 * rows)));
    return body;
  };

  // One position (decoding) against 4 rows, 8 columns a step: per 128 bytes of weights,
  // eight loads feed eight multiply-adds into eight independent sums, with five pointer
  // steps. The pair tile's one x load and three pointer steps per 32 bytes left the loop
  // short of the memory's pace (SmolLM2/Qwen decoding is a pass over every weight per token).
  // Each row's sum is its even and odd vectors' sums added: a different order from the pair
  // tile's, so a row must take the same tile on every split (products: multiples of 4 rows).
  const decodeTile = () => {
    const a = (r: number, j: number) => acc[r * 2 + j]!;
    const body: number[] = [];
    for (let r = 0; r < 4; r++) {
      for (let j = 0; j < 2; j++)
        body.push(...set(a(r, j), [...op.f32Const(0), ...op.f32x4Splat()]));
    }
    body.push(...set(END, [...get(W), ...get(ROW_BYTES), ...op.i32Add()]));
    for (let r = 1; r < 4; r++) {
      body.push(
        ...set(rowAt[r]!, [
          ...get(W),
          ...get(ROW_BYTES),
          ...op.i32Const(r),
          ...op.i32Mul(),
          ...op.i32Add(),
        ]),
      );
    }
    body.push(...set(xAt[0], get(X)), ...op.loop());
    for (let j = 0; j < 2; j++) {
      body.push(...set(j === 0 ? xv : wv[1], [...get(xAt[0]), ...op.v128Load(16 * j)]));
    }
    for (let r = 0; r < 4; r++) {
      for (let j = 0; j < 2; j++) {
        body.push(
          ...set(wv[0], [...get(r === 0 ? W : rowAt[r]!), ...op.v128Load(16 * j)]),
          ...multiplyAdd(wv[0], j === 0 ? xv : wv[1], a(r, j)),
        );
      }
    }
    for (let r = 1; r < 4; r++) body.push(...add(rowAt[r]!, op.i32Const(32)));
    body.push(
      ...add(xAt[0], op.i32Const(32)),
      ...get(W),
      ...op.i32Const(32),
      ...op.i32Add(),
      ...op.localTee(W),
      ...get(END),
      ...op.i32LtU(),
      ...op.brIf(0),
      ...op.end(),
    );
    for (let r = 0; r < 4; r++) {
      body.push(
        ...set(a(r, 0), [...get(a(r, 0)), ...get(a(r, 1)), ...op.f32x4Add()]),
        ...get(OUT),
        ...f32x4LaneSum(a(r, 0)),
        ...op.f32Store(4 * r),
      );
    }
    body.push(...set(W, get(rowAt[3])), ...add(OUT, op.i32Const(16)));
    return body;
  };

  // Every row against `positions` positions: for one position with whole 8-column steps,
  // rows four at a time first; then pairs of rows, then the odd one.
  const rowsPass = (positions: 1 | 4) => [
    ...set(W, get(W0)),
    ...set(ROWS, get(ROWS0)),
    ...set(OUT, get(OUT0)),
    ...(positions === 1
      ? [
          ...op.block(),
          ...get(COLS),
          ...op.i32Const(7),
          ...op.i32And(),
          ...op.brIf(0),
          ...op.loop(),
          ...get(ROWS),
          ...op.i32Const(4),
          ...op.i32LtU(),
          ...op.brIf(1),
          ...decodeTile(),
          ...set(ROWS, [...get(ROWS), ...op.i32Const(4), ...op.i32Sub()]),
          ...op.br(0),
          ...op.end(),
          ...op.end(),
        ]
      : []),
    ...op.block(),
    ...op.loop(),
    ...get(ROWS),
    ...op.i32Const(2),
    ...op.i32LtU(),
    ...op.brIf(1),
    ...tile(2, positions),
    ...set(ROWS, [...get(ROWS), ...op.i32Const(2), ...op.i32Sub()]),
    ...op.br(0),
    ...op.end(),
    ...op.end(),
    ...op.block(),
    ...get(ROWS),
    ...op.i32Eqz(),
    ...op.brIf(0),
    ...tile(1, positions),
    ...op.end(),
    ...add(X, [...get(ROW_BYTES), ...op.i32Const(positions), ...op.i32Mul()]),
    ...add(OUT0, [...get(OUT_STRIDE), ...op.i32Const(positions), ...op.i32Mul()]),
    ...set(COUNT, [...get(COUNT), ...op.i32Const(positions), ...op.i32Sub()]),
  ];

  // while (count ≥ 4) rowsPass(4); while (count > 0) rowsPass(1)
  const passes = (positions: 1 | 4) => [
    ...op.block(),
    ...op.loop(),
    ...get(COUNT),
    ...op.i32Const(positions),
    ...op.i32LtU(),
    ...op.brIf(1),
    ...rowsPass(positions),
    ...op.br(0),
    ...op.end(),
    ...op.end(),
  ];
  return {
    name: 'matmul',
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32],
    locals: locals as WasmFunction['locals'],
    body: [
      ...set(ROW_BYTES, [...get(COLS), ...op.i32Const(2), ...op.i32Shl()]),
      ...set(WB, get(W)),
      ...set(LEFT, get(ROWS)),
      ...set(XB, get(X)),
      ...set(OB, get(OUT)),
      ...set(CB, get(COUNT)),
      ...op.block(),
      ...get(LEFT),
      ...op.i32Eqz(),
      ...op.brIf(0),
      ...op.loop(),
      // One block of min(block, left) rows against every position.
      ...set(W0, get(WB)),
      ...set(ROWS0, i32MinU(BLOCK, LEFT)),
      ...set(OUT0, get(OB)),
      ...set(X, get(XB)),
      ...set(COUNT, get(CB)),
      ...passes(4),
      ...passes(1),
      ...add(WB, [...get(ROWS0), ...get(ROW_BYTES), ...op.i32Mul()]),
      ...add(OB, [...get(ROWS0), ...op.i32Const(2), ...op.i32Shl()]),
      ...set(LEFT, [...get(LEFT), ...get(ROWS0), ...op.i32Sub()]),
      ...get(LEFT),
      ...op.brIf(0),
      ...op.end(),
      ...op.end(),
    ],
  };
}

// matmulT(w, rowStride, rows, cols, x, block, out, count, outStride, xStride, xStep):
// out[t][c] += Σ_r x[t][r] · w[r][c] for c < cols: x · m with m [rows, …] row-major,
// `rowStride` bytes a row (a thread takes a band of columns, so its rows are strided); x[t][r]
// at x + t·xStride + r·xStep bytes, so x is either [count, rows] (xStride 4·rows, xStep 4) or
// read transposed from [rows, count] (xStride 4, xStep 4·count: a weight gradient dyᵀ · x
// without transposing dy); out must start at zero. Tiles of 4 positions × 8 columns: per row
// of m, two loads of m feed eight multiply-adds, each with one position's x[t][r] splatted.
// The rows go `block` at a time, each block against every position (so it is read from memory
// once per call), the tiles adding into out. This is a linear layer's backward: dx = dy · W,
// and for a trained weight dW = dyᵀ · X.
function matmulTFunction(fused: boolean): WasmFunction {
  const [W, ROW_STRIDE, ROWS, COLS, X, BLOCK_ROWS, OUT, COUNT, OUT_STRIDE, XROW, XSTEP] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
  ];
  const locals: number[] = [];
  const local = (type: number) => 11 + locals.push(type) - 1;
  const [C, OUT_COL, WP, XP, END] = [I32, I32, I32, I32, I32].map(local) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const [R0, RN, XB, OB, CB] = [I32, I32, I32, I32, I32].map(local) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const acc = Array.from({ length: 8 }, () => local(V128));
  const wv = [local(V128), local(V128)] as const;
  const s = local(V128);
  const get = op.localGet;
  const set = (target: number, value: number[]) => [...value, ...op.localSet(target)];
  const add = (target: number, by: number[]) =>
    set(target, [...get(target), ...by, ...op.i32Add()]);
  const multiplyAdd = (a: number, b: number, into: number) =>
    fused
      ? [...get(a), ...get(b), ...get(into), ...op.f32x4RelaxedMadd(), ...op.localSet(into)]
      : [
          ...get(a),
          ...get(b),
          ...op.f32x4Mul(),
          ...get(into),
          ...op.f32x4Add(),
          ...op.localSet(into),
        ];

  // One tile: `positions` positions from X against `vectors` × 4 columns from column C.
  const tile = (positions: 1 | 4, vectors: 1 | 2) => {
    const a = (p: number, j: number) => acc[p * 2 + j]!;
    const body: number[] = [];
    const outAt = (p: number) => [
      ...get(OUT_COL),
      ...get(OUT_STRIDE),
      ...op.i32Const(p),
      ...op.i32Mul(),
      ...op.i32Add(),
    ];
    for (let p = 0; p < positions; p++) {
      for (let j = 0; j < vectors; j++) {
        body.push(...set(a(p, j), [...outAt(p), ...op.v128Load(16 * j)]));
      }
    }
    body.push(
      // WP = w + r0 · rowStride + 4c; XP = x + xStep·r0 … x + xStep·(r0 + rn)
      ...set(WP, [
        ...get(W),
        ...get(C),
        ...op.i32Const(2),
        ...op.i32Shl(),
        ...op.i32Add(),
        ...get(R0),
        ...get(ROW_STRIDE),
        ...op.i32Mul(),
        ...op.i32Add(),
      ]),
      ...set(XP, [...get(X), ...get(R0), ...get(XSTEP), ...op.i32Mul(), ...op.i32Add()]),
      ...set(END, [...get(XP), ...get(RN), ...get(XSTEP), ...op.i32Mul(), ...op.i32Add()]),
      ...op.loop(),
    );
    for (let j = 0; j < vectors; j++)
      body.push(...set(wv[j]!, [...get(WP), ...op.v128Load(16 * j)]));
    for (let p = 0; p < positions; p++) {
      // x[t + p][r]: xStride bytes a position
      body.push(
        ...set(s, [
          ...get(XP),
          ...get(XROW),
          ...op.i32Const(p),
          ...op.i32Mul(),
          ...op.i32Add(),
          ...op.v128Load32Splat(0),
        ]),
      );
      for (let j = 0; j < vectors; j++) body.push(...multiplyAdd(s, wv[j]!, a(p, j)));
    }
    body.push(
      ...add(WP, get(ROW_STRIDE)),
      ...get(XP),
      ...get(XSTEP),
      ...op.i32Add(),
      ...op.localTee(XP),
      ...get(END),
      ...op.i32LtU(),
      ...op.brIf(0),
      ...op.end(),
    );
    for (let p = 0; p < positions; p++) {
      for (let j = 0; j < vectors; j++) {
        body.push(...outAt(p), ...get(a(p, j)), ...op.v128Store(16 * j));
      }
    }
    body.push(...add(C, op.i32Const(4 * vectors)), ...add(OUT_COL, op.i32Const(16 * vectors)));
    return body;
  };

  // Every column band for `positions` positions: tiles of 8 columns, then one of 4.
  const columnsPass = (positions: 1 | 4) => [
    ...set(C, op.i32Const(0)),
    ...set(OUT_COL, get(OUT)),
    ...op.block(),
    ...op.loop(),
    ...get(C),
    ...op.i32Const(8),
    ...op.i32Add(),
    ...get(COLS),
    ...op.i32GtU(),
    ...op.brIf(1),
    ...tile(positions, 2),
    ...op.br(0),
    ...op.end(),
    ...op.end(),
    ...op.block(),
    ...get(C),
    ...get(COLS),
    ...op.i32LtU(),
    ...op.i32Eqz(),
    ...op.brIf(0),
    ...tile(positions, 1),
    ...op.end(),
    ...add(X, [...get(XROW), ...op.i32Const(positions), ...op.i32Mul()]),
    ...add(OUT, [...get(OUT_STRIDE), ...op.i32Const(positions), ...op.i32Mul()]),
    ...set(COUNT, [...get(COUNT), ...op.i32Const(positions), ...op.i32Sub()]),
  ];
  const passes = (positions: 1 | 4) => [
    ...op.block(),
    ...op.loop(),
    ...get(COUNT),
    ...op.i32Const(positions),
    ...op.i32LtU(),
    ...op.brIf(1),
    ...columnsPass(positions),
    ...op.br(0),
    ...op.end(),
    ...op.end(),
  ];
  return {
    name: 'matmulT',
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32],
    locals: locals as WasmFunction['locals'],
    body: [
      ...set(XB, get(X)),
      ...set(OB, get(OUT)),
      ...set(CB, get(COUNT)),
      ...set(R0, op.i32Const(0)),
      ...op.block(),
      ...get(ROWS),
      ...op.i32Eqz(),
      ...op.brIf(0),
      ...op.loop(),
      // Rows r0 … r0 + min(block, rows − r0) against every position.
      ...set(RN, [...get(ROWS), ...get(R0), ...op.i32Sub()]),
      ...set(RN, i32MinU(BLOCK_ROWS, RN)),
      ...set(X, get(XB)),
      ...set(OUT, get(OB)),
      ...set(COUNT, get(CB)),
      ...passes(4),
      ...passes(1),
      ...add(R0, get(RN)),
      ...get(R0),
      ...get(ROWS),
      ...op.i32LtU(),
      ...op.brIf(0),
      ...op.end(),
      ...op.end(),
    ],
  };
}

let compiled: WebAssembly.Module | null | undefined;
/** The fused module where the engine has relaxed SIMD, else the SIMD128 one; null without SIMD. */
function module(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    for (const fused of [true, false]) {
      const bytes = wasmModule([matmulFunction(fused), matmulTFunction(fused)], {
        sharedMaxPages: MAX_PAGES,
      });
      if (engineAccepts(bytes)) {
        compiled = new WebAssembly.Module(bytes);
        break;
      }
    }
  }
  return compiled;
}

/** A float32 matrix held in an arena: its values are a view into the arena's memory. */
export interface F32Rows extends HeldMatrix {
  readonly values: Float32Array;
  /** Values its place in the arena has room for (rehold). */
  readonly capacity: number;
}

/** A product's given output must hold exactly its values. */
function checkOut(out: Float32Array, length: number): void {
  if (out.length !== length) {
    throw new RangeError(`an output of ${out.length} values for a product of ${length}`);
  }
}

/** Positions per kernel call: bounds the scratch a long prompt needs. */
const CHUNK_POSITIONS = 64;
/** Bytes of weights a cache block holds while every position of a call passes over it. */
const BLOCK_BYTES = 256 * 1024;

/** One model's float32 weights in WebAssembly memory, and the products over them. */
export class F32Arena extends KernelArena<F32Rows> {
  /** Whether this engine can run the kernel (WebAssembly SIMD). */
  static available(): boolean {
    return module() !== null;
  }

  constructor(options: { threads?: number } = {}) {
    const m = module();
    if (!m) throw new Error('this engine has no WebAssembly SIMD for the float32 kernel');
    super(m, options.threads ?? 1);
  }

  /** Whether the kernel takes a matrix of this width (whole 4-lane vectors). */
  static fits(cols: number): boolean {
    return cols % 4 === 0;
  }

  readonly block = 4;

  /** Copies a [rows, cols] row-major matrix into the arena; the view stays valid as it grows. */
  hold(data: Float32Array, rows: number, cols: number): F32Rows {
    if (data.length !== rows * cols) {
      throw new RangeError(`${data.length} values are not a ${rows}×${cols} matrix`);
    }
    const valuesAt = this.allocate(data.length * 4);
    const values = new Float32Array(this.memory.buffer, valuesAt, data.length);
    values.set(data);
    return { rows, cols, values, valuesAt, scalesAt: 0, rowBytes: cols * 4, capacity: data.length };
  }

  /**
   * Copies a [rows, cols] matrix into `into`'s place when it has room, else holds it anew:
   * for matrices that change between products (a weight the optimiser updates, an operand of
   * a training product), so the arena does not grow with every copy.
   */
  rehold(into: F32Rows | undefined, data: Float32Array, rows: number, cols: number): F32Rows {
    if (!into || into.capacity < data.length) return this.hold(data, rows, cols);
    if (data.length !== rows * cols) {
      throw new RangeError(`${data.length} values are not a ${rows}×${cols} matrix`);
    }
    const values = new Float32Array(this.memory.buffer, into.valuesAt, data.length);
    values.set(data);
    return { ...into, rows, cols, values, rowBytes: cols * 4 };
  }

  gather(m: F32Rows, ids: readonly number[]): Float32Array {
    const out = new Float32Array(ids.length * m.cols);
    ids.forEach((id, r) => out.set(m.values.subarray(id * m.cols, (id + 1) * m.cols), r * m.cols));
    return out;
  }

  /**
   * x · m for `count` vectors x [count, m.rows]: [count, m.cols] (a frozen layer's backward
   * pass, dx = dy · W, with W held as PyTorch's [out, in]). Columns split across threads.
   * Each product here writes into `out` when given one (a tensor's memory: host-values.ts).
   */
  matmulT(
    m: F32Rows,
    x: Float32Array,
    count: number,
    out: Float32Array = new Float32Array(count * m.cols),
  ): Float32Array {
    const { rows, cols } = m;
    const block = this.#transposedBlock(m, x, count, rows);
    const chunk = Math.min(count, CHUNK_POSITIONS);
    const base = this.scratch(chunk * (rows + cols) * 4);
    const outAt = base + chunk * rows * 4;
    const buffer = this.memory.buffer;
    const xIn = new Float32Array(buffer, base, chunk * rows);
    const outIn = new Float32Array(buffer, outAt, chunk * cols);
    checkOut(out, count * cols);
    for (let first = 0; first < count; first += chunk) {
      const n = Math.min(chunk, count - first);
      xIn.set(x.subarray(first * rows, (first + n) * rows));
      outIn.fill(0);
      this.transposedProducts(m, n, base, outAt, block);
      out.set(n === chunk ? outIn : outIn.subarray(0, n * cols), first * cols);
    }
    return out;
  }

  /**
   * The rows of m per cache block in a transposed product (matmulT, transposedTimes), after
   * checking m's width and that x holds `vectors` vectors of `length`: a thread's band of
   * columns (half of them), that many rows deep, fills BLOCK_BYTES.
   */
  #transposedBlock(m: F32Rows, x: Float32Array, vectors: number, length: number): number {
    if (!this.fits(m.cols)) throw new RangeError(`${m.cols} columns are not whole blocks of 4`);
    if (x.length !== vectors * length) {
      throw new RangeError(`${x.length} values are not ${vectors} vectors of ${length}`);
    }
    return Math.max(4, Math.floor(BLOCK_BYTES / (2 * m.cols)));
  }

  /**
   * xᵀ · m for x [m.rows, count]: [count, m.cols], with x read as it lies, not transposed
   * first. This is a trained layer's weight gradient dW = dyᵀ · X, X held as m and dy as x.
   */
  transposedTimes(
    x: Float32Array,
    m: F32Rows,
    count: number,
    out: Float32Array = new Float32Array(count * m.cols),
  ): Float32Array {
    const { rows, cols } = m;
    const block = this.#transposedBlock(m, x, rows, count);
    const base = this.scratch((x.length + count * cols) * 4);
    const outAt = base + x.length * 4;
    const buffer = this.memory.buffer;
    new Float32Array(buffer, base, x.length).set(x);
    const outIn = new Float32Array(buffer, outAt, count * cols);
    checkOut(out, count * cols);
    outIn.fill(0);
    this.transposedProducts(m, count, base, outAt, block, 4, 4 * count);
    out.set(outIn);
    return out;
  }

  /**
   * Products slice by slice, on this thread: for each of `slices` pairs, a (m, k) · b (k, n)
   * → (slices, m, n), where a slice of a lies as (k, m) when `transposeA` and a slice of b as
   * (n, k) when `transposeB` (read as they lie, never transposed). Attention's products
   * are this shape, per head: tfjs on wasm runs a rank-3 matMul through a naive loop and a
   * 2-D one with ~30 µs of overhead a call, against the kernel's few µs for a 64 × 64 × 32
   * slice. The summed width (k with transposeB, else n) must be whole 4-lane vectors.
   */
  sliceProducts(
    a: Float32Array,
    b: Float32Array,
    shape: { slices: number; m: number; k: number; n: number },
    transposeA = false,
    transposeB = false,
    into: Float32Array = new Float32Array(shape.slices * shape.m * shape.n),
  ): Float32Array {
    const { slices, m, k, n } = shape;
    if (a.length !== slices * m * k || b.length !== slices * k * n) {
      throw new RangeError(
        `slices of ${a.length / slices} and ${b.length / slices} values are not ${m}×${k} and ${k}×${n}`,
      );
    }
    if (transposeA && transposeB) throw new RangeError('only one operand may lie transposed');
    if (!this.fits(transposeB ? k : n)) {
      throw new RangeError(`${transposeB ? k : n} values are not whole blocks of 4`);
    }
    const outLength = slices * m * n;
    checkOut(into, outLength);
    const aAt = this.scratch((a.length + b.length + outLength) * 4);
    const bAt = aAt + a.length * 4;
    const outAt = bAt + b.length * 4;
    const buffer = this.memory.buffer;
    new Float32Array(buffer, aAt, a.length).set(a);
    new Float32Array(buffer, bAt, b.length).set(b);
    const out = new Float32Array(buffer, outAt, outLength);
    const [aBytes, bBytes, outBytes] = [4 * m * k, 4 * k * n, 4 * m * n];
    if (transposeB) {
      // Each b slice is a [n, k] matrix of rows: x · rowsᵀ, all of it one cache block.
      const kernel = this.exports.matmul as (...args: number[]) => void;
      for (let i = 0; i < slices; i++) {
        kernel(bAt + i * bBytes, n, n, k, aAt + i * aBytes, 0, outAt + i * outBytes, m, 4 * n);
      }
    } else {
      // Each b slice is [k, n]: x · m, with x read as (m, k), or as (k, m) transposed.
      const kernel = this.exports.matmulT as (...args: number[]) => void;
      const [xStride, xStep] = transposeA ? [4, 4 * m] : [4 * k, 4];
      out.fill(0);
      for (let i = 0; i < slices; i++) {
        kernel(
          bAt + i * bBytes,
          4 * n,
          k,
          n,
          aAt + i * aBytes,
          k,
          outAt + i * outBytes,
          m,
          4 * n,
          xStride,
          xStep,
        );
      }
    }
    into.set(out);
    return into;
  }

  /** x · mᵀ (KernelArena.matmul), into `out` when given. */
  matmul(
    m: F32Rows,
    x: Float32Array,
    count: number,
    out: Float32Array = new Float32Array(count * m.rows),
  ): Float32Array {
    this.checkProduct(m, x, count);
    const { rows, cols } = m;
    const chunk = Math.min(count, CHUNK_POSITIONS);
    const base = this.scratch(chunk * (cols + rows) * 4);
    const outAt = base + chunk * cols * 4;
    const buffer = this.memory.buffer;
    const xIn = new Float32Array(buffer, base, chunk * cols);
    const outIn = new Float32Array(buffer, outAt, chunk * rows);
    checkOut(out, count * rows);
    for (let first = 0; first < count; first += chunk) {
      const n = Math.min(chunk, count - first);
      xIn.set(x.subarray(first * cols, (first + n) * cols));
      // Whole tiles of 4 rows (decodeTile), so a row takes the same tile in every block.
      const block = Math.max(4, Math.floor(BLOCK_BYTES / m.rowBytes)) & ~3;
      this.products(m, n, base, 0, outAt, block);
      out.set(n === chunk ? outIn : outIn.subarray(0, n * rows), first * rows);
    }
    return out;
  }
}
