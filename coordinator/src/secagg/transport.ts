// How the secure-aggregation driver reaches clients: a stage request to one signed-in address,
// answered in its acknowledgement, and the masked vector's chunks routed back. The federation
// hub implements it over its Socket.IO sessions (SecAggSockets); the driver knows nothing else
// of sockets.
import {
  type ClientToServerEvents,
  type ServerToClientEvents,
  type SocketData,
  ProtocolError,
  chunkDataSchema,
  chunkIndexSchema,
  packBinary,
  unpackBinary,
} from '@commons/shared/protocol';
import type { Socket } from 'socket.io';
import { z } from 'zod';

export type SecAggRequestEvent =
  'secagg:setup' | 'secagg:share-keys' | 'secagg:masked-input' | 'secagg:unmask';

/** Takes chunk `index` of `address`'s masked vector for round `roundId`; returns bytes so far. */
export type MaskedChunkHandler = (
  address: string,
  roundId: number,
  index: number,
  data: Uint8Array,
) => number;

export interface SecAggTransport {
  /**
   * Sends one stage request and resolves with the client's acknowledgement, unpacked (its
   * content not yet validated). Rejects when
   * the client is not connected, disconnects before answering, or does not answer within
   * `timeoutMs`: in each case it has dropped at this stage.
   */
  request(
    address: string,
    event: SecAggRequestEvent,
    payload: unknown,
    timeoutMs: number,
  ): Promise<unknown>;
  /** Where `secagg:masked-chunk` messages go; null refuses them (no masked-input stage open). */
  routeMaskedChunks(handler: MaskedChunkHandler | null): void;
}

type ClientSocket = Socket<ClientToServerEvents, ServerToClientEvents, object, SocketData>;

const roundIdSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** SecAggTransport over the hub's signed-in sockets (one per address). */
export class SecAggSockets implements SecAggTransport {
  readonly #socketOf: (address: string) => ClientSocket | undefined;
  #chunks: MaskedChunkHandler | null = null;

  constructor(socketOf: (address: string) => ClientSocket | undefined) {
    this.#socketOf = socketOf;
  }

  request(
    address: string,
    event: SecAggRequestEvent,
    payload: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    const socket = this.#socketOf(address);
    if (!socket) return Promise.reject(new Error(`${address} is not connected`));
    return new Promise((resolve, reject) => {
      // A socket that goes away will never answer: no need to wait out the timeout.
      const onGone = (reason: string) =>
        reject(new Error(`${address} disconnected during ${event} (${reason})`));
      socket.once('disconnect', onGone);
      // The four request events share one shape; the typed map cannot express a union of them.
      const timed = socket.timeout(timeoutMs) as unknown as {
        emit(
          event: string,
          payload: unknown,
          ack: (error: Error | null, answer: unknown) => void,
        ): void;
      };
      timed.emit(event, packBinary(payload), (error, answer) => {
        socket.off('disconnect', onGone);
        if (error) reject(new Error(`${address} did not answer ${event} within ${timeoutMs} ms`));
        else {
          try {
            resolve(unpackBinary(answer));
          } catch (err) {
            reject(
              new Error(
                `${address} answered ${event} with a malformed packet: ${(err as Error).message}`,
              ),
            );
          }
        }
      });
    });
  }

  routeMaskedChunks(handler: MaskedChunkHandler | null): void {
    this.#chunks = handler;
  }

  /** The hub's `secagg:masked-chunk` handler: validates the message and routes it. */
  takeChunk(address: string, rawRound: unknown, rawIndex: unknown, rawData: unknown): number {
    const roundId = roundIdSchema.safeParse(rawRound);
    const index = chunkIndexSchema.safeParse(rawIndex);
    const data = chunkDataSchema.safeParse(rawData);
    if (!roundId.success || !index.success || !data.success) {
      throw new ProtocolError(
        'MALFORMED_MESSAGE',
        'secagg:masked-chunk takes (roundId, index, bytes)',
      );
    }
    if (!this.#chunks) {
      throw new ProtocolError(
        'WRONG_ROUND',
        `no secure round is collecting masked inputs (round ${roundId.data})`,
      );
    }
    const bytes = data.data instanceof ArrayBuffer ? new Uint8Array(data.data) : data.data;
    return this.#chunks(address, roundId.data, index.data, bytes);
  }
}
