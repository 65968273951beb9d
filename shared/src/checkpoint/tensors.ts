/**
 * Weights as they live on the host, outside any ML runtime: plain typed arrays, so the
 * coordinator, the desktop core and the browser share one representation. A tensor is
 * row-major (C order) float32 values with its shape.
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Named tensors; the Map's insertion order is the order they are stored in. */
export type NamedTensors = Map<string, HostTensor>;

/** Number of elements a shape holds (1 for a scalar, shape []). */
export function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * A row-major [rows, cols] matrix transposed to [cols, rows], in 32 × 32 tiles so reads and
 * writes both stay in cache. On the host because tfjs's wasm transpose costs ~25 ns an
 * element, and a product with a transposed operand there runs 5–8× slower than a plain one.
 */
export function transposeMatrix(data: Float32Array, rows: number, cols: number): Float32Array {
  if (data.length !== rows * cols) {
    throw new RangeError(`${data.length} values are not a ${rows}×${cols} matrix`);
  }
  const out = new Float32Array(data.length);
  const TILE = 32;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let r = r0; r < r1; r++) {
        for (let c = c0, from = r * cols + c0; c < c1; c++, from++) out[c * rows + r] = data[from]!;
      }
    }
  }
  return out;
}
