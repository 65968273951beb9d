// A node's part of a scale-out round (Bonawitz et al. 2019's aggregator): it samples its quota
// from its own signed-in clients, invites them, takes their updates exactly as a single
// coordinator does (the same admission: durable blob, submission row, streaming fold) or runs
// SecAgg+ inside its cohort, and hands the leader one partial — the cohort's mean, its weight
// and its contributors — through the shared blob store and the round's Redis Stream.
//
// No noise is added here: on plain rounds the leader adds the policy's noise once, to the sum
// of the partials; on secure rounds the clients add it, split so that each cohort's sum alone
// carries all of it (the node sees its cohort's sum unmasked). A node that restarts mid-round
// has lost its cohort's in-memory state and says so with an empty partial, so the leader need
// not wait for it.
import type { UploadAccepted, UploadBegin, RoundStatus } from '@commons/shared/protocol';
import { errorMessage } from '@commons/shared/errors';
import type { Logger } from 'pino';
import type { Aggregator } from '../aggregation/aggregator.ts';
import type { CoordinatorMetrics } from '../observability/metrics.ts';
import type { AdaptiveClipping } from '../privacy/adaptive-clipping.ts';
import {
  loadBaseModel,
  newActiveRound,
  untilUploadsSettle,
  type ActiveRound,
} from '../rounds/active-round.ts';
import { admitUpload, checkUploadBegin } from '../rounds/admission.ts';
import type { ClientHub, RoundParticipation } from '../rounds/engine.ts';
import { sampleClients } from '../rounds/sampling.ts';
import { runSecureRound } from '../secagg/secure-round.ts';
import type { BlobStore } from '../store/blobs.ts';
import { isTerminal, type CoordinatorDatabase } from '../store/database.ts';
import type { ModelStore } from '../store/models.ts';
import { createStrategy } from '../strategy/index.ts';
import type { ClusterPartial, ClusterRound, RoundLog } from './round-log.ts';

/**
 * The strategy's own aggregator, keeping Σ weights so the cohort's mean can be recombined
 * with the others'. On DP rounds every update weighs 1, as in the single-node DP mean.
 */
class CohortAggregator implements Aggregator {
  readonly inner: Aggregator;
  private readonly equalWeights: boolean;
  totalWeight = 0;

  constructor(inner: Aggregator, equalWeights: boolean) {
    this.inner = inner;
    this.equalWeights = equalWeights;
  }

  add(frame: Uint8Array, numExamples: number): void {
    const weight = this.equalWeights ? 1 : numExamples;
    this.inner.add(frame, weight);
    this.totalWeight += weight;
  }

  get count(): number {
    return this.inner.count;
  }

  memoryBytes(): number {
    return this.inner.memoryBytes();
  }

  result(): Float32Array | null {
    return this.inner.result();
  }
}

export interface CohortDeps {
  nodeId: string;
  db: CoordinatorDatabase;
  /** This node's own blob store (accepted frames). */
  blobs: BlobStore;
  /** The store every node and the leader read (partials). */
  shared: BlobStore;
  models: ModelStore;
  clipping: AdaptiveClipping;
  hub: ClientHub;
  rounds: RoundLog;
  metrics: CoordinatorMetrics;
  log: Logger;
  chainId: number;
  seed: number;
  inviteTimeoutMs: number;
  reconnectGraceMs: number;
}

/** A stable 32-bit number from a node id, so each node samples its clients differently. */
function nodeSalt(nodeId: string): number {
  let h = 2166136261;
  for (let i = 0; i < nodeId.length; i++) h = Math.imul(h ^ nodeId.charCodeAt(i), 16777619);
  return h >>> 0;
}

export class CohortRunner implements RoundParticipation {
  private readonly deps: CohortDeps;
  private active: ActiveRound | null = null;
  private readonly taken = new Set<number>();
  /** The task as clients see it, per round (the leader's deadline). */
  private readonly clientTasks = new Map<number, ClusterRound['task']>();
  private serial: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private running: Promise<void> | null = null;
  private abort: AbortController | null = null;
  /** The last round status the leader broadcast (sent to clients that sign in here). */
  lastStatus: RoundStatus | null = null;

  constructor(deps: CohortDeps) {
    this.deps = deps;
  }

  /** The round this node's cohort is in, if any. */
  activeRoundId(): number | null {
    return this.active?.id ?? null;
  }

  /** Takes part in `round` once (further calls for the same id do nothing). */
  take(round: ClusterRound): void {
    if (this.stopping || this.taken.has(round.id) || round.state !== 'training') return;
    if (!round.nodes.includes(this.deps.nodeId)) return;
    this.taken.add(round.id);
    this.running = this.run(round).catch((error: unknown) => {
      this.deps.log.error({ round: round.id, err: errorMessage(error) }, 'cohort failed');
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort?.abort();
    this.active?.wake();
    await this.running;
  }

  /** Mirrors the leader's outcome into this node's database (and drops the cohort's frames). */
  async settle(round: ClusterRound): Promise<void> {
    const { db, blobs } = this.deps;
    const local = db.getRound(round.id);
    if (!local || isTerminal(local.state)) return;
    if (
      round.state === 'published' &&
      (local.state === 'aggregating' || local.state === 'evaluating')
    ) {
      for (const state of ['evaluating', 'published'] as const) {
        if (db.getRound(round.id)!.state === state) continue;
        db.setRoundState(
          round.id,
          state,
          state === 'published' && round.candidate ? { candidateHash: round.candidate.hash } : {},
        );
      }
      for (const s of db.submissions(round.id)) await blobs.delete(s.sha256);
    } else if (round.state === 'published') {
      // The leader closed the round before this cohort handed in (it counted this node lost).
      this.active?.wake();
      db.setRoundState(round.id, 'failed', {
        failureReason: 'the round was published without this cohort (its partial came too late)',
      });
    } else if (round.state === 'failed') {
      this.active?.wake();
      db.setRoundState(round.id, 'failed', { failureReason: round.result?.reason ?? 'failed' });
    }
  }

  /** Rounds this node took part in whose outcome it has not mirrored yet. */
  unsettled(): number[] {
    return [...this.taken].filter((id) => {
      const local = this.deps.db.getRound(id);
      return local !== undefined && !isTerminal(local.state);
    });
  }

  // ------------------------------------------------------------------ RoundParticipation

  status(): RoundStatus | null {
    return this.lastStatus;
  }

  clientReady(address: string): void {
    const round = this.active;
    if (round && round.state === 'training' && round.participants.has(address)) {
      round.awaySince.delete(address);
      if (!round.uploaded.has(address) && !round.withdrawn.has(address)) {
        const task = this.clientTasks.get(round.id) ?? round.task;
        this.deps.hub.invite(address, task, this.deps.inviteTimeoutMs);
      }
    }
  }

  clientGone(address: string): void {
    const round = this.active;
    if (round && round.participants.has(address) && !round.uploaded.has(address)) {
      round.awaySince.set(address, Date.now());
      setTimeout(() => round.wake(), this.deps.reconnectGraceMs + 10).unref();
    }
  }

  withdraw(address: string, roundId: number, reason: string): void {
    const round = this.active;
    if (!round || round.id !== roundId || round.state !== 'training') return;
    if (!round.participants.has(address) || round.uploaded.has(address)) return;
    round.withdrawn.add(address);
    this.deps.log.info({ round: round.id, address, reason: reason.slice(0, 200) }, 'withdrew');
    round.wake();
  }

  checkUploadBegin(address: string, begin: UploadBegin): void {
    checkUploadBegin(this.active, address, begin, this.deps.chainId);
  }

  acceptUpload(address: string, begin: UploadBegin, frame: Uint8Array): Promise<UploadAccepted> {
    const next = this.serial.then(async () => {
      const { db, blobs, clipping, chainId, metrics, log } = this.deps;
      const accepted = await admitUpload(
        { db, blobs, clipping, chainId },
        this.active,
        address,
        begin,
        frame,
      );
      const round = this.active as ActiveRound;
      metrics.updatesAccepted.inc();
      log.info({ round: round.id, address, norm: accepted.norm }, 'update accepted');
      round.wake();
      return accepted;
    });
    this.serial = next.catch(() => undefined);
    return next;
  }

  // ------------------------------------------------------------------ the cohort

  private async run(record: ClusterRound): Promise<void> {
    const { db, nodeId, log, hub, rounds } = this.deps;
    const started = performance.now();
    const stageMs: Record<string, number> = {};
    const empty = (dropped: string, eligible = 0, sampled = 0): ClusterPartial => ({
      nodeId,
      roundId: record.id,
      blob: null,
      weight: 0,
      count: 0,
      contributors: [],
      eligible,
      sampled,
      dropped,
      stageMs,
    });
    if (db.getRound(record.id)) {
      // This node took the round before it restarted: the cohort's masks or its running
      // aggregate lived in the process that died. Say so rather than keep the leader waiting.
      await rounds.postPartial(empty('the node restarted mid-round; its cohort is dropped'));
      return;
    }
    const eligible = hub.connected();
    const quota = record.quotas[nodeId] ?? 0;
    const sample = sampleClients(
      eligible,
      { sampleRate: 1, minClients: 0, maxClients: quota },
      (record.task.train.seed ^ nodeSalt(nodeId)) >>> 0,
    );
    const base = await loadBaseModel(
      this.deps.models,
      record.baseHash,
      record.task.adapter ?? null,
    );
    // Clients get the leader's task as it is: its deadline is on the leader's clock, the one
    // reference every node's clients share. This node enforces the same duration on its own
    // clock (`task`, internal), so a node whose clock is skewed neither closes early nor late.
    const clientTask = record.task;
    const task = { ...record.task, deadline: Date.now() + record.durationMs };
    this.clientTasks.set(record.id, clientTask);
    db.createRound({
      id: record.id,
      baseModel: record.baseHash,
      policyVersion: record.policyVersion,
      strategy: record.strategy,
      task,
      minClients: record.policy.minClients,
      deadlineMs: task.deadline,
    });
    db.setRoundState(record.id, 'configuring');
    db.saveRoundPrivacy(record.id, record.privacy);
    const strategy = createStrategy(record.strategy);
    const round = newActiveRound({
      id: record.id,
      state: 'configuring',
      task,
      policy: record.policy,
      base,
      strategy,
      // The node's aggregate is never noised: the leader noises the sum of all partials.
      privacy: { ...record.privacy, noiseMultiplier: 0 },
      noise: undefined,
    });
    const equal = record.privacy.noiseMultiplier > 0;
    round.newAggregator = () => new CohortAggregator(strategy.createAggregator(base.layout), equal);
    round.aggregator = round.newAggregator();
    this.active = round;
    try {
      for (const address of sample) db.inviteParticipant(round.id, address);
      db.setRoundState(round.id, 'training');
      round.state = 'training';
      await Promise.all(
        sample.map(
          (address) =>
            new Promise<void>((resolve) =>
              hub.invite(address, clientTask, this.deps.inviteTimeoutMs, (reply) => {
                const accepted = reply?.accept === true;
                db.setParticipantStatus(round.id, address, accepted ? 'accepted' : 'declined');
                if (accepted) round.participants.add(address);
                resolve();
              }),
            ),
        ),
      );
      stageMs['invite'] = performance.now() - started;
      log.info(
        { round: round.id, sampled: sample.length, accepted: round.participants.size },
        'cohort invited',
      );
      let partial: ClusterPartial;
      if (record.task.secureAggregation) {
        partial = await this.secureCohort(
          record,
          round,
          eligible.length,
          sample.length,
          stageMs,
          empty,
        );
      } else {
        const uploadStart = performance.now();
        await this.waitForUploads(round);
        stageMs['upload'] = performance.now() - uploadStart;
        const aggregator = round.aggregator as CohortAggregator;
        const mean = aggregator.count > 0 ? aggregator.result() : null;
        const contributors = db
          .submissions(round.id)
          .map((s) => ({ address: s.address, commitment: s.commitment }));
        partial = {
          ...empty('', eligible.length, sample.length),
          blob: mean
            ? await this.deps.shared.put(
                new Uint8Array(mean.buffer, mean.byteOffset, mean.byteLength),
              )
            : null,
          weight: aggregator.totalWeight,
          count: aggregator.count,
          contributors,
        };
        delete partial.dropped;
      }
      // Stopping, or the leader already ended the round without this cohort (settle()).
      if (this.stopping || isTerminal(db.getRound(round.id)!.state)) return;
      for (const address of round.participants) {
        if (!round.uploaded.has(address)) db.setParticipantStatus(round.id, address, 'dropped');
      }
      db.setRoundState(round.id, 'aggregating');
      round.state = 'aggregating';
      stageMs['cohort'] = performance.now() - started;
      await this.postWithRetry(partial);
      log.info(
        { round: round.id, count: partial.count, weight: partial.weight, dropped: partial.dropped },
        'partial handed to the leader',
      );
    } finally {
      if (this.active === round) this.active = null;
    }
  }

  private async secureCohort(
    record: ClusterRound,
    round: ActiveRound,
    eligible: number,
    sampled: number,
    stageMs: Record<string, number>,
    empty: (dropped: string, eligible: number, sampled: number) => ClusterPartial,
  ): Promise<ClusterPartial> {
    const participants = [...round.participants];
    const minimum = Math.max(3, record.cohortMinClients);
    if (participants.length < minimum) {
      return empty(
        `${participants.length} clients accepted; a secure cohort needs ${minimum} (its sum alone must carry the whole noise)`,
        eligible,
        sampled,
      );
    }
    this.abort = new AbortController();
    const secure = await runSecureRound({
      roundId: round.id,
      baseModel: round.base.hash,
      chainId: this.deps.chainId,
      // The cohort's SecAgg+ needs this many survivors: the clients' noise is split over them.
      policy: { ...record.policy, minClients: minimum },
      task: { deadline: round.task.deadline, secureAggregation: round.task.secureAggregation! },
      participants,
      transport: this.deps.hub.secAgg,
      stageTimeoutMs: this.deps.inviteTimeoutMs,
      signal: this.abort.signal,
      log: this.deps.log,
    });
    for (const [stage, ms] of Object.entries(secure.outcome.stageMs)) stageMs[stage] = ms;
    for (const c of secure.contributors) round.uploaded.add(c.address);
    const mean = secure.delta;
    return {
      nodeId: this.deps.nodeId,
      roundId: record.id,
      blob: await this.deps.shared.put(
        new Uint8Array(mean.buffer, mean.byteOffset, mean.byteLength),
      ),
      weight: secure.outcome.totalWeight,
      count: secure.contributors.length,
      contributors: secure.contributors.map((c) => ({
        address: c.address,
        commitment: c.commitment,
      })),
      eligible,
      sampled,
      stageMs,
    };
  }

  /** Until every participant uploaded, withdrew or stayed away past the grace, or the deadline. */
  private async waitForUploads(round: ActiveRound): Promise<void> {
    await untilUploadsSettle(round, this.deps.reconnectGraceMs, () => this.stopping);
    // Nothing is accepted after this point: in-flight admissions finish first.
    round.state = 'aggregating';
    await this.serial;
  }

  /** Redis may be restarting: the partial is retried until it lands (idempotent by node id). */
  private async postWithRetry(partial: ClusterPartial): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.deps.rounds.postPartial(partial);
        return;
      } catch (error) {
        if (this.stopping) throw error;
        this.deps.log.warn(
          { round: partial.roundId, attempt, err: errorMessage(error) },
          'partial not handed over yet; retrying',
        );
        await new Promise((r) => setTimeout(r, Math.min(5_000, 200 * 2 ** attempt)));
      }
    }
  }
}
