// Why the coordinator refuses something a client sent. Every refusal travels back to the
// client as { code, message }: the code is stable (clients and tests branch on it), the
// message says what was wrong in words a person can act on.

export const REJECT_CODES = [
  /** The message did not match its schema (the message names the field). */
  'MALFORMED_MESSAGE',
  /** The client speaks another protocol version. */
  'PROTOCOL_VERSION',
  /** The event needs a signed-in session (or the session ended: not signed in, or expired). */
  'UNAUTHENTICATED',
  /** Too many connections from one remote address are waiting to sign in. */
  'TOO_MANY_CONNECTIONS',
  /** The Sign-In with Ethereum message or its signature is not valid for this challenge. */
  'BAD_LOGIN',
  /** The address does not meet the coordinator's eligibility rule (e.g. token balance). */
  'NOT_ELIGIBLE',
  /** The upload names a round that is not the one open now (a replay, or a late client). */
  'WRONG_ROUND',
  /** The client was not sampled into this round. */
  'NOT_INVITED',
  /** The upload was trained from another base model than the round's. */
  'WRONG_BASE_MODEL',
  /** The upload's signature does not recover to the session's address. */
  'BAD_SIGNATURE',
  /** The round's deadline passed, or it is no longer accepting uploads. */
  'DEADLINE_PASSED',
  /** This client already has an accepted update in this round. */
  'DUPLICATE_UPLOAD',
  /** Declared or received bytes exceed what this round's model can need. */
  'UPLOAD_TOO_LARGE',
  /** Fewer bytes arrived than declared, or chunks came out of order. */
  'TRUNCATED',
  /** The bytes do not hash to the declared sha256. */
  'HASH_MISMATCH',
  /** The frame is not a well-formed update frame. */
  'BAD_FRAME',
  /** The frame's encoding byte names another encoding than the upload declared. */
  'ENCODING_MISMATCH',
  /** A tensor is missing, extra, or of the wrong shape for the base model. */
  'WRONG_SHAPE',
  /** A value is NaN or infinite. */
  'NON_FINITE',
  /** The update's L2 norm is above the policy's clip bound. */
  'NORM_EXCEEDED',
  /** The coordinator could not take the update for a reason of its own (it says which). */
  'INTERNAL',
] as const;

export type RejectCode = (typeof REJECT_CODES)[number];

export interface Rejection {
  code: RejectCode;
  message: string;
}

/** A refusal raised inside the coordinator or the client, carrying its wire code. */
export class ProtocolError extends Error {
  readonly code: RejectCode;

  constructor(code: RejectCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }

  toRejection(): Rejection {
    return { code: this.code, message: this.message };
  }

  static from(rejection: Rejection): ProtocolError {
    return new ProtocolError(rejection.code, rejection.message);
  }
}
