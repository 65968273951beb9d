/**
 * Why a checkpoint or an update frame was refused. Callers branch on `code`; the message
 * is for people and names the tensor, file or bytes at fault.
 */
export type CheckpointErrorCode =
  /** manifest.json is not JSON, or breaks the manifest schema (message gives the path). */
  | 'MALFORMED_MANIFEST'
  /** Not a Commons checkpoint / update frame, or a format version this code cannot read. */
  | 'UNSUPPORTED_FORMAT'
  /** A tensor's shape disagrees with its data, its byte length, the model, or its pair. */
  | 'SHAPE_MISMATCH'
  /** Two tensor sets that must hold the same names do not. */
  | 'NAME_MISMATCH'
  /** Tensor offsets overlap, are misaligned or run past the weights. */
  | 'BAD_LAYOUT'
  /** weights.bin is shorter or longer than the manifest says. */
  | 'SIZE_MISMATCH'
  /** The content does not hash to the hash the manifest records (corruption). */
  | 'HASH_MISMATCH'
  /** The checkpoint is intact but is not the one the caller asked for. */
  | 'UNEXPECTED_HASH'
  /** A weight is NaN or infinite, or would overflow the chosen encoding. */
  | 'NON_FINITE'
  /** manifest.json or weights.bin is absent. */
  | 'MISSING_FILE'
  /** The destination folder of a write already exists; checkpoints are immutable. */
  | 'ALREADY_EXISTS'
  /** An update frame does not start with the update magic. */
  | 'BAD_MAGIC'
  /** An update frame names an encoding this code does not know. */
  | 'UNSUPPORTED_ENCODING'
  /** An update frame ends before the data it announces. */
  | 'TRUNCATED'
  /** An update frame is structurally wrong (trailing bytes, bad name, bad scale...). */
  | 'MALFORMED_FRAME'
  /** A LoRA adapter does not fit the model it is applied to (names, rank or dimensions). */
  | 'ADAPTER_MISMATCH';

export class CheckpointError extends Error {
  readonly code: CheckpointErrorCode;

  constructor(code: CheckpointErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'CheckpointError';
    this.code = code;
  }
}
