import { open } from 'node:fs/promises';
import { elementCount, type HostTensor } from '../checkpoint/tensors.ts';
import { GGML_TYPE, encodedBytes, quantize } from './gguf-blocks.ts';

/**
 * Writes GGUF version 3 files (ggml's gguf.c layout): magic, version, counts, the key/value
 * metadata, the tensor table, then each tensor's data aligned to `general.alignment` (32).
 * Tensors are pulled from the source and written one at a time, so exporting a model never
 * holds more than one tensor of it.
 */

const ALIGNMENT = 32;

/** GGUF metadata value types (gguf_type). */
const T = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10 } as const;

/** A metadata value with the GGUF type to write it as. */
export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'u64'; value: bigint }
  | { type: 'array'; of: 'i32' | 'f32' | 'string'; value: (number | string)[] };

export interface GgufTensorPlan {
  /** GGUF name (blk.0.attn_q.weight). */
  name: string;
  /** PyTorch order, slowest dimension first; GGUF stores it reversed (ne[0] fastest). */
  shape: number[];
  type: 'F32' | 'F16' | 'Q8_0';
  read: () => Promise<HostTensor>;
}

export async function writeGguf(
  path: string,
  metadata: Record<string, GgufValue>,
  tensors: readonly GgufTensorPlan[],
): Promise<{ bytes: number }> {
  const header = new ByteWriter();
  header.u32(0x46554747); // "GGUF" read as a little-endian u32
  header.u32(3);
  header.u64(BigInt(tensors.length));
  const entries = Object.entries({
    'general.alignment': { type: 'u32', value: ALIGNMENT } as GgufValue,
    ...metadata,
  });
  header.u64(BigInt(entries.length));
  for (const [key, value] of entries) {
    header.string(key);
    writeValue(header, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    header.string(t.name);
    header.u32(t.shape.length);
    for (const dim of [...t.shape].reverse()) header.u64(BigInt(dim));
    header.u32(GGML_TYPE[t.type]);
    header.u64(BigInt(offset));
    offsets.push(offset);
    offset = align(offset + encodedBytes(t.type, elementCount(t.shape), t.name));
  }
  const head = header.bytes();
  const dataStart = align(head.length);
  const file = await open(path, 'w');
  try {
    await file.write(head, 0, head.length, 0);
    for (const [i, t] of tensors.entries()) {
      const host = await t.read();
      const data = quantize(t.type, host.data);
      await file.write(data, 0, data.length, dataStart + offsets[i]!);
    }
    const total = dataStart + offset;
    // Padding after the last tensor, so the file is as long as its table says.
    await file.truncate(total);
    await file.sync();
    return { bytes: total };
  } finally {
    await file.close();
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
      w.u32(T.UINT32);
      w.u32(v.value);
      return;
    case 'i32':
      w.u32(T.INT32);
      w.i32(v.value);
      return;
    case 'f32':
      w.u32(T.FLOAT32);
      w.f32(v.value);
      return;
    case 'bool':
      w.u32(T.BOOL);
      w.u8(v.value ? 1 : 0);
      return;
    case 'string':
      w.u32(T.STRING);
      w.string(v.value);
      return;
    case 'u64':
      w.u32(T.UINT64);
      w.u64(v.value);
      return;
    case 'array': {
      w.u32(T.ARRAY);
      w.u32({ i32: T.INT32, f32: T.FLOAT32, string: T.STRING }[v.of]);
      w.u64(BigInt(v.value.length));
      for (const item of v.value) {
        if (v.of === 'string') w.string(String(item));
        else if (v.of === 'i32') w.i32(Number(item));
        else w.f32(Number(item));
      }
    }
  }
}

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  #buf = Buffer.alloc(1 << 16);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.alloc(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  u8(v: number): void {
    this.#room(1);
    this.#buf.writeUInt8(v, this.#len);
    this.#len += 1;
  }

  u32(v: number): void {
    this.#room(4);
    this.#buf.writeUInt32LE(v, this.#len);
    this.#len += 4;
  }

  i32(v: number): void {
    this.#room(4);
    this.#buf.writeInt32LE(v, this.#len);
    this.#len += 4;
  }

  f32(v: number): void {
    this.#room(4);
    this.#buf.writeFloatLE(v, this.#len);
    this.#len += 4;
  }

  u64(v: bigint): void {
    this.#room(8);
    this.#buf.writeBigUInt64LE(v, this.#len);
    this.#len += 8;
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(BigInt(bytes.length));
    this.#room(bytes.length);
    bytes.copy(this.#buf, this.#len);
    this.#len += bytes.length;
  }

  bytes(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
}
