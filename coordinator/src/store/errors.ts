/**
 * Why the coordinator's storage refused something. Callers branch on `code`; the message is
 * for people and names the round, address, hash or transition at fault.
 */
export type StoreErrorCode =
  /** A round state change that the round lifecycle does not allow (message names both states). */
  | 'ILLEGAL_TRANSITION'
  /** A row that may exist once already exists (a second update, invite or reward set). */
  | 'DUPLICATE'
  /** The round, participant, model or blob asked for does not exist. */
  | 'NOT_FOUND'
  /** An update arrived for a round that is not in its training state. */
  | 'ROUND_CLOSED'
  /** A hash is not 64 lowercase hex digits (also what makes path traversal impossible). */
  | 'BAD_HASH'
  /** Stored bytes no longer hash to their name: the disk corrupted them. */
  | 'CORRUPT'
  /** The database was written by a newer coordinator; this one must not touch it. */
  | 'SCHEMA_TOO_NEW'
  /** The store cannot take this input or keep its promises with it (e.g. SQLite without WAL). */
  | 'UNSUPPORTED';

export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}

/** Throws BAD_HASH unless `hash` is 64 lowercase hex digits. */
export function assertSha256Hex(hash: string, what = 'hash'): void {
  if (!isSha256Hex(hash)) {
    throw new StoreError(
      'BAD_HASH',
      `${what} ${JSON.stringify(hash.slice(0, 80))} is not 64 lowercase hex digits`,
    );
  }
}
