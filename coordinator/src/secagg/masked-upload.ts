// One client's masked vector in flight: chunks in order, each acknowledged, hashed as they come,
// never past the exact size the round's vector has. Why not the plain upload path: an
// UploadSession is opened by a signed upload:begin naming an update encoding and frame size,
// and what it assembles is stored as a blob before it counts — a masked vector has neither
// an encoding nor any business on disk. This one lives only until the driver folds it into
// the SecAgg+ running sum.
import { sha256Stream } from '@commons/shared/engine';
import { ProtocolError } from '@commons/shared/protocol';

export class MaskedUpload {
  readonly address: string;
  readonly #buffer: Uint8Array;
  readonly #hasher = sha256Stream();
  #received = 0;
  #nextIndex = 0;

  constructor(address: string, byteLength: number) {
    this.address = address;
    // Not zero-filled: finish() hands it out only once every byte was written by a chunk.
    this.#buffer = Buffer.allocUnsafeSlow(byteLength);
  }

  add(index: number, data: Uint8Array): number {
    if (index !== this.#nextIndex) {
      throw new ProtocolError(
        'TRUNCATED',
        `masked chunk ${index} arrived but chunk ${this.#nextIndex} was expected (chunks go in order)`,
      );
    }
    if (this.#received + data.byteLength > this.#buffer.byteLength) {
      throw new ProtocolError(
        'UPLOAD_TOO_LARGE',
        `masked chunk ${index} would bring the vector to ${this.#received + data.byteLength} bytes; the round's is ${this.#buffer.byteLength}`,
      );
    }
    this.#buffer.set(data, this.#received);
    this.#hasher.update(data);
    this.#received += data.byteLength;
    this.#nextIndex++;
    return this.#received;
  }

  /** The complete vector, once every byte arrived and the declared size and sha256 match. */
  finish(declaredBytes: number, declaredSha256: string): Uint8Array {
    if (declaredBytes !== this.#buffer.byteLength) {
      throw new ProtocolError(
        'WRONG_SHAPE',
        `${declaredBytes} masked bytes declared; the round's vector is ${this.#buffer.byteLength}`,
      );
    }
    if (this.#received !== this.#buffer.byteLength) {
      throw new ProtocolError(
        'TRUNCATED',
        `the masked vector ended after ${this.#received} of ${this.#buffer.byteLength} bytes`,
      );
    }
    const digest = this.#hasher.hex();
    if (digest !== declaredSha256) {
      throw new ProtocolError(
        'HASH_MISMATCH',
        `the masked bytes hash to ${digest}, but ${declaredSha256} was declared`,
      );
    }
    return this.#buffer;
  }
}
