import { describe, expect, it } from 'vitest';
import { F32Arena } from '../src/decoder/f32-kernel.ts';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 30 - 1;
  });
}

/** x · wᵀ in float64: [count, rows]. */
function reference(w: Float32Array, rows: number, cols: number, x: Float32Array, count: number) {
  const out = new Float64Array(count * rows);
  for (let t = 0; t < count; t++) {
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += w[r * cols + c]! * x[t * cols + c]!;
      out[t * rows + r] = sum;
    }
  }
  return out;
}

describe('float32 matrix kernel (WebAssembly SIMD)', () => {
  it.each([
    [1, 4, 1],
    [7, 12, 3], // odd rows: a single row after the pairs; positions below a tile of 4
    [2, 64, 4],
    [33, 96, 9], // two tiles of 4 positions and one single
    [38, 24, 1], // one position: rows four at a time, then a pair
    [9, 20, 1], // one position, a width of 8-column steps and a 4: rows in pairs
    [70, 576, 150], // chunks of 64 positions, a partial last one
    [300, 576, 6], // rows in cache blocks of 112: two whole and a partial one
  ])('%i×%i against %i positions: the float64 product to float32 rounding', (rows, cols, count) => {
    const arena = new F32Arena();
    const w = random(rows * cols, rows + cols);
    const x = random(count * cols, count);
    const y = arena.matmul(arena.hold(w, rows, cols), x, count);
    const want = reference(w, rows, cols, x, count);
    expect(y.length).toBe(count * rows);
    for (let i = 0; i < y.length; i++) {
      expect(Math.abs(y[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * Math.sqrt(cols));
    }
  });

  it('gives bit for bit on two threads what it gives on one, for every split', () => {
    const one = new F32Arena();
    const two = new F32Arena({ threads: 2 });
    try {
      expect(two.threads).toBe(2);
      for (const [rows, cols, count] of [
        [63, 64, 1], // below the split threshold
        [64, 64, 1],
        [131, 96, 5], // odd: halves of 64 and 67 rows
        [1536, 576, 70],
      ] as const) {
        const w = random(rows * cols, rows);
        const x = random(count * cols, cols);
        const a = one.matmul(one.hold(w, rows, cols), x, count);
        const b = two.matmul(two.hold(w, rows, cols), x, count);
        expect([...b]).toEqual([...a]);
      }
    } finally {
      two.dispose();
    }
  });

  it.each([
    [1, 4, 1],
    [5, 12, 3], // one tile of 8 columns, one of 4; positions below a tile of 4
    [9, 20, 9],
    [64, 576, 70], // chunks of 64 positions
    [500, 576, 9], // summed over blocks of 227 rows: two whole and a partial one
  ])(
    'transposed: x · m for m %i×%i against %i positions, to float32 rounding',
    (rows, cols, count) => {
      const arena = new F32Arena();
      const w = random(rows * cols, rows * cols);
      const x = random(count * rows, count + 1);
      const y = arena.matmulT(arena.hold(w, rows, cols), x, count);
      expect(y.length).toBe(count * cols);
      for (let t = 0; t < count; t++) {
        for (let c = 0; c < cols; c++) {
          let want = 0;
          for (let r = 0; r < rows; r++) want += x[t * rows + r]! * w[r * cols + c]!;
          expect(Math.abs(y[t * cols + c]! - want)).toBeLessThanOrEqual(1e-5 * Math.sqrt(rows));
        }
      }
    },
  );

  it('transposed: two threads (a band of columns each) give bit for bit what one gives', () => {
    const one = new F32Arena();
    const two = new F32Arena({ threads: 2 });
    try {
      for (const [rows, cols, count] of [
        [16, 60, 2], // below the split threshold
        [33, 100, 5], // bands of 48 and 52 columns
        [576, 1536, 66],
      ] as const) {
        const w = random(rows * cols, cols);
        const x = random(count * rows, rows);
        const a = one.matmulT(one.hold(w, rows, cols), x, count);
        expect([...two.matmulT(two.hold(w, rows, cols), x, count)]).toEqual([...a]);
      }
    } finally {
      two.dispose();
    }
  });

  it.each([
    [1, 4, 1],
    [9, 20, 5], // tiles of 8 columns and one of 4; positions below a tile of 4 and a tail
    [300, 128, 13], // a weight gradient's shape: many rows summed, in blocks
  ])(
    'xᵀ · m with x read as it lies: m %i×%i against %i columns of x, to float32 rounding, and two threads bit for bit',
    (rows, cols, count) => {
      const one = new F32Arena();
      const two = new F32Arena({ threads: 2 });
      try {
        const w = random(rows * cols, rows + 2);
        const x = random(rows * count, count + 3); // [rows, count]
        const y = one.transposedTimes(x, one.hold(w, rows, cols), count);
        expect(y.length).toBe(count * cols);
        for (let t = 0; t < count; t++) {
          for (let c = 0; c < cols; c++) {
            let want = 0;
            for (let r = 0; r < rows; r++) want += x[r * count + t]! * w[r * cols + c]!;
            expect(Math.abs(y[t * cols + c]! - want)).toBeLessThanOrEqual(1e-5 * Math.sqrt(rows));
          }
        }
        expect([...two.transposedTimes(x, two.hold(w, rows, cols), count)]).toEqual([...y]);
        expect(() => one.transposedTimes(x.subarray(1), one.hold(w, rows, cols), count)).toThrow(
          /values are not/,
        );
      } finally {
        two.dispose();
      }
    },
  );

  it('reholds a changed matrix in its own place while it fits, and anew when it grows', () => {
    const arena = new F32Arena();
    const first = arena.hold(random(6 * 8, 1), 6, 8);
    const bytes = arena.bytes;
    const w = random(4 * 8, 2);
    const again = arena.rehold(first, w, 4, 8);
    expect(arena.bytes).toBe(bytes);
    expect(again.valuesAt).toBe(first.valuesAt);
    const x = random(8, 3);
    expect([...arena.matmul(again, x, 1)]).toEqual([...arena.matmul(arena.hold(w, 4, 8), x, 1)]);
    const grown = arena.rehold(again, random(7 * 8, 4), 7, 8);
    expect(grown.valuesAt).not.toBe(first.valuesAt);
    expect(() => arena.rehold(grown, w, 5, 8)).toThrow(/not a 5×8 matrix/);
  });

  it('gathers rows (an embedding lookup) and keeps them intact as the arena grows', () => {
    const arena = new F32Arena();
    const w = random(10 * 8, 3);
    const m = arena.hold(w, 10, 8);
    for (let i = 0; i < 4; i++) arena.hold(random(1024 * 256, i), 1024, 256);
    expect(arena.bytes).toBeGreaterThan(4 << 20);
    expect([...arena.gather(m, [9, 0, 9])]).toEqual([
      ...w.subarray(72, 80),
      ...w.subarray(0, 8),
      ...w.subarray(72, 80),
    ]);
  });

  it('refuses a width that is not whole 4-lane vectors, a vector of the wrong length and a wrong-sized matrix', () => {
    const arena = new F32Arena();
    expect(F32Arena.fits(6)).toBe(false);
    const odd = arena.hold(random(2 * 6, 1), 2, 6);
    expect(() => arena.matmul(odd, random(6, 1), 1)).toThrow(/6 columns are not whole blocks of 4/);
    const m = arena.hold(random(2 * 8, 1), 2, 8);
    expect(() => arena.matmul(m, random(7, 1), 1)).toThrow(/7 values are not 1 vectors of 8/);
    expect(() => arena.hold(random(15, 1), 2, 8)).toThrow(/15 values are not a 2×8 matrix/);
  });
});
