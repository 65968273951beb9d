import {
  F32,
  I32,
  V128,
  engineAccepts,
  pointerLoop,
  f32x4LaneSum,
  i32MinU,
  op,
  wasmModule,
  type ValueType,
  type WasmFunction,
} from '../wasm/module.ts';
import { gatherRowsInt8, quantizeRowsInt8, type Int8Rows } from './int8.ts';
import { KernelArena, MAX_PAGES, type HeldMatrix } from './kernel-arena.ts';

/**
 * Int8 matrix–vector products in WebAssembly SIMD, for decoding with int8 weights: tfjs has
 * no int8 kernel, and dequantising a whole matrix to float32 for every decoded token costs
 * more than the product itself. The scheme is llama.cpp's Q8_0 × Q8_0 dot: the activation
 * vector is quantised to int8 in blocks of 32 (one float32 scale per block, absmax / 127),
 * each block's dot product with a weight row is exact integer arithmetic (relaxed SIMD's
 * int8 dot where the engine has it, else i32x4.dot_i16x8_s), and the block sums are scaled
 * into a float32 accumulator, then by the row's scale.
 *
 * The weights live in one shared WebAssembly memory per model (kernel-arena.ts), copied in
 * once at load, where a second thread can take half of each product's rows.
 */

/** Positions per kernel call: bounds the scratch (activations and outputs) a long prompt
 * needs, while each call still reuses a thread's rows across many positions. */
const CHUNK_POSITIONS = 64;

/** Activation blocks: 32 values, two v128 loads of int8 weights. */
export const KERNEL_BLOCK = 32;

// matmul(w, wScales, rows, cols, xq, xScales, out, count, outStride): for each of `count`
// positions t, out[t][r] = wScales[r] · Σ_b xScales[t][b] · Σ_{i in b} w[r, i] · xq[t][i];
// w int8 [rows, cols], cols a multiple of 32, all byte addresses; position t's activations
// are 2·cols bytes and cols / 8 bytes of scales after position t − 1's, its outputs outStride
// bytes after. Each kernel below is a loop over rows for one position (`rowsBody`), which
// `overPositions` repeats; a thread's share of rows stays in cache across the positions.
// The block sums are exact integers in either kernel; only the order in which their lanes
// are gathered differs, so the two agree up to float32 rounding.
const [W, WS, ROWS, COLS, XQ, XS, OUT, COUNT, OUT_STRIDE] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const [W0, WS0, ROWS0, OUT0] = [9, 10, 11, 12];
/** The rows bodies' own locals start here. */
const FIRST_LOCAL = 13;
/** Bytes of weights a cache block holds while every position of a call passes over it. */
const BLOCK_BYTES = 128 * 1024;

function overPositions(rowsBody: number[], locals: ValueType[]): WasmFunction {
  const save = (from: number, to: number) => [...op.localGet(from), ...op.localSet(to)];
  const advance = (local: number, by: number[]) => [
    ...op.localGet(local),
    ...by,
    ...op.i32Add(),
    ...op.localSet(local),
  ];
  // The block loop's locals follow the rows body's.
  const [WB, WSB, OB, LEFT, XQB, XSB, CB, BLOCK, N] = Array.from(
    { length: 9 },
    (_, i) => FIRST_LOCAL + locals.length + i,
  ) as [number, number, number, number, number, number, number, number, number];
  const positions = [
    ...save(W, W0),
    ...save(WS, WS0),
    ...save(ROWS, ROWS0),
    ...save(OUT, OUT0),
    ...op.block(),
    ...op.localGet(COUNT),
    ...op.i32Eqz(),
    ...op.brIf(0),
    ...op.loop(),
    ...save(W0, W),
    ...save(WS0, WS),
    ...save(ROWS0, ROWS),
    ...save(OUT0, OUT),
    ...rowsBody,
    ...advance(OUT0, op.localGet(OUT_STRIDE)),
    ...advance(XQ, [...op.localGet(COLS), ...op.i32Const(1), ...op.i32Shl()]),
    ...advance(XS, [...op.localGet(COLS), ...op.i32Const(3), ...op.i32ShrU()]),
    ...op.localGet(COUNT),
    ...op.i32Const(1),
    ...op.i32Sub(),
    ...op.localTee(COUNT),
    ...op.brIf(0),
    ...op.end(),
    ...op.end(),
  ];
  return {
    name: 'matmul',
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32],
    locals: [I32, I32, I32, I32, ...locals, I32, I32, I32, I32, I32, I32, I32, I32, I32],
    body: [
      // Rows in blocks of BLOCK_BYTES (an even count, at least 2), each against every
      // position, so a block is read from memory once per call rather than once per position.
      ...op.i32Const(BLOCK_BYTES),
      ...op.localGet(COLS),
      ...op.i32DivU(),
      ...op.i32Const(~1),
      ...op.i32And(),
      ...op.localSet(BLOCK),
      ...op.i32Const(2),
      ...op.localGet(BLOCK),
      ...op.localGet(BLOCK),
      ...op.i32Const(2),
      ...op.i32LtU(),
      ...op.select(),
      ...op.localSet(BLOCK),
      ...save(W, WB),
      ...save(WS, WSB),
      ...save(OUT, OB),
      ...save(ROWS, LEFT),
      ...save(XQ, XQB),
      ...save(XS, XSB),
      ...save(COUNT, CB),
      ...op.block(),
      ...op.localGet(LEFT),
      ...op.i32Eqz(),
      ...op.brIf(0),
      ...op.loop(),
      // n = min(block, left)
      ...i32MinU(BLOCK, LEFT),
      ...op.localSet(N),
      ...save(WB, W),
      ...save(WSB, WS),
      ...save(OB, OUT),
      ...save(N, ROWS),
      ...save(XQB, XQ),
      ...save(XSB, XS),
      ...save(CB, COUNT),
      ...positions,
      ...advance(WB, [...op.localGet(N), ...op.localGet(COLS), ...op.i32Mul()]),
      ...advance(WSB, [...op.localGet(N), ...op.i32Const(2), ...op.i32Shl()]),
      ...advance(OB, [...op.localGet(N), ...op.i32Const(2), ...op.i32Shl()]),
      ...op.localGet(LEFT),
      ...op.localGet(N),
      ...op.i32Sub(),
      ...op.localTee(LEFT),
      ...op.brIf(0),
      ...op.end(),
      ...op.end(),
    ],
  };
}

// The SIMD128 kernel: xq int16 (int8 values, widened once per vector so each row's loop loads
// them ready), i32x4.dot_i16x8_s on each half of 16 weights widened to int16.
const [ROW_END, XQP, XSP, ACC, WV] = [0, 1, 2, 3, 4].map((i) => FIRST_LOCAL + i) as [
  number,
  number,
  number,
  number,
  number,
];
/** isum += dot(extend(half of WV), xq[XQP + offset]) for one 8-lane half. */
const dotHalf = (high: boolean, offset: number, add: boolean) => [
  ...op.localGet(WV),
  ...(high ? op.i16x8ExtendHighI8x16S() : op.i16x8ExtendLowI8x16S()),
  ...op.localGet(XQP),
  ...op.v128Load(offset),
  ...op.i32x4DotI16x8S(),
  ...(add ? op.i32x4Add() : []),
];
const matmulSimd128: WasmFunction = overPositions(
  [
    ...op.block(),
    ...op.localGet(ROWS),
    ...op.i32Eqz(),
    ...op.brIf(0),
    ...op.loop(),
    // One row: acc = 0; walk its blocks.
    ...op.f32Const(0),
    ...op.f32x4Splat(),
    ...op.localSet(ACC),
    ...op.localGet(XQ),
    ...op.localSet(XQP),
    ...op.localGet(XS),
    ...op.localSet(XSP),
    ...op.localGet(W),
    ...op.localGet(COLS),
    ...op.i32Add(),
    ...op.localSet(ROW_END),
    ...op.loop(),
    ...op.localGet(W),
    ...op.v128Load(0),
    ...op.localSet(WV),
    ...dotHalf(false, 0, false),
    ...dotHalf(true, 16, true),
    ...op.localGet(W),
    ...op.v128Load(16),
    ...op.localSet(WV),
    ...dotHalf(false, 32, true),
    ...dotHalf(true, 48, true),
    // acc += float(isum) · xScale[block]
    ...op.f32x4ConvertI32x4S(),
    ...op.localGet(XSP),
    ...op.f32Load(0),
    ...op.f32x4Splat(),
    ...op.f32x4Mul(),
    ...op.localGet(ACC),
    ...op.f32x4Add(),
    ...op.localSet(ACC),
    ...op.localGet(W),
    ...op.i32Const(32),
    ...op.i32Add(),
    ...op.localSet(W),
    ...op.localGet(XQP),
    ...op.i32Const(64),
    ...op.i32Add(),
    ...op.localSet(XQP),
    ...op.localGet(XSP),
    ...op.i32Const(4),
    ...op.i32Add(),
    ...op.localSet(XSP),
    ...op.localGet(W),
    ...op.localGet(ROW_END),
    ...op.i32LtU(),
    ...op.brIf(0),
    ...op.end(),
    // out[r] = (acc₀ + acc₁ + acc₂ + acc₃) · wScale[r]
    ...op.localGet(OUT),
    ...f32x4LaneSum(ACC),
    ...op.localGet(WS),
    ...op.f32Load(0),
    ...op.f32Mul(),
    ...op.f32Store(0),
    ...op.localGet(OUT),
    ...op.i32Const(4),
    ...op.i32Add(),
    ...op.localSet(OUT),
    ...op.localGet(WS),
    ...op.i32Const(4),
    ...op.i32Add(),
    ...op.localSet(WS),
    ...op.localGet(ROWS),
    ...op.i32Const(1),
    ...op.i32Sub(),
    ...op.localTee(ROWS),
    ...op.brIf(0),
    ...op.end(),
    ...op.end(),
  ],
  [I32, I32, I32, V128, V128],
);

/**
 * The relaxed-SIMD kernel: i32x4.relaxed_dot_i8x16_i7x16_add_s multiplies 16 int8 weights by
 * 16 activation bytes in one instruction (vpdpbusd with AVX-VNNI, sdot on Arm), but only for
 * activations in 0…127. So each block of xq is stored as its positive part and its negated
 * negative part (xq = pos − neg, both in 0…127): two dots per 16 weights, still exact, and no
 * loss of the eighth bit. Two rows per pass share each activation load. Measured on one core
 * of this project's 2-core machine, 133 MB of weights: 4.5 GB/s for the SIMD128 kernel; 6.4
 * with one row per pass, 8.0 with two, 7.7 with three or four.
 */
function matmulRelaxed(): WasmFunction {
  const [W1, END, XP, SP, ACC0, ACC1, POS0, POS1, NEG0, NEG1, SCALE, LO, HI] = Array.from(
    { length: 13 },
    (_, i) => FIRST_LOCAL + i,
  ) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // W1 walks the second row of a pair (W the first).
  const zero = op.v128Const([0, 0, 0, 0]);
  // isum = Σ w·pos − Σ w·neg over one row's 32-value block at `row`.
  const blockSum = (row: number) => [
    ...op.localGet(row),
    ...op.v128Load(0),
    ...op.localTee(LO),
    ...op.localGet(POS0),
    ...op.localGet(row),
    ...op.v128Load(16),
    ...op.localTee(HI),
    ...op.localGet(POS1),
    ...zero,
    ...op.i32x4RelaxedDotI8x16I7x16AddS(),
    ...op.i32x4RelaxedDotI8x16I7x16AddS(),
    ...op.localGet(LO),
    ...op.localGet(NEG0),
    ...op.localGet(HI),
    ...op.localGet(NEG1),
    ...zero,
    ...op.i32x4RelaxedDotI8x16I7x16AddS(),
    ...op.i32x4RelaxedDotI8x16I7x16AddS(),
    ...op.i32x4Sub(),
  ];
  const accumulate = (acc: number) => [
    ...op.f32x4ConvertI32x4S(),
    ...op.localGet(SCALE),
    ...op.f32x4Mul(),
    ...op.localGet(acc),
    ...op.f32x4Add(),
    ...op.localSet(acc),
  ];
  const advance = (local: number, bytes: number) => [
    ...op.localGet(local),
    ...op.i32Const(bytes),
    ...op.i32Add(),
    ...op.localSet(local),
  ];
  // One pass over `pair ? 2 : 1` rows starting at W; leaves W at the next row.
  const pass = (pair: boolean) => [
    ...op.f32Const(0),
    ...op.f32x4Splat(),
    ...op.localTee(ACC0),
    ...op.localSet(ACC1),
    ...op.localGet(W),
    ...op.localGet(COLS),
    ...op.i32Add(),
    ...op.localTee(END),
    ...op.localSet(W1),
    ...op.localGet(XQ),
    ...op.localSet(XP),
    ...op.localGet(XS),
    ...op.localSet(SP),
    ...op.loop(),
    ...[POS0, POS1, NEG0, NEG1].flatMap((local, i) => [
      ...op.localGet(XP),
      ...op.v128Load(16 * i),
      ...op.localSet(local),
    ]),
    ...op.localGet(SP),
    ...op.f32Load(0),
    ...op.f32x4Splat(),
    ...op.localSet(SCALE),
    ...blockSum(W),
    ...accumulate(ACC0),
    ...(pair ? [...blockSum(W1), ...accumulate(ACC1), ...advance(W1, 32)] : []),
    ...advance(XP, 64),
    ...advance(SP, 4),
    ...op.localGet(W),
    ...op.i32Const(32),
    ...op.i32Add(),
    ...op.localTee(W),
    ...op.localGet(END),
    ...op.i32LtU(),
    ...op.brIf(0),
    ...op.end(),
    ...[ACC0, ...(pair ? [ACC1] : [])].flatMap((acc, r) => [
      ...op.localGet(OUT),
      ...f32x4LaneSum(acc),
      ...op.localGet(WS),
      ...op.f32Load(4 * r),
      ...op.f32Mul(),
      ...op.f32Store(4 * r),
    ]),
    ...(pair ? [...op.localGet(W1), ...op.localSet(W)] : []),
    ...advance(OUT, pair ? 8 : 4),
    ...advance(WS, pair ? 8 : 4),
  ];
  return overPositions(
    [
      // while (rows > 1) { pass(pair); rows -= 2 }
      ...op.block(),
      ...op.loop(),
      ...op.localGet(ROWS),
      ...op.i32Const(1),
      ...op.i32GtU(),
      ...op.i32Eqz(),
      ...op.brIf(1),
      ...pass(true),
      ...op.localGet(ROWS),
      ...op.i32Const(2),
      ...op.i32Sub(),
      ...op.localSet(ROWS),
      ...op.br(0),
      ...op.end(),
      ...op.end(),
      // if (rows) pass(one)
      ...op.block(),
      ...op.localGet(ROWS),
      ...op.i32Eqz(),
      ...op.brIf(0),
      ...pass(false),
      ...op.end(),
    ],
    [I32, I32, I32, I32, V128, V128, V128, V128, V128, V128, V128, V128, V128],
  );
}

/**
 * quantize(x, blocks, xq, xs): the relaxed kernel's activations from float32 x, one block of
 * 32 at a time: xs[b] = f32(absmax / 127) (the division in float64, as JavaScript's
 * Math.fround(max / 127)), q = floor(f32(f32(x · f32(1 / scale)) + 0.5)) in float32 lanes,
 * then the 32 positive parts and the 32 negated negative parts as bytes. In JavaScript this
 * ran at 5–19 ns a value depending on how far V8 had optimised it; every activation of a
 * prompt passes through it.
 */
function quantizeRelaxed(): WasmFunction {
  const [X, BLOCKS, Q, S] = [0, 1, 2, 3];
  const [END, MAX, INVERSE, Q0, Q1, Q2, Q3, BYTES, POS] = [4, 5, 6, 7, 8, 9, 10, 11, 12];
  const lanesAt = (offset: number, into: number) => [
    ...op.localGet(X),
    ...op.v128Load(offset),
    ...op.localGet(INVERSE),
    ...op.f32x4Mul(),
    ...op.f32Const(0.5),
    ...op.f32x4Splat(),
    ...op.f32x4Add(),
    ...op.f32x4Floor(),
    ...op.i32x4TruncSatF32x4S(),
    ...op.localSet(into),
  ];
  // 16 values at x + 64·half → 16 signed bytes → pos and neg at xq + 16·half, + 32 + 16·half.
  const sixteen = (half: number) => [
    ...lanesAt(64 * half, Q0),
    ...lanesAt(64 * half + 16, Q1),
    ...lanesAt(64 * half + 32, Q2),
    ...lanesAt(64 * half + 48, Q3),
    ...op.localGet(Q0),
    ...op.localGet(Q1),
    ...op.i16x8NarrowI32x4S(),
    ...op.localGet(Q2),
    ...op.localGet(Q3),
    ...op.i16x8NarrowI32x4S(),
    ...op.i8x16NarrowI16x8S(),
    ...op.localSet(BYTES),
    ...op.localGet(BYTES),
    ...op.v128Const([0, 0, 0, 0]),
    ...op.i8x16MaxS(),
    ...op.localSet(POS),
    ...op.localGet(Q),
    ...op.localGet(POS),
    ...op.v128Store(16 * half),
    ...op.localGet(Q),
    ...op.localGet(POS),
    ...op.localGet(BYTES),
    ...op.i8x16Sub(),
    ...op.v128Store(32 + 16 * half),
  ];
  const absMax = [
    ...op.localGet(X),
    ...op.v128Load(0),
    ...op.f32x4Abs(),
    ...Array.from({ length: 7 }, (_, i) => [
      ...op.localGet(X),
      ...op.v128Load(16 * (i + 1)),
      ...op.f32x4Abs(),
      ...op.f32x4Max(),
    ]).flat(),
    ...op.localSet(Q0),
    ...op.localGet(Q0),
    ...op.f32x4ExtractLane(0),
    ...op.localGet(Q0),
    ...op.f32x4ExtractLane(1),
    ...op.f32Max(),
    ...op.localGet(Q0),
    ...op.f32x4ExtractLane(2),
    ...op.localGet(Q0),
    ...op.f32x4ExtractLane(3),
    ...op.f32Max(),
    ...op.f32Max(),
    ...op.localSet(MAX),
  ];
  return {
    name: 'quantize',
    params: [I32, I32, I32, I32],
    locals: [I32, F32, V128, V128, V128, V128, V128, V128, V128],
    body: pointerLoop({
      pointer: S,
      count: BLOCKS,
      shift: 2,
      end: END,
      step: 4,
      body: [
        ...absMax,
        // scale = f32(f64(max) / 127), stored; inverse = scale ? f32(1 / scale) : 0
        ...op.localGet(S),
        ...op.localGet(MAX),
        ...op.f64PromoteF32(),
        ...op.f64Const(127),
        ...op.f64Div(),
        ...op.f32DemoteF64(),
        ...op.localTee(MAX),
        ...op.f32Store(0),
        ...op.f32Const(0),
        ...op.f32Const(1),
        ...op.localGet(MAX),
        ...op.f32Div(),
        ...op.localGet(MAX),
        ...op.f32Const(0),
        ...op.f32Eq(),
        ...op.select(),
        ...op.f32x4Splat(),
        ...op.localSet(INVERSE),
        ...sixteen(0),
        ...sixteen(1),
        ...op.localGet(X),
        ...op.i32Const(128),
        ...op.i32Add(),
        ...op.localSet(X),
        ...op.localGet(Q),
        ...op.i32Const(64),
        ...op.i32Add(),
        ...op.localSet(Q),
      ],
    }),
  };
}

type Quantize = (x: number, blocks: number, xq: number, xs: number) => void;

/** Which kernel the products run: the faster here of relaxed SIMD and SIMD128 (`fastestInt8Kernel`). */
export type Int8KernelKind = 'relaxed' | 'simd128';

let fastest: Int8KernelKind | null = null;

/**
 * The kernel that runs faster on this machine, timed once per process: SIMD128 where the
 * engine lacks relaxed SIMD. WebAssembly cannot ask which instructions the CPU has, and
 * which kernel wins depends on them: V8 turns relaxed_dot_i8x16_i7x16_add_s into one
 * `vpdpbusd` only with AVX-VNNI; elsewhere it is a pmaddubsw/pmaddwd/paddd sequence, and
 * the relaxed kernel, two of them per 16 weights, fell to half of SIMD128's speed (an
 * AVX-512 EPYC without AVX-VNNI: SmolLM2-135M int8 decoding at 24 against 16 ms a token,
 * where a machine with it ran relaxed at 20 against SIMD128's ~35). Timed on a matrix that
 * stays in cache, where the kernels' arithmetic shows; out of cache both wait on memory.
 */
export function fastestInt8Kernel(): Int8KernelKind {
  if (fastest) return fastest;
  if (!kernelModule('relaxed')) return (fastest = 'simd128');
  const rows = 512;
  const cols = 1024;
  const weights = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37));
  const m = quantizeRowsInt8(weights, rows, cols);
  const x = Float32Array.from({ length: cols }, (_, i) => Math.sin(i));
  const time = (kind: Int8KernelKind): number => {
    const arena = new Int8Arena({ kernel: kind });
    try {
      const held = arena.hold(m);
      let best = Infinity;
      for (let round = 0; round < 5; round++) {
        const start = performance.now();
        for (let i = 0; i < 20; i++) arena.matmul(held, x, 1);
        best = Math.min(best, performance.now() - start);
      }
      return best;
    } finally {
      arena.dispose();
    }
  };
  time('relaxed'); // the first calls compile; time afterwards
  time('simd128');
  return (fastest = time('relaxed') <= time('simd128') ? 'relaxed' : 'simd128');
}

const compiled = new Map<Int8KernelKind, WebAssembly.Module | null>();
function kernelModule(kind: Int8KernelKind): WebAssembly.Module | null {
  if (!compiled.has(kind)) {
    const bytes = wasmModule(
      kind === 'relaxed' ? [matmulRelaxed(), quantizeRelaxed()] : [matmulSimd128],
      {
        sharedMaxPages: MAX_PAGES,
      },
    );
    compiled.set(kind, engineAccepts(bytes) ? new WebAssembly.Module(bytes) : null);
  }
  return compiled.get(kind) as WebAssembly.Module | null;
}

/** An int8 matrix held in an arena: its values and scales are views into the arena's memory. */
export interface ArenaRows extends Int8Rows, HeldMatrix {}

/** One model's int8 weights in WebAssembly memory, and the products over them. */
export class Int8Arena extends KernelArena<ArenaRows> {
  /** The kernel in use (the faster here unless the caller asked; SIMD128 without relaxed SIMD). */
  readonly kernel: Int8KernelKind;
  /** The relaxed kernel's activation quantiser (the SIMD128 kernel's is quantizeWide). */
  readonly #quantize: Quantize | null;

  /** `threads`: 2 splits each product with a worker thread; 1 keeps it on this one.
   * `kernel`: force one (tests compare them); unavailable kernels fall back to SIMD128. */
  constructor(options: { threads?: number; kernel?: Int8KernelKind } = {}) {
    const wanted = options.kernel ?? fastestInt8Kernel();
    const relaxed = wanted === 'relaxed' ? kernelModule('relaxed') : null;
    const module = relaxed ?? kernelModule('simd128');
    if (!module) throw new Error('this engine has no WebAssembly SIMD for the int8 kernel');
    super(module, options.threads ?? 1);
    this.kernel = relaxed ? 'relaxed' : 'simd128';
    this.#quantize = (this.exports.quantize as Quantize | undefined) ?? null;
  }

  /** Whether the kernel takes a matrix of this width (whole activation blocks). */
  static fits(cols: number): boolean {
    return cols % KERNEL_BLOCK === 0;
  }

  readonly block = KERNEL_BLOCK;

  /** Copies a quantised matrix into the arena; the returned views stay valid as it grows. */
  hold(m: Int8Rows): ArenaRows {
    const valuesAt = this.allocate(m.values.length);
    const scalesAt = this.allocate(m.scales.length * 4);
    const buffer = this.memory.buffer;
    const values = new Int8Array(buffer, valuesAt, m.values.length);
    values.set(m.values);
    const scales = new Float32Array(buffer, scalesAt, m.scales.length);
    scales.set(m.scales);
    return { rows: m.rows, cols: m.cols, values, scales, valuesAt, scalesAt, rowBytes: m.cols };
  }

  gather(m: ArenaRows, ids: readonly number[]): Float32Array {
    return gatherRowsInt8(m, ids);
  }

  /**
   * x · mᵀ for `count` vectors x [count, m.cols] (PyTorch's Linear without bias):
   * [count, m.rows]. Each vector is quantised to int8 blocks of KERNEL_BLOCK first; the
   * kernel takes up to CHUNK_POSITIONS of them per call, so a thread's rows are read from
   * memory once per chunk rather than once per position.
   */
  matmul(m: ArenaRows, x: Float32Array, count: number): Float32Array {
    this.checkProduct(m, x, count);
    const { rows, cols } = m;
    const chunk = Math.min(count, CHUNK_POSITIONS);
    const blocks = cols / KERNEL_BLOCK;
    const xqBytes = cols * 2; // either kernel: 2 bytes per activation
    const xsBytes = blocks * 4;
    const base = this.scratch(chunk * (xqBytes + xsBytes + rows * 4 + cols * 4));
    const xsAt = base + chunk * xqBytes;
    const outAt = xsAt + chunk * xsBytes;
    const xAt = outAt + chunk * rows * 4;
    const buffer = this.memory.buffer;
    const outIn = new Float32Array(buffer, outAt, chunk * rows);
    const out = new Float32Array(count * rows);
    for (let first = 0; first < count; first += chunk) {
      const n = Math.min(chunk, count - first);
      const vectors = x.subarray(first * cols, (first + n) * cols);
      if (this.#quantize) {
        new Float32Array(buffer, xAt, n * cols).set(vectors);
        this.#quantize(xAt, n * blocks, base, xsAt);
      } else {
        quantizeWide(
          vectors,
          new Float32Array(buffer, xsAt, n * blocks),
          new Int16Array(buffer, base, n * cols),
        );
      }
      this.products(m, n, base, xsAt, outAt);
      out.set(n === chunk ? outIn : outIn.subarray(0, n * rows), first * rows);
    }
    return out;
  }
}

/**
 * The SIMD128 kernel's activations: int16 per value, by the same arithmetic as the relaxed
 * kernel's quantiser (quantizeRelaxed), so the two kernels see the same integers.
 */
function quantizeWide(x: Float32Array, xs: Float32Array, xq: Int16Array): void {
  for (let b = 0, i = 0; i < x.length; b++, i += KERNEL_BLOCK) {
    let max = 0;
    for (let j = i; j < i + KERNEL_BLOCK; j++) max = Math.max(max, Math.abs(x[j]!));
    const scale = Math.fround(max / 127);
    xs[b] = scale;
    const inverse = scale === 0 ? 0 : Math.fround(1 / scale);
    for (let j = i; j < i + KERNEL_BLOCK; j++) {
      xq[j] = Math.floor(Math.fround(Math.fround(x[j]! * inverse) + 0.5));
    }
  }
}
