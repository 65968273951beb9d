import { Worker } from 'node:worker_threads';

/**
 * A helper thread for the weight kernels (kernel-arena.ts: int8 and float32): decoding is a
 * chain of matrix–vector products too small for tfjs to split, so each product's rows are
 * halved between this thread and a worker running the same WebAssembly module on the arena's
 * shared memory; a prompt's products are split the same way. Each row is
 * computed the same way whichever thread takes it, so the result is bit-identical to one
 * thread's. Jobs pass through a control block of Int32 words (no messages, no copies).
 */

/** The control block's words: ARGS holds which of KERNEL_EXPORTS to run, then its
 * arguments (matmul takes 9, matmulT 11; a wasm export ignores extra ones). */
export const CONTROL = { SEQ: 0, DONE: 1, STOP: 2, ARGS: 3, WORDS: 16 } as const;
/** The kernel modules' exports a helper may run, by index; a module lacking one never asks. */
export const KERNEL_EXPORTS = ['matmul', 'matmulT'] as const;
export type KernelExport = (typeof KERNEL_EXPORTS)[number];
/** ~0.6 ms of polling before the worker sleeps on the futex: long enough to span the
 * attention between two of a decoded token's products (at 20,000 polls, ~100 µs, the product
 * after each layer's attention waited ~50 µs for the worker to wake, 1.5 ms a token at
 * SmolLM2-135M's shape; the attention now takes ~60 µs a layer), short enough not to take a
 * core from other work for long: at ~3 ms, test files running beside the engine's were
 * starved enough for a coordinator's leader lease to lapse mid-round. */
export const SPIN_BEFORE_SLEEP = 100_000;
/** A helper that has not answered in this long is taken for dead (crashed, out of memory). */
const HELPER_TIMEOUT_MS = 5_000;

export interface HelperInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
}

export class KernelHelper {
  readonly #worker: Worker;
  readonly #ctrl: Int32Array;
  #seq = 0;
  #dead: string | null = null;

  constructor(module: WebAssembly.Module, memory: WebAssembly.Memory) {
    const control = new SharedArrayBuffer(CONTROL.WORDS * 4);
    this.#ctrl = new Int32Array(control);
    this.#worker = new Worker(new URL('./kernel-worker.ts', import.meta.url));
    this.#worker.unref();
    this.#worker.on('error', (error) => (this.#dead = error.message));
    this.#worker.on('exit', (code) => (this.#dead ??= `exited with code ${code}`));
    this.#worker.postMessage({ module, memory, control } satisfies HelperInit);
  }

  /** Whether the helper can take jobs (false once it has died or been stopped). */
  get alive(): boolean {
    return this.#dead === null;
  }

  /** Starts the export `name` with `args` on the helper; `wait` before reading its rows. */
  start(name: KernelExport, args: readonly number[]): void {
    this.#ctrl[CONTROL.ARGS] = KERNEL_EXPORTS.indexOf(name);
    this.#ctrl.set(args, CONTROL.ARGS + 1);
    this.#seq = (this.#seq + 1) | 0 || 1;
    Atomics.store(this.#ctrl, CONTROL.SEQ, this.#seq);
    Atomics.notify(this.#ctrl, CONTROL.SEQ);
  }

  /** Waits for the job started last; false if the helper died instead (its rows not done). */
  wait(): boolean {
    const deadline = Date.now() + HELPER_TIMEOUT_MS;
    let spins = 0;
    while (Atomics.load(this.#ctrl, CONTROL.DONE) !== this.#seq) {
      if (this.#dead !== null || Date.now() > deadline) {
        this.#dead ??= `no answer in ${HELPER_TIMEOUT_MS} ms`;
        this.stop();
        return false;
      }
      if (++spins > 1_000)
        Atomics.wait(this.#ctrl, CONTROL.DONE, Atomics.load(this.#ctrl, CONTROL.DONE), 1);
    }
    return true;
  }

  stop(): void {
    Atomics.store(this.#ctrl, CONTROL.STOP, 1);
    Atomics.add(this.#ctrl, CONTROL.SEQ, 1);
    Atomics.notify(this.#ctrl, CONTROL.SEQ);
    void this.#worker.terminate();
    this.#dead ??= 'stopped';
  }
}
