import type { Aggregator } from './aggregator.ts';
import type { ParameterLayout } from './layout.ts';
import { RetainedUpdates } from './retained-updates.ts';

/**
 * Coordinate-wise robust rules (Yin et al. 2018, "Byzantine-Robust Distributed Learning"):
 * each parameter of the aggregate is an order statistic of that parameter across the N
 * updates, unweighted (an attacker could claim any example count).
 *
 * Memory: every frame is kept until result() (RetainedUpdates: O(N × model bytes)); result()
 * then walks the coordinates in blocks, with a 4 MiB block of decoded values and one
 * N-value column at a time, plus the output vector. Time: O(N) per coordinate (quickselect).
 */
abstract class CoordinateWiseAggregator implements Aggregator {
  readonly #updates: RetainedUpdates;

  constructor(layout: ParameterLayout) {
    this.#updates = new RetainedUpdates(layout);
  }

  get count(): number {
    return this.#updates.count;
  }

  add(frame: Uint8Array, numExamples: number): void {
    this.#updates.add(frame, numExamples);
  }

  memoryBytes(): number {
    return this.#updates.bytes;
  }

  result(): Float32Array | null {
    const n = this.#updates.count;
    if (n === 0) return null;
    const out = new Float32Array(this.#updates.layout.size);
    const column = new Float64Array(n);
    this.#updates.forEachBlock((rows, start, width) => {
      for (let j = 0; j < width; j++) {
        for (let r = 0; r < n; r++) column[r] = rows[r * width + j]!;
        out[start + j] = this.combine(column);
      }
    });
    return out;
  }

  /** The aggregate of one coordinate from its N values (which it may reorder). */
  protected abstract combine(values: Float64Array): number;
}

/** Coordinate-wise median; for even N the mean of the two middle values (as numpy's). */
export class MedianAggregator extends CoordinateWiseAggregator {
  protected combine(values: Float64Array): number {
    return median(values);
  }
}

/**
 * Coordinate-wise β-trimmed mean: per coordinate, drop the ⌊βN⌋ smallest and ⌊βN⌋ largest
 * values and average the rest (as Flower's FedTrimmedAvg and scipy's trim_mean).
 */
export class TrimmedMeanAggregator extends CoordinateWiseAggregator {
  readonly #fraction: number;

  /** `fraction` is β in [0, 0.5): at least one value always survives the trim. */
  constructor(layout: ParameterLayout, fraction: number) {
    super(layout);
    this.#fraction = fraction;
  }

  protected combine(values: Float64Array): number {
    return trimmedMean(values, Math.floor(this.#fraction * values.length));
  }
}

/** The median of `values` (reordered in place). */
export function median(values: Float64Array): number {
  const n = values.length;
  const upper = n >>> 1;
  selectInPlace(values, 0, n, upper);
  if (n % 2 === 1) return values[upper]!;
  // Everything below `upper` is ≤ values[upper]: the lower middle is their maximum.
  let lower = values[0]!;
  for (let i = 1; i < upper; i++) lower = Math.max(lower, values[i]!);
  return (lower + values[upper]!) / 2;
}

/** Mean of `values` without their `cut` smallest and `cut` largest (reordered in place). */
export function trimmedMean(values: Float64Array, cut: number): number {
  const n = values.length;
  if (cut > 0) {
    selectInPlace(values, 0, n, cut);
    selectInPlace(values, cut, n, n - cut - 1);
  }
  let sum = 0;
  for (let i = cut; i < n - cut; i++) sum += values[i]!;
  return sum / (n - 2 * cut);
}

/**
 * Quickselect (Hoare's FIND, median-of-three pivot): reorders a[lo, hi) so that a[k] holds
 * the value it would hold if the range were sorted, everything before it is ≤ and
 * everything after it is ≥. Expected O(hi − lo). Small ranges are insertion-sorted.
 */
export function selectInPlace(a: Float64Array, lo: number, hi: number, k: number): void {
  let left = lo;
  let right = hi - 1;
  while (right - left > 16) {
    const mid = (left + right) >>> 1;
    const x = a[left]!;
    const y = a[mid]!;
    const z = a[right]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const swap = a[i]!;
        a[i] = a[j]!;
        a[j] = swap;
        i++;
        j--;
      }
    }
    // Now a[left..j] ≤ pivot ≤ a[i..right], and a[j+1..i-1] all equal the pivot.
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return;
  }
  for (let i = left + 1; i <= right; i++) {
    const value = a[i]!;
    let j = i - 1;
    while (j >= left && a[j]! > value) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = value;
  }
}
