// ChaCha20 (RFC 8439) mask expansion fused with the ring addition, in WebAssembly SIMD:
// acc ← (acc ± keystream) & (M − 1), four blocks at a time, the keystream never written to
// memory. It allocates nothing per mask, which is why it is the default on a thread with a
// large heap. Node's OpenSSL ChaCha20 (AVX2/AVX-512) makes keystream faster than this kernel,
// and this module also adds such a keystream into the vector ({@link
// ChaChaMaskKernel.addKeystreams}: 1.6–2.0 ms per 4 MB mask against this kernel's 3.1 ms on a
// small heap), but a Node cipher hands every chunk back in a fresh buffer: 144 MB of external
// memory per client per round, and V8 answers each 64 MB of it with a garbage collection over
// the whole heap. On a thread holding much else (a load generator with 125 SecAgg+ clients, or
// a 2M-object heap in a microbenchmark) that path cost 6–9 ms per mask, and a 1,000-client
// secure round took 191 s against 133 s with this kernel. So OpenSSL's keystream is used on a
// thread of its own, whose heap is small (mask-thread.ts). This kernel is also the path where
// node:crypto has no ChaCha20: browsers, and Electron, whose BoringSSL has no raw ChaCha20.
//
// Layout (the "vectorised across blocks" scheme of Bernstein's and OpenSSL's SIMD ChaCha):
// local x_i holds state word i of blocks c, c+1, c+2, c+3 in its four lanes, so each quarter
// round is the scalar one on vectors. After 20 rounds and the feed-forward, four 4×4
// transposes turn "word i of 4 blocks" into "4 consecutive words of one block", which are
// added to the accumulator in place.
import { I32, V128, op, pointerLoop, wasmModule, type WasmFunction } from '../../wasm/module.ts';

// Parameters: (acc byte address, key byte address, first block counter, groups of 4 blocks, mask).
const ACC = 0;
const KEY = 1;
const COUNTER = 2;
const GROUPS = 3;
const MASK = 4;
// Locals.
const X = 5; // x0 … x15: locals 5 … 20
const CTR = 21; // the four blocks' counters
const MASKV = 22;
const ROUND = 23;
const END = 24;
const T = 25; // transpose temporaries: 25 … 28

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] as const; // "expand 32-byte k"

/** i8x16.shuffle lanes rotating every 32-bit lane left by 16 and by 8 bits (little-endian). */
const ROTL16 = [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13];
const ROTL8 = [3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14];

/** Byte lanes of i8x16.shuffle picking 32-bit words: 0–3 from the first operand, 4–7 from the second. */
function words(...picks: number[]): number[] {
  return picks.flatMap((w) => [4 * w, 4 * w + 1, 4 * w + 2, 4 * w + 3]);
}

const get = (i: number) => op.localGet(X + i);
const set = (i: number) => op.localSet(X + i);

/** a += b; d = (d ^ a) <<< r, for r = 16 or 8 (a byte shuffle). */
function addXorShuffle(a: number, b: number, d: number, lanes: number[]): number[] {
  return [
    ...get(a),
    ...get(b),
    ...op.i32x4Add(),
    ...op.localTee(X + a),
    ...get(d),
    ...op.v128Xor(),
    ...op.localTee(X + d),
    ...get(d),
    ...op.i8x16Shuffle(lanes),
    ...set(d),
  ];
}

/** c += d; b = (b ^ c) <<< r, for r = 12 or 7 (two shifts and an or). */
function addXorShift(c: number, d: number, b: number, r: number): number[] {
  return [
    ...get(c),
    ...get(d),
    ...op.i32x4Add(),
    ...op.localTee(X + c),
    ...get(b),
    ...op.v128Xor(),
    ...op.localTee(X + b),
    ...op.i32Const(r),
    ...op.i32x4Shl(),
    ...get(b),
    ...op.i32Const(32 - r),
    ...op.i32x4ShrU(),
    ...op.v128Or(),
    ...set(b),
  ];
}

function quarterRound(a: number, b: number, c: number, d: number): number[] {
  return [
    ...addXorShuffle(a, b, d, ROTL16),
    ...addXorShift(c, d, b, 12),
    ...addXorShuffle(a, b, d, ROTL8),
    ...addXorShift(c, d, b, 7),
  ];
}

/** The input state word i for the current four blocks, as a vector on the stack. */
function inputWord(i: number): number[] {
  if (i < 4) {
    const sigma = SIGMA[i] as number;
    return op.v128Const([sigma, sigma, sigma, sigma]);
  }
  if (i < 12) return [...op.localGet(KEY), ...op.v128Load32Splat(4 * (i - 4))];
  if (i === 12) return op.localGet(CTR);
  return op.v128Const([0, 0, 0, 0]); // the zero nonce
}

/**
 * Transposes x_{4g} … x_{4g+3} and folds row j (block j's words 4g … 4g+3) into the
 * accumulator at byte 64j + 16g of this group.
 */
function foldWordGroup(g: number, sign: 1 | -1): number[] {
  const [a, b, c, d] = [4 * g, 4 * g + 1, 4 * g + 2, 4 * g + 3];
  const pairs = [
    [a, b, words(0, 4, 1, 5)],
    [a, b, words(2, 6, 3, 7)],
    [c, d, words(0, 4, 1, 5)],
    [c, d, words(2, 6, 3, 7)],
  ] as const;
  const out: number[] = [];
  pairs.forEach(([p, q, lanes], k) => {
    out.push(...get(p), ...get(q), ...op.i8x16Shuffle(lanes), ...op.localSet(T + k));
  });
  // row0 = t0[0,1] t2[0,1]; row1 = t0[2,3] t2[2,3]; row2 = t1[0,1] t3[0,1]; row3 = t1[2,3] t3[2,3]
  const rows = [
    [T, T + 2, words(0, 1, 4, 5)],
    [T, T + 2, words(2, 3, 6, 7)],
    [T + 1, T + 3, words(0, 1, 4, 5)],
    [T + 1, T + 3, words(2, 3, 6, 7)],
  ] as const;
  rows.forEach(([p, q, lanes], j) => {
    const offset = 64 * j + 16 * g;
    out.push(
      ...op.localGet(ACC),
      ...op.localGet(ACC),
      ...op.v128Load(offset),
      ...op.localGet(p),
      ...op.localGet(q),
      ...op.i8x16Shuffle(lanes),
      ...(sign === 1 ? op.i32x4Add() : op.i32x4Sub()),
      ...op.localGet(MASKV),
      ...op.v128And(),
      ...op.v128Store(offset),
    );
  });
  return out;
}

function chachaFold(name: string, sign: 1 | -1): WasmFunction {
  // One group of four blocks: 20 rounds, the feed-forward, folded into the accumulator.
  const group: number[] = [];
  for (let i = 0; i < 16; i++) group.push(...inputWord(i), ...set(i));
  group.push(
    ...op.i32Const(10),
    ...op.localSet(ROUND),
    ...op.loop(),
    // column round, then diagonal round
    ...quarterRound(0, 4, 8, 12),
    ...quarterRound(1, 5, 9, 13),
    ...quarterRound(2, 6, 10, 14),
    ...quarterRound(3, 7, 11, 15),
    ...quarterRound(0, 5, 10, 15),
    ...quarterRound(1, 6, 11, 12),
    ...quarterRound(2, 7, 8, 13),
    ...quarterRound(3, 4, 9, 14),
    ...op.localGet(ROUND),
    ...op.i32Const(1),
    ...op.i32Sub(),
    ...op.localTee(ROUND),
    ...op.brIf(0),
    ...op.end(),
  );
  // feed-forward: x_i += input_i (the nonce words are zero)
  for (let i = 0; i < 13; i++) group.push(...get(i), ...inputWord(i), ...op.i32x4Add(), ...set(i));
  for (let g = 0; g < 4; g++) group.push(...foldWordGroup(g, sign));
  group.push(
    ...op.localGet(CTR),
    ...op.v128Const([4, 4, 4, 4]),
    ...op.i32x4Add(),
    ...op.localSet(CTR),
  );
  const body: number[] = [
    // CTR = counter + [0, 1, 2, 3]; MASKV = splat(mask); then groups of 256 bytes from ACC
    ...op.localGet(COUNTER),
    ...op.i32x4Splat(),
    ...op.v128Const([0, 1, 2, 3]),
    ...op.i32x4Add(),
    ...op.localSet(CTR),
    ...op.localGet(MASK),
    ...op.i32x4Splat(),
    ...op.localSet(MASKV),
    ...pointerLoop({ pointer: ACC, count: GROUPS, shift: 8, end: END, step: 256, body: group }),
  ];
  return {
    name,
    params: [I32, I32, I32, I32, I32],
    locals: [...Array<typeof V128>(16).fill(V128), V128, V128, I32, I32, V128, V128, V128, V128],
    body,
  };
}

/**
 * ringAdd/ringSub(acc, src, bytes, mask): acc[i] ← (acc[i] ± src[i]) & mask over `bytes` (a
 * multiple of 16) bytes, four words per step.
 */
function ringFold(name: string, sign: 1 | -1): WasmFunction {
  const [acc, src, bytes, mask, end, maskv] = [0, 1, 2, 3, 4, 5];
  return {
    name,
    params: [I32, I32, I32, I32],
    locals: [I32, V128],
    body: [
      ...op.localGet(mask),
      ...op.i32x4Splat(),
      ...op.localSet(maskv),
      ...pointerLoop({
        pointer: acc,
        count: bytes,
        shift: 0,
        end,
        step: 16,
        body: [
          ...op.localGet(acc),
          ...op.localGet(acc),
          ...op.v128Load(0),
          ...op.localGet(src),
          ...op.v128Load(0),
          ...(sign === 1 ? op.i32x4Add() : op.i32x4Sub()),
          ...op.localGet(maskv),
          ...op.v128And(),
          ...op.v128Store(0),
          ...op.localGet(src),
          ...op.i32Const(16),
          ...op.i32Add(),
          ...op.localSet(src),
        ],
      }),
    ],
  };
}

type Fold = (acc: number, key: number, counter: number, groups: number, mask: number) => void;
type RingFold = (acc: number, src: number, bytes: number, mask: number) => void;

/**
 * A keystream source for {@link ChaChaMaskKernel.addKeystreams}: called with successive chunk
 * sizes in bytes (multiples of 64, at most {@link STREAM_CHUNK}), it returns that many further
 * keystream bytes.
 */
export type KeystreamChunks = (bytes: number) => Uint8Array;

/** Bytes of keystream taken from a source at a time: 64 KiB keeps the scratch in cache. */
export const STREAM_CHUNK = 65536;

/** Words per group of four 64-byte blocks: the kernel's unit of work. */
export const GROUP_WORDS = 64;
/** Where the seed lives in the kernel's memory; the accumulator starts at ACC_OFFSET. */
const KEY_OFFSET = 0;
const ACC_OFFSET = 64;
const PAGE = 65536;

/**
 * One compiled kernel and its memory. The accumulator is copied in once, every mask is folded
 * into it, and it is copied out once, so a client's 35 masks cost two copies, not 70.
 */
export class ChaChaMaskKernel {
  readonly #memory: WebAssembly.Memory;
  readonly #add: Fold;
  readonly #sub: Fold;
  readonly #ringAdd: RingFold;
  readonly #ringSub: RingFold;

  private constructor(memory: WebAssembly.Memory, exports: Record<string, unknown>) {
    this.#memory = memory;
    this.#add = exports.chachaAdd as Fold;
    this.#sub = exports.chachaSub as Fold;
    this.#ringAdd = exports.ringAdd as RingFold;
    this.#ringSub = exports.ringSub as RingFold;
  }

  /** The kernel, or null where WebAssembly SIMD is unavailable (the caller falls back). */
  static create(): ChaChaMaskKernel | null {
    try {
      const bytes = wasmModule([
        chachaFold('chachaAdd', 1),
        chachaFold('chachaSub', -1),
        ringFold('ringAdd', 1),
        ringFold('ringSub', -1),
      ]);
      const memory = new WebAssembly.Memory({ initial: 1 });
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
        env: { memory },
      });
      return new ChaChaMaskKernel(memory, instance.exports);
    } catch {
      return null;
    }
  }

  /**
   * Copies acc into memory (padded to whole 64-word groups, then `scratchBytes` more), runs
   * `fold` on it, and copies it back: however many masks, two copies of the vector.
   */
  #inMemory(
    acc: Uint32Array,
    scratchBytes: number,
    fold: (heap: ArrayBuffer, paddedBytes: number, scratchAt: number) => void,
  ): void {
    const paddedBytes = Math.ceil(acc.length / GROUP_WORDS) * GROUP_WORDS * 4;
    const scratchAt = ACC_OFFSET + paddedBytes;
    const needed = scratchAt + scratchBytes;
    if (needed > this.#memory.buffer.byteLength) {
      this.#memory.grow(Math.ceil((needed - this.#memory.buffer.byteLength) / PAGE));
    }
    const heap = this.#memory.buffer;
    const region = new Uint32Array(heap, ACC_OFFSET, acc.length);
    region.set(acc);
    fold(heap, paddedBytes, scratchAt);
    acc.set(region);
  }

  /** acc ← acc + Σ sign · PRG(seed) (mod modulusRange), modulusRange a power of two ≤ 2^32. */
  addMasks(
    acc: Uint32Array,
    masks: readonly { seed: Uint8Array; sign: 1 | -1 }[],
    modulusRange: number,
  ): void {
    if (masks.length === 0 || acc.length === 0) return;
    const mask = (modulusRange - 1) | 0;
    this.#inMemory(acc, 0, (heap, paddedBytes) => {
      // The keystream past acc.length lands in padding never copied out.
      const groups = paddedBytes / (GROUP_WORDS * 4);
      const key = new Uint8Array(heap, KEY_OFFSET, 32);
      for (const { seed, sign } of masks) {
        key.set(seed);
        (sign === 1 ? this.#add : this.#sub)(ACC_OFFSET, KEY_OFFSET, 0, groups, mask);
      }
    });
  }

  /**
   * acc ← acc + Σ sign · stream (mod modulusRange), each mask's keystream read from
   * `open(seed)` a chunk at a time (OpenSSL's ChaCha20) and added here in SIMD.
   */
  addKeystreams(
    acc: Uint32Array,
    masks: readonly { seed: Uint8Array; sign: 1 | -1 }[],
    modulusRange: number,
    open: (seed: Uint8Array) => KeystreamChunks,
  ): void {
    if (masks.length === 0 || acc.length === 0) return;
    const mask = (modulusRange - 1) | 0;
    this.#inMemory(acc, STREAM_CHUNK, (heap, paddedBytes, scratchAt) => {
      const scratch = new Uint8Array(heap, scratchAt, STREAM_CHUNK);
      for (const { seed, sign } of masks) {
        const next = open(seed);
        const fold = sign === 1 ? this.#ringAdd : this.#ringSub;
        for (let at = 0; at < paddedBytes; at += STREAM_CHUNK) {
          const bytes = Math.min(STREAM_CHUNK, paddedBytes - at);
          const chunk = next(bytes);
          if (chunk.length !== bytes) {
            throw new Error(`a keystream source gave ${chunk.length} bytes, not ${bytes}`);
          }
          scratch.set(chunk);
          fold(ACC_OFFSET + at, scratchAt, bytes, mask);
        }
      }
    });
  }
}
