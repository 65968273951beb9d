// The signed, chunked upload of an update frame, as every sender does it: the EIP-712
// commitment over what the frame is, then upload:begin, the chunks in order, each acknowledged
// before the next goes (the acknowledgement is the back-pressure), and upload:end. One copy for
// the contributor's FederatedClient, the capacity bench's light clients and the coordinator's
// tests; what differs between them (timeouts, retries, validation of the answers) lives in the
// UploadChannel they pass.
import type { Signer } from 'ethers';
import type { Socket } from 'socket.io-client';
import { sha256Hex } from '../checkpoint/hash.ts';
import type { UpdateEncoding } from '../checkpoint/update-codec.ts';
import { signCommitment } from '../protocol/commitment.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../protocol/events.ts';
import type { Ack, RoundTask, UploadAccepted, UploadBegin } from '../protocol/messages.ts';
import { chunksOf } from '../protocol/upload.ts';

/** The three requests of an upload, named as the events that carry them. */
export type UploadStep = 'upload:begin' | 'upload:chunk' | 'upload:end';

/** A refusal, as an acknowledgement carries it: the coordinator's {code, message}. */
export type UploadRefusal = Extract<Ack, { ok: false }>['error'];

/** How the upload's requests reach the coordinator, each answered by its acknowledgement. */
export interface UploadChannel {
  begin(begin: UploadBegin): Promise<Ack<{ uploadId: string }>>;
  chunk(uploadId: string, index: number, chunk: Uint8Array): Promise<Ack<{ received: number }>>;
  end(uploadId: string): Promise<Ack<UploadAccepted>>;
}

/** The coordinator's commitment and measured norm, or the first refusal and which step it met. */
export type UploadResult =
  ({ ok: true } & UploadAccepted) | { ok: false; error: UploadRefusal; during: UploadStep };

/** The fields an upload's EIP-712 commitment signs. */
export type UnsignedUpload = Omit<UploadBegin, 'signature' | 'clipBit'>;

/** What `frame` is, for round `task`: the commitment's fields. */
export function describeUpload(
  task: Pick<RoundTask, 'roundId' | 'baseModel'>,
  contributor: string,
  frame: Uint8Array,
  update: { encoding: UpdateEncoding; numExamples: number; sha256?: string },
): UnsignedUpload {
  return {
    roundId: task.roundId,
    baseModel: task.baseModel.hash,
    contributor,
    encoding: update.encoding,
    byteLength: frame.byteLength,
    sha256: update.sha256 ?? sha256Hex(frame),
    numExamples: update.numExamples,
  };
}

/** upload:begin: the fields, and `signer`'s signature of their commitment on `chainId`. */
export async function signUpload(
  fields: Omit<UploadBegin, 'signature'>,
  signer: Signer,
  chainId: number,
): Promise<UploadBegin> {
  return { ...fields, signature: await signCommitment(fields, signer, chainId) };
}

/** A channel that emits straight on a Socket.IO client and returns its acknowledgements as sent. */
export function socketUploadChannel(
  socket: Pick<Socket<ServerToClientEvents, ClientToServerEvents>, 'emitWithAck'>,
): UploadChannel {
  return {
    begin: (begin) => socket.emitWithAck('upload:begin', begin),
    chunk: (uploadId, index, chunk) => socket.emitWithAck('upload:chunk', uploadId, index, chunk),
    end: (uploadId) => socket.emitWithAck('upload:end', uploadId),
  };
}

export interface SendUploadOptions {
  /** The round's largest chunk (RoundTask.upload.chunkBytes). */
  chunkBytes: number;
  /** Checked before each chunk: aborting stops the upload between chunks. */
  signal?: AbortSignal;
  /** Bytes of the frame acknowledged so far, of `total` (called with 0 first). */
  onProgress?: (sent: number, total: number) => void;
}

/**
 * Opens the upload with `begin`, sends `frame` in chunks, one in flight at a time, and closes
 * it. Returns the first refusal as a value; a channel that gets no answer throws.
 */
export async function sendUpload(
  channel: UploadChannel,
  begin: UploadBegin,
  frame: Uint8Array,
  options: SendUploadOptions,
): Promise<UploadResult> {
  const opened = await channel.begin(begin);
  if (!opened.ok) return { ok: false, error: opened.error, during: 'upload:begin' };
  const total = frame.byteLength;
  let sent = 0;
  let index = 0;
  options.onProgress?.(0, total);
  for (const chunk of chunksOf(frame, options.chunkBytes)) {
    options.signal?.throwIfAborted();
    const ack = await channel.chunk(opened.uploadId, index++, chunk);
    if (!ack.ok) return { ok: false, error: ack.error, during: 'upload:chunk' };
    sent += chunk.byteLength;
    options.onProgress?.(sent, total);
  }
  const closed = await channel.end(opened.uploadId);
  if (!closed.ok) return { ok: false, error: closed.error, during: 'upload:end' };
  return { ok: true, commitment: closed.commitment, norm: closed.norm };
}
