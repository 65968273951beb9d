/**
 * IEEE 754 binary16 <-> binary32 conversion, done by hand rather than with Float16Array /
 * Math.f16round so it behaves the same in every browser and Node version we run on.
 *
 * float32 -> float16 rounds to nearest, ties to even, like the hardware does: values too
 * large become ±Infinity, values too small for a subnormal become ±0, NaN stays NaN (quiet,
 * keeping the top payload bits).
 */

/** Largest finite float16, 65504. */
export const FLOAT16_MAX = 65504;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Half-precision bits (0..0xffff) nearest to `value` (after rounding it to float32). */
export function float32ToFloat16Bits(value: number): number {
  scratchF32[0] = value;
  return float32BitsToFloat16Bits(scratchU32[0] ?? 0);
}

function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;

  if (exponent === 0xff) {
    // Infinity keeps a zero mantissa; NaN is forced quiet so the payload cannot vanish.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }

  // float16 exponent bias is 15, float32's is 127.
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00;

  if (halfExponent <= 0) {
    // Subnormal (or zero) in float16: value = m * 2^-24, so m = significand * 2^(exponent-126)
    // with the implicit leading bit made explicit. Past 24 bits of shift it rounds to zero
    // (the exact halfway point 2^-25 ties to the even value, zero).
    const shift = 126 - exponent;
    if (shift > 24) return sign;
    const significand = mantissa | 0x800000;
    let m = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (m & 1) === 1)) m += 1;
    // m may reach 0x400, which is exactly the smallest normal: the bit pattern is right.
    return sign | m;
  }

  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // A carry out of the mantissa bumps the exponent, and past 30 lands on Infinity (0x7c00):
  // exactly the round-to-nearest-even overflow rule.
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** The float32 (exactly representable) value of half-precision bits. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** Converts a whole array; reads the float32 bit patterns directly, no per-element boxing. */
export function float32ArrayToFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToFloat16Bits(bits[i] ?? 0);
  return out;
}

let decodeTable: Float32Array | undefined;

/** Converts a whole array through a 65,536-entry table, built on first use (256 KiB). */
export function float16BitsToFloat32Array(bits: Uint16Array): Float32Array {
  if (decodeTable === undefined) {
    decodeTable = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) decodeTable[h] = float16BitsToFloat32(h);
  }
  const table = decodeTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i] ?? 0] ?? 0;
  return out;
}
