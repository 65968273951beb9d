// The typed Socket.IO event maps: one module both ends import, so a payload or an
// acknowledgement cannot drift between coordinator and client (Socket.IO's own pattern).
// Payloads are validated with the schemas in messages.ts on arrival.
import type {
  Ack,
  Challenge,
  InviteReply,
  Login,
  LoginResult,
  Progress,
  Withdrawal,
  RoundResult,
  RoundStatus,
  RoundTask,
  UploadAccepted,
  UploadBegin,
} from './messages.ts';

export interface ServerToClientEvents {
  /** On connect: sign this to log in. */
  'auth:challenge': (challenge: Challenge) => void;
  /** You were sampled into a round; answer whether you take part. */
  'round:invite': (task: RoundTask, ack: (reply: InviteReply) => void) => void;
  /** The open round changed state. */
  'round:status': (status: RoundStatus) => void;
  /** A round ended. */
  'round:result': (result: RoundResult) => void;
}

export interface ClientToServerEvents {
  'auth:login': (login: Login, ack: (result: Ack<LoginResult>) => void) => void;
  /** Local progress, so the coordinator (and its dashboards) can show live round status. */
  'round:progress': (progress: Progress) => void;
  /** The client gives up on a round it accepted; the server stops waiting for it. */
  'round:withdraw': (withdrawal: Withdrawal) => void;
  'upload:begin': (begin: UploadBegin, ack: (result: Ack<{ uploadId: string }>) => void) => void;
  /**
   * One chunk, in order from 0. The client waits for each acknowledgement before sending the
   * next: that is the back-pressure (a slow disk or a busy server slows the sender down).
   */
  'upload:chunk': (
    uploadId: string,
    index: number,
    data: Uint8Array | ArrayBuffer,
    ack: (result: Ack<{ received: number }>) => void,
  ) => void;
  /** All chunks sent: verify and accept (or refuse) the update. */
  'upload:end': (uploadId: string, ack: (result: Ack<UploadAccepted>) => void) => void;
}

/** What the server keeps per socket. */
export interface SocketData {
  /** Checksummed address once logged in. */
  address?: string;
  nonce?: string;
}
