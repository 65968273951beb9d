import { open, stat, type FileHandle } from 'node:fs/promises';
import { gguf } from '@huggingface/gguf';
import { elementCount, formatShape, type HostTensor } from '../checkpoint/tensors.ts';
import { ModelFormatError } from './errors.ts';
import { dequantize, encodedBytes, ggmlTypeName, type GgmlTypeName } from './gguf-blocks.ts';

/**
 * A GGUF file as llama.cpp, LM Studio and Ollama keep models: the metadata and tensor table
 * are parsed by @huggingface/gguf (reading only the header), every tensor's extent is
 * checked against the file before anything is allocated for it, and tensors are read and
 * dequantised one at a time.
 */
export interface GgufTensor {
  name: string;
  type: GgmlTypeName;
  /** PyTorch order (slowest first): GGUF's ne[] reversed. */
  shape: number[];
  /** Absolute byte offset in the file, and the tensor's length in bytes. */
  offset: number;
  bytes: number;
}

export class GgufFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly tensors: ReadonlyMap<string, GgufTensor>;
  readonly #handle: FileHandle;

  private constructor(
    path: string,
    handle: FileHandle,
    metadata: Record<string, unknown>,
    tensors: Map<string, GgufTensor>,
  ) {
    this.path = path;
    this.#handle = handle;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  static async open(path: string): Promise<GgufFile> {
    const { size } = await stat(path);
    let parsed: Awaited<ReturnType<typeof gguf>>;
    try {
      parsed = await gguf(path, { allowLocalFile: true });
    } catch (error) {
      const message = (error as Error).message;
      // A header cut short reads past the end of the file.
      const code = /out of bounds|outside the bounds|beyond|RangeError/i.test(
        `${message} ${(error as Error).name}`,
      )
        ? 'TRUNCATED'
        : 'MALFORMED_HEADER';
      throw new ModelFormatError(code, `${path}: not a readable GGUF file (${message})`, {
        cause: error,
      });
    }
    const tensors = new Map<string, GgufTensor>();
    const dataStart = Number(parsed.tensorDataOffset);
    for (const info of parsed.tensorInfos) {
      const type = ggmlTypeName(info.dtype);
      if (type === null) {
        throw new ModelFormatError(
          'UNKNOWN_DTYPE',
          `${path}: tensor "${info.name}" is ggml type ${info.dtype}; this engine reads F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K`,
        );
      }
      const shape = info.shape.map(Number).reverse();
      const bytes = encodedBytes(
        type,
        elementCount(shape),
        `${path}: tensor "${info.name}" ${formatShape(shape)}`,
      );
      const offset = dataStart + Number(info.offset);
      if (offset + bytes > size) {
        throw new ModelFormatError(
          offset > size ? 'OUT_OF_BOUNDS' : 'TRUNCATED',
          `${path}: tensor "${info.name}" needs bytes ${offset}–${offset + bytes} but the file is ${size} bytes`,
        );
      }
      tensors.set(info.name, { name: info.name, type, shape, offset, bytes });
    }
    const handle = await open(path, 'r');
    return new GgufFile(path, handle, parsed.metadata as Record<string, unknown>, tensors);
  }

  /** A tensor's values as float32, dequantised block by block. */
  async read(name: string): Promise<HostTensor> {
    const t = this.tensors.get(name);
    if (t === undefined)
      throw new ModelFormatError('MISSING_TENSOR', `${this.path} holds no tensor "${name}"`);
    const bytes = Buffer.allocUnsafe(t.bytes);
    const { bytesRead } = await this.#handle.read(bytes, 0, t.bytes, t.offset);
    if (bytesRead !== t.bytes)
      throw new ModelFormatError('TRUNCATED', `${this.path} ended inside "${name}"`);
    return { shape: [...t.shape], data: dequantize(t.type, bytes, elementCount(t.shape)) };
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }
}
