import type { Signer } from 'ethers';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { z } from 'zod';
import type { CommonsClient } from '@commons/chain';
import type { UpdateEncoding } from '../checkpoint/index.ts';
import { commitmentDigest } from '../protocol/commitment.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../protocol/events.ts';
import {
  challengeSchema,
  describeIssue,
  PROTOCOL_VERSION,
  rejectionSchema,
  roundResultSchema,
  roundStatusSchema,
  roundTaskSchema,
  uploadIdSchema,
  type Ack,
  type Challenge,
  type InviteReply,
  type Progress,
  type RoundResult,
  type RoundStatus,
  type RoundTask,
  type UploadAccepted,
} from '../protocol/messages.ts';
import { signChallenge } from '../protocol/siwe.ts';
import { CheckpointError } from '../checkpoint/errors.ts';
import type { LedgerRound, PrivacyLedger } from '../privacy/dp/ledger.ts';
import { baseModelReason, privacyAdmission, readinessReason } from './admission.ts';
import { fetchBaseModel, MemoryModelCache, type BaseModel, type ModelCache } from './base-model.ts';
import {
  tokenize,
  trainLocalUpdate,
  type ContributorData,
  type LocalUpdate,
} from './local-update.ts';
import { TypedEmitter } from './typed-emitter.ts';
import { errorMessage } from '../errors/message.ts';
import { describeUpload, sendUpload, signUpload, type UploadChannel } from './uploader.ts';
import {
  SECAGG_EVENTS,
  SecAggParticipant,
  type MaskedReceipt,
  type SecAggEvent,
} from './secagg-participant.ts';
import { packBinary, type PackedMessage, type SecAggAnswer } from '../protocol/messages.ts';

/**
 * The contributor's side of federated training. It signs in to a coordinator with
 * Sign-In with Ethereum, answers round invitations, and for each round it joins: downloads
 * and verifies the base model, trains it locally on the contributor's data, clips and encodes
 * the delta, signs the EIP-712 commitment and uploads the frame in acknowledged chunks.
 *
 * No file system and no Node-only module: the same class runs in the CLI, the desktop core,
 * a browser or a worker (choose the tfjs backend first, e.g. with backend/select.ts). Every
 * server message is validated with the protocol's schemas; a malformed one is reported as an
 * `error` event (a ProtocolError with code MALFORMED_MESSAGE) and ignored.
 *
 * One round at a time: an invitation that arrives during a round is declined as busy.
 */

/** Whether consent was given, or how to ask for it per round (asked before accepting). */
export type Consent = boolean | ((task: RoundTask) => boolean | Promise<boolean>);

export interface FederatedClientOptions {
  /** The coordinator's base URL, e.g. `http://127.0.0.1:7070` (Socket.IO and the model store). */
  coordinator: string;
  /** Signs the login and every update commitment (an ethers Wallet, or any Signer). */
  signer: Signer;
  /**
   * Chain of the EIP-712 commitment domain. When given, a challenge for another chain is
   * refused; otherwise the challenge's chain id is used.
   */
  chainId?: number;
  /** The contributor's training data; see setData to change it later. */
  data: ContributorData;
  /** No round is joined without it. */
  consent: Consent;
  /** When given, a round whose base model is not ModelRegistry.activeModel() is declined. */
  chain?: Pick<CommonsClient, 'activeModel'>;
  /**
   * The member's own privacy ledger (kept on their machine). A round whose participation would
   * take the member's ε above the community's per-member budget is declined, with the ledger's
   * plain-words reason; a round is recorded before its update leaves, and stays recorded however
   * the upload ends (ε is spent once the update may have left). The budget, δ and noise come from the
   * on-chain policy version the round names (`policies`), not from the coordinator's word.
   */
  privacy?: { ledger: PrivacyLedger; policies: Pick<CommonsClient, 'policyAt'> };
  /**
   * Encode updates in this instead of the round's encoding. The coordinator refuses a frame
   * that is not in the round's encoding (BAD_FRAME), so this is for coordinators that accept
   * several, and for tests.
   */
  encoding?: UpdateEncoding;
  /** Verified base models by hash; default: the last one, in memory. */
  cache?: ModelCache;
  /** Aborting it closes the client. */
  signal?: AbortSignal;
  /** How long to wait for each acknowledgement (login, each chunk, ...). Default 60 s. */
  ackTimeoutMs?: number;
  /** Overrides of the Socket.IO options below (SOCKET_DEFAULTS), e.g. shorter delays in tests. */
  socket?: Partial<ManagerOptions & SocketOptions>;
  /** Used to download base models; default: the global fetch. */
  fetch?: typeof fetch;
  /** Secure rounds: keep the masked plain vector in each receipt (default off; see SecAggParticipant). */
  keepMaskedUpdates?: boolean;
}

/**
 * Reconnection is on, forever, with exponential back-off from 1 s doubling to at most 60 s,
 * each delay randomised by ±50% (jitter) so that clients dropped together by a coordinator
 * restart do not all come back in the same instant. WebSocket only: no HTTP long-polling, so
 * several coordinators behind a load balancer need no sticky sessions.
 */
export const SOCKET_DEFAULTS: Partial<ManagerOptions & SocketOptions> = {
  autoConnect: false,
  transports: ['websocket'],
  reconnection: true,
  reconnectionAttempts: Infinity,
  reconnectionDelay: 1_000,
  reconnectionDelayMax: 60_000,
  randomizationFactor: 0.5,
  timeout: 20_000,
};

export type Connection =
  | 'idle' // not connected yet (call connect())
  | 'connecting'
  | 'authenticating' // connected; signing in
  | 'online' // signed in: invitations are answered
  | 'offline' // lost; reconnecting
  | 'closed';

export type Activity = 'idle' | 'downloading' | 'training' | 'uploading';

export interface ClientState {
  connection: Connection;
  activity: Activity;
  /** The round being worked on, when activity is not idle. */
  roundId: number | null;
  /** Why the connection is offline, when it is. */
  detail?: string;
}

/** A round's update, accepted by the coordinator. */
export interface UploadReceipt {
  roundId: number;
  baseModel: string;
  /** The EIP-712 commitment digest (a leaf of the round's commitment tree). */
  commitment: string;
  /** The norm the coordinator measured. */
  norm: number;
  /** Norm of the delta before clipping. */
  rawNorm: number;
  encoding: UpdateEncoding;
  byteLength: number;
  sha256: string;
  numExamples: number;
  steps: number;
  plannedSteps: number;
  finalLoss: number;
  /** Training stopped before plannedSteps to meet the deadline. */
  stoppedEarly: boolean;
}

/** Which request the coordinator refused. */
export type RequestName =
  'auth:login' | 'upload:begin' | 'upload:chunk' | 'upload:end' | 'secagg:masked-chunk';

export interface FederatedClientEvents {
  state: ClientState;
  /** Signed in (again, after each reconnection). */
  login: { address: string; chainId: number };
  /** An invitation and how it was answered. */
  invite: { task: RoundTask; accepted: boolean; reason?: string };
  /** Local progress (also sent to the coordinator as round:progress). */
  progress: Progress;
  uploaded: UploadReceipt;
  /** Secure rounds: our masked update is in the round's sum (we answered unmask). */
  masked: MaskedReceipt;
  /** Secure rounds: a SecAgg+ stage request answered (ok) or refused. */
  secagg: { roundId: number; stage: SecAggEvent; ok: boolean };
  /** A round that was joined but ends without an update from us, and why. */
  dropped: { roundId: number; reason: string };
  /** The coordinator's round:status. */
  status: RoundStatus;
  /** The coordinator's round:result. */
  result: RoundResult;
  /** The coordinator refused a request: its {code, message} as a ProtocolError. */
  rejected: { error: ProtocolError; during: RequestName; roundId?: number };
  /** A malformed server message (ProtocolError MALFORMED_MESSAGE), or local work that failed. */
  error: Error;
}

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
type TimeoutSocket = ReturnType<ClientSocket['timeout']>;

const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/);

/** An acknowledgement: the result fields, or a refusal. */
function ackSchema<S extends z.ZodRawShape>(shape: S) {
  return z.discriminatedUnion('ok', [
    z.object({ ok: z.literal(true), ...shape }),
    z.object({ ok: z.literal(false), error: rejectionSchema }),
  ]);
}
const loginAck = ackSchema({ address: addressSchema });
const beginAck = ackSchema({ uploadId: uploadIdSchema });
const chunkAck = ackSchema({ received: z.number().int().nonnegative() });
const endAck = ackSchema({
  commitment: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
  norm: z.number().nonnegative(),
});

/** Progress is sent at most this often per phase (plus each phase's first and last). */
const PROGRESS_INTERVAL_MS = 500;

/** Round states after which a round takes no more updates. */
const CLOSED_ROUND_STATES: ReadonlySet<RoundStatus['state']> = new Set([
  'aggregating',
  'evaluating',
  'published',
  'failed',
]);

/** The coordinator refused a request. */
class Refused extends Error {
  readonly error: ProtocolError;
  readonly during: RequestName;

  constructor(error: ProtocolError, during: RequestName) {
    super(error.message);
    this.error = error;
    this.during = during;
  }
}

/** A request got no answer (timeout, or the connection dropped): worth retrying. */
class NoAnswer extends Error {}

interface ActiveRound {
  task: RoundTask;
  abort: AbortController;
  done: Promise<void>;
}

export class FederatedClient extends TypedEmitter<FederatedClientEvents> {
  readonly coordinator: string;
  readonly #options: FederatedClientOptions;
  readonly #cache: ModelCache;
  readonly #ackTimeoutMs: number;
  #socket: ClientSocket | null = null;
  #data: ContributorData;
  #tokens: { hash: string; tokens: Int32Array } | null = null;
  #state: ClientState = { connection: 'idle', activity: 'idle', roundId: null };
  #address: string | null = null;
  #chainId: number | null = null;
  /** Set from an invitation's arrival until it is declined or its round ends. */
  #round: ActiveRound | 'deciding' | null = null;
  #lastProgress = { key: '', at: 0 };
  /** Rounds our update was accepted in: an invitation repeated after a reconnection is declined. */
  readonly #contributed = new Set<number>();
  /** Rounds accepted under the privacy ledger, to be recorded just before the update leaves. */
  readonly #ledgerRounds = new Map<number, LedgerRound>();
  #closed = false;
  #closing: Promise<void> | null = null;
  /** This client's part in the secure round it is in, if that round runs secure aggregation. */
  #secagg: SecAggParticipant | null = null;
  /** The upload's requests, each with this client's timeout and its answer validated. */
  readonly #uploadChannel: UploadChannel = {
    begin: (begin) =>
      this.#ask('upload:begin', beginAck, (s) => s.emitWithAck('upload:begin', begin)),
    chunk: (uploadId, index, chunk) =>
      this.#ask('upload:chunk', chunkAck, (s) =>
        s.emitWithAck('upload:chunk', uploadId, index, chunk),
      ),
    end: (uploadId) =>
      this.#ask('upload:end', endAck, (s) => s.emitWithAck('upload:end', uploadId)),
  };

  constructor(options: FederatedClientOptions) {
    super((err) =>
      console.error('a FederatedClient listener threw:', err instanceof Error ? err.message : err),
    );
    this.coordinator = options.coordinator;
    this.#options = options;
    this.#data = options.data;
    this.#cache = options.cache ?? new MemoryModelCache();
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 60_000;
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  get state(): ClientState {
    return { ...this.#state };
  }

  /** The signed-in address, or null before the first login. */
  get address(): string | null {
    return this.#address;
  }

  /** Train on this from the next round on. */
  setData(data: ContributorData): void {
    this.#data = data;
    this.#tokens = null;
  }

  /** Connects (once) and keeps reconnecting until close(). */
  connect(): void {
    if (this.#closed) throw new Error('this FederatedClient is closed');
    if (this.#options.signal?.aborted) {
      void this.close();
      return;
    }
    if (this.#socket) return;
    const socket: ClientSocket = io(this.coordinator, {
      ...SOCKET_DEFAULTS,
      ...this.#options.socket,
    });
    this.#socket = socket;
    socket.on('connect', () => this.#setConnection('authenticating'));
    socket.on('disconnect', (reason) => {
      if (this.#closed) return;
      if (reason === 'io server disconnect') {
        // The server ended the session on purpose; Socket.IO does not reconnect after that.
        return this.#fatal(new Error('the coordinator closed the connection'));
      }
      this.#setConnection('offline', reason);
    });
    socket.on('connect_error', (err) => {
      if (this.#closed) return;
      if (!socket.active) {
        // Refused by the server's middleware: no automatic retry follows.
        return this.#fatal(new Error(`the coordinator refused the connection: ${err.message}`));
      }
      this.#setConnection('offline', err.message);
    });
    socket.io.on('reconnect_attempt', () => this.#setConnection('connecting'));
    socket.on('auth:challenge', (challenge: unknown) => void this.#login(challenge));
    socket.on('round:invite', (task: unknown, ack: unknown) => void this.#onInvite(task, ack));
    socket.on('round:status', (status: unknown) => this.#onStatus(status));
    socket.on('round:result', (result: unknown) => this.#onResult(result));
    for (const event of SECAGG_EVENTS) {
      socket.on(
        event,
        (request: unknown, ack: unknown) => void this.#onSecAgg(event, request, ack),
      );
    }
    this.#setConnection('connecting');
    socket.connect();
  }

  /** Stops any round in progress (no upload), disconnects, and resolves once work has stopped. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    // Set before anything below runs: the disconnect it causes must see the client closing.
    this.#closed = true;
    this.#closing = (async () => {
      const round = this.#round;
      if (round && round !== 'deciding') {
        round.abort.abort(new Error('the client was closed'));
        await round.done;
      }
      this.#socket?.disconnect();
      this.#setConnection('closed');
    })();
    return this.#closing;
  }

  // ---- signing in ------------------------------------------------------------------------------

  async #login(raw: unknown): Promise<void> {
    const parsed = challengeSchema.safeParse(raw);
    if (!parsed.success) return this.#malformed('auth:challenge', parsed.error);
    const challenge: Challenge = parsed.data;
    if (challenge.protocolVersion !== PROTOCOL_VERSION) {
      return this.#fatal(
        new ProtocolError(
          'PROTOCOL_VERSION',
          `the coordinator speaks protocol ${challenge.protocolVersion}; this client speaks ${PROTOCOL_VERSION}`,
        ),
      );
    }
    const wanted = this.#options.chainId;
    if (wanted !== undefined && challenge.chainId !== wanted) {
      return this.#fatal(
        new Error(`the coordinator is on chain ${challenge.chainId}, this client on ${wanted}`),
      );
    }
    try {
      const signed = await signChallenge(challenge, this.#options.signer);
      const result = await this.#request('auth:login', loginAck, (s) =>
        s.emitWithAck('auth:login', { protocolVersion: PROTOCOL_VERSION, ...signed }),
      );
      const address = await this.#options.signer.getAddress();
      if (result.address.toLowerCase() !== address.toLowerCase()) {
        throw new Error(`the coordinator signed us in as ${result.address}, not ${address}`);
      }
      this.#address = address;
      this.#chainId = challenge.chainId;
      this.#setConnection('online');
      this.emit('login', { address, chainId: challenge.chainId });
    } catch (err) {
      this.#report(err);
    }
  }

  // ---- rounds ----------------------------------------------------------------------------------

  async #onInvite(raw: unknown, ack: unknown): Promise<void> {
    const reply = (answer: InviteReply) => {
      if (typeof ack === 'function') (ack as (answer: InviteReply) => void)(answer);
    };
    const parsed = roundTaskSchema.safeParse(raw);
    if (!parsed.success) {
      this.#malformed('round:invite', parsed.error);
      reply({ accept: false, reason: `malformed task: ${describeIssue(parsed.error)}` });
      return;
    }
    const task = parsed.data;
    // Taken synchronously, so a second invitation arriving while we decide is declined as busy.
    const busy = this.#round !== null;
    if (!busy) this.#round = 'deciding';
    const reason = busy ? 'busy with another round' : await this.#declineReason(task);
    if (reason !== null) {
      if (!busy) this.#round = null;
      reply({ accept: false, reason });
      this.emit('invite', { task, accepted: false, reason });
      return;
    }
    const abort = new AbortController();
    const round: ActiveRound = { task, abort, done: Promise.resolve() };
    this.#round = round;
    // Secure aggregation: set up before the acceptance goes out, so secagg:setup finds it.
    this.#secagg = task.secureAggregation
      ? new SecAggParticipant({
          task: { ...task, secureAggregation: task.secureAggregation },
          signer: this.#options.signer,
          address: this.#address!,
          chainId: this.#chainId!,
          sendChunk: async (index, chunk) => {
            await this.#request('secagg:masked-chunk', chunkAck, (s) =>
              s.emitWithAck('secagg:masked-chunk', task.roundId, index, chunk),
            );
          },
          onProgress: (done, total) =>
            this.#progress({ roundId: task.roundId, phase: 'uploading', done, total }),
          keepUpdate: this.#options.keepMaskedUpdates ?? false,
        })
      : null;
    reply({ accept: true });
    this.emit('invite', { task, accepted: true });
    round.done = this.#runRound(task, abort.signal);
  }

  /**
   * Why not to take part in this round, or null to accept. The decisions are admission.ts's;
   * this asks its questions in order, cheapest first, and turns a failure to answer into a
   * reason to decline.
   */
  async #declineReason(task: RoundTask): Promise<string | null> {
    const unready = readinessReason(task, {
      closing: this.#closed,
      signedIn: this.#state.connection === 'online',
      contributed: this.#contributed,
      data: this.#data,
      now: Date.now(),
    });
    if (unready !== null) return unready;
    const consent = this.#options.consent;
    try {
      if (!(typeof consent === 'function' ? await consent(task) : consent)) {
        return 'the contributor has not consented to training';
      }
    } catch (err) {
      return `could not ask for consent: ${message(err)}`;
    }
    if (this.#options.chain) {
      try {
        const active = await this.#options.chain.activeModel();
        const wrongModel = baseModelReason(task, active.contentHash);
        if (wrongModel !== null) return wrongModel;
      } catch (err) {
        return `could not read the active model from chain: ${message(err)}`;
      }
    }
    const privacy = this.#options.privacy;
    if (privacy) {
      try {
        const policy = await privacy.policies.policyAt(task.policyVersion);
        const admission = privacyAdmission(task, policy, privacy.ledger);
        if (!admission.join) return admission.reason;
        this.#ledgerRounds.set(task.roundId, admission.round);
      } catch (err) {
        return `could not check the privacy budget: ${message(err)}`;
      }
    }
    if (this.#closed) return 'the client is closing';
    return null;
  }

  /**
   * Records the round in the member's privacy ledger, before the update leaves this machine
   * (ledger.ts): a crash between the two then over-counts ε, never under-counts it. The entry
   * stays whatever becomes of the upload — refused, dropped, or the round failing — because
   * once a byte of the update may have left, the coordinator may keep it: ε is spent. A ledger
   * that cannot be written throws, and the update is not sent.
   */
  async #recordPrivacy(roundId: number): Promise<void> {
    const round = this.#ledgerRounds.get(roundId);
    const ledger = this.#options.privacy?.ledger;
    if (!round || !ledger) return;
    this.#ledgerRounds.delete(roundId);
    try {
      await ledger.record(round);
    } catch (err) {
      throw new Error(
        `could not record round ${roundId} in the privacy ledger, so the update was not sent: ${message(err)}`,
        { cause: err },
      );
    }
  }

  async #runRound(task: RoundTask, signal: AbortSignal): Promise<void> {
    const { roundId } = task;
    try {
      this.#setActivity('downloading', roundId);
      const base = await retryTransient(
        () =>
          fetchBaseModel(this.coordinator, task.baseModel, {
            cache: this.#cache,
            signal,
            ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
            onProgress: (done, total) =>
              this.#progress({ roundId, phase: 'downloading', done, total }),
          }),
        signal,
      );
      const tokens = this.#tokensFor(base);

      // Train until shortly before the deadline at the latest, leaving time to upload; what
      // was trained by then is still a useful update.
      const remaining = task.deadline - Date.now();
      const uploadAllowance = Math.min(60_000, Math.max(1_000, remaining * 0.2));
      if (remaining <= uploadAllowance) {
        return this.#drop(roundId, 'too close to the deadline to train');
      }
      this.#setActivity('training', roundId);
      const update = await trainLocalUpdate({
        base,
        tokens,
        task: task.train,
        adapter: task.adapter ?? null,
        clipNorm: task.clipNorm,
        // A secure round masks the clipped delta itself: fp32 decodes back to it exactly.
        encoding: task.secureAggregation ? 'fp32' : (this.#options.encoding ?? task.encoding),
        signal: AbortSignal.any([
          signal,
          AbortSignal.timeout(Math.floor(remaining - uploadAllowance)),
        ]),
        onProgress: (p) =>
          this.#progress({ roundId, phase: 'training', done: p.step, total: p.totalSteps }),
      });
      if (signal.aborted) return;
      if (!update) return this.#drop(roundId, 'the deadline came before the first training step');
      const participant = this.#secagg;
      if (participant?.roundId === roundId) {
        // Secure aggregation: no plain upload; the update goes into the masked-input stage.
        await this.#recordPrivacy(roundId);
        this.#setActivity('uploading', roundId);
        let masked: MaskedReceipt;
        try {
          masked = await participant.contribute(update, signal);
        } catch (err) {
          if (signal.aborted) return;
          // The round ended before our unmask answer: we are not in its sum.
          if (participant.failure?.code === 'WITHDRAWN') return this.#drop(roundId, message(err));
          throw err;
        }
        this.#contributed.add(roundId);
        this.emit('masked', masked);
        return;
      }
      if (update.encoding === task.encoding && update.frame.byteLength !== task.upload.frameBytes) {
        throw new Error(
          `the update is ${update.frame.byteLength} bytes but round ${roundId} expects ${task.upload.frameBytes}: ` +
            `the base model's layout differs from the coordinator's`,
        );
      }
      await this.#recordPrivacy(roundId);
      this.#setActivity('uploading', roundId);
      const receipt = await this.#upload(task, update, signal);
      this.#contributed.add(roundId);
      this.emit('uploaded', receipt);
    } catch (err) {
      if (!signal.aborted) {
        this.#report(err, roundId);
        this.#withdraw(roundId, message(err));
        // A secure round's pending masked-input request is answered with why we left.
        if (this.#secagg?.roundId === roundId) this.#secagg.withdraw(message(err));
      }
    } finally {
      if (this.#secagg?.roundId === roundId) {
        // Answers a masked-input request still waiting for our update with WITHDRAWN.
        this.#secagg.withdraw(
          signal.aborted ? message(signal.reason) : 'the client left the round',
        );
        this.#secagg = null;
      }
      this.#ledgerRounds.delete(roundId);
      this.#round = null;
      this.#setActivity('idle', null);
    }
  }

  /**
   * Answers a SecAgg+ stage request through this round's participant. A stage this client
   * refuses ends its part in the round: reported as an error, then dropped and withdrawn.
   */
  async #onSecAgg(event: SecAggEvent, request: unknown, ack: unknown): Promise<void> {
    const participant = this.#secagg;
    const answer: SecAggAnswer<unknown> = participant
      ? await participant.answer(event, request)
      : { ok: false, error: { code: 'WRONG_ROUND', message: 'this client is in no secure round' } };
    if (typeof ack === 'function') (ack as (a: PackedMessage) => void)(packBinary(answer));
    if (participant)
      this.emit('secagg', { roundId: participant.roundId, stage: event, ok: answer.ok });
    const round = this.#round;
    if (answer.ok || !participant || participant !== this.#secagg) return;
    if (answer.error.code === 'WITHDRAWN') return;
    const reason = `${event}: ${answer.error.message}`;
    this.emit('error', new Error(`round ${participant.roundId}: refused ${reason}`));
    if (round && round !== 'deciding' && !round.abort.signal.aborted) {
      round.abort.abort(new Error(reason));
      this.#drop(participant.roundId, reason);
    }
  }

  #tokensFor(base: BaseModel): Int32Array {
    if (this.#tokens?.hash !== base.hash) {
      this.#tokens = { hash: base.hash, tokens: tokenize(this.#data, base) };
    }
    return this.#tokens.tokens;
  }

  /**
   * Signs the commitment and uploads the frame (uploader.ts). If the connection drops midway,
   * the upload starts again from the beginning once signed in again, until the deadline; a
   * refusal is final.
   */
  async #upload(task: RoundTask, update: LocalUpdate, signal: AbortSignal): Promise<UploadReceipt> {
    const chainId = this.#chainId!;
    const { roundId } = task;
    const unsigned = describeUpload(task, this.#address!, update.frame, update);
    const begin = await signUpload(
      // Adaptive clipping moves the clip norm towards a quantile of these bits.
      { ...unsigned, clipBit: update.rawNorm <= task.clipNorm },
      this.#options.signer,
      chainId,
    );
    const expected = commitmentDigest(unsigned, chainId);
    const receipt = (accepted: UploadAccepted): UploadReceipt => ({
      roundId,
      baseModel: task.baseModel.hash,
      commitment: accepted.commitment,
      norm: accepted.norm,
      rawNorm: update.rawNorm,
      encoding: update.encoding,
      byteLength: update.frame.byteLength,
      sha256: update.sha256,
      numExamples: update.numExamples,
      steps: update.steps,
      plannedSteps: update.plannedSteps,
      finalLoss: update.finalLoss,
      stoppedEarly: update.stoppedEarly,
    });
    for (let attempt = 0; ; attempt++) {
      await this.#whenOnline(signal, task.deadline);
      try {
        const result = await sendUpload(this.#uploadChannel, begin, update.frame, {
          chunkBytes: task.upload.chunkBytes,
          signal,
          onProgress: (done, total) => this.#progress({ roundId, phase: 'uploading', done, total }),
        });
        if (!result.ok) throw new Refused(ProtocolError.from(result.error), result.during);
        if (result.commitment.toLowerCase() !== expected.toLowerCase()) {
          this.emit(
            'error',
            new Error(
              `round ${roundId}: the coordinator's commitment ${result.commitment} is not ours (${expected})`,
            ),
          );
        }
        return receipt(result);
      } catch (err) {
        // The previous attempt's last acknowledgement was lost, but the update arrived.
        if (attempt > 0 && err instanceof Refused && err.error.code === 'DUPLICATE_UPLOAD') {
          return receipt({ commitment: expected, norm: update.norm });
        }
        if (!(err instanceof NoAnswer) || Date.now() >= task.deadline) throw err;
      }
    }
  }

  #onStatus(raw: unknown): void {
    const parsed = roundStatusSchema.safeParse(raw);
    if (!parsed.success) return this.#malformed('round:status', parsed.error);
    this.emit('status', parsed.data);
    if (CLOSED_ROUND_STATES.has(parsed.data.state)) {
      this.#abandon(parsed.data.roundId, `the round moved on to ${parsed.data.state}`);
    }
  }

  #onResult(raw: unknown): void {
    const parsed = roundResultSchema.safeParse(raw);
    if (!parsed.success) return this.#malformed('round:result', parsed.error);
    this.#abandon(parsed.data.roundId, `the round ended (${parsed.data.outcome})`);
    // A secure round that ends before our unmask answer leaves nothing to wait for.
    if (this.#secagg?.roundId === parsed.data.roundId) {
      this.#secagg.withdraw(`the round ended (${parsed.data.outcome})`);
    }
    this.emit('result', parsed.data);
  }

  /** Stops our work on a round the coordinator no longer takes updates for. */
  #abandon(roundId: number, reason: string): void {
    const round = this.#round;
    if (round === null || round === 'deciding' || round.task.roundId !== roundId) return;
    if (this.#state.activity === 'uploading' || round.abort.signal.aborted) return;
    round.abort.abort(new Error(reason));
    this.#drop(roundId, reason);
  }

  // ---- plumbing --------------------------------------------------------------------------------

  /**
   * Sends a request and validates its acknowledgement: the result, or Refused with the
   * coordinator's {code, message}, or NoAnswer (timed out, or not connected).
   */
  async #request<S extends z.ZodRawShape>(
    during: RequestName,
    schema: ReturnType<typeof ackSchema<S>>,
    send: (socket: TimeoutSocket) => Promise<unknown>,
  ): Promise<Extract<z.infer<typeof schema>, { ok: true }>> {
    const answer = await this.#ask(during, schema, send);
    const ack = answer as Ack<object>;
    if (!ack.ok) throw new Refused(ProtocolError.from(ack.error), during);
    return answer as Extract<z.infer<typeof schema>, { ok: true }>;
  }

  /** As #request, but a refusal is returned as the acknowledgement that carries it. */
  async #ask<S extends z.ZodRawShape>(
    during: RequestName,
    schema: ReturnType<typeof ackSchema<S>>,
    send: (socket: TimeoutSocket) => Promise<unknown>,
  ): Promise<z.infer<typeof schema>> {
    const socket = this.#socket;
    // A packet emitted while disconnected would be buffered and sent on the next connection,
    // before that session signs in: never let that happen.
    const ready = during === 'auth:login' || this.#state.connection === 'online';
    if (!socket?.connected || !ready) throw new NoAnswer(`${during}: not connected`);
    let raw: unknown;
    try {
      raw = await send(socket.timeout(this.#ackTimeoutMs));
    } catch (err) {
      throw new NoAnswer(`${during}: ${message(err)}`);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      throw new ProtocolError(
        'MALFORMED_MESSAGE',
        `the coordinator's answer to ${during} is malformed: ${describeIssue(parsed.error)}`,
      );
    }
    return parsed.data;
  }

  /** Resolves once signed in; rejects when `signal` aborts or `until` (Unix ms) passes first. */
  #whenOnline(signal: AbortSignal, until: number): Promise<void> {
    signal.throwIfAborted();
    if (this.#state.connection === 'online') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const finish = (err?: unknown) => {
        clearTimeout(timer);
        stop();
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error(String(err)));
      };
      const timer = setTimeout(
        () => finish(new Error('the connection did not come back before the deadline')),
        Math.max(0, until - Date.now()),
      );
      const stop = this.on('state', (s) => {
        if (s.connection === 'online') finish();
      });
      const onAbort = () => finish(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #progress(p: Progress): void {
    const key = `${p.roundId}:${p.phase}`;
    const now = Date.now();
    const edge = key !== this.#lastProgress.key || p.done === 0 || p.done >= p.total;
    if (!edge && now - this.#lastProgress.at < PROGRESS_INTERVAL_MS) return;
    this.#lastProgress = { key, at: now };
    this.emit('progress', p);
    // Volatile: progress is dropped, not buffered, while disconnected.
    if (this.#state.connection === 'online') this.#socket?.volatile.emit('round:progress', p);
  }

  #drop(roundId: number, reason: string): void {
    this.emit('dropped', { roundId, reason });
    this.#withdraw(roundId, reason);
  }

  /** Tells the coordinator not to wait for this client's update (it would until the deadline). */
  #withdraw(roundId: number, reason: string): void {
    if (this.#state.connection !== 'online') return;
    this.#socket?.emit('round:withdraw', { roundId, reason: reason.slice(0, 500) });
  }

  #malformed(event: keyof ServerToClientEvents, error: z.ZodError): void {
    this.emit(
      'error',
      new ProtocolError(
        'MALFORMED_MESSAGE',
        `ignored a malformed ${event} from the coordinator: ${describeIssue(error)}`,
      ),
    );
  }

  #report(err: unknown, roundId?: number): void {
    if (err instanceof Refused) {
      this.emit('rejected', {
        error: err.error,
        during: err.during,
        ...(roundId === undefined ? {} : { roundId }),
      });
    } else {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** A condition no reconnection can cure: reported, then the client closes. */
  #fatal(err: Error): void {
    this.emit('error', err);
    void this.close();
  }

  #setConnection(connection: Connection, detail?: string): void {
    if (this.#state.connection === 'closed') return;
    if (this.#state.connection === connection && this.#state.detail === detail) return;
    this.#state = {
      connection,
      activity: this.#state.activity,
      roundId: this.#state.roundId,
      ...(detail === undefined ? {} : { detail }),
    };
    this.emit('state', this.state);
  }

  #setActivity(activity: Activity, roundId: number | null): void {
    const { connection, detail } = this.#state;
    this.#state = { connection, activity, roundId, ...(detail === undefined ? {} : { detail }) };
    this.emit('state', this.state);
  }
}

/** The message, with the cause's when there is one (fetch hides the network error there). */
function message(err: unknown): string {
  return errorMessage(err, { withCause: true });
}

/**
 * Runs `attempt` up to three times, 1 s then 2 s apart, while it fails for a reason that may pass
 * (the network, a busy server). A checkpoint that does not verify is not retried: it would not
 * verify the second time either.
 */
async function retryTransient<T>(attempt: () => Promise<T>, signal: AbortSignal): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      if (tries >= 3 || signal.aborted || err instanceof CheckpointError) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000 * tries));
    }
  }
}
