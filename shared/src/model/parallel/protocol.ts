import type { BackendName } from '../../backend/select.ts';
import type { ModelConfig } from '../config.ts';
import type { AdamWConfig } from '../optimizer.ts';

/**
 * Every message between the parallel trainer (main thread) and its workers, typed in one
 * place so the two sides cannot drift apart. Each request gets exactly one reply.
 *
 * Shared memory, set up once by `init`:
 * - `grads`: one flat Float32 region per worker (layout order, `layout.ts`); worker r writes
 *   only region r, then every worker reads all of them.
 * - `control`: Int32 words — [ARRIVED] counts gradient regions written (a barrier that only
 *   grows: step s is complete at s·workers), [ABORT] is set to 1 by whoever fails, so no
 *   worker waits forever for a peer that will never arrive.
 * - `state`: worker 0's weights, then Adam m, then Adam v (3 × total floats). Worker 0
 *   optimises in place there, so the main thread reads weights and moments between steps
 *   without a message; the other workers keep private copies, kept identical by maths.
 */
export const ARRIVED = 0;
export const ABORT = 1;
export const CONTROL_WORDS = 2;

export interface InitRequest {
  type: 'init';
  rank: number;
  workers: number;
  backend: BackendName;
  config: ModelConfig;
  adamw: AdamWConfig;
  /** Global-norm clip; 0 disables. */
  gradClip: number;
  /** Flat initial weights (layout order), identical for every worker. */
  weights: Float32Array;
  grads: SharedArrayBuffer;
  control: SharedArrayBuffer;
  state: SharedArrayBuffer;
}

/** One slice of a micro-batch: this worker's rows, and the weight of their mean loss. */
export interface MicroShare {
  ids: Int32Array;
  targets: Int32Array;
  /** Rows (sequences) in this share; 0 when the batch has fewer rows than workers. */
  B: number;
  T: number;
  /** rows / (batchSize · gradAccum): the share's part of the step's mean loss. */
  weight: number;
  dropoutSeed: number;
}

export interface StepRequest {
  type: 'step';
  lr: number;
  micro: MicroShare[];
}

/** Overwrite weights, moments and the optimiser step (restore from a snapshot). */
export interface SetStateRequest {
  type: 'setState';
  weights: Float32Array;
  m: Float32Array;
  v: Float32Array;
  optimizerStep: number;
}

/** A copy of this worker's weights (to check that the replicas agree). */
export interface GetWeightsRequest {
  type: 'getWeights';
}

export type WorkerRequest = InitRequest | StepRequest | SetStateRequest | GetWeightsRequest;

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'stepped'; loss: number; gradNorm: number }
  | { type: 'stateSet' }
  | { type: 'weights'; weights: Float32Array }
  /** `peer`: this worker stopped because another one failed (not the root cause). */
  | { type: 'error'; message: string; peer: boolean };
