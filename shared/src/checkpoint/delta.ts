import { CheckpointError } from './errors.ts';
import { formatShape, sameShape, type NamedTensors } from './tensors.ts';

/**
 * Federated updates are deltas: what training changed, new − base, tensor by tensor. The
 * coordinator sums them (after clipping by l2Norm) and applies the average to the base.
 */

/** updated − base. Both must hold the same names with the same shapes. */
export function computeDelta(base: NamedTensors, updated: NamedTensors): NamedTensors {
  checkSameLayout(base, updated, 'base', 'updated');
  const delta: NamedTensors = new Map();
  for (const [name, { shape, data }] of base) {
    const after = updated.get(name)?.data ?? data;
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = (after[i] ?? 0) - (data[i] ?? 0);
    delta.set(name, { shape: [...shape], data: out });
  }
  return delta;
}

/** base + scale × delta, into fresh arrays. Both must hold the same names and shapes. */
export function applyDelta(base: NamedTensors, delta: NamedTensors, scale = 1): NamedTensors {
  checkSameLayout(base, delta, 'base', 'delta');
  const result: NamedTensors = new Map();
  for (const [name, { shape, data }] of base) {
    const change = delta.get(name)?.data ?? data;
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = (data[i] ?? 0) + scale * (change[i] ?? 0);
    result.set(name, { shape: [...shape], data: out });
  }
  return result;
}

/**
 * The global L2 norm over every element of every tensor, accumulated in float64 so a large
 * model's sum of squares does not lose precision: this is the number clipping compares to C.
 */
export function l2Norm(tensors: NamedTensors): number {
  let sumOfSquares = 0;
  for (const { data } of tensors.values()) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i] ?? 0;
      sumOfSquares += v * v;
    }
  }
  return Math.sqrt(sumOfSquares);
}

function checkSameLayout(a: NamedTensors, b: NamedTensors, aName: string, bName: string): void {
  for (const name of a.keys()) {
    if (!b.has(name)) {
      throw new CheckpointError(
        'NAME_MISMATCH',
        `tensor "${name}" is in ${aName} but not in ${bName}`,
      );
    }
  }
  for (const [name, tensor] of b) {
    const other = a.get(name);
    if (other === undefined) {
      throw new CheckpointError(
        'NAME_MISMATCH',
        `tensor "${name}" is in ${bName} but not in ${aName}`,
      );
    }
    if (!sameShape(other.shape, tensor.shape) || other.data.length !== tensor.data.length) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" is ${formatShape(other.shape)} in ${aName} but ${formatShape(tensor.shape)} in ${bName}`,
      );
    }
  }
}
