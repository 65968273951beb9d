import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { F32Arena, type F32Rows } from '../decoder/f32-kernel.ts';
import type { FrozenKernel, FrozenProducts } from './layers.ts';

/**
 * A model's frozen matrices (the base while an adapter trains) copied into a float32 kernel
 * arena (decoder/f32-kernel.ts), so a frozen layer's forward product x · Wᵀ and its backward
 * dy · W run in our SIMD kernel on two threads instead of tfjs's matMul, which the wasm
 * backend runs on one thread in Node. Each matrix is copied the first time a frozen product
 * needs it and again if its variable is assigned new values; the copies cost the base's size
 * in memory again (0.54 GB at SmolLM2-135M) for as long as the model lives. Only on the wasm
 * backend: tfjs-node and WebGPU run their own matMuls well.
 */
export class FrozenWeights implements FrozenProducts {
  readonly #arena: F32Arena;
  readonly #held = new Map<tf.Variable, { dataId: object; rows: F32Rows }>();

  private constructor(arena: F32Arena) {
    this.#arena = arena;
  }

  /** A store, or null where the kernel cannot run (no WebAssembly SIMD). */
  static create(): FrozenWeights | null {
    if (!F32Arena.available()) return null;
    return new FrozenWeights(new F32Arena({ threads: availableParallelism() > 1 ? 2 : 1 }));
  }

  for(w: tf.Variable): FrozenKernel | null {
    if (tf.getBackend() !== 'wasm' || w.rank !== 2) return null;
    const [rows, cols] = w.shape as [number, number];
    if (!this.#arena.fits(cols)) return null;
    let held = this.#held.get(w);
    if (held?.dataId !== w.dataId) {
      held = {
        dataId: w.dataId,
        rows: this.#arena.hold(w.dataSync() as Float32Array, rows, cols),
      };
      this.#held.set(w, held);
    }
    const m = held.rows;
    return {
      forward: (x, n) => this.#arena.matmul(m, x, n),
      backward: (dy, n) => this.#arena.matmulT(m, dy, n),
    };
  }

  dispose(): void {
    this.#held.clear();
    this.#arena.dispose();
  }
}
