// Crash recovery: picks up the round the last process left unfinished. A round that had not
// begun training is failed (a fresh one starts); a secure round is failed (its masks lived in
// memory); any other round is rebuilt from what was durably accepted — the submission rows and
// their blobs, in acceptance order — and resumes where it stopped.
import type { FederationPolicy } from '@commons/chain';
import type { AdapterTask, RoundTask } from '@commons/shared/protocol';
import type { RandomSource } from '@commons/shared/privacy';
import { errorMessage } from '@commons/shared/errors';
import type { Logger } from 'pino';
import type { AdaptiveClipping } from '../privacy/adaptive-clipping.ts';
import { configureRoundPrivacy, type RoundPrivacy } from '../privacy/round-privacy.ts';
import { SECURE_ROUND_NOT_RESUMABLE } from '../secagg/secure-round.ts';
import type { BlobStore } from '../store/blobs.ts';
import type { CoordinatorDatabase, Round } from '../store/database.ts';
import type { Strategy } from '../strategy/strategy.ts';
import { newActiveRound, updateWeight, type ActiveRound, type BaseModel } from './active-round.ts';

export interface RecoveryDeps {
  db: CoordinatorDatabase;
  blobs: BlobStore;
  /** The policy version the round was configured under (read from chain). */
  policyAt(version: number): Promise<FederationPolicy>;
  log: Logger;
  clipping: AdaptiveClipping;
  strategyFor(name: string): Strategy;
  loadBase(hash: string, adapter: AdapterTask | null): Promise<BaseModel>;
  noiseSource(roundId: number): RandomSource | undefined;
  isConnected(address: string): boolean;
  /**
   * Makes the restored round the engine's active one. Called without an await before the
   * participants are invited: a client signing in from then on sees the round, and one that
   * signed in while it was restored is invited by recovery.
   */
  activate(round: ActiveRound): void;
  invite(round: ActiveRound, address: string): void;
}

export interface RecoveredRound {
  round: ActiveRound;
  /** Whether the round was still training (else it is re-aggregated and re-published). */
  train: boolean;
}

/** The interrupted round to finish first, or null when there is none to resume. */
export async function recoverRound(deps: RecoveryDeps): Promise<RecoveredRound | null> {
  const { db, log } = deps;
  const row = db.currentRound();
  if (!row) return null;
  if (row.state === 'waiting' || row.state === 'configuring') {
    db.setRoundState(row.id, 'failed', {
      failureReason: 'the coordinator restarted before training began',
    });
    log.warn({ round: row.id }, 'round had not begun training; failed and starting afresh');
    return null;
  }
  if ((row.task as RoundTask | null)?.secureAggregation) {
    db.setRoundState(row.id, 'failed', { failureReason: SECURE_ROUND_NOT_RESUMABLE });
    log.warn({ round: row.id, state: row.state }, SECURE_ROUND_NOT_RESUMABLE);
    return null;
  }
  log.warn({ round: row.id, state: row.state }, 'resuming interrupted round');
  try {
    const round = await restore(deps, row);
    return { round, train: row.state === 'training' };
  } catch (error) {
    // One round that cannot be rebuilt (a stored update its aggregator refuses, a base model
    // gone) must not keep the coordinator from starting: it fails, and the next one begins.
    const reason = `the round could not be resumed after a restart: ${errorMessage(error)}`;
    db.setRoundState(row.id, 'failed', { failureReason: reason });
    log.error({ round: row.id, state: row.state, reason }, 'round failed on restore');
    return null;
  }
}

async function restore(deps: RecoveryDeps, row: Round): Promise<ActiveRound> {
  const { db } = deps;
  const task = row.task as RoundTask;
  const policy = await deps.policyAt(row.policyVersion);
  const strategy = deps.strategyFor(row.strategy);
  const base = await deps.loadBase(row.baseModel, task.adapter ?? null);
  const accepted = db
    .participants(row.id)
    .filter((p) => p.status === 'accepted')
    .map((p) => p.address);
  const round = newActiveRound({
    id: row.id,
    state: row.state,
    task,
    policy,
    base,
    strategy,
    // The privacy the round announced, whatever C and the connected clients have become since.
    privacy: db.roundPrivacy(row.id) ?? legacyRoundPrivacy(deps, row.id, policy, task, accepted),
    participants: accepted,
    noise: deps.noiseSource(row.id),
  });
  await foldAccepted(db, deps.blobs, round);
  deps.activate(round);
  for (const address of round.participants) {
    if (round.uploaded.has(address)) continue;
    if (deps.isConnected(address)) deps.invite(round, address);
    else round.awaySince.set(address, Date.now());
  }
  return round;
}

/**
 * A round configured before its privacy was stored: rebuilt as that version did, from the
 * accepted participants, the clip norm in its task and the sampling rate it kept in meta.
 */
function legacyRoundPrivacy(
  deps: RecoveryDeps,
  roundId: number,
  policy: FederationPolicy,
  task: RoundTask,
  accepted: readonly string[],
): RoundPrivacy {
  const rate = deps.db.getMeta(`privacy.sampleRate.${roundId}`);
  return {
    ...configureRoundPrivacy(
      policy,
      deps.clipping.forRound(policy, Math.max(1, accepted.length)),
      accepted.length,
      accepted.length,
    ),
    clipNorm: task.clipNorm,
    // Not remembered: counted as sampling everyone (no amplification, the conservative choice).
    sampleRate: rate === undefined ? 1 : Number(rate),
  };
}

/**
 * Rebuilds the round's aggregate from its durably accepted updates, in acceptance order: the
 * running aggregate is never the source of truth, the submission rows are.
 */
export async function foldAccepted(
  db: CoordinatorDatabase,
  blobs: BlobStore,
  round: ActiveRound,
): Promise<void> {
  round.aggregator = round.newAggregator();
  round.uploaded.clear();
  for (const submission of db.submissions(round.id)) {
    const frame = await blobs.read(submission.sha256);
    round.aggregator.add(frame, updateWeight(round, submission.numExamples));
    round.uploaded.add(submission.address);
  }
}
