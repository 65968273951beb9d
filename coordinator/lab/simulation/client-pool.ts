// The simulation's virtual contributors: N FederatedClients spread over a pool of W worker
// threads (default: one per CPU core), each thread with its own tfjs backend.
//
// A pool, not one thread per client: training is CPU-bound, so more threads than cores only
// time-slice the same cores, and every thread carries its own tfjs wasm backend (its own
// module instance and linear memory, tens of MB each) — 50 clients as 50 threads would cost
// ~50 wasm heaps for no extra throughput on 2 cores. Clients in one thread interleave their
// training steps on its event loop (the trainer yields between steps).
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { keccak256, toUtf8Bytes, Wallet } from 'ethers';
import type { UploadReceipt } from '@commons/shared/contributor';

export interface ClientSpec {
  index: number;
  privateKey: string;
  tokens: Int32Array;
}

export interface WorkerInput {
  coordinator: string;
  chainId: number;
  clients: ClientSpec[];
}

export type PoolMessage =
  | { type: 'started'; backend: string }
  | { type: 'login'; index: number; address: string }
  | { type: 'uploaded'; index: number; receipt: UploadReceipt }
  | { type: 'dropped'; index: number; roundId: number; reason: string }
  | { type: 'error'; index: number; message: string }
  | { type: 'closed' };

export interface PoolEvents {
  uploaded: [{ index: number; receipt: UploadReceipt }];
  dropped: [{ index: number; roundId: number; reason: string }];
  clientError: [{ index: number; message: string }];
}

export interface ClientPoolOptions {
  coordinator: string;
  chainId: number;
  /** Each client's training data, as token ids of the model's tokenizer. */
  data: readonly Int32Array[];
  /** Worker threads; default: available CPU cores, at most one per client. */
  workers?: number;
  /** Wallets are derived from this, so a run's addresses (and so its samples) repeat. */
  seed: number;
}

/** The i-th simulated contributor's key: reproducible, never a funded development key. */
export function simulatedKey(seed: number, index: number): string {
  return keccak256(toUtf8Bytes(`commons-simulation:${seed}:${index}`));
}

export class ClientPool extends EventEmitter<PoolEvents> {
  readonly addresses: string[];
  readonly workers: number;
  private readonly threads: Worker[] = [];
  private readonly signedIn = new Set<number>();
  private loginWaiters: (() => void)[] = [];

  private constructor(addresses: string[], workers: number) {
    super();
    this.addresses = addresses;
    this.workers = workers;
  }

  /** Starts the threads and their clients; resolves once every client has signed in. */
  static async start(options: ClientPoolOptions, timeoutMs = 120_000): Promise<ClientPool> {
    const n = options.data.length;
    const w = Math.max(1, Math.min(n, options.workers ?? availableParallelism()));
    const keys = options.data.map((_, i) => simulatedKey(options.seed, i));
    const pool = new ClientPool(
      keys.map((k) => new Wallet(k).address),
      w,
    );
    for (let t = 0; t < w; t++) {
      // Round-robin, so every thread gets a mix of large and small shards.
      const clients: ClientSpec[] = [];
      for (let i = t; i < n; i += w) {
        clients.push({ index: i, privateKey: keys[i]!, tokens: options.data[i]! });
      }
      const input: WorkerInput = {
        coordinator: options.coordinator,
        chainId: options.chainId,
        clients,
      };
      const thread = new Worker(new URL('./client-worker.ts', import.meta.url), {
        workerData: input,
      });
      thread.on('message', (message: PoolMessage) => pool.onMessage(message));
      thread.on('error', (error) =>
        pool.emit('clientError', { index: -1, message: error.message }),
      );
      pool.threads.push(thread);
    }
    await pool.allSignedIn(timeoutMs).catch(async (error: unknown) => {
      await pool.close();
      throw error;
    });
    return pool;
  }

  /** Closes every client (no round work continues) and ends the threads. */
  async close(): Promise<void> {
    await Promise.all(
      this.threads.map(
        (thread) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => void thread.terminate().then(() => resolve()), 10_000);
            thread.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            thread.postMessage({ type: 'close' });
          }),
      ),
    );
    this.threads.length = 0;
  }

  private allSignedIn(timeoutMs: number): Promise<void> {
    if (this.signedIn.size === this.addresses.length) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `only ${this.signedIn.size} of ${this.addresses.length} clients signed in within ${timeoutMs / 1000} s`,
            ),
          ),
        timeoutMs,
      );
      this.loginWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private onMessage(message: PoolMessage): void {
    switch (message.type) {
      case 'login':
        this.signedIn.add(message.index);
        if (this.signedIn.size === this.addresses.length) {
          for (const wake of this.loginWaiters.splice(0)) wake();
        }
        break;
      case 'uploaded':
        this.emit('uploaded', { index: message.index, receipt: message.receipt });
        break;
      case 'dropped':
        this.emit('dropped', message);
        break;
      case 'error':
        this.emit('clientError', message);
        break;
      default:
        break;
    }
  }
}
