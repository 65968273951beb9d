// How an update frame is cut into Socket.IO binary messages, and the exact size a frame for a
// given model layout must have (so the server refuses a wrong-sized upload before reading it).
import type { UpdateEncoding } from '../checkpoint/update-codec.ts';

/**
 * Largest chunk a client sends (256 KiB). The server's `maxHttpBufferSize` is set just above
 * it, so one oversized message is dropped by Socket.IO itself before it is buffered whole.
 */
export const DEFAULT_CHUNK_BYTES = 256 * 1024;

/** Room for the event name, ids and Socket.IO framing around a chunk. */
export const MESSAGE_OVERHEAD_BYTES = 16 * 1024;

const BYTES_PER_VALUE: Readonly<Record<UpdateEncoding, number>> = { fp32: 4, fp16: 2, int8: 1 };

/** One tensor of a model's layout: its name and shape, in checkpoint order. */
export interface LayoutEntry {
  name: string;
  shape: readonly number[];
}

/** The size in bytes of an update frame (update-codec.ts) for this layout and encoding. */
export function frameByteLength(layout: readonly LayoutEntry[], encoding: UpdateEncoding): number {
  let size = 12;
  for (const { name, shape } of layout) {
    const values = shape.reduce((a, b) => a * b, 1);
    size += 2 + new TextEncoder().encode(name).length + 1 + 4 * shape.length;
    size += (encoding === 'int8' ? 4 : 0) + values * BYTES_PER_VALUE[encoding];
  }
  return size;
}

/** Views of consecutive chunks of `frame` (no copies). */
export function* chunksOf(frame: Uint8Array, chunkBytes: number): Generator<Uint8Array> {
  if (!Number.isInteger(chunkBytes) || chunkBytes <= 0) {
    throw new RangeError(`chunk size must be a positive integer, got ${chunkBytes}`);
  }
  for (let at = 0; at < frame.byteLength; at += chunkBytes) {
    yield frame.subarray(at, Math.min(at + chunkBytes, frame.byteLength));
  }
}
