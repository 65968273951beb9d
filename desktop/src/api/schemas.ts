// Schemas several API domains share. Only zod here: the renderer imports the API files, so
// nothing Node-only (or heavy, like ethers) may be pulled in through them.
import { z } from 'zod';

/** An EVM address (checksummed or not). */
export const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address (0x + 40 hex)');

/** A sha256 content hash: 64 hex characters, with or without 0x. */
export const hashSchema = z
  .string()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'a sha256 hash (64 hex characters)');

/** A uint256 as a decimal string (proposal ids, token amounts): JSON has no bigint. */
export const decimalSchema = z.string().regex(/^\d{1,78}$/, 'a non-negative decimal integer');

/** Identifiers the core hands out for vault records (documents, chats). */
export const recordIdSchema = z
  .string()
  .regex(/^[0-9a-f]{32}$/, 'a record id (32 lowercase hex characters)');

/** Chosen by the caller so it can match streamed events before the call resolves. */
export const requestIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'a request id (1-64 letters, digits, _ or -)');

/** Methods that take no argument still take `{}` (or nothing: undefined is accepted). */
export const noInput = z.object({}).strict().optional();

/** A transaction the core sent and saw mined. */
export interface TxResult {
  txHash: string;
  blockNumber: number;
}

/**
 * The ε of an (ε, δ) guarantee, or 'none' where training added no noise and there is no
 * differential-privacy guarantee (ModelRegistry stores ε = ∞; JSON has no Infinity, and a null
 * would read as "unknown").
 */
export type Epsilon = number | 'none';

export function epsilonOf(value: number): Epsilon {
  return Number.isFinite(value) ? value : 'none';
}
