// The Socket.IO edge of the coordinator: sign-in, eligibility, invitations and chunked uploads.
// Every client message is validated against its schema here, before anything else sees it;
// every refusal is acknowledged with a named code and counted. A session is bound to one
// address: signing in again elsewhere closes the older connection.
import { randomBytes, randomUUID } from 'node:crypto';
import type { CommonsClient } from '@commons/shared/chain/client';
import type {
  ClientToServerEvents,
  ServerToClientEvents,
  SocketData,
} from '@commons/shared/protocol/events';
import { ProtocolError, type RejectCode } from '@commons/shared/protocol/errors';
import {
  PROTOCOL_VERSION,
  chunkDataSchema,
  chunkIndexSchema,
  describeIssue,
  inviteReplySchema,
  loginSchema,
  progressSchema,
  withdrawalSchema,
  uploadBeginSchema,
  uploadIdSchema,
  type Ack,
  type Challenge,
  type InviteReply,
  type RoundResult,
  type RoundStatus,
  type RoundTask,
} from '@commons/shared/protocol/messages';
import { verifySiweLogin } from '@commons/shared/protocol/siwe';
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import type { z } from 'zod';
import type { CoordinatorMetrics } from '../observability/metrics.ts';
import type { ClientHub, RoundEngine } from '../rounds/engine.ts';
import { SecAggSockets } from '../secagg/transport.ts';
import { UploadSession } from '../uploads/upload-session.ts';

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
  /** How long a sign-in challenge stays valid. */
  challengeTtlMs?: number;
}

const STATEMENT = 'Sign in to the Commons federation coordinator to take part in training rounds.';
const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export class FederationHub implements ClientHub {
  private readonly io: FederationServer;
  private readonly chain: CommonsClient;
  private readonly options: FederationHubOptions;
  private readonly metrics: CoordinatorMetrics;
  private readonly log: Logger;
  private engine: RoundEngine | null = null;
  /** Signed-in sockets by checksummed address. */
  private readonly sessions = new Map<string, ClientSocket>();
  private readonly challenges = new WeakMap<ClientSocket, Challenge>();
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
    this.metrics = metrics;
    this.log = log;
    io.on('connection', (socket) => this.onConnection(socket));
  }

  attach(engine: RoundEngine): void {
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

  private onConnection(socket: ClientSocket): void {
    this.metrics.connectedClients.inc();
    const challenge = this.newChallenge();
    this.challenges.set(socket, challenge);
    socket.emit('auth:challenge', challenge);

    socket.on('auth:login', (raw, ack) =>
      this.answer(socket, ack, async () => {
        const login = this.parse(loginSchema, raw);
        if (login.protocolVersion !== PROTOCOL_VERSION) {
          throw new ProtocolError(
            'PROTOCOL_VERSION',
            `this coordinator speaks protocol ${PROTOCOL_VERSION}, the client ${login.protocolVersion}`,
          );
        }
        const current = this.challenges.get(socket) as Challenge;
        // One challenge, one sign-in: a new nonce is issued whatever the outcome.
        this.challenges.set(socket, this.newChallenge());
        const address = verifySiweLogin(current, login.message, login.signature);
        await this.checkEligible(address);
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
      }),
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

    socket.on('disconnect', () => {
      this.metrics.connectedClients.dec();
      const address = socket.data.address;
      if (address && this.sessions.get(address) === socket) {
        this.sessions.delete(address);
        this.metrics.authenticatedClients.set(this.sessions.size);
        this.engine?.clientGone(address);
      }
    });
  }

  /** Runs a handler and acknowledges its result, or the refusal it raised. */
  private answer<T extends object>(
    socket: ClientSocket,
    ack: unknown,
    handler: () => Promise<T>,
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

  private engineOrFail(): RoundEngine {
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

  private newChallenge(): Challenge {
    const now = Date.now();
    const url = new URL(this.options.publicUrl);
    const bytes = randomBytes(16);
    const nonce = Array.from(bytes, (b) => NONCE_ALPHABET[b % NONCE_ALPHABET.length]).join('');
    return {
      protocolVersion: PROTOCOL_VERSION,
      domain: url.host,
      uri: url.origin,
      chainId: this.options.chainId,
      nonce,
      statement: STATEMENT,
      issuedAt: new Date(now).toISOString(),
      expirationTime: new Date(now + (this.options.challengeTtlMs ?? 10 * 60_000)).toISOString(),
    };
  }
}
