import { availableParallelism } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { readValues } from '../backend/host-values.ts';
import { F32Arena, type F32Rows } from '../decoder/f32-kernel.ts';
import type { KernelProducts, LinearKernel, SliceKernel } from './layers.ts';

/**
 * A model's projection matrices copied into a float32 kernel arena (decoder/f32-kernel.ts),
 * so a linear layer's products run in our SIMD kernel instead of tfjs's wasm matMul (one
 * thread in Node, 21–30 GFLOP/s at the reference model's shapes against the kernel's 32–47):
 * - the forward x · Wᵀ and the input gradient dy · W, for every weight;
 * - the weight gradient dyᵀ · x, for a weight being trained.
 *
 * Each matrix is copied the first time a product needs it and again, into the same place,
 * whenever its variable holds new values (the optimiser's step, a frozen base reloaded). The
 * copies cost the weights' size again (0.54 GB for a frozen SmolLM2-135M) for as long as the
 * model lives. Only on the wasm backend: tfjs-node and WebGPU run their own matMuls well.
 */
export class KernelWeights implements KernelProducts, SliceKernel {
  readonly #arena: F32Arena;
  readonly #held = new Map<tf.Variable, { dataId: object; rows: F32Rows }>();
  /** The weight gradient's operand held for the kernel, one place reused by every layer. */
  #operand: F32Rows | undefined;

  private constructor(arena: F32Arena) {
    this.#arena = arena;
  }

  /**
   * A store, or null where the kernel cannot run (no WebAssembly SIMD). Two threads on the
   * main thread of a machine with two cores or more; one in a worker thread, which is already
   * one of several data-parallel workers sharing the cores (parallel/worker.ts).
   */
  static create(): KernelWeights | null {
    if (!F32Arena.available()) return null;
    const threads = isMainThread && availableParallelism() > 1 ? 2 : 1;
    return new KernelWeights(new F32Arena({ threads }));
  }

  for(w: tf.Variable): LinearKernel | null {
    if (tf.getBackend() !== 'wasm' || w.rank !== 2) return null;
    const [rows, cols] = w.shape as [number, number];
    if (!this.#arena.fits(cols)) return null;
    let held = this.#held.get(w);
    if (held?.dataId !== w.dataId) {
      // Read where tfjs keeps it: the arena's copy allocates in its own memory, not tfjs's.
      const data = readValues(w);
      held = { dataId: w.dataId, rows: this.#arena.rehold(held?.rows, data, rows, cols) };
      this.#held.set(w, held);
    }
    const m = held.rows;
    return {
      forward: (x, n, out) => void this.#arena.matmul(m, x, n, out),
      backward: (dy, n, out) => void this.#arena.matmulT(m, dy, n, out),
      weightGradient: (dy, x, n, out) => {
        // x held for the kernel (one place reused by every layer), dy read as it lies.
        this.#operand = this.#arena.rehold(this.#operand, x, n, cols);
        this.#arena.transposedTimes(dy, this.#operand, rows, out);
      },
    };
  }

  /** Attention's per-head products (layers.ts attention), on the calling thread. */
  sliceProducts(...args: Parameters<F32Arena['sliceProducts']>): Float32Array {
    return this.#arena.sliceProducts(...args);
  }

  dispose(): void {
    this.#held.clear();
    this.#operand = undefined;
    this.#arena.dispose();
  }
}
