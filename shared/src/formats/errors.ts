/**
 * Why a model file (safetensors, GGUF, a Hugging Face folder) was refused. Every refusal
 * happens before any allocation sized by the file's own claims, so a hostile or damaged
 * file costs a header read, not the machine's memory. Callers branch on `code`; the
 * message names the file, tensor or field at fault.
 */
export type ModelFormatErrorCode =
  /** The file ends before the data its header announces. */
  | 'TRUNCATED'
  /** A header is larger than any real model's (a safetensors header over 100 MB). */
  | 'HEADER_TOO_LARGE'
  /** A header or index is not the JSON / binary structure the format defines. */
  | 'MALFORMED_HEADER'
  /** A tensor's data type is one this code cannot read. */
  | 'UNKNOWN_DTYPE'
  /** Tensor offsets overlap, leave gaps, or point outside the data section. */
  | 'OUT_OF_BOUNDS'
  /** A tensor's shape disagrees with its byte length or with the model's config. */
  | 'SHAPE_MISMATCH'
  /** The model's config names a tensor the files do not hold, or a file the folder lacks. */
  | 'MISSING_TENSOR'
  /** config.json is absent, not JSON, or describes a model this engine does not run. */
  | 'BAD_CONFIG';

export class ModelFormatError extends Error {
  readonly code: ModelFormatErrorCode;

  constructor(code: ModelFormatErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'ModelFormatError';
    this.code = code;
  }
}
