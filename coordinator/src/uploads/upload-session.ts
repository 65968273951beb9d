// One client's upload in flight: chunks arrive in order, each acknowledged before the next is
// sent; the bytes are hashed as they come and never exceed the declared size. The bytes are
// held in memory until the upload ends (one upload per socket, at most one frame's size).
import { sha256Stream } from '@commons/shared/engine';
import { ProtocolError, type UploadBegin } from '@commons/shared/protocol';

export class UploadSession {
  readonly id: string;
  readonly begin: UploadBegin;
  readonly address: string;
  private readonly buffer: Uint8Array;
  private readonly hasher = sha256Stream();
  private received = 0;
  private nextIndex = 0;

  constructor(id: string, begin: UploadBegin, address: string) {
    this.id = id;
    this.begin = begin;
    this.address = address;
    // Not zero-filled: every byte is written by a chunk before finish() hands the buffer out.
    this.buffer = Buffer.allocUnsafeSlow(begin.byteLength);
  }

  get bytesReceived(): number {
    return this.received;
  }

  /** Takes chunk `index`; returns the bytes received so far. */
  addChunk(index: number, data: Uint8Array): number {
    if (index !== this.nextIndex) {
      throw new ProtocolError(
        'TRUNCATED',
        `chunk ${index} arrived but chunk ${this.nextIndex} was expected (chunks go in order)`,
      );
    }
    if (this.received + data.byteLength > this.begin.byteLength) {
      throw new ProtocolError(
        'UPLOAD_TOO_LARGE',
        `chunk ${index} would bring the upload to ${this.received + data.byteLength} bytes; ${this.begin.byteLength} were declared`,
      );
    }
    this.buffer.set(data, this.received);
    this.hasher.update(data);
    this.received += data.byteLength;
    this.nextIndex++;
    return this.received;
  }

  /** The complete frame, once every declared byte arrived and the sha256 matches. */
  finish(): Uint8Array {
    if (this.received !== this.begin.byteLength) {
      throw new ProtocolError(
        'TRUNCATED',
        `the upload ended after ${this.received} of ${this.begin.byteLength} declared bytes`,
      );
    }
    const digest = this.hasher.hex();
    if (digest !== this.begin.sha256) {
      throw new ProtocolError(
        'HASH_MISMATCH',
        `the bytes hash to ${digest}, but ${this.begin.sha256} was declared`,
      );
    }
    return this.buffer;
  }
}
