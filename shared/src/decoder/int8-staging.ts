import { F32Arena, type F32Rows } from './f32-kernel.ts';
import { dequantizeRowsInt8 } from './int8.ts';
import type { ArenaRows } from './int8-kernel.ts';

/**
 * Products of int8 weights with many positions at once (a prompt) through the float32
 * kernel: the matrix is dequantised into a float32 copy, one per shape and reused, and the
 * float32 kernel runs every position over it. Where the int8 kernel is the SIMD128 one (no
 * AVX-VNNI: `fastestInt8Kernel`), it multiplies int8 by widening to 16 bits and runs slower
 * than the float32 kernel's fused multiply-adds once the weights are read many times over
 * (SmolLM2-360M prompts: 45 against 62 tokens/s with float32 weights). Dequantising costs one
 * pass over the weights per product, about what 60 positions of the kernel save, so it pays
 * for long prompts only (STAGED_MIN_POSITIONS). The activations stay float32, so a prompt
 * is a little more exact than through the int8 kernel, which rounds them to int8.
 */
export const STAGED_MIN_POSITIONS = 128;

export class Int8Staging {
  readonly #arena: F32Arena;
  readonly #byShape = new Map<string, F32Rows>();

  constructor(threads: number) {
    this.#arena = new F32Arena({ threads });
  }

  /** Whether products with this matrix, `count` positions at a time, go through staging. */
  static takes(m: ArenaRows, count: number): boolean {
    return count >= STAGED_MIN_POSITIONS && F32Arena.fits(m.cols);
  }

  /** x [count, m.cols] · mᵀ as Int8Arena.matmul computes it, with x kept in float32. */
  matmul(m: ArenaRows, x: Float32Array, count: number): Float32Array {
    const key = `${m.rows}×${m.cols}`;
    let staged = this.#byShape.get(key);
    if (!staged) {
      staged = this.#arena.hold(new Float32Array(m.rows * m.cols), m.rows, m.cols);
      this.#byShape.set(key, staged);
    }
    dequantizeRowsInt8(m, 0, m.rows, staged.values);
    return this.#arena.matmul(staged, x, count);
  }

  /** Bytes of float32 copies held (one per distinct shape). */
  get bytes(): number {
    return this.#arena.bytes;
  }

  dispose(): void {
    this.#arena.dispose();
  }
}
