// Admission of uploads into the running round: the declaration is checked before any byte is
// taken, the complete frame is validated, and only then does it count — the blob fsynced
// first, then its submission row and its fold into the running aggregate, in one transaction.
// An upload is wholly accepted or wholly refused by name, with nothing recorded.
import { CheckpointError } from '@commons/shared/engine';
import {
  commitmentDigest,
  verifyCommitment,
  ProtocolError,
  type UploadAccepted,
  type UploadBegin,
} from '@commons/shared/protocol';
import { AggregationError } from '../aggregation/aggregator.ts';
import type { AdaptiveClipping } from '../privacy/adaptive-clipping.ts';
import type { BlobStore } from '../store/blobs.ts';
import type { CoordinatorDatabase } from '../store/database.ts';
import { StoreError } from '../store/errors.ts';
import { validateUpdate } from '../uploads/validate-update.ts';
import { updateWeight, type ActiveRound } from './active-round.ts';
import { foldAccepted } from './recovery.ts';

export interface AdmissionDeps {
  db: CoordinatorDatabase;
  blobs: BlobStore;
  clipping: AdaptiveClipping;
  /** Chain id that update signatures are bound to. */
  chainId: number;
}

function roundClosed(roundId: number): ProtocolError {
  return new ProtocolError('DEADLINE_PASSED', `round ${roundId} no longer takes uploads`);
}

function duplicateUpload(address: string, roundId: number): ProtocolError {
  return new ProtocolError(
    'DUPLICATE_UPLOAD',
    `${address} already has an update in round ${roundId}`,
  );
}

/**
 * Checks an upload's declaration before any byte is taken: the round, the session's address,
 * the base model, the encoding, the exact frame size and the signature.
 */
export function checkUploadBegin(
  round: ActiveRound | null,
  address: string,
  begin: UploadBegin,
  chainId: number,
): asserts round is ActiveRound {
  if (!round || round.id !== begin.roundId) {
    throw new ProtocolError(
      'WRONG_ROUND',
      round
        ? `round ${begin.roundId} is not open; round ${round.id} is`
        : `round ${begin.roundId} is not open; no round is`,
    );
  }
  if (round.state !== 'training' || Date.now() > round.task.deadline) throw roundClosed(round.id);
  if (begin.contributor.toLowerCase() !== address.toLowerCase()) {
    throw new ProtocolError(
      'BAD_SIGNATURE',
      `the upload names ${begin.contributor} but this session is ${address}`,
    );
  }
  if (!round.participants.has(address)) {
    throw new ProtocolError('NOT_INVITED', `${address} is not a participant of round ${round.id}`);
  }
  if (round.uploaded.has(address)) throw duplicateUpload(address, round.id);
  if (begin.baseModel !== round.base.hash) {
    throw new ProtocolError(
      'WRONG_BASE_MODEL',
      `round ${round.id} trains ${round.base.hash}, not ${begin.baseModel}`,
    );
  }
  if (begin.encoding !== round.task.encoding) {
    throw new ProtocolError(
      'BAD_FRAME',
      `round ${round.id} takes ${round.task.encoding} updates, not ${begin.encoding}`,
    );
  }
  const expected = round.task.upload.frameBytes;
  if (begin.byteLength !== expected) {
    throw new ProtocolError(
      begin.byteLength > expected ? 'UPLOAD_TOO_LARGE' : 'WRONG_SHAPE',
      `${begin.byteLength} bytes declared; a ${begin.encoding} update of this model is ${expected}`,
    );
  }
  verifyCommitment(begin, chainId);
}

/**
 * Validates a complete frame and, if it passes, makes it count in `round`: all or nothing.
 * The frame is checked against the model's layout (names, shapes, order, values, norm), made
 * durable in the blob store, then folded into the aggregate inside the transaction that
 * records its submission row — a fold that throws rolls the row back, and the refusal names
 * the problem. The caller runs admissions one at a time (they share the round's aggregate).
 */
export async function admitUpload(
  deps: AdmissionDeps,
  round: ActiveRound | null,
  address: string,
  begin: UploadBegin,
  frame: Uint8Array,
): Promise<UploadAccepted> {
  checkUploadBegin(round, address, begin, deps.chainId);
  const norm = validateUpdate(frame, round.base.entries, round.task.clipNorm);
  const commitment = commitmentDigest(begin, deps.chainId);
  // Durable first: the blob (fsynced), then the row. Only then does it count.
  const blob = await deps.blobs.put(frame);
  let folded = false;
  try {
    deps.db.acceptSubmission(
      {
        roundId: round.id,
        address,
        sha256: blob,
        numExamples: begin.numExamples,
        byteLength: begin.byteLength,
        encoding: begin.encoding,
        norm,
        commitment,
      },
      () => {
        foldInto(round, frame, begin.numExamples);
        folded = true;
        if (round.privacy.adaptive && begin.clipBit !== undefined) {
          deps.clipping.recordBit(round.id, begin.clipBit);
        }
      },
    );
  } catch (error) {
    // The commit itself failed after the fold: the aggregate holds an update no row records,
    // so it is rebuilt from the rows.
    if (folded) await foldAccepted(deps.db, deps.blobs, round);
    // Nothing recorded names these bytes unless an identical frame was accepted before.
    if (!deps.db.submissions(round.id).some((s) => s.sha256 === blob)) {
      await deps.blobs.delete(blob);
    }
    throw refusal(error, address, round.id);
  }
  round.uploaded.add(address);
  return { commitment, norm };
}

/** Folds a validated frame; the aggregator's own refusals become the wire codes. */
function foldInto(round: ActiveRound, frame: Uint8Array, numExamples: number): void {
  try {
    round.aggregator.add(frame, updateWeight(round, numExamples));
  } catch (error) {
    if (error instanceof CheckpointError) throw new ProtocolError('WRONG_SHAPE', error.message);
    if (error instanceof AggregationError) throw new ProtocolError('BAD_FRAME', error.message);
    throw error;
  }
}

/** The store's ROUND_CLOSED / DUPLICATE become the wire codes; the rest pass through. */
function refusal(error: unknown, address: string, roundId: number): unknown {
  if (error instanceof StoreError && error.code === 'ROUND_CLOSED') return roundClosed(roundId);
  if (error instanceof StoreError && error.code === 'DUPLICATE') {
    return duplicateUpload(address, roundId);
  }
  return error;
}
