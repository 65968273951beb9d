import { describe, expect, it } from 'vitest';
import { quantizeRowsInt8 } from '../src/decoder/int8.ts';
import { Int8Arena } from '../src/decoder/int8-kernel.ts';
import { Int8Staging, STAGED_MIN_POSITIONS } from '../src/decoder/int8-staging.ts';

/**
 * Long prompts' int8 products through the float32 kernel: the dequantised weights times the
 * float32 activations, whatever was staged for the same shape before.
 */
function matrix(rows: number, cols: number, seed: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.731 + seed) * 0.5);
}

/** x · (dequantised m)ᵀ in float64. */
function reference(
  m: ReturnType<typeof quantizeRowsInt8>,
  x: Float32Array,
  count: number,
): Float64Array {
  const out = new Float64Array(count * m.rows);
  for (let p = 0; p < count; p++) {
    for (let r = 0; r < m.rows; r++) {
      let sum = 0;
      for (let c = 0; c < m.cols; c++) sum += x[p * m.cols + c]! * m.values[r * m.cols + c]!;
      out[p * m.rows + r] = sum * m.scales[r]!;
    }
  }
  return out;
}

function worstRelative(got: Float32Array, want: Float64Array): number {
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst / scale;
}

describe('int8 products staged through the float32 kernel', () => {
  it('takes long prompts only', () => {
    const held = new Int8Arena().hold(quantizeRowsInt8(matrix(4, 64, 0), 4, 64));
    expect(Int8Staging.takes(held, STAGED_MIN_POSITIONS - 1)).toBe(false);
    expect(Int8Staging.takes(held, STAGED_MIN_POSITIONS)).toBe(true);
  });

  it.each([1, 2])(
    'equals the dequantised product on %i thread(s), for each shape and each matrix staged',
    (threads) => {
      const arena = new Int8Arena({ threads });
      const staging = new Int8Staging(threads);
      try {
        const count = STAGED_MIN_POSITIONS + 3;
        // Two matrices of one shape (the second overwrites the first's float32 copy), and
        // another shape beside them.
        for (const [rows, cols, seed] of [
          [70, 96, 1],
          [70, 96, 2],
          [130, 64, 3],
        ] as const) {
          const q = quantizeRowsInt8(matrix(rows, cols, seed), rows, cols);
          const held = arena.hold(q);
          const x = matrix(count, cols, seed + 10);
          const staged = staging.matmul(held, x, count);
          expect(staged.length).toBe(count * rows);
          expect(worstRelative(staged, reference(q, x, count))).toBeLessThan(1e-5);
          // The int8 kernel rounds the activations to int8 too: close, not equal.
          expect(worstRelative(arena.matmul(held, x, count), reference(q, x, count))).toBeLessThan(
            0.02,
          );
        }
        expect(staging.bytes).toBeGreaterThanOrEqual(4 * (70 * 96 + 130 * 64));
      } finally {
        staging.dispose();
        arena.dispose();
      }
    },
  );
});
