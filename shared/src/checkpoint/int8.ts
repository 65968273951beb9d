import { assertFinite } from './dtype.ts';

/**
 * Symmetric per-tensor int8 quantisation: scale = maxAbs / 127 (rounded to float32, the
 * precision it is sent with), q = round(x / scale) clamped to [-127, 127], x' = q * scale.
 * Each element is off by at most scale / 2 (plus float32 rounding). -128 is never used, so
 * the range is symmetric and q(-x) = -q(x). An all-zero tensor has scale 0.
 */
export interface Int8Quantized {
  scale: number;
  values: Int8Array;
}

export function quantizeInt8(data: Float32Array, label: string): Int8Quantized {
  assertFinite(data, label);
  let maxAbs = 0;
  for (let i = 0; i < data.length; i++) maxAbs = Math.max(maxAbs, Math.abs(data[i] ?? 0));
  const scale = Math.fround(maxAbs / 127);
  const values = new Int8Array(data.length);
  if (scale === 0) return { scale: 0, values };
  for (let i = 0; i < data.length; i++) {
    const x = (data[i] ?? 0) / scale;
    // Round half away from zero, so quantisation is symmetric around 0.
    const q = Math.min(127, Math.round(Math.abs(x)));
    values[i] = x < 0 ? -q : q;
  }
  return { scale, values };
}

export function dequantizeInt8(
  { scale, values }: Int8Quantized,
  out: Float32Array = new Float32Array(values.length),
): Float32Array {
  for (let i = 0; i < values.length; i++) out[i] = (values[i] ?? 0) * scale;
  return out;
}
