import { describe, expect, it } from 'vitest';

import {
  FLOAT16_MAX,
  float16BitsToFloat32,
  float16BitsToFloat32Array,
  float32ArrayToFloat16Bits,
  float32ToFloat16Bits,
} from '../src/checkpoint/float16.ts';

const toHalf = float32ToFloat16Bits;
const fromHalf = float16BitsToFloat32;

describe('float32 -> float16 conversion', () => {
  it('keeps signed zeros', () => {
    expect(toHalf(0)).toBe(0x0000);
    expect(toHalf(-0)).toBe(0x8000);
    expect(Object.is(fromHalf(0x8000), -0)).toBe(true);
  });

  it('handles the subnormal range, rounding ties to even', () => {
    const tiny = 2 ** -24; // smallest float16 subnormal
    expect(toHalf(tiny)).toBe(0x0001);
    expect(toHalf(-tiny)).toBe(0x8001);
    expect(toHalf(tiny / 2)).toBe(0x0000); // halfway to zero: ties to even (0)
    expect(toHalf(Math.fround((tiny / 2) * 1.0001))).toBe(0x0001); // just above halfway
    expect(toHalf(3 * (tiny / 2))).toBe(0x0002); // halfway 1..2: ties to even (2)
    expect(toHalf(1023 * tiny)).toBe(0x03ff); // largest subnormal
    expect(toHalf(2 ** -14)).toBe(0x0400); // smallest normal
    expect(toHalf(1023.5 * tiny)).toBe(0x0400); // rounds up across into the normals
    expect(toHalf(1e-40)).toBe(0x0000); // a float32 subnormal
    expect(fromHalf(0x0001)).toBe(tiny);
    expect(fromHalf(0x03ff)).toBe(1023 * tiny);
  });

  it('handles the top of the range and overflow', () => {
    expect(toHalf(FLOAT16_MAX)).toBe(0x7bff);
    expect(fromHalf(0x7bff)).toBe(65504);
    expect(toHalf(65519)).toBe(0x7bff); // below the midpoint to 65536
    expect(toHalf(65520)).toBe(0x7c00); // the midpoint rounds (to even) to infinity
    expect(toHalf(1e10)).toBe(0x7c00);
    expect(toHalf(-1e10)).toBe(0xfc00);
  });

  it('maps infinities and NaN', () => {
    expect(toHalf(Infinity)).toBe(0x7c00);
    expect(toHalf(-Infinity)).toBe(0xfc00);
    expect(fromHalf(0x7c00)).toBe(Infinity);
    expect(fromHalf(0xfc00)).toBe(-Infinity);
    const nan = toHalf(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x03ff).not.toBe(0);
    expect(fromHalf(nan)).toBeNaN();
  });

  it('rounds normal values to nearest, ties to even', () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1 + 2^-10: even is 1
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between ...01 and ...02: even is 02
    expect(toHalf(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(toHalf(2047)).toBe(0x67ff); // exact: the largest float16 below 2048
    expect(toHalf(2049)).toBe(0x6800); // tie between 2048 and 2050: even is 2048
    expect(toHalf(-2051)).toBe(0xe802); // tie between 2050 and 2052: even is 2052
  });

  it('round-trips every float16 value exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      const value = fromHalf(h);
      if (Number.isNaN(value)) continue;
      expect(toHalf(value)).toBe(h);
    }
  });

  it('agrees with the platform float16 rounding on random float32 values', () => {
    // Math.f16round is only an oracle here; the codec does not rely on it.
    const f16round = (Math as { f16round?: (x: number) => number }).f16round;
    if (f16round === undefined) return;
    const bits = new Uint32Array(200_000);
    let state = 12345;
    for (let i = 0; i < bits.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      bits[i] = state;
    }
    const values = new Float32Array(bits.buffer);
    const halves = float32ArrayToFloat16Bits(values);
    const back = float16BitsToFloat32Array(halves);
    for (let i = 0; i < values.length; i++) {
      const expected = f16round(values[i] ?? 0);
      if (Number.isNaN(expected)) expect(back[i]).toBeNaN();
      else expect(Object.is(back[i], expected)).toBe(true);
    }
  });

  it('has relative error at most 2^-11 over the normal range', () => {
    let state = 7;
    for (let i = 0; i < 10_000; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      // Uniform in log space across [2^-14, 65504].
      const x = Math.fround(2 ** (-14 + (state / 2 ** 32) * 29.99));
      const y = fromHalf(toHalf(x));
      expect(Math.abs(y - x) / x).toBeLessThanOrEqual(2 ** -11);
    }
  });
});
