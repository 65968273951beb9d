import { open, type FileHandle } from 'node:fs/promises';
import { float16BitsToFloat32, float32ArrayToFloat16Bits } from '../checkpoint/float16.ts';
import { elementCount, formatShape, sameShape, type HostTensor } from '../checkpoint/tensors.ts';
import { ModelFormatError } from './errors.ts';

/**
 * The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON naming each tensor's dtype, shape and [begin, end) byte range in the data
 * section that follows, then the data. Tensors are read one at a time from an open file
 * handle, so loading a model never holds a second copy of the whole file.
 */

/** The dtypes real checkpoints ship in; the loader turns each into float32. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Real headers are kilobytes; the reference implementation refuses past 100 MB too. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file, [begin, end). */
  begin: number;
  end: number;
}

export class SafetensorsFile {
  readonly path: string;
  /** Entries in file order. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #handle: FileHandle;

  private constructor(
    path: string,
    handle: FileHandle,
    entries: Map<string, SafetensorsEntry>,
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.#handle = handle;
    this.entries = entries;
    this.metadata = metadata;
  }

  /** Opens `path` and checks its header against the file's size; reads no tensor data. */
  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const { entries, metadata } = await readHeader(handle, size, path);
      return new SafetensorsFile(path, handle, entries, metadata);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** One tensor's values as float32 (F16 and BF16 widen exactly). */
  async read(name: string): Promise<HostTensor> {
    const entry = this.entries.get(name);
    if (entry === undefined) {
      throw new ModelFormatError('MISSING_TENSOR', `${this.path} holds no tensor "${name}"`);
    }
    const bytes = Buffer.allocUnsafe(entry.end - entry.begin);
    const { bytesRead } = await this.#handle.read(bytes, 0, bytes.length, entry.begin);
    if (bytesRead !== bytes.length) {
      throw new ModelFormatError('TRUNCATED', `${this.path} ended inside tensor "${name}"`);
    }
    return { shape: [...entry.shape], data: decode(entry.dtype, bytes) };
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}

async function readHeader(
  handle: FileHandle,
  size: number,
  path: string,
): Promise<{ entries: Map<string, SafetensorsEntry>; metadata: Record<string, string> }> {
  if (size < 8) throw new ModelFormatError('TRUNCATED', `${path} is ${size} bytes, no header`);
  const prefix = Buffer.alloc(8);
  await handle.read(prefix, 0, 8, 0);
  const declared = prefix.readBigUInt64LE(0);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelFormatError(
      'HEADER_TOO_LARGE',
      `${path} declares a ${declared} byte header; the limit is ${MAX_HEADER_BYTES}`,
    );
  }
  const headerBytes = Number(declared);
  if (8 + headerBytes > size) {
    throw new ModelFormatError(
      'TRUNCATED',
      `${path} declares a ${headerBytes} byte header but is ${size} bytes long`,
    );
  }
  const text = Buffer.alloc(headerBytes);
  await handle.read(text, 0, headerBytes, 8);
  let header: unknown;
  try {
    header = JSON.parse(text.toString('utf8'));
  } catch (error) {
    throw new ModelFormatError('MALFORMED_HEADER', `${path}: the header is not JSON`, {
      cause: error,
    });
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ModelFormatError('MALFORMED_HEADER', `${path}: the header is not a JSON object`);
  }
  const dataStart = 8 + headerBytes;
  const dataBytes = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      Object.assign(metadata, parseMetadata(value, path));
      continue;
    }
    entries.push(parseEntry(name, value, dataStart, path));
  }
  // The format asks for a dense, non-overlapping data section: checking that also proves
  // every range lies inside the file before a single tensor byte is read.
  entries.sort((a, b) => a.begin - b.begin);
  let expected = dataStart;
  for (const entry of entries) {
    if (entry.begin !== expected) {
      throw new ModelFormatError(
        'OUT_OF_BOUNDS',
        `${path}: tensor "${entry.name}" starts at data byte ${entry.begin - dataStart}, expected ${expected - dataStart} (overlap or gap)`,
      );
    }
    expected = entry.end;
  }
  const covered = expected - dataStart;
  if (covered > dataBytes) {
    throw new ModelFormatError(
      'TRUNCATED',
      `${path}: the tensors need ${covered} data bytes but the file holds ${dataBytes}`,
    );
  }
  if (covered < dataBytes) {
    throw new ModelFormatError(
      'OUT_OF_BOUNDS',
      `${path}: ${dataBytes - covered} bytes after the last tensor belong to none`,
    );
  }
  return { entries: new Map(entries.map((e) => [e.name, e])), metadata };
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelFormatError('MALFORMED_HEADER', `${path}: __metadata__ is not an object`);
  }
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new ModelFormatError('MALFORMED_HEADER', `${path}: __metadata__.${key} is not text`);
    }
    out[key] = v;
  }
  return out;
}

function parseEntry(
  name: string,
  value: unknown,
  dataStart: number,
  path: string,
): SafetensorsEntry {
  const where = `${path}: tensor "${name}"`;
  if (typeof value !== 'object' || value === null) {
    throw new ModelFormatError('MALFORMED_HEADER', `${where} is not an object`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') {
    throw new ModelFormatError('MALFORMED_HEADER', `${where} has no dtype`);
  }
  if (!(dtype in BYTES)) {
    throw new ModelFormatError(
      'UNKNOWN_DTYPE',
      `${where} is ${dtype}; this engine reads ${Object.keys(BYTES).join(', ')}`,
    );
  }
  const isDim = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isDim)) {
    throw new ModelFormatError('MALFORMED_HEADER', `${where} has no valid shape`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim)) {
    throw new ModelFormatError('MALFORMED_HEADER', `${where} has no valid data_offsets`);
  }
  const [begin, end] = offsets as [number, number];
  const bytes = elementCount(shape) * BYTES[dtype as SafetensorsDtype];
  if (end < begin || end - begin !== bytes) {
    throw new ModelFormatError(
      'SHAPE_MISMATCH',
      `${where}: ${dtype} ${formatShape(shape)} is ${bytes} bytes but its offsets span ${end - begin}`,
    );
  }
  return {
    name,
    dtype: dtype as SafetensorsDtype,
    shape,
    begin: dataStart + begin,
    end: dataStart + end,
  };
}

let halfTable: Float32Array | null = null;

/** float32 values of little-endian tensor bytes. */
function decode(dtype: SafetensorsDtype, bytes: Buffer): Float32Array {
  const n = bytes.length / BYTES[dtype];
  if (dtype === 'F32') {
    // Copy into an aligned buffer of its own: the read buffer may sit at any offset.
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32: widening is a shift, exact.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = bytes.readUInt16LE(2 * i) << 16;
    return out;
  }
  // F16 through a 64K-entry table: one lookup per weight instead of the bit arithmetic.
  if (halfTable === null) {
    halfTable = new Float32Array(65_536);
    for (let b = 0; b < 65_536; b++) halfTable[b] = float16BitsToFloat32(b);
  }
  for (let i = 0; i < n; i++) out[i] = halfTable[bytes.readUInt16LE(2 * i)]!;
  return out;
}

/** A tensor to write: float32 values, stored as `dtype` (rounded to nearest, ties to even). */
export interface SafetensorsInput {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: SafetensorsDtype;
}

/** Where a tensor goes in a file being written: its name, shape and stored dtype. */
export interface SafetensorsLayout {
  name: string;
  shape: readonly number[];
  dtype?: SafetensorsDtype;
}

/**
 * The bytes of a safetensors file holding `tensors` in the given order (the order the
 * reference writer uses is sorted by dtype and name; readers accept any dense order).
 */
export function encodeSafetensors(
  tensors: readonly SafetensorsInput[],
  metadata: Record<string, string> = {},
): Buffer {
  return Buffer.concat([
    encodeHeader(tensors, metadata),
    ...tensors.map((t) => encodeTensor(t, t.data)),
  ]);
}

/**
 * Writes a safetensors file to `file` one tensor at a time: the header from `layout`, then
 * each of `tensors` (in layout order) encoded and appended, so a model larger than memory can
 * be written from a generator that makes one tensor at a time.
 */
export async function writeSafetensorsFile(
  file: string,
  layout: readonly SafetensorsLayout[],
  tensors: Iterable<HostTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.write(encodeHeader(layout, metadata));
    let i = 0;
    for (const t of tensors) {
      const spec = layout[i++];
      if (spec === undefined) {
        throw new ModelFormatError('SHAPE_MISMATCH', `${file}: more tensors than the layout names`);
      }
      if (!sameShape(t.shape, spec.shape)) {
        throw new ModelFormatError(
          'SHAPE_MISMATCH',
          `tensor "${spec.name}" is ${formatShape(t.shape)}, not the ${formatShape(spec.shape)} its layout says`,
        );
      }
      await handle.write(encodeTensor(spec, t.data));
    }
    if (i !== layout.length) {
      throw new ModelFormatError(
        'TRUNCATED',
        `${file}: ${layout.length - i} of the layout's tensors never came`,
      );
    }
  } finally {
    await handle.close();
  }
}

/** The 8-byte length and the JSON header for tensors stored densely in `layout` order. */
function encodeHeader(layout: readonly SafetensorsLayout[], metadata: Record<string, string>) {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of layout) {
    const dtype = t.dtype ?? 'F32';
    const bytes = elementCount(t.shape) * BYTES[dtype];
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Pad the JSON with spaces to 8 bytes so the data section is aligned, as the reference does.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([prefix, Buffer.from(json, 'utf8')]);
}

function encodeTensor(spec: SafetensorsLayout, data: Float32Array): Buffer {
  if (elementCount(spec.shape) !== data.length) {
    throw new ModelFormatError(
      'SHAPE_MISMATCH',
      `tensor "${spec.name}": shape ${formatShape(spec.shape)} does not hold ${data.length} values`,
    );
  }
  return encode(spec.dtype ?? 'F32', data);
}

function encode(dtype: SafetensorsDtype, data: Float32Array): Buffer {
  if (dtype === 'F32') return Buffer.from(new Float32Array(data).buffer);
  if (dtype === 'F16') return Buffer.from(float32ArrayToFloat16Bits(data).buffer);
  const bits = new Uint32Array(new Float32Array(data).buffer);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    // Round to nearest, ties to even, as torch's float32 → bfloat16 cast does (NaN stays NaN).
    out[i] = Number.isNaN(data[i]) ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return Buffer.from(out.buffer);
}
