// Admission of uploads into the running round: the declaration is checked before any byte is
// taken, the complete frame is validated, and only then does it count — durably first (the
// blob, fsynced, then its submission row), then in the running aggregate.
import { commitmentDigest, verifyCommitment } from '@commons/shared/protocol/commitment';
import { ProtocolError } from '@commons/shared/protocol/errors';
import type { UploadAccepted, UploadBegin } from '@commons/shared/protocol/messages';
import type { AdaptiveClipping } from '../privacy/adaptive-clipping.ts';
import type { BlobStore } from '../store/blobs.ts';
import type { CoordinatorDatabase, NewSubmission } from '../store/database.ts';
import { StoreError } from '../store/errors.ts';
import { validateUpdate } from '../uploads/validate-update.ts';
import type { ActiveRound } from './active-round.ts';

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
 * Validates a complete frame and, if it passes, makes it count in `round`. The caller runs
 * admissions one at a time (they share the round's aggregate).
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
  recordSubmission(deps.db, {
    roundId: round.id,
    address,
    sha256: blob,
    numExamples: begin.numExamples,
    byteLength: begin.byteLength,
    encoding: begin.encoding,
    norm,
    commitment,
  });
  round.aggregator.add(frame, begin.numExamples);
  round.uploaded.add(address);
  if (round.clipping.adaptive && begin.clipBit !== undefined) {
    deps.clipping.recordBit(round.id, begin.clipBit);
  }
  return { commitment, norm };
}

/** The submission row; the store's ROUND_CLOSED / DUPLICATE become the wire codes. */
function recordSubmission(db: CoordinatorDatabase, input: NewSubmission): void {
  try {
    db.acceptSubmission(input);
  } catch (error) {
    if (error instanceof StoreError && error.code === 'ROUND_CLOSED') {
      throw roundClosed(input.roundId);
    }
    if (error instanceof StoreError && error.code === 'DUPLICATE') {
      throw duplicateUpload(input.address, input.roundId);
    }
    throw error;
  }
}
