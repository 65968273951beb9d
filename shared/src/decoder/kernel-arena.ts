import { KernelHelper } from './kernel-threads.ts';

/**
 * One model's large matrices in a shared WebAssembly memory, and the products over them by a
 * hand-written SIMD kernel (int8-kernel.ts, f32-kernel.ts), split by rows with a helper thread
 * (kernel-threads.ts) on the same memory. The memory is shared so it can grow without detaching
 * the views already handed out, and so the helper can read the weights where they are.
 *
 * Every kernel module exports matmul(w, wScales, rows, cols, x, xScales, out, count,
 * outStride) over `count` positions: each position's activations follow the previous one's,
 * its outputs `outStride` bytes after them. A kind without scales ignores those arguments.
 */

const PAGE = 65_536;
/** 4 GiB: wasm32's whole address space. */
export const MAX_PAGES = 65_536;

/** Products with fewer rows than this stay on one thread (the hand-off costs more). With the
 * helper polling between products, a hand-off costs a few microseconds: SmolLM2-135M's
 * 192-row k and v products are worth splitting. */
const SPLIT_MIN_ROWS = 64;

/** A matrix held in an arena: [rows, cols], row-major (PyTorch's [out, in]). */
export interface HeldMatrix {
  rows: number;
  cols: number;
  /** Byte address of its values, and of its per-row scales (0 where the kind has none). */
  readonly valuesAt: number;
  readonly scalesAt: number;
  /** Bytes per row of values. */
  readonly rowBytes: number;
}

export abstract class KernelArena<M extends HeldMatrix = HeldMatrix> {
  readonly memory: WebAssembly.Memory;
  readonly #kernel: (...args: number[]) => void;
  readonly #kernelT: ((...args: number[]) => void) | undefined;
  #helper: KernelHelper | null;
  #top = 0;
  #scratchAt = 0;
  #scratchBytes = 0;
  /** The instance's exports, for a kind's other functions (int8's quantiser). */
  protected readonly exports: WebAssembly.Exports;

  /** `threads`: 2 splits each product with a worker thread; 1 keeps it on this one. */
  constructor(module: WebAssembly.Module, threads: number) {
    this.memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.exports = instance.exports;
    this.#kernel = instance.exports.matmul as (...args: number[]) => void;
    this.#kernelT = instance.exports.matmulT as ((...args: number[]) => void) | undefined;
    this.#helper = threads > 1 ? new KernelHelper(module, this.memory) : null;
  }

  /** The kernel takes rows in whole blocks of this many values. */
  abstract readonly block: number;

  /** Whether the kernel takes a matrix of this width. */
  fits(cols: number): boolean {
    return cols % this.block === 0;
  }

  /** x · mᵀ for `count` vectors x [count, m.cols] (PyTorch's Linear without bias):
   * [count, m.rows]. */
  abstract matmul(m: M, x: Float32Array, count: number): Float32Array;

  /** Rows `ids` of m as float32, [ids.length, m.cols] (an embedding lookup). */
  abstract gather(m: M, ids: readonly number[]): Float32Array;

  /** Threads the products run on now (a helper that died is not counted). */
  get threads(): number {
    return this.#helper?.alive ? 2 : 1;
  }

  /** Stops the helper thread; the arena's memory goes with the last reference to it. */
  dispose(): void {
    this.#helper?.stop();
    this.#helper = null;
  }

  /** Bytes the arena holds (weights and scratch). */
  get bytes(): number {
    return this.#top;
  }

  protected checkProduct(m: M, x: Float32Array, count: number): void {
    if (!this.fits(m.cols)) {
      throw new RangeError(`${m.cols} columns are not whole blocks of ${this.block}`);
    }
    if (x.length !== count * m.cols) {
      throw new RangeError(`${x.length} values are not ${count} vectors of ${m.cols}`);
    }
  }

  /** m · x for `positions` prepared vectors into out, rows split with the helper when it
   * pays (at a multiple of 4 rows: float32 decodes rows in fours). `rowBlock`, for kinds without
   * scales, goes where the scales' address would (float32: rows per cache block). */
  protected products(
    m: M,
    positions: number,
    x: number,
    xs: number,
    out: number,
    rowBlock?: number,
  ): void {
    const helper = this.#helper;
    const { rows } = m;
    const job = (from: number, n: number) => [
      m.valuesAt + from * m.rowBytes,
      rowBlock ?? m.scalesAt + 4 * from,
      n,
      m.cols,
      x,
      xs,
      out + 4 * from,
      positions,
      4 * rows,
    ];
    if (helper === null || !helper.alive || rows < SPLIT_MIN_ROWS) {
      this.#kernel(...job(0, rows));
      return;
    }
    // A multiple of 4: float32's decode tile takes rows four at a time.
    const half = (rows >> 3) << 2;
    helper.start('matmul', job(half, rows - half));
    this.#kernel(...job(0, half));
    // A helper that died leaves its rows undone: this thread does them, and carries on alone.
    if (!helper.wait()) this.#kernel(...job(half, rows - half));
  }

  /** x · m for `positions` vectors of m.rows values into out [positions, m.cols], columns
   * split with the helper when it pays (multiples of 8: the kernel's column tiles). x[t][r]
   * is at x + t·xStride + r·xStep bytes: [positions, m.rows] by default, or transposed. Only
   * kinds whose module exports matmulT (float32) call this; out must start at zero. */
  protected transposedProducts(
    m: M,
    positions: number,
    x: number,
    out: number,
    rowBlock: number,
    xStride = 4 * m.rows,
    xStep = 4,
  ): void {
    const kernel = this.#kernelT as (...args: number[]) => void;
    const helper = this.#helper;
    const { cols } = m;
    const job = (from: number, n: number) => [
      m.valuesAt + 4 * from,
      m.rowBytes,
      m.rows,
      n,
      x,
      rowBlock,
      out + 4 * from,
      positions,
      4 * cols,
      xStride,
      xStep,
    ];
    if (helper === null || !helper.alive || cols < SPLIT_MIN_ROWS) {
      kernel(...job(0, cols));
      return;
    }
    const half = (cols >> 4) << 3;
    helper.start('matmulT', job(half, cols - half));
    kernel(...job(0, half));
    if (!helper.wait()) kernel(...job(half, cols - half));
  }

  /** A scratch region of at least `bytes`, reused while big enough. */
  protected scratch(bytes: number): number {
    if (bytes > this.#scratchBytes) {
      this.#scratchAt = this.allocate(bytes);
      this.#scratchBytes = bytes;
    }
    return this.#scratchAt;
  }

  protected allocate(bytes: number): number {
    const at = (this.#top + 15) & ~15;
    const end = at + bytes;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) {
        throw new RangeError(
          `the weights need ${(end / 2 ** 30).toFixed(2)} GiB, past WebAssembly's 4 GiB memory`,
        );
      }
      this.memory.grow(pages);
    }
    this.#top = end;
    return at;
  }
}
