import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BackendName } from '../../backend/select.ts';
import type { TokenSplit } from '../dataset.ts';
import { sampleBatch } from '../dataset.ts';
import { evaluate } from '../evaluate.ts';
import { Rng } from '../rng.ts';
import type { TrainerSnapshot } from '../trainer.ts';
import type { LoopHost, RunOptions, TrainConfig, TrainResult } from '../training-loop.ts';
import { runTrainingLoop } from '../training-loop.ts';
import { DEFAULT_TRAIN } from '../trainer.ts';
import type { Transformer } from '../transformer.ts';
import type { FlatLayout } from './layout.ts';
import { flatLayout, packTensors, unpackTensors } from './layout.ts';
import type { MicroShare, WorkerReply, WorkerRequest } from './protocol.ts';
import { ABORT, ARRIVED, CONTROL_WORDS } from './protocol.ts';

/**
 * Data-parallel training over worker threads, with the same shape as `Trainer`: the main
 * thread samples each optimiser step's batch exactly as `Trainer` does (same RNG, same
 * order) and hands each worker a contiguous share of the rows; the workers compute
 * gradients on their own tfjs backends, meet at a shared-memory barrier, and each applies
 * the identical averaged, clipped AdamW update (see `worker.ts`). Weights therefore stay
 * identical across workers and nothing but token ids crosses threads per step.
 *
 * The workers own the weights while training: `model` is brought up to date at the end of
 * every `run`, before each validation, and by `syncModel()`. Snapshots have `Trainer`'s
 * format, so a run can resume on either trainer. Full-model training only (LoRA adapters
 * are small enough to train on one thread with `Trainer`).
 */
export interface ParallelOptions {
  /** Worker threads; default: the machine's available parallelism, at most 8 and at most batchSize. */
  workers?: number;
  /** The tfjs backend each worker starts (default wasm: single-threaded, so one per core pays). */
  backend?: BackendName;
}

export const MAX_DEFAULT_WORKERS = 8;

interface Pending {
  resolve: (reply: WorkerReply) => void;
}

interface Micro {
  ids: Int32Array;
  targets: Int32Array;
  dropoutSeed: number;
}

export class ParallelTrainer {
  readonly config: TrainConfig;
  readonly workers: number;
  readonly backend: BackendName;
  private readonly model: Transformer;
  private readonly layout: FlatLayout;
  private readonly grads: SharedArrayBuffer;
  private readonly control: Int32Array;
  /** Worker 0's weights, Adam m and Adam v, laid out flat (see protocol.ts). */
  private readonly state: SharedArrayBuffer;
  private threads: Worker[] = [];
  /** Per worker, the replies awaited in request order. */
  private pending: Pending[][] = [];
  private started: Promise<void> | null = null;
  /** Set once a worker failed or the trainer was disposed; every later call rejects with it. */
  private broken: Error | null = null;
  /** Moments from `restore`, sent to the workers when the next `run` starts. */
  private restored: { m: Float32Array; v: Float32Array; optimizerStep: number } | null = null;
  private running = false;
  private rng: Rng;
  private step = 0;
  private optimizerStep = 0;

  constructor(
    model: Transformer,
    config: Partial<TrainConfig> = {},
    options: ParallelOptions = {},
  ) {
    if (model.adapter)
      throw new Error('ParallelTrainer trains full models; use Trainer for a LoRA adapter');
    this.config = { ...DEFAULT_TRAIN, ...config };
    const wanted = options.workers ?? Math.min(availableParallelism(), MAX_DEFAULT_WORKERS);
    if (!Number.isInteger(wanted) || wanted < 1)
      throw new Error(`workers must be an integer ≥ 1, got ${wanted}`);
    this.workers = Math.min(wanted, this.config.batchSize);
    this.backend = options.backend ?? 'wasm';
    this.model = model;
    this.layout = flatLayout(new Map([...model.params].map(([n, v]) => [n, v.shape])));
    const bytes = this.layout.total * 4;
    this.grads = new SharedArrayBuffer(this.workers * bytes);
    this.control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    this.state = new SharedArrayBuffer(3 * bytes);
    this.rng = new Rng(this.config.seed);
  }

  get completedSteps(): number {
    return this.step;
  }

  /**
   * Run until `config.steps` optimiser steps are done (counting restored ones), `signal`
   * aborts, or an error; a worker's error rejects with its message and ends every worker.
   */
  async run(train: TokenSplit, options: RunOptions = {}): Promise<TrainResult> {
    if (this.running) throw new Error('ParallelTrainer.run is already running');
    this.running = true;
    try {
      await this.start();
      return await this.loop(train, options);
    } catch (err) {
      await this.fail(err instanceof Error ? err : new Error(String(err)));
      throw err;
    } finally {
      this.running = false;
    }
  }

  private async loop(train: TokenSplit, options: RunOptions): Promise<TrainResult> {
    const result = await runTrainingLoop(
      {
        config: this.config,
        blockSize: this.model.config.blockSize,
        completed: () => this.step,
        step: (split, lr) => this.optimiserStep(split, lr),
        evaluate: (val) => {
          this.syncModel();
          return evaluate(this.model, val);
        },
      } satisfies LoopHost,
      train,
      options,
    );
    this.syncModel();
    return result;
  }

  private async optimiserStep(
    train: TokenSplit,
    lr: number,
  ): Promise<{ loss: number; gradNorm: number }> {
    const micro = this.sample(train.tokens);
    const replies = await this.request((rank) => ({
      type: 'step',
      lr,
      micro: this.share(micro, rank),
    }));
    const stepped = replies.map((r) => r as Extract<WorkerReply, { type: 'stepped' }>);
    this.step += 1;
    this.optimizerStep += 1;
    return { loss: stepped.reduce((a, r) => a + r.loss, 0), gradNorm: stepped[0]!.gradNorm };
  }

  /** The step's micro-batches, sampled exactly as `Trainer` samples them. */
  private sample(tokens: Int32Array): Micro[] {
    const T = this.model.config.blockSize;
    const micro: Micro[] = [];
    for (let i = 0; i < this.config.gradAccum; i++) {
      const { batch, targets } = sampleBatch(tokens, this.config.batchSize, T, this.rng);
      micro.push({ ids: batch.ids, targets, dropoutSeed: this.rng.nextU32() });
    }
    return micro;
  }

  /** Worker `rank`'s contiguous rows [rank·B/W, (rank+1)·B/W) of every micro-batch. */
  private share(micro: Micro[], rank: number): MicroShare[] {
    const { batchSize: B, gradAccum } = this.config;
    const T = this.model.config.blockSize;
    const from = Math.floor((rank * B) / this.workers);
    const to = Math.floor(((rank + 1) * B) / this.workers);
    return micro.map((m) => ({
      ids: m.ids.slice(from * T, to * T),
      targets: m.targets.slice(from * T, to * T),
      B: to - from,
      T,
      weight: (to - from) / (B * gradAccum),
      dropoutSeed: m.dropoutSeed,
    }));
  }

  /** Bring `model` up to date with the workers' weights (between steps only). */
  syncModel(): void {
    if (!this.started) return; // the workers have no weights yet
    const weights = new Float32Array(this.state, 0, this.layout.total);
    this.model.assign(unpackTensors(this.layout, weights));
  }

  /**
   * Every worker's own copy of the weights, flat in checkpoint order: they are identical
   * after every step (the tests check it), since each applies the same update.
   */
  async replicaWeights(): Promise<Float32Array[]> {
    await this.start();
    const replies = await this.request(() => ({ type: 'getWeights' }));
    return replies.map((r) => (r as Extract<WorkerReply, { type: 'weights' }>).weights);
  }

  /** Everything to continue exactly here, in `Trainer`'s format (between runs only). */
  snapshot(): TrainerSnapshot {
    const n = this.layout.total;
    const m = this.restored?.m ?? new Float32Array(this.state, n * 4, n);
    const v = this.restored?.v ?? new Float32Array(this.state, 2 * n * 4, n);
    return {
      step: this.step,
      rngState: this.rng.state,
      optimizerStep: this.optimizerStep,
      optimizer: new Map([
        ...unpackTensors(this.layout, m, 'm.'),
        ...unpackTensors(this.layout, v, 'v.'),
      ]),
    };
  }

  /**
   * Continue from a snapshot (of this trainer or a `Trainer`) taken on a model with the
   * same parameters; the model's current weights are the ones the workers continue from.
   */
  restore(s: TrainerSnapshot): void {
    const m = new Float32Array(this.layout.total);
    const v = new Float32Array(this.layout.total);
    const prefixed = (prefix: string) =>
      new Map(this.layout.slots.map((slot) => [slot.name, s.optimizer.get(prefix + slot.name)!]));
    for (const slot of this.layout.slots) {
      for (const prefix of ['m.', 'v.']) {
        if (s.optimizer.get(prefix + slot.name)?.data.length !== slot.size) {
          throw new Error(`optimizer state is missing or misshapen for "${prefix}${slot.name}"`);
        }
      }
    }
    packTensors(this.layout, prefixed('m.'), m);
    packTensors(this.layout, prefixed('v.'), v);
    this.restored = { m, v, optimizerStep: s.optimizerStep };
    this.rng = Rng.fromState(s.rngState);
    this.step = s.step;
    this.optimizerStep = s.optimizerStep;
  }

  /** Ends every worker; the trainer cannot run again. */
  async dispose(): Promise<void> {
    this.broken ??= new Error('ParallelTrainer was disposed');
    await this.terminate();
  }

  private async start(): Promise<void> {
    if (this.broken) throw this.broken;
    this.started ??= this.spawn();
    await this.started;
    if (this.restored) {
      const { m, v, optimizerStep } = this.restored;
      const weights = packTensors(this.layout, this.model.toTensors());
      this.restored = null;
      await this.request(() => ({ type: 'setState', weights, m, v, optimizerStep }));
    }
  }

  private async spawn(): Promise<void> {
    const weights = packTensors(this.layout, this.model.toTensors());
    const adamw = {
      beta1: this.config.beta1,
      beta2: this.config.beta2,
      eps: 1e-8,
      weightDecay: this.config.weightDecay,
    };
    for (let rank = 0; rank < this.workers; rank++) {
      const t = new Worker(new URL('./worker.ts', import.meta.url));
      this.pending.push([]);
      t.on('message', (reply: WorkerReply) => this.pending[rank]!.shift()?.resolve(reply));
      // A worker that dies without replying (crash, out of memory) answers what it owed.
      const died = (message: string) => {
        Atomics.store(this.control, ABORT, 1);
        Atomics.notify(this.control, ARRIVED);
        for (const p of this.pending[rank]!.splice(0))
          p.resolve({ type: 'error', message, peer: false });
      };
      t.on('error', (err) => died(`training worker ${rank} crashed: ${err.message}`));
      t.on('exit', (code) => died(`training worker ${rank} exited (code ${code})`));
      this.threads.push(t);
    }
    await this.request((rank) => ({
      type: 'init',
      rank,
      workers: this.workers,
      backend: this.backend,
      config: this.model.config,
      adamw,
      gradClip: this.config.gradClip,
      weights,
      grads: this.grads,
      control: this.control.buffer as SharedArrayBuffer,
      state: this.state,
    }));
  }

  /**
   * Send one request to every worker and wait for all replies. Rejects with the root cause
   * when any worker failed (a peer that only stopped because of it is not the cause).
   */
  private async request(make: (rank: number) => WorkerRequest): Promise<WorkerReply[]> {
    if (this.broken) throw this.broken;
    const threads = this.threads;
    // Threads keep the process alive only while a reply is awaited: an idle trainer that
    // was never disposed must not stop the process from exiting.
    for (const t of threads) t.ref();
    let replies: WorkerReply[];
    try {
      replies = await Promise.all(
        threads.map(
          (t, rank) =>
            new Promise<WorkerReply>((resolve) => {
              this.pending[rank]!.push({ resolve });
              t.postMessage(make(rank));
            }),
        ),
      );
    } finally {
      for (const t of threads) t.unref();
    }
    const errors = replies.filter((r) => r.type === 'error');
    if (errors.length > 0) {
      const cause = errors.find((e) => !e.peer) ?? errors[0]!;
      const err = new Error(cause.message);
      await this.fail(err);
      throw err;
    }
    return replies;
  }

  private async fail(err: Error): Promise<void> {
    this.broken ??= err;
    await this.terminate();
  }

  private async terminate(): Promise<void> {
    const threads = this.threads;
    this.threads = [];
    // Wake any worker waiting at the barrier, and answer whatever is still awaited.
    Atomics.store(this.control, ABORT, 1);
    Atomics.notify(this.control, ARRIVED);
    for (const t of threads) t.removeAllListeners('exit');
    for (const queue of this.pending) {
      for (const p of queue.splice(0)) {
        p.resolve({
          type: 'error',
          message: this.broken?.message ?? 'training stopped',
          peer: false,
        });
      }
    }
    await Promise.all(threads.map((t) => t.terminate()));
  }
}
