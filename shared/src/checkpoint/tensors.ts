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
