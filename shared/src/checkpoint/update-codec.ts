import { BYTES_PER_ELEMENT, bytesToFloats, floatsToBytes, type FloatDtype } from './dtype.ts';
import { CheckpointError } from './errors.ts';
import { dequantizeInt8, quantizeInt8 } from './int8.ts';
import { elementCount, formatShape, type NamedTensors } from './tensors.ts';

/**
 * The binary frame an update (a delta, or LoRA factors) travels in, so Socket.IO can carry
 * it as binary chunks rather than JSON arrays of floats. Self-describing, little-endian:
 *
 *   offset  size  field
 *   0       4     magic "CMUP" (43 4d 55 50)
 *   4       1     version, 1
 *   5       1     encoding: 0 = fp32, 1 = fp16, 2 = int8
 *   6       2     reserved, 0
 *   8       4     tensor count (u32)
 *   then for each tensor, in order:
 *           2     name length in bytes (u16), then the UTF-8 name
 *           1     rank (u8), then rank × u32 dimensions
 *           4     int8 only: scale (f32); value = q × scale
 *           n     elements × (4 | 2 | 1) bytes of data, row-major
 *
 * No padding anywhere; the frame ends exactly after the last tensor.
 */
export type UpdateEncoding = 'fp32' | 'fp16' | 'int8';

export const UPDATE_FRAME_VERSION = 1;
const MAGIC = [0x43, 0x4d, 0x55, 0x50];
const ENCODINGS: readonly UpdateEncoding[] = ['fp32', 'fp16', 'int8'];
const FLOAT_DTYPE: Readonly<Record<'fp32' | 'fp16', FloatDtype>> = {
  fp32: 'float32',
  fp16: 'float16',
};
const HEADER_BYTES = 12;
const MAX_NAME_BYTES = 0xffff;
const MAX_RANK = 0xff;

interface EncodedTensor {
  name: Uint8Array;
  shape: number[];
  scale?: number;
  data: Uint8Array;
}

export function encodeTensors(tensors: NamedTensors, encoding: UpdateEncoding): Uint8Array {
  if (!ENCODINGS.includes(encoding)) {
    throw new CheckpointError(
      'UNSUPPORTED_ENCODING',
      `unknown update encoding ${String(encoding)}`,
    );
  }
  const encoded: EncodedTensor[] = [];
  let size = HEADER_BYTES;
  for (const [name, { shape, data }] of tensors) {
    const nameBytes = new TextEncoder().encode(name);
    if (nameBytes.length > MAX_NAME_BYTES || shape.length > MAX_RANK) {
      throw new CheckpointError('MALFORMED_FRAME', `tensor "${name}" has too long a name or rank`);
    }
    if (
      !shape.every((dim) => Number.isInteger(dim) && dim >= 0 && dim <= 0xffffffff) ||
      elementCount(shape) !== data.length
    ) {
      throw new CheckpointError(
        'SHAPE_MISMATCH',
        `tensor "${name}" has shape ${formatShape(shape)} but ${data.length} values`,
      );
    }
    let tensor: EncodedTensor;
    if (encoding === 'int8') {
      const { scale, values } = quantizeInt8(data, name);
      tensor = { name: nameBytes, shape, scale, data: new Uint8Array(values.buffer) };
    } else {
      tensor = { name: nameBytes, shape, data: floatsToBytes(data, FLOAT_DTYPE[encoding], name) };
    }
    encoded.push(tensor);
    size += 2 + nameBytes.length + 1 + 4 * shape.length + (tensor.scale === undefined ? 0 : 4);
    size += tensor.data.length;
  }

  const frame = new Uint8Array(size);
  const view = new DataView(frame.buffer);
  frame.set(MAGIC, 0);
  view.setUint8(4, UPDATE_FRAME_VERSION);
  view.setUint8(5, ENCODINGS.indexOf(encoding));
  view.setUint32(8, encoded.length, true);
  let at = HEADER_BYTES;
  for (const tensor of encoded) {
    view.setUint16(at, tensor.name.length, true);
    frame.set(tensor.name, at + 2);
    at += 2 + tensor.name.length;
    view.setUint8(at, tensor.shape.length);
    at += 1;
    for (const dim of tensor.shape) {
      view.setUint32(at, dim, true);
      at += 4;
    }
    if (tensor.scale !== undefined) {
      view.setFloat32(at, tensor.scale, true);
      at += 4;
    }
    frame.set(tensor.data, at);
    at += tensor.data.length;
  }
  return frame;
}

/**
 * The encoding a frame's header names, read without decoding anything else; undefined when the
 * bytes do not start like an update frame of this version (decodeTensors then says why). Lets a
 * receiver refuse a frame that is not in the encoding it was declared in before reading values
 * as the wrong type.
 */
export function frameEncoding(frame: Uint8Array): UpdateEncoding | undefined {
  if (frame.byteLength < HEADER_BYTES) return undefined;
  if (!MAGIC.every((byte, i) => frame[i] === byte)) return undefined;
  if (frame[4] !== UPDATE_FRAME_VERSION) return undefined;
  return ENCODINGS[frame[5] as number];
}

/**
 * The tensors of a frame, each in a fresh array. Any defect throws a CheckpointError
 * (BAD_MAGIC, UNSUPPORTED_FORMAT, UNSUPPORTED_ENCODING, TRUNCATED, MALFORMED_FRAME,
 * NON_FINITE) before anything is returned. Sizes are checked against the bytes actually
 * present before anything is allocated, so a hostile header cannot make us allocate.
 *
 * With `into`, the tensors are instead consecutive views of `into`, in frame order, decoded
 * straight there (a SecAgg+ client wants the update as one vector: no second copy of 4 MB);
 * a frame holding more values than `into` throws MALFORMED_FRAME. On a throw, `into` may
 * hold part of the frame.
 */
export function decodeTensors(frame: Uint8Array, into?: Float32Array): NamedTensors {
  // A plain Uint8Array view: a Node Buffer's slice() would share memory instead of copying.
  const bytes = new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
  const reader = new FrameReader(bytes);
  const magic = reader.take(4, 'magic');
  if (!MAGIC.every((byte, i) => magic[i] === byte)) {
    throw new CheckpointError('BAD_MAGIC', 'not an update frame (bad magic bytes)');
  }
  const version = reader.u8('version');
  if (version !== UPDATE_FRAME_VERSION) {
    throw new CheckpointError(
      'UNSUPPORTED_FORMAT',
      `update frame version ${version} is not supported (this code reads ${UPDATE_FRAME_VERSION})`,
    );
  }
  const encodingId = reader.u8('encoding');
  const encoding = ENCODINGS[encodingId];
  if (encoding === undefined) {
    throw new CheckpointError('UNSUPPORTED_ENCODING', `unknown update encoding id ${encodingId}`);
  }
  if (reader.u16('reserved') !== 0) {
    throw new CheckpointError('MALFORMED_FRAME', 'reserved header bytes are not zero');
  }
  const count = reader.u32('tensor count');

  const tensors: NamedTensors = new Map();
  let filled = 0;
  for (let t = 0; t < count; t++) {
    const nameBytes = reader.take(reader.u16(`tensor ${t} name length`), `tensor ${t} name`);
    const name = decodeName(nameBytes, t);
    if (tensors.has(name)) {
      throw new CheckpointError('MALFORMED_FRAME', `tensor "${name}" appears twice`);
    }
    const rank = reader.u8(`"${name}" rank`);
    const shape: number[] = [];
    for (let d = 0; d < rank; d++) shape.push(reader.u32(`"${name}" shape`));
    const elements = elementCount(shape);
    let target: Float32Array | undefined;
    if (into) {
      if (filled + elements > into.length) {
        throw new CheckpointError(
          'MALFORMED_FRAME',
          `tensor "${name}" takes the frame past the ${into.length} values expected`,
        );
      }
      target = into.subarray(filled, filled + elements);
      filled += elements;
    }

    if (encoding === 'int8') {
      const scale = reader.f32(`"${name}" scale`);
      if (!Number.isFinite(scale) || scale < 0) {
        throw new CheckpointError('MALFORMED_FRAME', `tensor "${name}" has int8 scale ${scale}`);
      }
      const values = new Int8Array(reader.take(elements, `"${name}" data`)); // a copy
      if (values.includes(-128)) {
        throw new CheckpointError(
          'MALFORMED_FRAME',
          `tensor "${name}" holds -128, outside int8's symmetric range`,
        );
      }
      tensors.set(name, { shape, data: dequantizeInt8({ scale, values }, target) });
    } else {
      const dtype = FLOAT_DTYPE[encoding];
      const start = reader.position;
      reader.take(elements * BYTES_PER_ELEMENT[dtype], `"${name}" data`);
      tensors.set(name, {
        shape,
        data: bytesToFloats(bytes, start, elements, dtype, name, target),
      });
    }
  }
  if (reader.remaining !== 0) {
    throw new CheckpointError(
      'MALFORMED_FRAME',
      `${reader.remaining} unexpected bytes after the last tensor`,
    );
  }
  return tensors;
}

function decodeName(bytes: Uint8Array, index: number): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new CheckpointError('MALFORMED_FRAME', `tensor ${index} name is not valid UTF-8`, {
      cause,
    });
  }
}

/** A cursor that refuses, with TRUNCATED, to read past the end of the frame. */
class FrameReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get position(): number {
    return this.#at;
  }

  get remaining(): number {
    return this.#bytes.length - this.#at;
  }

  /** A view of the next `length` bytes (callers copy what they keep). */
  take(length: number, what: string): Uint8Array {
    this.#need(length, what);
    const out = this.#bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#view.getUint8(this.#at++);
  }

  u16(what: string): number {
    this.#need(2, what);
    const value = this.#view.getUint16(this.#at, true);
    this.#at += 2;
    return value;
  }

  u32(what: string): number {
    this.#need(4, what);
    const value = this.#view.getUint32(this.#at, true);
    this.#at += 4;
    return value;
  }

  f32(what: string): number {
    this.#need(4, what);
    const value = this.#view.getFloat32(this.#at, true);
    this.#at += 4;
    return value;
  }

  #need(length: number, what: string): void {
    if (length > this.remaining) {
      throw new CheckpointError(
        'TRUNCATED',
        `frame ends at byte ${this.#bytes.length}; ${what} needs ${length} bytes from byte ${this.#at}`,
      );
    }
  }
}
