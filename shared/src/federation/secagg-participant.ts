// A contributor's part in one secure-aggregation round: answers the coordinator's SecAgg+
// stage requests (secagg:setup, :share-keys, :masked-input, :unmask) with a SecAggClient, and
// masks the locally trained, clipped update once training has produced it. The update leaves
// this machine only inside the masked vector, which travels in acknowledged chunks (the same
// back-pressure as plain uploads) and is bound to the contributor by an EIP-712
// MaskedUpdateCommitment.
//
// Order of events: setup and share-keys arrive while the client is still training (they are
// quick: keys and Shamir shares); the masked-input request waits for the update; unmask follows.
import type { Signer } from 'ethers';
import {
  CheckpointError,
  decodeTensors,
  sha256Hex,
  type NamedTensors,
} from '../checkpoint/index.ts';
import { SecAggClient, SecAggError } from '../privacy/secagg/index.ts';
import { MaskThread } from '../privacy/secagg/mask-thread.ts';
import {
  maskedCommitmentDigest,
  signMaskedCommitment,
  type MaskedCommitment,
} from '../protocol/masked-commitment.ts';
import {
  unpackBinary,
  type MaskedInputHeader,
  type RoundTask,
  type SecAggAnswer,
  type SecAggRefusal,
  type SecureAggregationTask,
} from '../protocol/messages.ts';
import { chunksOf } from '../protocol/upload.ts';
import { addGaussianNoise } from '../privacy/dp/gaussian.ts';
import type { LocalUpdate } from './local-update.ts';

export const SECAGG_EVENTS = [
  'secagg:setup',
  'secagg:share-keys',
  'secagg:masked-input',
  'secagg:unmask',
] as const;
export type SecAggEvent = (typeof SECAGG_EVENTS)[number];

export interface SecAggParticipantOptions {
  task: RoundTask & { secureAggregation: SecureAggregationTask };
  signer: Signer;
  /** The signed-in address (the one the coordinator binds to a node id). */
  address: string;
  chainId: number;
  /** Sends one chunk of the masked vector and resolves on its acknowledgement. */
  sendChunk: (index: number, chunk: Uint8Array) => Promise<void>;
  onProgress?: (done: number, total: number) => void;
  /** Stochastic-rounding source (tests may fix it). */
  random?: () => number;
  /**
   * Return the masked plain vector in the receipt (for inspection and tests). Off by default:
   * a copy of the private update then does not outlive the masking, and its memory is reused.
   */
  keepUpdate?: boolean;
}

/** What this contributor put into a secure round's sum. */
export interface MaskedReceipt {
  roundId: number;
  baseModel: string;
  nodeId: number;
  /** EIP-712 digest of the MaskedUpdateCommitment: this contributor's leaf on chain. */
  commitment: string;
  /** sha256 and size of the masked vector sent (what the commitment binds). */
  maskedSha256: string;
  maskedBytes: number;
  /** The weight masked alongside the update: min(examples, task maxWeight). */
  weight: number;
  numExamples: number;
  /** L2 norm of the clipped update, and of the delta before clipping. */
  norm: number;
  rawNorm: number;
  steps: number;
  plannedSteps: number;
  finalLoss: number;
  stoppedEarly: boolean;
  /**
   * The vector that was masked (flat, checkpoint order): the clipped update plus this client's
   * noise share (none when the policy sets no noise), only with `keepUpdate`. The
   * contributor's own data; it never left the machine unmasked.
   */
  update?: Float32Array;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A rejection nobody awaits yet must not crash the process.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Raised when this side gives up (training failed, the client closed): answered as WITHDRAWN. */
class Withdrawn extends Error {}

export class SecAggParticipant {
  readonly roundId: number;
  readonly #options: SecAggParticipantOptions;
  readonly #client: SecAggClient;
  #update = deferred<{ vector: Float32Array; weight: number; local: LocalUpdate }>();
  #unmasked = deferred<void>();
  #receipt: Omit<MaskedReceipt, 'update'> | null = null;
  #failure: SecAggRefusal | null = null;

  constructor(options: SecAggParticipantOptions) {
    this.#options = options;
    this.roundId = options.task.roundId;
    this.#client = new SecAggClient({
      signer: options.signer,
      ...(options.random ? { random: options.random } : {}),
    });
  }

  /** Why this participant stopped, once a stage was refused or it withdrew. */
  get failure(): SecAggRefusal | null {
    return this.#failure;
  }

  /**
   * Answers one stage request. Never throws: a refusal is the answer ({ ok: false }), and it
   * ends this client's part in the round (SecAggClient does not go back a stage).
   */
  async answer(event: SecAggEvent, raw: unknown): Promise<SecAggAnswer<unknown>> {
    if (this.#failure) return { ok: false, error: this.#failure };
    try {
      let request: unknown;
      try {
        request = unpackBinary(raw);
      } catch (err) {
        throw new SecAggError('MALFORMED_MESSAGE', `${event}: ${(err as Error).message}`);
      }
      const roundId = (request as { roundId?: unknown } | null)?.roundId;
      if (roundId !== this.roundId) {
        throw new SecAggError(
          'WRONG_ROUND',
          `a ${event} request for round ${String(roundId)} reached a client in round ${this.roundId}`,
        );
      }
      switch (event) {
        case 'secagg:setup': {
          const { vectorLength } = this.#options.task.secureAggregation;
          const asked = (request as { vectorLength?: unknown }).vectorLength;
          if (asked !== vectorLength) {
            throw new SecAggError(
              'BAD_INPUT',
              `setup asks for ${String(asked)} coordinates; the round's task said ${vectorLength}`,
            );
          }
          return { ok: true, reply: await this.#client.onSetup(request) };
        }
        case 'secagg:share-keys':
          return { ok: true, reply: this.#client.onShareKeys(request) };
        case 'secagg:masked-input':
          return { ok: true, reply: await this.#maskedInput(request) };
        case 'secagg:unmask': {
          const reply = this.#client.onUnmask(request);
          this.#unmasked.resolve();
          return { ok: true, reply };
        }
      }
    } catch (err) {
      const error: SecAggRefusal =
        err instanceof Withdrawn
          ? { code: 'WITHDRAWN', message: err.message.slice(0, 1000) }
          : err instanceof SecAggError
            ? { code: err.code, message: err.message.slice(0, 1000) }
            : {
                code: 'BAD_INPUT',
                message: (err instanceof Error ? err.message : String(err)).slice(0, 1000),
              };
      this.#failure = error;
      this.#update.reject(new Withdrawn(error.message));
      this.#unmasked.reject(
        new SecAggError(error.code === 'WITHDRAWN' ? 'BAD_INPUT' : error.code, error.message),
      );
      return { ok: false, error };
    }
  }

  /**
   * Hands over the trained update and resolves once this client has answered unmask (its
   * contribution is in the sum). Rejects when a stage was refused, on `signal`, or when the
   * round ends first.
   */
  async contribute(local: LocalUpdate, signal: AbortSignal): Promise<MaskedReceipt> {
    const { vectorLength, maxWeight, noiseStddev } = this.#options.task.secureAggregation;
    const vector = flatUpdate(
      local.frame,
      this.#options.keepUpdate ? new Float32Array(vectorLength) : spareFloats.take(vectorLength),
    );
    // With DP noise the mean is DP-FedAvg's equal-weight one (sensitivity C / n): weight maxWeight.
    const weight = noiseStddev > 0 ? maxWeight : Math.min(local.numExamples, maxWeight);
    // Our share of the round's noise, from a CSPRNG, before the update is masked.
    addGaussianNoise(vector, noiseStddev);
    this.#update.resolve({ vector, weight, local });
    await new Promise<void>((resolve, reject) => {
      const onAbort = () =>
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unmasked.promise.then(
        () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
    const receipt = this.#receipt as Omit<MaskedReceipt, 'update'>;
    return this.#options.keepUpdate ? { ...receipt, update: vector } : receipt;
  }

  /** This client gives up (training failed, the round ended, the client closed). */
  withdraw(reason: string): void {
    if (this.#failure) return;
    this.#failure = { code: 'WITHDRAWN', message: reason.slice(0, 1000) };
    this.#update.reject(new Withdrawn(reason));
    this.#unmasked.reject(new Error(reason));
  }

  /** Masks on this thread: the vector is the ring words' bytes. */
  #maskHere(request: unknown, vector: Float32Array, weight: number) {
    const words = spareRings.take(vector.length + 1);
    const masked = this.#client.onMaskedInputRequest(request, vector, weight, words);
    return { ...masked, words };
  }

  async #maskedInput(request: unknown): Promise<MaskedInputHeader> {
    const { vector, weight, local } = await this.#update.promise;
    // The masks fold on the mask thread where there is one (mask-thread.ts), else here.
    const thread = MaskThread.shared();
    const masked = thread?.alive
      ? await this.#client.onMaskedInputRequestAsync(
          request,
          vector,
          weight,
          (acc, masks, modulusRange) => thread.fold(acc, masks, modulusRange),
          spareRings.take(vector.length + 1),
        )
      : this.#maskHere(request, vector, weight);
    const ring = masked.words;
    // Quantised into the ring: the plain vector is needed no more, unless the receipt keeps it.
    if (!this.#options.keepUpdate) spareFloats.giveBack(vector);
    const bytes = masked.vector;
    const { task } = this.#options;
    const { chunkBytes } = task.secureAggregation;
    const commitment: MaskedCommitment = {
      roundId: task.roundId,
      baseModel: task.baseModel.hash,
      contributor: this.#options.address,
      maskedSha256: sha256Hex(bytes),
      byteLength: bytes.byteLength,
    };
    const signature = await signMaskedCommitment(
      commitment,
      this.#options.signer,
      this.#options.chainId,
    );
    let sent = 0;
    let index = 0;
    this.#options.onProgress?.(0, bytes.byteLength);
    for (const chunk of chunksOf(bytes, chunkBytes)) {
      await this.#options.sendChunk(index++, chunk);
      sent += chunk.byteLength;
      this.#options.onProgress?.(sent, bytes.byteLength);
    }
    // Every chunk was acknowledged, so none is still queued in the transport: reusable. (After
    // a failure it is left to the collector: a queued chunk may still point into it.)
    spareRings.giveBack(ring);
    this.#receipt = {
      roundId: task.roundId,
      baseModel: task.baseModel.hash,
      nodeId: masked.nodeId,
      commitment: maskedCommitmentDigest(commitment, this.#options.chainId),
      maskedSha256: commitment.maskedSha256,
      maskedBytes: bytes.byteLength,
      weight,
      numExamples: local.numExamples,
      norm: local.norm,
      rawNorm: local.rawNorm,
      steps: local.steps,
      plannedSteps: local.plannedSteps,
      finalLoss: local.finalLoss,
      stoppedEarly: local.stoppedEarly,
    };
    return {
      version: masked.version,
      stage: masked.stage,
      roundId: masked.roundId,
      nodeId: masked.nodeId,
      rejectedShares: masked.rejectedShares,
      byteLength: bytes.byteLength,
      sha256: commitment.maskedSha256,
      signature,
    };
  }
}

// The flat update and its masked ring vector (4 bytes a coordinate each) live only until the
// vector is masked and its chunks acknowledged. A process that masks again (the next round, or
// a bench's hundreds of light clients) reuses them: a fresh 4 MB array costs 1,024 page faults,
// measured at 30–55 ms on a busy 2-core machine, several times the copy itself.
class SpareVectors<V extends Float32Array | Uint32Array> {
  readonly #spare: V[] = [];
  readonly #make: (length: number) => V;

  constructor(make: (length: number) => V) {
    this.#make = make;
  }

  /** A vector of `length` elements, its contents whatever it last held. */
  take(length: number): V {
    const at = this.#spare.findIndex((v) => v.length === length);
    return at >= 0 ? (this.#spare.splice(at, 1)[0] as V) : this.#make(length);
  }

  giveBack(vector: V): void {
    if (this.#spare.length < 4) this.#spare.push(vector);
  }
}

const spareFloats = new SpareVectors<Float32Array>((n) => new Float32Array(n));
const spareRings = new SpareVectors<Uint32Array>((n) => new Uint32Array(n));

/** The update frame's tensors end to end, in the frame's (checkpoint) order. */
function flatUpdate(frame: Uint8Array, out: Float32Array): Float32Array {
  const vectorLength = out.length;
  const mismatch = (total: number) =>
    new SecAggError(
      'BAD_INPUT',
      `the update has ${total} coordinates; the round aggregates ${vectorLength} (the base model's layout differs)`,
    );
  let tensors: NamedTensors;
  try {
    tensors = decodeTensors(frame, out);
  } catch (err) {
    // Too many values for the round's vector: count them to say by how much.
    if (!(err instanceof CheckpointError) || err.code !== 'MALFORMED_FRAME') throw err;
    const total = [...decodeTensors(frame).values()].reduce((n, t) => n + t.data.length, 0);
    if (total !== vectorLength) throw mismatch(total);
    throw err;
  }
  const total = [...tensors.values()].reduce((n, t) => n + t.data.length, 0);
  if (total !== vectorLength) throw mismatch(total);
  return out;
}
