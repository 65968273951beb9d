// Why a secure-aggregation round, or one message in it, was refused. The code is stable
// (the coordinator and tests branch on it); the message names the node, stage and numbers
// involved, in words an operator can act on.

export const SECAGG_ERROR_CODES = [
  /** The parameters are unsafe or inconsistent (overflow, threshold vs shares, ranges). */
  'INVALID_CONFIG',
  /** A message did not match its schema (the message names the field). */
  'MALFORMED_MESSAGE',
  /** A message belongs to another round. */
  'WRONG_ROUND',
  /** A message arrived for a stage that is not the current one. */
  'WRONG_STAGE',
  /** A message names a node that is not (or no longer) part of this stage. */
  'UNKNOWN_NODE',
  /** The same node answered a stage twice. */
  'DUPLICATE_MESSAGE',
  /** Fewer clients are left than the round's minimum. */
  'TOO_FEW_CLIENTS',
  /** A node whose secret is needed has fewer surviving neighbours than the threshold. */
  'BELOW_THRESHOLD',
  /** A secret could not be reconstructed: its shares do not agree with its commitment. */
  'INCONSISTENT_SHARES',
  /** A signature over advertised keys does not recover to the node's address. */
  'BAD_SIGNATURE',
  /** The other side asked for something the protocol forbids (e.g. both secrets of a node). */
  'PROTOCOL_VIOLATION',
  /** The local input (update vector or weight) cannot be quantised as configured. */
  'BAD_INPUT',
] as const;

export type SecAggErrorCode = (typeof SECAGG_ERROR_CODES)[number];

/** A refusal or an aborted round. `nodes` lists the node ids the message names, if any. */
export class SecAggError extends Error {
  readonly code: SecAggErrorCode;
  readonly nodes: readonly number[];

  constructor(code: SecAggErrorCode, message: string, nodes: readonly number[] = []) {
    super(message);
    this.name = 'SecAggError';
    this.code = code;
    this.nodes = nodes;
  }
}
