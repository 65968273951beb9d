// Masking on a thread of its own. A client's masked input is 36 or so ChaCha20 masks of the
// whole vector (4 MB each at 1M parameters). On the calling thread the WebAssembly kernel
// (chacha-kernel.ts) takes 3.1 ms per mask and blocks the event loop for all of them (≈ 0.1 s,
// Socket.IO heartbeats included). On this thread, OpenSSL's ChaCha20 makes the keystream: it
// is faster per byte, and the garbage collections its per-chunk buffers trigger scan only this
// thread's small heap (on a large one they made it twice as slow as the kernel). Measured with
// 36 masks of 1M words beside a 2M-object main heap: 2.2–2.4 ms per mask here, 3.3 ms on the
// main thread. The vector travels by transfer, not by copy.
import { Worker } from 'node:worker_threads';
import { addMasksInto, hasOpensslChaCha, type MaskFold, type SignedMask } from './prg.ts';

/** A job for the thread: fold `masks` into `acc` (transferred) modulo `modulusRange`. */
export interface MaskJob {
  id: number;
  acc: Uint32Array;
  masks: readonly SignedMask[];
  modulusRange: number;
}

/** The thread's answer: the folded vector (transferred back), or why it failed. */
export type MaskResult = { id: number; acc: Uint32Array } | { id: number; error: string };

interface Pending {
  resolve: (acc: Uint32Array) => void;
  reject: (error: Error) => void;
}

export class MaskThread {
  static #shared: MaskThread | null | undefined;
  static readonly #pool: MaskThread[] = [];
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #dead: string | null = null;

  private constructor() {
    this.#worker = new Worker(new URL('./mask-thread-worker.ts', import.meta.url));
    // Idle, the thread does not keep the process alive; with a job in flight it does.
    this.#worker.unref();
    this.#worker.on('message', (result: MaskResult) => this.#settle(result));
    this.#worker.on('error', (error) => this.#die(error.message));
    this.#worker.on('exit', (code) => this.#die(`exited with code ${code}`));
  }

  /**
   * This process's mask thread, started on first use; null where it would be no faster than
   * the calling thread's kernel (node:crypto without ChaCha20, as in Electron's BoringSSL).
   */
  static shared(): MaskThread | null {
    if (MaskThread.#shared === undefined) MaskThread.#shared = MaskThread.start();
    return MaskThread.#shared;
  }

  /**
   * Up to `size` mask threads for one large fold split across cores (a server removing a
   * round's masks: {@link parallelFold}), started on first use and kept; empty where
   * {@link shared} is null.
   */
  static pool(size: number): MaskThread[] {
    const first = MaskThread.shared();
    if (!first) return [];
    while (MaskThread.#pool.length < size - 1) {
      MaskThread.#pool.push(MaskThread.start() as MaskThread);
    }
    return [first, ...MaskThread.#pool.slice(0, size - 1)].filter((t) => t.alive);
  }

  /** A mask thread of the caller's own (stop it when done), or null as for {@link shared}. */
  static start(): MaskThread | null {
    return hasOpensslChaCha ? new MaskThread() : null;
  }

  /** Whether jobs go to the thread (false once it has died or been stopped). */
  get alive(): boolean {
    return this.#dead === null;
  }

  /**
   * acc + Σ sign · PRG(seed) (mod modulusRange), computed on the thread. Resolves with the
   * vector: a new view of acc's memory when acc owned its whole buffer (acc itself is then
   * detached), else acc, refilled. Once the thread is dead, masks fold here, synchronously.
   */
  fold(acc: Uint32Array, masks: readonly SignedMask[], modulusRange: number): Promise<Uint32Array> {
    if (this.#dead !== null) {
      addMasksInto(acc, masks, modulusRange);
      return Promise.resolve(acc);
    }
    const owned =
      acc.buffer instanceof ArrayBuffer &&
      acc.byteOffset === 0 &&
      acc.byteLength === acc.buffer.byteLength;
    const sent = owned ? acc : acc.slice();
    const id = this.#next++;
    const done = new Promise<Uint32Array>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    if (this.#pending.size === 1) this.#worker.ref();
    this.#worker.postMessage({ id, acc: sent, masks, modulusRange } satisfies MaskJob, [
      sent.buffer as ArrayBuffer,
    ]);
    return owned
      ? done
      : done.then((back) => {
          acc.set(back);
          return acc;
        });
  }

  /** Stops the thread; later folds run on the calling thread. */
  async stop(): Promise<void> {
    this.#die('stopped');
    await this.#worker.terminate();
  }

  #settle(result: MaskResult): void {
    const pending = this.#pending.get(result.id);
    if (!pending) return;
    this.#pending.delete(result.id);
    if (this.#pending.size === 0) this.#worker.unref();
    if ('error' in result) pending.reject(new Error(`masking failed: ${result.error}`));
    else pending.resolve(result.acc);
  }

  /** The thread is gone: jobs in flight took their vectors with them, so they fail. */
  #die(reason: string): void {
    this.#dead ??= reason;
    for (const { reject } of this.#pending.values()) {
      reject(new Error(`the mask thread ${reason} while masking; this masked input is lost`));
    }
    this.#pending.clear();
  }
}

/**
 * A {@link MaskFold} that splits the masks across `threads`: the first folds its share into
 * the vector itself, each other into a zero vector of its own, and the partial vectors are
 * added here. For a server removing a 1,000-client round's masks (1,000 self masks and more),
 * the cores are otherwise idle while every client waits for the result.
 */
export function parallelFold(threads: readonly MaskThread[]): MaskFold {
  return async (acc, masks, modulusRange) => {
    const parts = Math.min(threads.length, masks.length);
    if (parts <= 1) {
      if (threads[0]) return threads[0].fold(acc, masks, modulusRange);
      addMasksInto(acc, masks, modulusRange);
      return acc;
    }
    const share = (i: number) =>
      masks.slice(
        Math.floor((i * masks.length) / parts),
        Math.floor(((i + 1) * masks.length) / parts),
      );
    // Zero vectors first: handing acc to the first thread detaches it (its length reads 0).
    const zeros = Array.from({ length: parts - 1 }, () => new Uint32Array(acc.length));
    const [sum, ...partials] = await Promise.all(
      threads
        .slice(0, parts)
        .map((thread, i) =>
          thread.fold(i === 0 ? acc : (zeros[i - 1] as Uint32Array), share(i), modulusRange),
        ),
    );
    const total = sum as Uint32Array;
    const m = modulusRange - 1;
    for (const partial of partials) {
      for (let k = 0; k < total.length; k++) {
        total[k] = ((total[k] as number) + (partial[k] as number)) & m;
      }
    }
    return total;
  };
}
