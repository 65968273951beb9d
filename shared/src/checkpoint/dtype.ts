import { CheckpointError } from './errors.ts';
import { float16BitsToFloat32Array, float32ArrayToFloat16Bits } from './float16.ts';

/**
 * How float elements are laid out as bytes: always little-endian, whatever the host. This is
 * the one place checkpoints and update frames turn floats into bytes and back.
 */
export type FloatDtype = 'float32' | 'float16';

export const BYTES_PER_ELEMENT: Readonly<Record<FloatDtype, number>> = {
  float32: 4,
  float16: 2,
};

// Virtually every host is little-endian; there a straight byte copy is the fast path, and
// the DataView loops below keep big-endian hosts correct.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Little-endian bytes of `values` in `dtype`. Refuses NaN/±Infinity, and float16 overflow
 * (|x| > 65504 after rounding), with NON_FINITE naming `label`.
 */
export function floatsToBytes(values: Float32Array, dtype: FloatDtype, label: string): Uint8Array {
  assertFinite(values, label);
  if (dtype === 'float32') {
    const out = new Uint8Array(values.length * 4);
    if (HOST_IS_LITTLE_ENDIAN) {
      out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    } else {
      const view = new DataView(out.buffer);
      for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] ?? 0, true);
    }
    return out;
  }
  const halves = float32ArrayToFloat16Bits(values);
  for (let i = 0; i < halves.length; i++) {
    if (((halves[i] ?? 0) & 0x7c00) === 0x7c00) {
      throw new CheckpointError(
        'NON_FINITE',
        `${label}[${i}] = ${values[i]} overflows float16 (max ±65504)`,
      );
    }
  }
  const out = new Uint8Array(halves.length * 2);
  if (HOST_IS_LITTLE_ENDIAN) {
    out.set(new Uint8Array(halves.buffer));
  } else {
    const view = new DataView(out.buffer);
    for (let i = 0; i < halves.length; i++) view.setUint16(i * 2, halves[i] ?? 0, true);
  }
  return out;
}

/**
 * A fresh Float32Array of `count` elements read from `bytes` at `offset` (any alignment), or
 * `into` (of exactly `count` elements) filled with them. The caller has already checked the
 * range. Refuses non-finite values with NON_FINITE.
 */
export function bytesToFloats(
  bytes: Uint8Array,
  offset: number,
  count: number,
  dtype: FloatDtype,
  label: string,
  into?: Float32Array,
): Float32Array {
  const byteLength = count * BYTES_PER_ELEMENT[dtype];
  if (into) {
    if (into.length !== count) {
      throw new RangeError(`${label}: ${count} values do not fit a target of ${into.length}`);
    }
    if (dtype === 'float32' && HOST_IS_LITTLE_ENDIAN) {
      // Straight into the target: one copy of the bytes, none in between.
      new Uint8Array(into.buffer, into.byteOffset, byteLength).set(
        bytes.subarray(offset, offset + byteLength),
      );
      assertFinite(into, label);
      return into;
    }
    into.set(bytesToFloats(bytes, offset, count, dtype, label));
    return into;
  }
  // Copy into a new, aligned buffer so the result never aliases the input. (Not slice():
  // on a Node Buffer that returns a view.)
  const copy = new Uint8Array(bytes.subarray(offset, offset + byteLength));
  let values: Float32Array;
  if (dtype === 'float32') {
    if (HOST_IS_LITTLE_ENDIAN) {
      values = new Float32Array(copy.buffer, 0, count);
    } else {
      const view = new DataView(copy.buffer);
      values = new Float32Array(count);
      for (let i = 0; i < count; i++) values[i] = view.getFloat32(i * 4, true);
    }
  } else {
    let halves: Uint16Array;
    if (HOST_IS_LITTLE_ENDIAN) {
      halves = new Uint16Array(copy.buffer, 0, count);
    } else {
      const view = new DataView(copy.buffer);
      halves = new Uint16Array(count);
      for (let i = 0; i < count; i++) halves[i] = view.getUint16(i * 2, true);
    }
    values = float16BitsToFloat32Array(halves);
  }
  assertFinite(values, label);
  return values;
}

export function assertFinite(values: Float32Array, label: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    // v - v is 0 for finite v and NaN for NaN/±Infinity: one branch on the hot path.
    if (v - v !== 0) {
      throw new CheckpointError('NON_FINITE', `${label}[${i}] is ${v}; weights must be finite`);
    }
  }
}
