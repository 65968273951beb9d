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
  MaskedInputHeader,
  PackedMessage,
  SecAggAnswer,
} from './messages.ts';
import type {
  KeyAdvertisement,
  MaskedInputRequest,
  SetupRequest,
  ShareKeysRequest,
  ShareKeysResponse,
  UnmaskRequest,
  UnmaskResponse,
} from '../privacy/secagg/messages.ts';
import type { Rejection } from './errors.ts';

export interface ServerToClientEvents {
  /**
   * On connect: sign this to log in. Sent again after a refused login (its nonce is spent) and
   * shortly before a session expires: signing it renews the session on the same connection.
   */
  'auth:challenge': (challenge: Challenge) => void;
  /**
   * Sent just before the server closes the connection, saying why (e.g. UNAUTHENTICATED: the
   * session expired unrenewed; BAD_LOGIN: too many refused sign-ins).
   */
  'connection:closing': (reason: Rejection) => void;
  /** You were sampled into a round; answer whether you take part. */
  'round:invite': (task: RoundTask, ack: (reply: InviteReply) => void) => void;
  /** The open round changed state. */
  'round:status': (status: RoundStatus) => void;
  /** A round ended. */
  'round:result': (result: RoundResult) => void;
  // Secure aggregation: one request per SecAgg+ stage, answered in the acknowledgement; each
  // stage has a deadline, and a client that has not answered by then has dropped at it.
  // Requests and answers travel packed (messages.ts packBinary): one binary attachment each.
  /** The round's SecAgg+ parameters and participants: advertise your signed keys. */
  'secagg:setup': (
    request: Packed<SetupRequest>,
    ack: (answer: Packed<SecAggAnswer<KeyAdvertisement>>) => void,
  ) => void;
  /** Your neighbours' verified keys: deal them encrypted shares of your secrets. */
  'secagg:share-keys': (
    request: Packed<ShareKeysRequest>,
    ack: (answer: Packed<SecAggAnswer<ShareKeysResponse>>) => void,
  ) => void;
  /** Your neighbours' share packets: train, mask, send the vector (secagg:masked-chunk), answer. */
  'secagg:masked-input': (
    request: Packed<MaskedInputRequest>,
    ack: (answer: Packed<SecAggAnswer<MaskedInputHeader>>) => void,
  ) => void;
  /** Who survived and who dropped: reveal the shares that remove their masks from the sum. */
  'secagg:unmask': (
    request: Packed<UnmaskRequest>,
    ack: (answer: Packed<SecAggAnswer<UnmaskResponse>>) => void,
  ) => void;
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
  /**
   * One chunk of the masked vector of round `roundId`, in order from 0, while the server's
   * secagg:masked-input request is open; each acknowledged before the next (back-pressure).
   */
  'secagg:masked-chunk': (
    roundId: number,
    index: number,
    data: Uint8Array | ArrayBuffer,
    ack: (result: Ack<{ received: number }>) => void,
  ) => void;
}

/** A message of type T as packBinary sends it (the type parameter documents what it unpacks to). */
// eslint-disable-next-line @typescript-eslint/no-unused-vars
export type Packed<T> = PackedMessage;

/** What the server keeps per socket. */
export interface SocketData {
  /** Checksummed address once logged in. */
  address?: string;
  nonce?: string;
}
