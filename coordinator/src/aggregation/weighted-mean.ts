import { AggregationError, type Aggregator } from './aggregator.ts';
import { FP16_WEIGHT_FACTOR, foldKernels, type FoldKernels } from './fold-kernels.ts';
import { BYTES_PER_VALUE, viewFrame } from './frame-view.ts';
import type { ParameterLayout } from './layout.ts';

/** Values copied into the kernels' scratch at a time: 256 KiB of fp32, well inside L2. */
const CHUNK_VALUES = 65536;
/** Scratch, then the accumulator; both 16-byte aligned. Room for the padding to 4 values. */
const SCRATCH_BYTES = CHUNK_VALUES * 4 + 16;
const ACC_BASE = SCRATCH_BYTES;
const WASM_PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: wasm32's whole address space

/**
 * FedAvg's aggregate, streamed: Σ wᵢ·Δᵢ / Σ wᵢ with wᵢ the example count, folded frame by
 * frame straight from the wire bytes. Each tensor's values are copied in 64K-value chunks
 * into WebAssembly memory and multiplied-and-added there by SIMD kernels (fold-kernels.ts);
 * no update is ever decoded into a Float32Array of its own.
 *
 * Memory: one float64 per parameter plus a fixed 256 KiB scratch, whatever the number of
 * updates (a 1M-parameter model: 8.3 MB). The sum is float64, so the result is the weighted
 * mean correctly rounded to float32 in practice, whatever order the updates arrived in.
 */
export class WeightedMeanAggregator implements Aggregator {
  readonly #layout: ParameterLayout;
  readonly #memory: WebAssembly.Memory;
  readonly #kernels: FoldKernels;
  readonly #scratch: Uint8Array;
  readonly #sum: Float64Array;
  #count = 0;
  #totalWeight = 0;

  constructor(layout: ParameterLayout) {
    // +4 values: a chunk padded to a multiple of 4 may add zeros just past the end.
    const pages = Math.ceil((ACC_BASE + (layout.size + 4) * 8) / WASM_PAGE);
    if (pages > MAX_PAGES) {
      throw new AggregationError(
        'MODEL_TOO_LARGE',
        `${layout.size} parameters need ${pages} wasm pages; the most is ${MAX_PAGES}`,
      );
    }
    this.#layout = layout;
    this.#memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.#kernels = foldKernels(this.#memory);
    this.#scratch = new Uint8Array(this.#memory.buffer, 0, SCRATCH_BYTES);
    this.#sum = new Float64Array(this.#memory.buffer, ACC_BASE, layout.size);
    // Fresh memory is mapped lazily: touch every page now, when the round opens (a few ms for
    // 8 MB on a VM), rather than inside the first upload's fold.
    new Uint8Array(this.#memory.buffer).fill(0);
  }

  get count(): number {
    return this.#count;
  }

  /** Σ wᵢ so far. */
  get totalWeight(): number {
    return this.#totalWeight;
  }

  add(frame: Uint8Array, numExamples: number): void {
    checkWeight(numExamples);
    // Every header is checked before anything is folded: a bad frame leaves the sum as it was.
    const { encoding, bytes, dataOffsets, scales } = viewFrame(frame, this.#layout);
    const width = BYTES_PER_VALUE[encoding];
    const kernel =
      encoding === 'fp32'
        ? this.#kernels.foldF32
        : encoding === 'fp16'
          ? this.#kernels.foldF16
          : this.#kernels.foldI8;
    const scratch = this.#scratch;
    const { entries } = this.#layout;
    for (let t = 0; t < entries.length; t++) {
      const { offset, size } = entries[t]!;
      const weight =
        numExamples *
        (encoding === 'int8' ? scales[t]! : encoding === 'fp16' ? FP16_WEIGHT_FACTOR : 1);
      if (weight === 0) continue; // an int8 tensor of zeros (scale 0)
      for (let from = 0; from < size; from += CHUNK_VALUES) {
        const n = Math.min(CHUNK_VALUES, size - from);
        const src = dataOffsets[t]! + from * width;
        scratch.set(bytes.subarray(src, src + n * width), 0);
        // The kernels take 4 values at a time: pad with zeros, which add nothing.
        const padded = (n + 3) & ~3;
        if (padded !== n) scratch.fill(0, n * width, padded * width);
        kernel(ACC_BASE + (offset + from) * 8, 0, padded, weight);
      }
    }
    this.#count += 1;
    this.#totalWeight += numExamples;
  }

  memoryBytes(): number {
    return this.#memory.buffer.byteLength;
  }

  /** Σ wᵢ·Δᵢ / Σ wᵢ, or null before the first update. Does not reset the sum. */
  result(): Float32Array | null {
    if (this.#count === 0) return null;
    const sum = this.#sum;
    const total = this.#totalWeight;
    const mean = new Float32Array(sum.length);
    for (let i = 0; i < sum.length; i++) mean[i] = sum[i]! / total;
    return mean;
  }
}

/** An update's weight is its example count: a positive finite number. */
export function checkWeight(numExamples: number): void {
  if (!(Number.isFinite(numExamples) && numExamples > 0)) {
    throw new AggregationError(
      'INVALID_WEIGHT',
      `an update's example count must be positive and finite, got ${numExamples}`,
    );
  }
}
