import type { Aggregator } from './aggregator.ts';
import { selectInPlace } from './coordinate-wise.ts';
import type { ParameterLayout } from './layout.ts';
import { RetainedUpdates } from './retained-updates.ts';

/**
 * Krum and Multi-Krum (Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine
 * Tolerant Gradient Descent"). With n updates of which at most f are Byzantine, each update
 * i is scored by the sum of its squared distances to its n − f − 2 nearest other updates;
 * Krum returns the best-scored update, Multi-Krum the plain mean of the m best-scored (the
 * paper's definition: unweighted, since an attacker could claim any example count). Ties go
 * to the update added first.
 *
 * The guarantee needs n > 2f + 2; with fewer updates there is no viable result (null) and the
 * round keeps its previous model — set minClients ≥ 2f + 3.
 *
 * Memory: every frame until result() (RetainedUpdates: O(N × model bytes)), and during
 * result() the N × N float64 distance matrix (O(N²): 8 MB at N = 1000) and one 4 MiB block
 * of decoded values. Time: O(N² × model size) for the distances.
 */
export class KrumAggregator implements Aggregator {
  readonly #updates: RetainedUpdates;
  readonly #byzantine: number;
  readonly #selected: number | undefined;
  #selection: number[] | null = null;

  /**
   * `byzantine` is f; `selected` is m (1 for Krum; undefined for Multi-Krum's default of
   * n − f). m larger than n is cut to n.
   */
  constructor(layout: ParameterLayout, byzantine: number, selected: number | undefined) {
    this.#updates = new RetainedUpdates(layout);
    this.#byzantine = byzantine;
    this.#selected = selected;
  }

  get count(): number {
    return this.#updates.count;
  }

  /** Indices (in add order) of the updates the last result() averaged, best score first. */
  get selection(): readonly number[] | null {
    return this.#selection;
  }

  add(frame: Uint8Array, numExamples: number): void {
    this.#updates.add(frame, numExamples);
  }

  memoryBytes(): number {
    return this.#updates.bytes;
  }

  result(): Float32Array | null {
    const n = this.#updates.count;
    const f = this.#byzantine;
    this.#selection = null;
    if (n === 0 || n <= 2 * f + 2) return null;

    const scores = krumScores(pairwiseSquaredDistances(this.#updates), n, n - f - 2);
    const ranked = Array.from({ length: n }, (_, i) => i).sort(
      (a, b) => scores[a]! - scores[b]! || a - b,
    );
    const m = Math.min(this.#selected ?? n - f, n);
    const chosen = ranked.slice(0, m);
    this.#selection = chosen;

    const size = this.#updates.layout.size;
    const sum = new Float64Array(size);
    this.#updates.forEachBlock((rows, start, width) => {
      for (let r = 0; r < chosen.length; r++) {
        for (let j = 0; j < width; j++) sum[start + j]! += rows[r * width + j]!;
      }
    }, chosen);
    const out = new Float32Array(size);
    for (let i = 0; i < size; i++) out[i] = sum[i]! / m;
    return out;
  }
}

/** ‖Δᵢ − Δⱼ‖² for every pair, as a symmetric n × n float64 matrix (zero diagonal). */
export function pairwiseSquaredDistances(updates: RetainedUpdates): Float64Array {
  const n = updates.count;
  const distances = new Float64Array(n * n);
  updates.forEachBlock((rows, _start, width) => {
    for (let i = 0; i < n; i++) {
      const a = i * width;
      for (let j = i + 1; j < n; j++) {
        const b = j * width;
        let d = 0;
        for (let k = 0; k < width; k++) {
          const diff = rows[a + k]! - rows[b + k]!;
          d += diff * diff;
        }
        distances[i * n + j]! += d;
      }
    }
  });
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) distances[j * n + i] = distances[i * n + j]!;
  }
  return distances;
}

/** Each update's score: the sum of its `closest` smallest distances to the others. */
export function krumScores(distances: Float64Array, n: number, closest: number): Float64Array {
  const scores = new Float64Array(n);
  const others = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let o = 0;
    for (let j = 0; j < n; j++) if (j !== i) others[o++] = distances[i * n + j]!;
    selectInPlace(others, 0, n - 1, closest - 1);
    let score = 0;
    for (let c = 0; c < closest; c++) score += others[c]!;
    scores[i] = score;
  }
  return scores;
}
