// The Socket.IO edge of the coordinator: sign-in, eligibility, invitations and chunked uploads.
// Every client message is validated against its schema here, before anything else sees it;
// every refusal is acknowledged with a named code and counted. A session is bound to one
// address: signing in again elsewhere closes the older connection. How a connection signs in,
// renews and loses its session is sign-in.ts.
import { randomUUID } from 'node:crypto';
import type { CommonsClient } from '@commons/chain';
import { frameEncoding } from '@commons/shared/engine';
import {
  type ClientToServerEvents,
  type ServerToClientEvents,
  type SocketData,
  ProtocolError,
  type RejectCode,
  MAX_MESSAGE_DEPTH,
  PROTOCOL_VERSION,
  chunkDataSchema,
  chunkIndexSchema,
  describeIssue,
  inviteReplySchema,
  loginSchema,
  nestedDeeperThan,
  progressSchema,
  withdrawalSchema,
  uploadBeginSchema,
  uploadIdSchema,
  type Ack,
  type InviteReply,
  type RoundResult,
  type RoundStatus,
  type RoundTask,
  verifySiweSession,
} from '@commons/shared/protocol';
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import type { z } from 'zod';
import type { CoordinatorMetrics } from '../observability/metrics.ts';
import type { ClientHub, RoundParticipation } from '../rounds/engine.ts';
import { SecAggSockets } from '../secagg/transport.ts';
import { UploadSession } from '../uploads/upload-session.ts';
import {
  ConnectionSignIn,
  DEFAULT_SESSION_TTL_MS,
  DEFAULT_SIGN_IN_TIMEOUT_MS,
  type SignInPolicy,
} from './sign-in.ts';
import { DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS, WaitingRoom } from './waiting-room.ts';

export type FederationServer = Server<
  ClientToServerEvents,
  ServerToClientEvents,
  object,
  SocketData
>;
type ClientSocket = Socket<ClientToServerEvents, ServerToClientEvents, object, SocketData>;

/** Who may take part: anyone who signs in, or holders of at least `minTokens` base units. */
export type Eligibility = { kind: 'anyone' } | { kind: 'token-holders'; minTokens: bigint };

export interface FederationHubOptions {
  publicUrl: string;
  chainId: number;
  eligibility: Eligibility;
  /** The longest session one sign-in opens (default 1 h); the client renews it on the socket. */
  sessionTtlMs?: number;
  /** How long a client has to sign a challenge, on connecting or to renew (default 30 s). */
  signInTimeoutMs?: number;
  /** Connections one remote address may hold without having signed in (default 256). */
  maxUnauthenticatedPerAddress?: number;
}

export class FederationHub implements ClientHub {
  private readonly io: FederationServer;
  private readonly chain: CommonsClient;
  private readonly options: FederationHubOptions;
  private readonly signInPolicy: SignInPolicy;
  private readonly metrics: CoordinatorMetrics;
  private readonly log: Logger;
  private engine: RoundParticipation | null = null;
  /** Signed-in sockets by checksummed address. */
  private readonly sessions = new Map<string, ClientSocket>();
  private readonly signIns = new WeakMap<ClientSocket, ConnectionSignIn>();
  private readonly waiting: WaitingRoom;
  private readonly uploads = new WeakMap<ClientSocket, UploadSession>();
  /** Secure rounds: SecAgg+ stage requests to signed-in sockets, masked chunks back. */
  readonly secAgg = new SecAggSockets((address) => this.sessions.get(address));

  constructor(
    io: FederationServer,
    chain: CommonsClient,
    options: FederationHubOptions,
    metrics: CoordinatorMetrics,
    log: Logger,
  ) {
    this.io = io;
    this.chain = chain;
    this.options = options;
    this.signInPolicy = {
      publicUrl: options.publicUrl,
      chainId: options.chainId,
      sessionTtlMs: options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
      signInTimeoutMs: options.signInTimeoutMs ?? DEFAULT_SIGN_IN_TIMEOUT_MS,
    };
    this.waiting = new WaitingRoom(
      options.maxUnauthenticatedPerAddress ?? DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
    );
    this.metrics = metrics;
    this.log = log;
    io.use((socket, next) => next(this.admit(socket)));
    io.on('connection', (socket) => this.onConnection(socket));
  }

  attach(engine: RoundParticipation): void {
    this.engine = engine;
  }

  // ------------------------------------------------------------------------ ClientHub

  connected(): string[] {
    return [...this.sessions.keys()];
  }

  isConnected(address: string): boolean {
    return this.sessions.has(address);
  }

  invite(
    address: string,
    task: RoundTask,
    timeoutMs: number,
    onReply: (reply: InviteReply | null) => void = () => undefined,
  ): void {
    const socket = this.sessions.get(address);
    if (!socket) return onReply(null);
    // The callback form, not emitWithAck: the reply is handled synchronously as its packet is
    // read, so an upload the client sends right after its answer always finds the acceptance
    // recorded (with a promise, both packets can be read in one tick, the upload first).
    socket.timeout(timeoutMs).emit('round:invite', task, (error: Error | null, reply: unknown) => {
      if (error) return onReply(null);
      const parsed = inviteReplySchema.safeParse(reply);
      onReply(parsed.success ? parsed.data : { accept: false, reason: 'malformed invite reply' });
    });
  }

  broadcastStatus(status: RoundStatus): void {
    this.io.emit('round:status', status);
  }

  broadcastResult(result: RoundResult): void {
    this.io.emit('round:result', result);
  }

  // ------------------------------------------------------------------------ events

  /** The handshake: refused (with a reason the client sees) when its address has too many waiting. */
  private admit(socket: ClientSocket): Error | undefined {
    if (this.waiting.enter(socket)) return undefined;
    const message = `${this.waiting.max} connections from ${socket.handshake.address} are already waiting to sign in; sign in on one of them first`;
    this.reject(socket, 'TOO_MANY_CONNECTIONS', message);
    return Object.assign(new Error(message), { data: { code: 'TOO_MANY_CONNECTIONS', message } });
  }

  private onConnection(socket: ClientSocket): void {
    // The count and its release are registered together, before anything else can throw.
    this.metrics.connectedClients.inc();
    socket.on('disconnect', () => {
      this.metrics.connectedClients.dec();
      this.waiting.leave(socket);
      this.signIns.get(socket)?.dispose();
      this.endSession(socket);
    });
    // Before any handler or schema sees a message: a cheap, iterative bound on its nesting.
    socket.use((packet, next) => {
      const [event, ...args] = packet;
      if (!nestedDeeperThan(args, MAX_MESSAGE_DEPTH)) return next();
      const message = `${String(event).slice(0, 64)} is nested deeper than ${MAX_MESSAGE_DEPTH} levels`;
      this.reject(socket, 'MALFORMED_MESSAGE', message);
      const ack = args.at(-1);
      if (typeof ack === 'function')
        ack({ ok: false, error: { code: 'MALFORMED_MESSAGE', message } });
    });
    const signIn = new ConnectionSignIn(this.signInPolicy, {
      sendChallenge: (challenge) => socket.emit('auth:challenge', challenge),
      close: (code, message) => this.close(socket, code, message),
    });
    this.signIns.set(socket, signIn);

    socket.on('auth:login', (raw, ack) =>
      // A refused login is answered first, then with the fresh challenge for the retry.
      this.answer(
        socket,
        ack,
        () => this.signIn(socket, signIn, raw),
        () => signIn.refused(),
      ),
    );

    socket.on('round:progress', (raw) => {
      const parsed = progressSchema.safeParse(raw);
      if (parsed.success && socket.data.address) {
        this.log.debug({ address: socket.data.address, ...parsed.data }, 'client progress');
      }
    });

    socket.on('round:withdraw', (raw) => {
      const parsed = withdrawalSchema.safeParse(raw);
      const address = socket.data.address;
      if (!parsed.success || !address) return;
      this.engine?.withdraw(address, parsed.data.roundId, parsed.data.reason);
    });

    socket.on('upload:begin', (raw, ack) =>
      this.answer(socket, ack, async () => {
        const address = this.signedIn(socket);
        const begin = this.parse(uploadBeginSchema, raw);
        this.engineOrFail().checkUploadBegin(address, begin);
        const session = new UploadSession(randomUUID(), begin, address);
        this.uploads.set(socket, session);
        return { uploadId: session.id };
      }),
    );

    socket.on('upload:chunk', (rawId, rawIndex, rawData, ack) =>
      this.answer(socket, ack, async () => {
        this.signedIn(socket);
        const session = this.session(socket, this.parse(uploadIdSchema, rawId));
        const index = this.parse(chunkIndexSchema, rawIndex);
        const data = this.parse(chunkDataSchema, rawData);
        const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
        try {
          const received = session.addChunk(index, bytes);
          this.metrics.uploadBytes.inc(bytes.byteLength);
          return { received };
        } catch (error) {
          // A broken upload is over: the client starts again with upload:begin.
          this.uploads.delete(socket);
          throw error;
        }
      }),
    );

    socket.on('upload:end', (rawId, ack) =>
      this.answer(socket, ack, async () => {
        const address = this.signedIn(socket);
        const session = this.session(socket, this.parse(uploadIdSchema, rawId));
        this.uploads.delete(socket);
        const frame = session.finish();
        const declared = session.begin.encoding;
        const named = frameEncoding(frame);
        // Checked before any value is read: bytes of one encoding read as another are noise
        // (often NaN), and the refusal should say what is actually wrong.
        if (named !== undefined && named !== declared) {
          throw new ProtocolError(
            'ENCODING_MISMATCH',
            `the frame's header says ${named}, the upload declared ${declared}`,
          );
        }
        return this.engineOrFail().acceptUpload(address, session.begin, frame);
      }),
    );

    socket.on('secagg:masked-chunk', (rawRound, rawIndex, rawData, ack) =>
      this.answer(socket, ack, async () => {
        const address = this.signedIn(socket);
        const received = this.secAgg.takeChunk(address, rawRound, rawIndex, rawData);
        // takeChunk validated it: bytes (a Buffer here, an ArrayBuffer from some clients).
        this.metrics.uploadBytes.inc((rawData as Uint8Array | ArrayBuffer).byteLength);
        return { received };
      }),
    );
  }

  /**
   * One login attempt against the connection's current challenge. Signing in again on a
   * signed-in connection renews its session (the same address) or moves it to another address.
   */
  private async signIn(
    socket: ClientSocket,
    signIn: ConnectionSignIn,
    raw: unknown,
  ): Promise<{ address: string }> {
    // One challenge, one attempt, taken before anything can fail: a refusal spends the nonce.
    const challenge = signIn.takeChallenge();
    const login = this.parse(loginSchema, raw);
    if (login.protocolVersion !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        'PROTOCOL_VERSION',
        `this coordinator speaks protocol ${PROTOCOL_VERSION}, the client ${login.protocolVersion}`,
      );
    }
    const session = verifySiweSession(challenge, login.message, login.signature);
    const { address } = session;
    await this.checkEligible(address);
    if (socket.disconnected) {
      // It left while the chain answered: a session for a closed socket would never end.
      throw new ProtocolError('UNAUTHENTICATED', 'the connection closed during sign-in');
    }
    signIn.signedIn(session.expiresAt);
    this.waiting.leave(socket);
    if (socket.data.address === address) {
      this.log.info({ address, socket: socket.id }, 'session renewed');
      return { address };
    }
    this.endSession(socket);
    const previous = this.sessions.get(address);
    if (previous && previous !== socket) previous.disconnect(true);
    socket.data.address = address;
    this.sessions.set(address, socket);
    this.metrics.authenticatedClients.set(this.sessions.size);
    this.log.info({ address, socket: socket.id }, 'signed in');
    const status = this.engine?.status();
    if (status) socket.emit('round:status', status);
    // After the acknowledgement, so the client knows it is signed in before any invite.
    setImmediate(() => this.engine?.clientReady(address));
    return { address };
  }

  /** The connection's session (if any) is over: its address is no longer reachable here. */
  private endSession(socket: ClientSocket): void {
    const address = socket.data.address;
    if (!address) return;
    delete socket.data.address;
    if (this.sessions.get(address) !== socket) return;
    this.sessions.delete(address);
    this.metrics.authenticatedClients.set(this.sessions.size);
    this.engine?.clientGone(address);
  }

  /** Closes a connection, telling the client why first (connection:closing). */
  private close(socket: ClientSocket, code: RejectCode, message: string): void {
    this.reject(socket, code, message);
    socket.emit('connection:closing', { code, message });
    socket.disconnect(true);
  }

  /** Runs a handler and acknowledges its result, or the refusal it raised. */
  private answer<T extends object>(
    socket: ClientSocket,
    ack: unknown,
    handler: () => Promise<T>,
    afterRefusal: () => void = () => undefined,
  ): void {
    if (typeof ack !== 'function') {
      // A message without an acknowledgement callback cannot be answered; count and drop it.
      this.reject(socket, 'MALFORMED_MESSAGE', 'message sent without an acknowledgement');
      return;
    }
    const respond = ack as (result: Ack<T>) => void;
    handler().then(
      (result) => respond({ ok: true, ...result }),
      (error: unknown) => {
        const refusal =
          error instanceof ProtocolError
            ? error
            : new ProtocolError('INTERNAL', 'the coordinator could not process this message');
        if (!(error instanceof ProtocolError)) {
          this.log.error(
            { err: error instanceof Error ? error.message : String(error) },
            'handler failed',
          );
        }
        this.reject(socket, refusal.code, refusal.message);
        respond({ ok: false, error: refusal.toRejection() });
        afterRefusal();
      },
    );
  }

  private reject(socket: ClientSocket, code: RejectCode, message: string): void {
    this.metrics.rejections.inc({ code });
    this.log.info({ address: socket.data.address, socket: socket.id, code, message }, 'refused');
  }

  private parse<T>(schema: z.ZodType<T>, value: unknown): T {
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new ProtocolError('MALFORMED_MESSAGE', describeIssue(parsed.error));
    return parsed.data;
  }

  private signedIn(socket: ClientSocket): string {
    const address = socket.data.address;
    if (!address) throw new ProtocolError('UNAUTHENTICATED', 'sign in (auth:login) first');
    return address;
  }

  private session(socket: ClientSocket, id: string): UploadSession {
    const session = this.uploads.get(socket);
    if (!session || session.id !== id) {
      throw new ProtocolError('TRUNCATED', `no upload ${id} is open on this connection`);
    }
    return session;
  }

  private engineOrFail(): RoundParticipation {
    if (!this.engine) throw new ProtocolError('WRONG_ROUND', 'no round is running');
    return this.engine;
  }

  private async checkEligible(address: string): Promise<void> {
    const rule = this.options.eligibility;
    if (rule.kind === 'anyone') return;
    const balance = await this.chain.balanceOf(address);
    if (balance < rule.minTokens) {
      throw new ProtocolError(
        'NOT_ELIGIBLE',
        `${address} holds ${balance} token units; this coordinator requires ${rule.minTokens}`,
      );
    }
  }
}
