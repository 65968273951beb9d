import { describe, expect, it } from 'vitest';
import { dequantizeRowsInt8, quantizeRowsInt8 } from '../src/decoder/int8.ts';
import { Int8Arena, KERNEL_BLOCK, fastestInt8Kernel } from '../src/decoder/int8-kernel.ts';

/** What the kernel computes, in float64: the int8 weights times the activations rounded to
 * int8 in blocks of 32 (scale absmax / 127; q = floor(x · (1 / scale) + 0.5), each step
 * rounded to float32 as the kernel's lanes do), each row times its scale. */
function reference(w: Float32Array, rows: number, cols: number, x: Float32Array): Float64Array {
  const q = quantizeRowsInt8(w, rows, cols);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let b = 0; b < cols; b += KERNEL_BLOCK) {
      let max = 0;
      for (let i = b; i < b + KERNEL_BLOCK; i++) max = Math.max(max, Math.abs(x[i]!));
      const scale = Math.fround(max / 127);
      const inverse = scale === 0 ? 0 : Math.fround(1 / scale);
      let dot = 0;
      for (let i = b; i < b + KERNEL_BLOCK; i++) {
        const xq = Math.floor(Math.fround(Math.fround(x[i]! * inverse) + 0.5));
        dot += q.values[r * cols + i]! * xq;
      }
      sum += dot * scale;
    }
    out[r] = sum * q.scales[r]!;
  }
  return out;
}

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 30 - 1;
  });
}

describe('int8 matrix–vector kernel (WebAssembly SIMD)', () => {
  it('runs the kernel that timed faster on this machine, either one on request', () => {
    // Node 24 has relaxed SIMD; which kernel wins depends on the CPU (AVX-VNNI or not).
    const fastest = fastestInt8Kernel();
    expect(['relaxed', 'simd128']).toContain(fastest);
    expect(fastestInt8Kernel()).toBe(fastest); // timed once
    expect(new Int8Arena().kernel).toBe(fastest);
    expect(new Int8Arena({ kernel: 'relaxed' }).kernel).toBe('relaxed');
    expect(new Int8Arena({ kernel: 'simd128' }).kernel).toBe('simd128');
  });

  it.each([
    ['relaxed', 1, 32],
    ['relaxed', 7, 96], // odd: the last row outside a pair
    ['relaxed', 33, 576],
    ['relaxed', 5, 1536],
    ['relaxed', 500, 576], // rows in cache blocks of 226: two whole and a partial one
    ['simd128', 1, 32],
    ['simd128', 7, 96],
    ['simd128', 33, 576],
    ['simd128', 5, 1536],
    ['simd128', 500, 576],
  ] as const)(
    '%s, %i×%i: the integer block scheme, exactly up to float32 summation',
    (kernel, rows, cols) => {
      const arena = new Int8Arena({ kernel });
      const w = random(rows * cols, rows + cols);
      w.fill(0, 0, cols); // an all-zero row
      const x = random(3 * cols, 7);
      x.fill(0, 0, KERNEL_BLOCK); // an all-zero block of the first vector
      const m = arena.hold(quantizeRowsInt8(w, rows, cols));
      const y = arena.matmul(m, x, 3);
      expect(y.length).toBe(3 * rows);
      for (let t = 0; t < 3; t++) {
        const want = reference(w, rows, cols, x.subarray(t * cols, (t + 1) * cols));
        const largest = Math.max(...want.map(Math.abs));
        for (let r = 0; r < rows; r++) {
          expect(Math.abs(y[t * rows + r]! - want[r]!)).toBeLessThanOrEqual(1e-5 * largest);
        }
        expect(y[t * rows]).toBe(0);
      }
    },
  );

  it('relaxed and SIMD128 kernels agree to float32 rounding (exact block sums, lanes gathered differently), activations of either sign at full int8 range', () => {
    const rows = 129;
    const cols = 640;
    const w = random(rows * cols, 11);
    const x = random(2 * cols, 12).map((v, i) => (i % 97 === 0 ? 40 * Math.sign(v) : v));
    const q = quantizeRowsInt8(w, rows, cols);
    const relaxed = new Int8Arena({ kernel: 'relaxed' });
    const simd128 = new Int8Arena({ kernel: 'simd128' });
    const a = relaxed.matmul(relaxed.hold(q), x, 2);
    const b = simd128.matmul(simd128.hold(q), x, 2);
    const largest = Math.max(...b.map(Math.abs));
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-6 * largest);
  });

  it.each(['relaxed', 'simd128'] as const)(
    '%s: many positions at once (chunks of the kernel, a partial last one) give what one position at a time gives, on two threads too',
    (kernel) => {
      const rows = 70;
      const cols = 96;
      const count = 150;
      const q = quantizeRowsInt8(random(rows * cols, 5), rows, cols);
      const x = random(count * cols, 6);
      const one = new Int8Arena({ kernel });
      const two = new Int8Arena({ kernel, threads: 2 });
      try {
        const m = one.hold(q);
        const all = one.matmul(m, x, count);
        const both = two.matmul(two.hold(q), x, count);
        for (let t = 0; t < count; t++) {
          const single = one.matmul(m, x.subarray(t * cols, (t + 1) * cols), 1);
          expect([...all.subarray(t * rows, (t + 1) * rows)]).toEqual([...single]);
        }
        expect([...both]).toEqual([...all]);
      } finally {
        two.dispose();
      }
    },
  );

  it('is close to the float32 product (int8 rounding of weights and activations only)', () => {
    const rows = 64;
    const cols = 256;
    const w = random(rows * cols, 3);
    const x = random(cols, 4);
    const arena = new Int8Arena();
    const y = arena.matmul(arena.hold(quantizeRowsInt8(w, rows, cols)), x, 1);
    let worst = 0;
    let largest = 0;
    for (let r = 0; r < rows; r++) {
      let exact = 0;
      for (let c = 0; c < cols; c++) exact += w[r * cols + c]! * x[c]!;
      worst = Math.max(worst, Math.abs(exact - y[r]!));
      largest = Math.max(largest, Math.abs(exact));
    }
    expect(worst).toBeLessThan(0.02 * largest);
  });

  it('keeps earlier matrices intact as the arena grows past many pages', () => {
    const arena = new Int8Arena();
    const first = quantizeRowsInt8(random(8 * 64, 1), 8, 64);
    const held = arena.hold(first);
    const x = random(64, 2);
    const before = arena.matmul(held, x, 1);
    for (let i = 0; i < 4; i++) arena.hold(quantizeRowsInt8(random(1024 * 256, i), 1024, 256));
    expect(arena.bytes).toBeGreaterThan(1 << 20);
    expect([...held.values]).toEqual([...first.values]);
    expect([...dequantizeRowsInt8(held)]).toEqual([...dequantizeRowsInt8(first)]);
    expect([...arena.matmul(held, x, 1)]).toEqual([...before]);
  });

  it('refuses a width that is not whole blocks and a vector of the wrong length', () => {
    const arena = new Int8Arena();
    expect(Int8Arena.fits(48)).toBe(false);
    const odd = arena.hold(quantizeRowsInt8(random(2 * 48, 1), 2, 48));
    expect(() => arena.matmul(odd, random(48, 1), 1)).toThrow(/48 columns are not whole blocks/);
    const m = arena.hold(quantizeRowsInt8(random(2 * 64, 1), 2, 64));
    expect(() => arena.matmul(m, random(60, 1), 1)).toThrow(/60 values are not 1 vectors of 64/);
  });
});

describe('int8 products split across two threads', () => {
  it('give bit for bit what one thread gives, for every split and width', () => {
    const one = new Int8Arena();
    const two = new Int8Arena({ threads: 2 });
    try {
      expect(two.threads).toBe(2);
      for (const [rows, cols] of [
        [63, 64], // below the split threshold: one thread
        [64, 64],
        [66, 32], // halves of 32 and 34 rows (even, for the relaxed kernel's pairs)
        [1537, 96], // an odd count: the halves differ by a row
        [4096, 576],
      ] as const) {
        const q = quantizeRowsInt8(random(rows * cols, rows), rows, cols);
        const x = random(2 * cols, cols);
        expect([...two.matmul(two.hold(q), x, 2)]).toEqual([...one.matmul(one.hold(q), x, 2)]);
      }
    } finally {
      two.dispose();
      one.dispose();
    }
    expect(two.threads).toBe(1);
  });

  it('carries on alone, with the same result, once the helper thread has been stopped', () => {
    const arena = new Int8Arena({ threads: 2 });
    const q = quantizeRowsInt8(random(1024 * 64, 9), 1024, 64);
    const m = arena.hold(q);
    const x = random(64, 10);
    const before = arena.matmul(m, x, 1);
    arena.dispose();
    expect(arena.threads).toBe(1);
    expect([...arena.matmul(m, x, 1)]).toEqual([...before]);
  });
});
