/**
 * Just enough of the WebAssembly binary format to write a few SIMD loops by hand: a module
 * that imports its memory and exports functions, and named encoders for the instructions
 * those loops use. Keeping the encoder here lets fold-kernels.ts read as a list of
 * instructions (the way a .wat file would), with no toolchain or binary blob in the repo.
 *
 * Reference: WebAssembly Core Specification 2.0, chapter 5 (binary format), and the fixed
 * SIMD opcode table (0xfd prefix, LEB128 sub-opcode).
 */

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

export interface WasmFunction {
  /** Exported under this name. */
  name: string;
  params: ValueType[];
  /** What it returns, left on the stack by the body (none by default). */
  results?: ValueType[];
  /** Locals after the params (indices continue from params.length). */
  locals: ValueType[];
  /** The instructions, without the final `end`. */
  body: number[];
}

/** Unsigned LEB128. */
function uleb(value: number): number[] {
  const out: number[] = [];
  let rest = value >>> 0;
  do {
    let byte = rest & 0x7f;
    rest >>>= 7;
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
function sleb(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

export interface ModuleOptions {
  /** Import a shared memory of at most this many 64 KiB pages (threads may share it),
   * instead of a plain one. */
  sharedMaxPages?: number;
}

/** A module importing `env.memory` (at least one page) and exporting `functions`. */
export function wasmModule(
  functions: readonly WasmFunction[],
  options: ModuleOptions = {},
): Uint8Array<ArrayBuffer> {
  const signature = (f: WasmFunction) => [
    0x60,
    ...vec(f.params.map((t) => [t])),
    ...vec((f.results ?? []).map((t) => [t])),
  ];
  const types = functions.map(signature);
  // limits: 0x00 min | 0x03 min max, shared (threads proposal, in every engine we run on).
  const limits =
    options.sharedMaxPages === undefined
      ? [0x00, ...uleb(1)]
      : [0x03, ...uleb(1), ...uleb(options.sharedMaxPages)];
  const memoryImport = [...name('env'), ...name('memory'), 0x02, ...limits];
  const exports = functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]);
  const bodies = functions.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const code = [...locals, ...f.body, 0x0b];
    return [...uleb(code.length), ...code];
  });
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, vec([memoryImport])),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ]);
}

const simd = (opcode: number, ...immediates: number[]) => [0xfd, ...uleb(opcode), ...immediates];
/** memarg with no alignment promise (always valid) and a constant byte offset. */
const memarg = (offset: number) => [0x00, ...uleb(offset)];

/** The instructions the kernels use, each returning its encoding. */
export const op = {
  block: () => [0x02, 0x40],
  loop: () => [0x03, 0x40],
  end: () => [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  f32Const: (value: number) => [0x43, ...new Uint8Array(Float32Array.of(value).buffer)],
  f32Load: (offset = 0) => [0x2a, 0x02, ...uleb(offset)],
  f32Store: (offset = 0) => [0x38, 0x02, ...uleb(offset)],
  f32Add: () => [0x92],
  f32Div: () => [0x95],
  f32Max: () => [0x97],
  f32Eq: () => [0x5b],
  f32DemoteF64: () => [0xb6],
  f64PromoteF32: () => [0xbb],
  f64Const: (value: number) => [0x44, ...new Uint8Array(Float64Array.of(value).buffer)],
  f64Div: () => [0xa3],
  select: () => [0x1b],
  f32Mul: () => [0x94],
  localGet: (index: number) => [0x20, ...uleb(index)],
  localSet: (index: number) => [0x21, ...uleb(index)],
  localTee: (index: number) => [0x22, ...uleb(index)],
  i32Const: (value: number) => [0x41, ...sleb(value)],
  i32Eqz: () => [0x45],
  i32LtU: () => [0x49],
  i32Add: () => [0x6a],
  i32Shl: () => [0x74],
  i32ShrU: () => [0x76],
  i32Sub: () => [0x6b],
  i32Mul: () => [0x6c],
  i32DivU: () => [0x6e],
  i32And: () => [0x71],
  i32GtU: () => [0x4b],
  v128Load: (offset = 0) => simd(0x00, ...memarg(offset)),
  v128Load16x4U: (offset = 0) => simd(0x04, ...memarg(offset)),
  v128Store: (offset = 0) => simd(0x0b, ...memarg(offset)),
  v128Load32Zero: (offset = 0) => simd(0x5c, ...memarg(offset)),
  v128Load32Splat: (offset = 0) => simd(0x09, ...memarg(offset)),
  v128Const: (words: readonly [number, number, number, number]) => [
    0xfd,
    0x0c,
    ...new Uint8Array(Uint32Array.from(words).buffer),
  ],
  i8x16Shuffle: (lanes: readonly number[]) => simd(0x0d, ...lanes),
  i32x4Splat: () => simd(0x11),
  f32x4Splat: () => simd(0x13),
  f64x2Splat: () => simd(0x14),
  v128And: () => simd(0x4e),
  v128Or: () => simd(0x50),
  v128Xor: () => simd(0x51),
  f32x4ExtractLane: (lane: number) => simd(0x1f, lane),
  i16x8ExtendLowI8x16S: () => simd(0x87),
  i16x8ExtendHighI8x16S: () => simd(0x88),
  i32x4Add: () => simd(0xae),
  i32x4DotI16x8S: () => simd(0xba),
  i32x4ExtendLowI16x8S: () => simd(0xa7),
  i32x4Shl: () => simd(0xab),
  i32x4ShrU: () => simd(0xad),
  i32x4Sub: () => simd(0xb1),
  f32x4Abs: () => simd(0xe0),
  f32x4Max: () => simd(0xe9),
  f32x4Floor: () => simd(0x68),
  i32x4TruncSatF32x4S: () => simd(0xf8),
  i16x8NarrowI32x4S: () => simd(0x85),
  i8x16NarrowI16x8S: () => simd(0x65),
  i8x16MaxS: () => simd(0x78),
  i8x16Sub: () => simd(0x71),
  f32x4Add: () => simd(0xe4),
  f32x4Mul: () => simd(0xe6),
  f64x2Add: () => simd(0xf0),
  f64x2Mul: () => simd(0xf2),
  f32x4ConvertI32x4S: () => simd(0xfa),
  f32x4Eq: () => simd(0x41),
  f32x4Sub: () => simd(0xe5),
  f64x2Floor: () => simd(0x75),
  f64x2Lt: () => simd(0x49),
  f64x2Sub: () => simd(0xf1),
  f64x2Pmin: () => simd(0xf6),
  f64x2Pmax: () => simd(0xf7),
  f64x2ConvertLowI32x4U: () => simd(0xff),
  i32x4TruncSatF64x2UZero: () => simd(0xfd),
  f64x2PromoteLowF32x4: () => simd(0x5f),
  /** Relaxed SIMD: each i32 lane += the dot of four i8 lanes of a with four of b, where b's
   * lanes must lie in 0…127 (then every engine's lowering gives the exact sum). */
  i32x4RelaxedDotI8x16I7x16AddS: () => simd(0x113),
  /** Relaxed SIMD: a · b + c, fused or not as the machine has it. */
  f32x4RelaxedMadd: () => simd(0x105),
} as const;

/** Whether this engine validates `bytes` (a module using a proposal it may lack). */
export function engineAccepts(bytes: Uint8Array<ArrayBuffer>): boolean {
  try {
    return WebAssembly.validate(bytes);
  } catch {
    return false;
  }
}

/**
 * The kernels' loop: end = pointer + (count << shift); unless count is 0, run `body`, advance
 * `pointer` by `step` and repeat while pointer < end. Every local is an index; `body` advances
 * any other pointers itself, and its own branches count depth from inside this loop.
 */
export function pointerLoop(loop: {
  pointer: number;
  count: number;
  /** log2 of the bytes per counted item (0: count is in bytes). */
  shift: number;
  end: number;
  step: number;
  body: readonly number[];
}): number[] {
  const { pointer, count, shift, end, step, body } = loop;
  return [
    ...op.localGet(pointer),
    ...op.localGet(count),
    ...(shift === 0 ? [] : [...op.i32Const(shift), ...op.i32Shl()]),
    ...op.i32Add(),
    ...op.localSet(end),
    ...op.block(),
    ...op.localGet(count),
    ...op.i32Eqz(),
    ...op.brIf(0),
    ...op.loop(),
    ...body,
    ...op.localGet(pointer),
    ...op.i32Const(step),
    ...op.i32Add(),
    ...op.localTee(pointer),
    ...op.localGet(end),
    ...op.i32LtU(),
    ...op.brIf(0),
    ...op.end(),
    ...op.end(),
  ];
}

/** min(a, b) of two i32 locals, unsigned, left on the stack. */
export function i32MinU(a: number, b: number): number[] {
  return [
    ...op.localGet(a),
    ...op.localGet(b),
    ...op.localGet(a),
    ...op.localGet(b),
    ...op.i32LtU(),
    ...op.select(),
  ];
}

/** The sum of the f32x4 local's four lanes, (l0 + l1) + l2 + l3, as an f32 on the stack. */
export function f32x4LaneSum(local: number): number[] {
  return [
    ...op.localGet(local),
    ...op.f32x4ExtractLane(0),
    ...op.localGet(local),
    ...op.f32x4ExtractLane(1),
    ...op.f32Add(),
    ...op.localGet(local),
    ...op.f32x4ExtractLane(2),
    ...op.f32Add(),
    ...op.localGet(local),
    ...op.f32x4ExtractLane(3),
    ...op.f32Add(),
  ];
}
