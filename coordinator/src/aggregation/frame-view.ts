import {
  CheckpointError,
  float16BitsToFloat32,
  formatShape,
  UPDATE_FRAME_VERSION,
  type UpdateEncoding,
} from '@commons/shared/engine';
import type { ParameterLayout } from './layout.ts';

/**
 * Where each tensor's values sit inside one update frame (layout in update-codec.ts), found
 * by walking the headers once: aggregation then reads values straight from the frame bytes
 * instead of decoding every update into fresh Float32Arrays. The frame must hold exactly the
 * layout's tensors, in its order and shapes; anything else is refused with a CheckpointError
 * (NAME_MISMATCH / SHAPE_MISMATCH, or the codec's own codes for a broken frame).
 */
export interface FrameView {
  encoding: UpdateEncoding;
  /** The frame as a plain Uint8Array view (never a copy). */
  bytes: Uint8Array;
  /** Byte offset of each layout entry's first value. */
  dataOffsets: number[];
  /** Each entry's int8 scale; 1 for fp32 and fp16. */
  scales: number[];
}

export const BYTES_PER_VALUE: Readonly<Record<UpdateEncoding, 1 | 2 | 4>> = {
  fp32: 4,
  fp16: 2,
  int8: 1,
};

const MAGIC = [0x43, 0x4d, 0x55, 0x50]; // "CMUP"
const ENCODINGS: readonly UpdateEncoding[] = ['fp32', 'fp16', 'int8'];
const HEADER_BYTES = 12;

/** Each layout's tensor names as UTF-8, encoded once and compared byte for byte. */
const layoutNames = new WeakMap<ParameterLayout, Uint8Array[]>();

export function viewFrame(frame: Uint8Array, layout: ParameterLayout): FrameView {
  const bytes = new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, length: number, what: string) => {
    if (at + length > bytes.length) {
      throw new CheckpointError(
        'TRUNCATED',
        `frame ends at byte ${bytes.length}; ${what} needs ${length} bytes from byte ${at}`,
      );
    }
  };
  need(0, HEADER_BYTES, 'the header');
  if (!MAGIC.every((byte, i) => bytes[i] === byte)) {
    throw new CheckpointError('BAD_MAGIC', 'not an update frame (bad magic bytes)');
  }
  if (bytes[4] !== UPDATE_FRAME_VERSION) {
    throw new CheckpointError('UNSUPPORTED_FORMAT', `update frame version ${bytes[4]}`);
  }
  const encoding = ENCODINGS[bytes[5]!];
  if (encoding === undefined) {
    throw new CheckpointError('UNSUPPORTED_ENCODING', `unknown update encoding id ${bytes[5]}`);
  }
  const count = view.getUint32(8, true);
  if (count !== layout.entries.length) {
    throw new CheckpointError(
      'NAME_MISMATCH',
      `frame holds ${count} tensors, the model ${layout.entries.length}`,
    );
  }
  let names = layoutNames.get(layout);
  if (names === undefined) {
    names = layout.entries.map(({ name }) => new TextEncoder().encode(name));
    layoutNames.set(layout, names);
  }

  const width = BYTES_PER_VALUE[encoding];
  const dataOffsets: number[] = [];
  const scales: number[] = [];
  let at = HEADER_BYTES;
  for (let t = 0; t < count; t++) {
    const entry = layout.entries[t]!;
    const expected = names[t]!;
    need(at, 2, `tensor ${t} name length`);
    const nameLength = view.getUint16(at, true);
    need(at + 2, nameLength + 1, `tensor ${t} name and rank`);
    let sameName = nameLength === expected.length;
    for (let i = 0; sameName && i < nameLength; i++) sameName = bytes[at + 2 + i] === expected[i];
    if (!sameName) {
      throw new CheckpointError(
        'NAME_MISMATCH',
        `frame tensor ${t} is not "${entry.name}", the model's tensor ${t}`,
      );
    }
    at += 2 + nameLength;
    const rank = bytes[at]!;
    at += 1;
    need(at, 4 * rank, `"${entry.name}" shape`);
    let sameShape = rank === entry.shape.length;
    for (let d = 0; sameShape && d < rank; d++) {
      sameShape = view.getUint32(at + 4 * d, true) === entry.shape[d];
    }
    if (!sameShape) {
      const shape = Array.from({ length: rank }, (_, d) => view.getUint32(at + 4 * d, true));
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `"${entry.name}" is ${formatShape(shape)} in the frame, ${formatShape(entry.shape)} in the model`,
      );
    }
    at += 4 * rank;
    let scale = 1;
    if (encoding === 'int8') {
      need(at, 4, `"${entry.name}" scale`);
      scale = view.getFloat32(at, true);
      if (!Number.isFinite(scale) || scale < 0) {
        throw new CheckpointError('MALFORMED_FRAME', `"${entry.name}" has int8 scale ${scale}`);
      }
      at += 4;
    }
    need(at, entry.size * width, `"${entry.name}" data`);
    dataOffsets.push(at);
    scales.push(scale);
    at += entry.size * width;
  }
  if (at !== bytes.length) {
    throw new CheckpointError(
      'MALFORMED_FRAME',
      `${bytes.length - at} unexpected bytes after the last tensor`,
    );
  }
  return { encoding, bytes, dataOffsets, scales };
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
let halfTable: Float32Array | undefined;

/**
 * Values [start, start + count) of the flat parameter vector, decoded from the frame into
 * out[outOffset…]. For the order-statistic rules, which read every update block by block.
 */
export function readValues(
  frame: FrameView,
  layout: ParameterLayout,
  start: number,
  count: number,
  out: Float32Array,
  outOffset = 0,
): void {
  const { encoding, bytes, dataOffsets, scales } = frame;
  const width = BYTES_PER_VALUE[encoding];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let t = entryAt(layout, start);
  let done = 0;
  while (done < count) {
    const entry = layout.entries[t]!;
    const from = start + done - entry.offset;
    const n = Math.min(entry.size - from, count - done);
    const src = dataOffsets[t]! + from * width;
    const dst = outOffset + done;
    if (encoding === 'fp32') {
      if (HOST_IS_LITTLE_ENDIAN) {
        // A byte copy straight into the destination: frames are little-endian and unaligned.
        new Uint8Array(out.buffer, out.byteOffset + dst * 4, n * 4).set(
          bytes.subarray(src, src + n * 4),
        );
      } else {
        for (let i = 0; i < n; i++) out[dst + i] = view.getFloat32(src + i * 4, true);
      }
    } else if (encoding === 'fp16') {
      halfTable ??= Float32Array.from({ length: 0x10000 }, (_, h) => float16BitsToFloat32(h));
      const table = halfTable;
      for (let i = 0; i < n; i++) {
        out[dst + i] = table[bytes[src + 2 * i]! | (bytes[src + 2 * i + 1]! << 8)]!;
      }
    } else {
      const scale = scales[t]!;
      const q = new Int8Array(bytes.buffer, bytes.byteOffset + src, n);
      for (let i = 0; i < n; i++) out[dst + i] = q[i]! * scale;
    }
    done += n;
    t += 1;
  }
}

/** Index of the layout entry holding flat element `index` (entries of size 0 skipped). */
function entryAt(layout: ParameterLayout, index: number): number {
  const { entries } = layout;
  let lo = 0;
  let hi = entries.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (entries[mid]!.offset <= index) lo = mid;
    else hi = mid - 1;
  }
  while (lo < entries.length - 1 && entries[lo]!.size === 0) lo += 1;
  return lo;
}
