// The quantiser's inner loop (quantization.ts) in WebAssembly SIMD: clip, shift, scale and
// round stochastically, four coordinates a step, in float64 lanes so that every step is the
// scalar loop's own double arithmetic and the result is bit-identical to it (float32 lanes
// would lose the rounding fraction: at Q = 2^22 the scaled value keeps 2 bits of it). The
// JavaScript loop cost 20 ms per 1M coordinates on the 2-core machine measured, about a tenth
// of a light client's whole secure-round CPU; this one 2–3 ms.
import {
  F64,
  I32,
  V128,
  op,
  pointerLoop,
  wasmModule,
  type WasmFunction,
} from '../../wasm/module.ts';

// Parameters: (src f32 address, bits u32 address, dst u32 address, groups of 4, −c, c, scale, top, ok address).
const [SRC, BITS, DST, GROUPS, NEG_C, C, SCALE, TOP, OK] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
// Locals.
const [END, NEG_CV, CV, SCALEV, TOPV, ALL_OK, X, B, LO] = [9, 10, 11, 12, 13, 14, 15, 16, 17];

const ONE = [0, 0x3ff00000, 0, 0x3ff00000] as const; // 1.0 in both f64 lanes
const TWO_POW_32 = [0, 0x41f00000, 0, 0x41f00000] as const; // 2^32 in both f64 lanes
const UPPER_PAIR = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
const JOIN = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/**
 * q = min(top, floor(v) + (bits < (v − floor(v)) · 2^32)), v = (clamp(x, −c, c) + c) · scale,
 * for the f64x2 x pushed by `x` and the f64x2 random words pushed by `bits`; leaves q as
 * i32x4 [q0, q1, 0, 0].
 */
function quantizePair(x: number[], bits: number[]): number[] {
  return [
    // v = (pmin(pmax(x, −c), c) + c) · scale, kept in LO
    ...x,
    ...op.localGet(NEG_CV),
    ...op.f64x2Pmax(),
    ...op.localGet(CV),
    ...op.f64x2Pmin(),
    ...op.localGet(CV),
    ...op.f64x2Add(),
    ...op.localGet(SCALEV),
    ...op.f64x2Mul(),
    ...op.localSet(LO),
    // floor(v) + (bits < (v − floor(v)) · 2^32 ? 1 : 0)
    ...op.localGet(LO),
    ...op.f64x2Floor(),
    ...bits,
    ...op.localGet(LO),
    ...op.localGet(LO),
    ...op.f64x2Floor(),
    ...op.f64x2Sub(),
    ...op.v128Const(TWO_POW_32),
    ...op.f64x2Mul(),
    ...op.f64x2Lt(),
    ...op.v128Const(ONE),
    ...op.v128And(),
    ...op.f64x2Add(),
    // min(top, ·) as the scalar `q > top ? top : q`
    ...op.localGet(TOPV),
    ...op.f64x2Pmin(),
    ...op.i32x4TruncSatF64x2UZero(),
  ];
}

function quantizeFunction(): WasmFunction {
  const splat = (param: number, local: number) => [
    ...op.localGet(param),
    ...op.f64x2Splat(),
    ...op.localSet(local),
  ];
  const body: number[] = [
    ...splat(NEG_C, NEG_CV),
    ...splat(C, CV),
    ...splat(SCALE, SCALEV),
    ...splat(TOP, TOPV),
    ...op.v128Const([-1, -1, -1, -1]),
    ...op.localSet(ALL_OK),
    // four coordinates a step, SRC, BITS and DST advancing together
    ...pointerLoop({
      pointer: SRC,
      count: GROUPS,
      shift: 4,
      end: END,
      step: 16,
      body: [
        ...op.localGet(SRC),
        ...op.v128Load(0),
        ...op.localSet(X),
        ...op.localGet(BITS),
        ...op.v128Load(0),
        ...op.localSet(B),
        // finite x has x − x = 0; NaN and ±∞ give NaN
        ...op.localGet(ALL_OK),
        ...op.localGet(X),
        ...op.localGet(X),
        ...op.f32x4Sub(),
        ...op.v128Const([0, 0, 0, 0]),
        ...op.f32x4Eq(),
        ...op.v128And(),
        ...op.localSet(ALL_OK),
        // dst ← [q0 q1 | q2 q3]
        ...op.localGet(DST),
        ...quantizePair(
          [...op.localGet(X), ...op.f64x2PromoteLowF32x4()],
          [...op.localGet(B), ...op.f64x2ConvertLowI32x4U()],
        ),
        ...quantizePair(
          [
            ...op.localGet(X),
            ...op.localGet(X),
            ...op.i8x16Shuffle(UPPER_PAIR),
            ...op.f64x2PromoteLowF32x4(),
          ],
          [
            ...op.localGet(B),
            ...op.localGet(B),
            ...op.i8x16Shuffle(UPPER_PAIR),
            ...op.f64x2ConvertLowI32x4U(),
          ],
        ),
        ...op.i8x16Shuffle(JOIN),
        ...op.v128Store(0),
        ...op.localGet(DST),
        ...op.i32Const(16),
        ...op.i32Add(),
        ...op.localSet(DST),
        ...op.localGet(BITS),
        ...op.i32Const(16),
        ...op.i32Add(),
        ...op.localSet(BITS),
      ],
    }),
    ...op.localGet(OK),
    ...op.localGet(ALL_OK),
    ...op.v128Store(0),
  ];
  return {
    name: 'quantize',
    params: [I32, I32, I32, I32, F64, F64, F64, F64, I32],
    locals: [I32, V128, V128, V128, V128, V128, V128, V128, V128],
    body,
  };
}

type Quantize = (
  src: number,
  bits: number,
  dst: number,
  groups: number,
  negC: number,
  c: number,
  scale: number,
  top: number,
  ok: number,
) => void;

/** Coordinates per call: the memory holds one batch of inputs, random words and outputs. */
export const QUANTIZE_BATCH = 16384;
const OK_AT = 0;
const SRC_AT = 16;
const BITS_AT = SRC_AT + QUANTIZE_BATCH * 4;
const DST_AT = BITS_AT + QUANTIZE_BATCH * 4;
const PAGES = Math.ceil((DST_AT + QUANTIZE_BATCH * 4) / 65536);

export class QuantizeKernel {
  readonly #quantize: Quantize;
  /** The batch's inputs, random words (the caller fills them) and outputs, in the memory. */
  readonly src: Float32Array<ArrayBuffer>;
  readonly bits: Uint32Array<ArrayBuffer>;
  readonly #dst: Uint32Array;
  readonly #ok: Uint32Array;

  private constructor(memory: WebAssembly.Memory, quantize: Quantize) {
    this.#quantize = quantize;
    const heap = memory.buffer;
    this.src = new Float32Array(heap, SRC_AT, QUANTIZE_BATCH);
    this.bits = new Uint32Array(heap, BITS_AT, QUANTIZE_BATCH);
    this.#dst = new Uint32Array(heap, DST_AT, QUANTIZE_BATCH);
    this.#ok = new Uint32Array(heap, OK_AT, 4);
  }

  /** The kernel, or null where WebAssembly SIMD is unavailable (the caller falls back). */
  static create(): QuantizeKernel | null {
    try {
      const memory = new WebAssembly.Memory({ initial: PAGES });
      const instance = new WebAssembly.Instance(
        new WebAssembly.Module(wasmModule([quantizeFunction()])),
        { env: { memory } },
      );
      return new QuantizeKernel(memory, instance.exports.quantize as Quantize);
    } catch {
      return null;
    }
  }

  /**
   * Quantises the first `count` ≤ QUANTIZE_BATCH coordinates of `src` with the first `count`
   * words of `bits` into out[at …]; false (and nothing written) when a coordinate is not
   * finite, for the caller to name it.
   */
  run(count: number, c: number, scale: number, top: number, out: Uint32Array, at: number): boolean {
    const groups = Math.ceil(count / 4);
    // Lanes past count (a tail) hold whatever the last batch left: zero them, so a NaN there
    // is not taken for one of this batch's.
    this.src.fill(0, count, groups * 4);
    this.#quantize(SRC_AT, BITS_AT, DST_AT, groups, -c, c, scale, top, OK_AT);
    if (this.#ok[0] !== 0xffffffff || this.#ok[1] !== 0xffffffff) return false;
    if (this.#ok[2] !== 0xffffffff || this.#ok[3] !== 0xffffffff) return false;
    out.set(this.#dst.subarray(0, count), at);
    return true;
  }
}
