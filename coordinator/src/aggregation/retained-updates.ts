import { readValues, viewFrame, type FrameView } from './frame-view.ts';
import type { ParameterLayout } from './layout.ts';
import { checkWeight } from './weighted-mean.ts';

/** Values of all updates decoded at once while walking the coordinates (4 MiB of float32). */
const BLOCK_VALUES = 1 << 20;

/**
 * Every accepted update, kept whole in its wire encoding, for the rules that need all of them
 * at once (coordinate-wise median, trimmed mean, Krum). Memory: the frames' own bytes, so
 * O(N × model bytes) — fp32 frames of a 1M-parameter model cost 4 MB per update, int8 ones
 * 1 MB. Each frame is copied on add, so the caller may reuse its buffer.
 *
 * Reading is block by block over the coordinates: `forEachBlock` decodes coordinates
 * [start, start + width) of every update into one N × width float32 matrix, with
 * N × width ≤ 1M values, so the temporary memory stays at 4 MiB whatever N and the model.
 */
export class RetainedUpdates {
  readonly #layout: ParameterLayout;
  readonly #frames: FrameView[] = [];
  readonly #weights: number[] = [];
  #bytes = 0;

  constructor(layout: ParameterLayout) {
    this.#layout = layout;
  }

  get layout(): ParameterLayout {
    return this.#layout;
  }

  get count(): number {
    return this.#frames.length;
  }

  /** Example counts, in the order the updates were added. */
  get weights(): readonly number[] {
    return this.#weights;
  }

  /** Bytes of frames held. */
  get bytes(): number {
    return this.#bytes;
  }

  add(frame: Uint8Array, numExamples: number): void {
    checkWeight(numExamples);
    const copy = new Uint8Array(frame.byteLength);
    copy.set(frame);
    this.#frames.push(viewFrame(copy, this.#layout));
    this.#weights.push(numExamples);
    this.#bytes += copy.byteLength;
  }

  /** Coordinates per block for `updates` updates (at least 1). */
  blockWidth(updates = this.count): number {
    return Math.max(
      1,
      Math.min(this.#layout.size, Math.floor(BLOCK_VALUES / Math.max(1, updates))),
    );
  }

  /**
   * Calls `visit(rows, start, width)` for consecutive blocks covering the whole vector: row r
   * of `rows` (values [r × width, (r + 1) × width)) holds coordinates [start, start + width)
   * of update `which[r]`. The matrix is reused between calls.
   */
  forEachBlock(
    visit: (rows: Float32Array, start: number, width: number) => void,
    which: readonly number[] = this.#frames.map((_, i) => i),
  ): void {
    const size = this.#layout.size;
    const blockWidth = this.blockWidth(which.length);
    const rows = new Float32Array(which.length * blockWidth);
    for (let start = 0; start < size; start += blockWidth) {
      const width = Math.min(blockWidth, size - start);
      for (let r = 0; r < which.length; r++) {
        readValues(this.#frames[which[r]!]!, this.#layout, start, width, rows, r * width);
      }
      visit(rows, start, width);
    }
  }
}
