// A light client's part in a secure round, for the load generators (load-generator.ts): the
// real SecAggParticipant that FederatedClient uses answers the coordinator's secagg:* requests
// over the client's own socket, and masks the client's update when the masked-input request
// comes. The update is prebuilt (it stands for training done on the contributor's machine);
// everything after training — decoding the frame, quantising, the key agreements, Shamir
// dealing, mask expansion, signing the masked commitment, the chunked upload — is the real
// client work and runs here, in the generator process.
//
// Why answers are queued: a generator holds hundreds of clients on one event loop, and a
// SecAgg+ answer is up to a few hundred milliseconds of synchronous crypto. Computed straight in
// the socket handlers, a stage's requests to every client of the process would run back to back
// in one turn of the loop, long enough to miss Socket.IO's heartbeat — the coordinator would
// (rightly) drop those clients as gone. `schedule` runs them one at a time with the loop turning
// in between.
import type { Wallet } from 'ethers';
import {
  SECAGG_EVENTS,
  SecAggParticipant,
  type LocalUpdate,
  type SecAggEvent,
} from '@commons/shared/contributor';
import {
  type ClientToServerEvents,
  packBinary,
  type RoundTask,
  type SecAggAnswer,
  type ServerToClientEvents,
} from '@commons/shared/protocol';
import type { Socket } from 'socket.io-client';

type LightSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Runs CPU-bound work one job at a time; a job ends when its promise settles. */
export type Schedule = <T>(job: () => Promise<T>) => Promise<T>;

/** What this process's clients saw of one SecAgg+ stage (Unix ms; 0: not seen). */
export interface StageSeen {
  firstRequestMs: number;
  lastAnswerMs: number;
  answered: number;
  refused: number;
}

export type StagesSeen = Partial<Record<SecAggEvent, StageSeen>>;

/** Per-process record of the stages, shared by the process's light clients. */
export class StageLog {
  readonly stages: StagesSeen = {};
  /** The neighbourhood size the setup requests announced (0 until one arrived). */
  numShares = 0;
  /** The first refusals, for the bench's log. */
  readonly refusals: string[] = [];

  request(event: SecAggEvent, at: number): void {
    const seen = (this.stages[event] ??= {
      firstRequestMs: at,
      lastAnswerMs: 0,
      answered: 0,
      refused: 0,
    });
    seen.firstRequestMs = Math.min(seen.firstRequestMs, at);
  }

  answer(event: SecAggEvent, answer: SecAggAnswer<unknown>, at: number): void {
    const seen = this.stages[event] as StageSeen;
    seen.lastAnswerMs = Math.max(seen.lastAnswerMs, at);
    if (answer.ok) seen.answered++;
    else {
      seen.refused++;
      if (this.refusals.length < 3) {
        this.refusals.push(`${event}: ${answer.error.code}: ${answer.error.message}`);
      }
    }
  }
}

interface Joined {
  participant: SecAggParticipant;
  update: Promise<LocalUpdate>;
  abort: AbortController;
  /** Set once the update was handed to the participant: resolves when it is in the sum. */
  contributed: Promise<unknown> | null;
  /** Called as the masked vector's first chunk leaves: the masking work is done. */
  masked: (() => void) | null;
  settle: { resolve: () => void; reject: (error: Error) => void };
}

export class SecureLightClient {
  readonly #socket: LightSocket;
  readonly #wallet: Wallet;
  readonly #chainId: number;
  readonly #schedule: Schedule;
  readonly #log: StageLog;
  #round: Joined | null = null;

  constructor(
    socket: LightSocket,
    wallet: Wallet,
    options: { chainId: number; schedule: Schedule; log: StageLog },
  ) {
    this.#socket = socket;
    this.#wallet = wallet;
    this.#chainId = options.chainId;
    this.#schedule = options.schedule;
    this.#log = options.log;
    for (const event of SECAGG_EVENTS) {
      socket.on(
        event,
        (request: unknown, ack: unknown) => void this.#onRequest(event, request, ack),
      );
    }
    socket.on('round:result', (result) => {
      // A round that ends before our unmask answer leaves nothing to wait for.
      const round = this.#round;
      if (round?.participant.roundId !== result.roundId) return;
      round.participant.withdraw(`the round ended (${result.outcome})`);
      this.#end(round, new Error(`round ${result.roundId} ended (${result.outcome}) first`));
    });
    socket.on('disconnect', (reason) => {
      const round = this.#round;
      if (!round) return;
      round.abort.abort(new Error(`disconnected (${reason})`));
      round.participant.withdraw(`disconnected (${reason})`);
      this.#end(round, new Error(`disconnected during round ${round.participant.roundId}`));
    });
  }

  /**
   * Joins a secure round (call before acknowledging the invitation, so that secagg:setup finds
   * the participant, as FederatedClient does). Resolves once this client answered unmask: its
   * update is in the round's sum.
   */
  join(task: RoundTask, update: Promise<LocalUpdate>): Promise<void> {
    const secureAggregation = task.secureAggregation;
    if (!secureAggregation) throw new Error(`round ${task.roundId} is not a secure round`);
    if (this.#round) {
      this.#round.participant.withdraw('a new round began');
      this.#end(this.#round, new Error('a new round began'));
    }
    update.catch(() => undefined);
    return new Promise<void>((resolve, reject) => {
      const round: Joined = {
        participant: new SecAggParticipant({
          task: { ...task, secureAggregation },
          signer: this.#wallet,
          address: this.#wallet.address,
          chainId: this.#chainId,
          sendChunk: async (index, chunk) => {
            if (index === 0) round.masked?.();
            const result = await this.#socket.emitWithAck(
              'secagg:masked-chunk',
              task.roundId,
              index,
              chunk,
            );
            if (!result.ok) throw new Error(`masked chunk ${index} refused: ${result.error.code}`);
          },
        }),
        update,
        abort: new AbortController(),
        contributed: null,
        masked: null,
        settle: { resolve, reject },
      };
      this.#round = round;
    });
  }

  async #onRequest(event: SecAggEvent, request: unknown, ack: unknown): Promise<void> {
    this.#log.request(event, Date.now());
    if (event === 'secagg:setup' && this.#log.numShares === 0) {
      // Read off the packed request's plain JSON part, for the bench's table only.
      const config = (request as { body?: { config?: { numShares?: unknown } } }).body?.config;
      if (typeof config?.numShares === 'number') this.#log.numShares = config.numShares;
    }
    const round = this.#round;
    const answer: SecAggAnswer<unknown> = !round
      ? { ok: false, error: { code: 'WRONG_ROUND', message: 'this client is in no round' } }
      : event === 'secagg:masked-input'
        ? await this.#maskedInput(round, request)
        : await this.#schedule(() => round.participant.answer(event, request));
    if (typeof ack === 'function') (ack as (packed: unknown) => void)(packBinary(answer));
    this.#log.answer(event, answer, Date.now());
    if (!round || round !== this.#round) return;
    if (!answer.ok) {
      this.#end(
        round,
        new Error(`refused ${event}: ${answer.error.code}: ${answer.error.message}`),
      );
    } else if (event === 'secagg:unmask') {
      // The participant settles the contribution once unmask is answered.
      round.contributed?.then(
        () => this.#end(round, null),
        (error: unknown) =>
          this.#end(round, error instanceof Error ? error : new Error(String(error))),
      );
    }
  }

  /**
   * The masked-input answer. Its queued job ends when masking is done (the first chunk leaves),
   * not when the upload is: uploads overlap other clients' work, as from separate machines.
   */
  async #maskedInput(round: Joined, request: unknown): Promise<SecAggAnswer<unknown>> {
    // The update may still be building, in the same queue: wait for it outside the queue.
    const update = await round.update.catch((error: unknown) => error as Error);
    if (update instanceof Error) {
      round.participant.withdraw(`no update: ${update.message}`);
      return round.participant.answer('secagg:masked-input', request);
    }
    let answering: Promise<SecAggAnswer<unknown>> = Promise.resolve({
      ok: false,
      error: { code: 'WITHDRAWN', message: 'not answered' },
    });
    await this.#schedule(
      () =>
        new Promise<void>((masked) => {
          round.masked = masked;
          // The update reaches the participant only now, so that a process never holds every
          // client's decoded vector at once; a contributor hands it over when training ends.
          round.contributed ??= round.participant.contribute(update, round.abort.signal);
          round.contributed.catch(() => undefined);
          answering = round.participant.answer('secagg:masked-input', request);
          void answering.finally(masked);
        }),
    );
    return answering;
  }

  #end(round: Joined, error: Error | null): void {
    if (this.#round !== round) return;
    this.#round = null;
    if (error) round.settle.reject(error);
    else round.settle.resolve();
  }
}
