/**
 * Why a differential-privacy operation was refused. Callers branch on `code`; the message is
 * for people and names the parameter, file or value at fault.
 */
export type PrivacyErrorCode =
  /** A parameter is out of its domain (sample rate outside [0, 1], a negative σ, δ ≥ 1...). */
  | 'INVALID_ARGUMENT'
  /** A stored accountant or ledger is not JSON, breaks its schema, or disagrees with itself. */
  | 'CORRUPT_STATE'
  /** A stored accountant or ledger has a format or version this code cannot read. */
  | 'UNSUPPORTED_VERSION'
  /** A round is recorded twice in a member's ledger. */
  | 'DUPLICATE_ROUND'
  /** Log-space arithmetic lost its footing (a series went negative): the inputs are extreme. */
  | 'NUMERICAL_FAILURE';

export class PrivacyError extends Error {
  readonly code: PrivacyErrorCode;

  constructor(code: PrivacyErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'PrivacyError';
    this.code = code;
  }
}
