// The round state machine. One round at a time moves through explicit states:
//
//   waiting ─▶ configuring ─▶ training ─▶ aggregating ─▶ evaluating ─▶ published
//      (any state but the last two) ──────────────────────────────────▶ failed
//
// waiting: until the policy's minimum of eligible clients is connected. configuring: read the
// policy and active model from chain, sample clients, invite them. training: accept uploads
// until every participant has uploaded or dropped, or the deadline passes. aggregating: the
// strategy's running aggregate becomes the candidate. evaluating: score it on the held-out set
// against its parent. published: stored, registered on chain, rewards posted.
//
// Crash safety: an update counts only once its frame is durable in the blob store and its
// submission row is committed; the running aggregate is never the source of truth. After a
// restart a training round resumes (aggregate rebuilt from the rows, in acceptance order),
// a round past training is re-aggregated and re-published idempotently, and a round that had
// not begun training is failed and a fresh one started.
import { EventEmitter } from 'node:events';
import type { CommonsClient } from '@commons/chain';
import type {
  AdapterTask,
  InviteReply,
  RoundResult,
  RoundState,
  RoundStatus,
  RoundTask,
  UploadAccepted,
  UploadBegin,
} from '@commons/shared/protocol';
import type { UpdateEncoding } from '@commons/shared/engine';
import { seededRandomSource, type RandomSource } from '@commons/shared/privacy';
import { errorMessage as message } from '@commons/shared/errors';
import type { Logger } from 'pino';
import { flatten, unflatten } from '../aggregation/layout.ts';
import type { CoordinatorMetrics } from '../observability/metrics.ts';
import { AdaptiveClipping } from '../privacy/adaptive-clipping.ts';
import {
  configureRoundPrivacy,
  PrivacyAccounting,
  RoundConfigError,
} from '../privacy/round-privacy.ts';
import { runSecureRound, secureAggregationRefusal } from '../secagg/secure-round.ts';
import type { SecAggTransport } from '../secagg/transport.ts';
import type { BlobStore } from '../store/blobs.ts';
import { isTerminal, type CoordinatorDatabase } from '../store/database.ts';
import type { ModelStore } from '../store/models.ts';
import { loadStrategyState } from '../store/strategy-state.ts';
import { createStrategy, type Strategy } from '../strategy/index.ts';
import {
  loadBaseModel,
  newActiveRound,
  untilUploadsSettle,
  type ActiveRound,
  type BaseModel,
} from './active-round.ts';
import { adapterRoundRefusal, adapterTaskFor, foldAdapter } from './adapter-round.ts';
import { admitUpload, checkUploadBegin } from './admission.ts';
import type { CandidateEvaluator } from './evaluator.ts';
import { publishRound } from './publisher.ts';
import { recoverRound, type RecoveredRound } from './recovery.ts';
import { retryChain } from './chain-retry.ts';
import { buildRoundTask, roundSeed } from './round-task.ts';
import { sampleClients } from './sampling.ts';

/** A running round's progress (accepted counts) is broadcast at most once per this many ms. */
const STATUS_COALESCE_MS = 5000;

/** What the engine needs from the socket layer: the clients it can reach. */
export interface ClientHub {
  /** Addresses of signed-in, eligible clients connected now. */
  connected(): string[];
  isConnected(address: string): boolean;
  /** Sends a round invitation; null when the client does not answer in time. */
  /** Sends the invitation; `onReply` runs when the client answers (null: no answer in time). */
  invite(
    address: string,
    task: RoundTask,
    timeoutMs: number,
    onReply?: (reply: InviteReply | null) => void,
  ): void;
  broadcastStatus(status: RoundStatus): void;
  broadcastResult(result: RoundResult): void;
  /** Carries the SecAgg+ stages of secure rounds (coordinator/src/secagg). */
  readonly secAgg: SecAggTransport;
}

/**
 * What the socket layer asks of whatever runs rounds on this process: the round engine of a
 * single coordinator, or a scale-out node's cohort runner (cluster/cohort.ts).
 */
export interface RoundParticipation {
  /** The round status to show a client that signs in now. */
  status(): RoundStatus | null;
  clientReady(address: string): void;
  clientGone(address: string): void;
  withdraw(address: string, roundId: number, reason: string): void;
  checkUploadBegin(address: string, begin: UploadBegin): void;
  acceptUpload(address: string, begin: UploadBegin, frame: Uint8Array): Promise<UploadAccepted>;
}

export interface RoundOptions {
  /** Public base URL clients and the registry use for the model store. */
  publicUrl: string;
  /** Chain id that update signatures are bound to. */
  chainId: number;
  /** Strategy name; defaults to the policy's aggregation rule. */
  strategy?: string;
  encoding: UpdateEncoding;
  batchSize: number;
  maxSteps: number;
  /** Caps the policy's deadline (seconds); 0 leaves the policy's. */
  maxRoundSeconds: number;
  inviteTimeoutMs: number;
  /** How long a participant may stay disconnected before the round stops waiting for it. */
  reconnectGraceMs: number;
  /** Pause between rounds. */
  roundIntervalMs: number;
  /** A candidate is published only if its bits/char ≤ parent's + this margin. */
  publishMarginBpc: number;
  proposeActivation: boolean;
  /** Base seed for client sampling and training seeds. */
  seed: number;
  /** Seeds the DP noise (demos, tests); absent: cryptographically secure noise. */
  noiseSeed?: number;
  /** Stop after this many rounds (0: run until stopped). */
  maxRounds: number;
  /**
   * How long the loop retries a chain it cannot reach before it gives up and dies (ms;
   * default 10 minutes). /healthz says 'retrying' meanwhile, and 503 once the loop is dead.
   */
  chainRetryLimitMs?: number;
}

/** What the round loop is doing, for /healthz. */
export interface LoopHealth {
  state: 'starting' | 'running' | 'retrying' | 'finished' | 'dead';
  /** retrying: the chain error being retried; dead: the error that ended the loop. */
  error?: string;
}

const DEFAULT_CHAIN_RETRY_LIMIT_MS = 10 * 60 * 1000;

export interface EngineDeps {
  db: CoordinatorDatabase;
  blobs: BlobStore;
  models: ModelStore;
  chain: CommonsClient;
  evaluator: CandidateEvaluator;
  hub: ClientHub;
  metrics: CoordinatorMetrics;
  log: Logger;
  options: RoundOptions;
}

export interface EngineEvents {
  status: [RoundStatus];
  result: [RoundResult];
}

export class RoundEngine extends EventEmitter<EngineEvents> implements RoundParticipation {
  private readonly deps: EngineDeps;
  private readonly strategies = new Map<string, Strategy>();
  /** The RDP accountant behind every published candidate's (ε, δ). */
  private readonly privacy: PrivacyAccounting;
  /** The clip norm between rounds when the policy asks for adaptive clipping. */
  private readonly clipping: AdaptiveClipping;
  private active: ActiveRound | null = null;
  private waitingStatus: RoundStatus | null = null;
  /** Uploads and state changes run one at a time, in arrival order. */
  private serial: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private nudge: (() => void) | null = null;
  /** `${roundId}:${state}` of the last status broadcast, and the pending coalesced one. */
  private broadcastKey = '';
  private statusTimer: NodeJS.Timeout | null = null;
  private roundsRun = 0;
  private loopHealth: LoopHealth = { state: 'starting' };

  constructor(deps: EngineDeps) {
    super();
    this.deps = deps;
    this.privacy = new PrivacyAccounting(deps.db);
    this.clipping = new AdaptiveClipping(deps.db);
  }

  /**
   * Restores an interrupted round (so status and reconnecting clients see it at once), then
   * starts the round loop, which finishes that round first.
   */
  async start(): Promise<void> {
    if (this.loop) return;
    const resumed = await this.recover();
    this.loopHealth = { state: 'running' };
    this.loop = this.run(resumed).then(
      () => {
        this.loopHealth = { state: 'finished' };
      },
      (error: unknown) => {
        // Nothing restarts the loop in this process: /healthz answers 503 from here on, so a
        // supervisor can restart the coordinator (which resumes the round from its database).
        this.loopHealth = { state: 'dead', error: message(error) };
        this.deps.log.error({ err: message(error) }, 'round loop stopped on an error');
      },
    );
  }

  /** The round loop's state: running, retrying an unreachable chain, finished or dead. */
  health(): LoopHealth {
    return { ...this.loopHealth };
  }

  /** Stops after the current step; a round in progress stays in the database to resume. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.nudge?.();
    this.active?.wake();
    await this.loop;
    if (this.statusTimer) clearTimeout(this.statusTimer);
  }

  /** Status of the round now running or waiting, if any. */
  status(): RoundStatus | null {
    return this.active ? this.statusOf(this.active) : this.waitingStatus;
  }

  /** The socket layer calls this when a client signs in or reconnects. */
  clientReady(address: string): void {
    const round = this.active;
    if (round && round.state === 'training' && round.participants.has(address)) {
      round.awaySince.delete(address);
      if (!round.uploaded.has(address) && !round.withdrawn.has(address)) {
        // A participant that reconnects (or whose coordinator restarted) gets its task again.
        this.deps.hub.invite(address, round.task, this.deps.options.inviteTimeoutMs);
      }
    }
    this.nudge?.();
  }

  /** A participant gave up on the round: it is dropped now rather than at the deadline. */
  withdraw(address: string, roundId: number, reason: string): void {
    const round = this.active;
    if (!round || round.id !== roundId || round.state !== 'training') return;
    if (!round.participants.has(address) || round.uploaded.has(address)) return;
    round.withdrawn.add(address);
    this.deps.log.info({ round: round.id, address, reason: reason.slice(0, 200) }, 'withdrew');
    round.wake();
  }

  clientGone(address: string): void {
    const round = this.active;
    if (round && round.participants.has(address) && !round.uploaded.has(address)) {
      round.awaySince.set(address, Date.now());
      setTimeout(() => round.wake(), this.deps.options.reconnectGraceMs + 10).unref();
    }
  }

  /**
   * Checks an upload's declaration before any byte is taken: the round, the session's address,
   * the base model, the encoding, the exact frame size and the signature.
   */
  checkUploadBegin(address: string, begin: UploadBegin): void {
    checkUploadBegin(this.active, address, begin, this.deps.options.chainId);
  }

  /** Validates a complete frame and, if it passes, makes it count (durably) in the round. */
  acceptUpload(address: string, begin: UploadBegin, frame: Uint8Array): Promise<UploadAccepted> {
    return this.serialize(async () => {
      const accepted = await admitUpload(
        {
          db: this.deps.db,
          blobs: this.deps.blobs,
          clipping: this.clipping,
          chainId: this.deps.options.chainId,
        },
        this.active,
        address,
        begin,
        frame,
      );
      const round = this.active as ActiveRound;
      this.deps.metrics.updatesAccepted.inc();
      this.deps.log.info(
        { round: round.id, address, norm: accepted.norm, bytes: frame.byteLength },
        'update accepted',
      );
      this.publishStatus(round);
      round.wake();
      return accepted;
    });
  }

  // ------------------------------------------------------------------------------ the loop

  private async run(resumed: RecoveredRound | null): Promise<void> {
    if (resumed) {
      this.roundsRun++;
      await this.finishRound(resumed.round, resumed.train);
    }
    while (!this.stopping) {
      const { maxRounds, roundIntervalMs } = this.deps.options;
      if (maxRounds > 0 && this.roundsRun >= maxRounds) break;
      await this.runRound();
      this.roundsRun++;
      if (!this.stopping) await this.sleep(roundIntervalMs);
    }
  }

  /** Picks up a round the last process left unfinished (rounds/recovery.ts). */
  private recover(): Promise<RecoveredRound | null> {
    const { db, blobs, chain, hub, log, options } = this.deps;
    return recoverRound({
      db,
      blobs,
      policyAt: (version) => this.chainRead('policy version', () => chain.policyAt(version)),
      log,
      clipping: this.clipping,
      strategyFor: (name) => this.strategyFor(name),
      loadBase: (hash, adapter) => this.loadBase(hash, adapter),
      noiseSource: (roundId) => this.noiseSource(roundId),
      isConnected: (address) => hub.isConnected(address),
      activate: (round) => {
        this.active = round;
      },
      invite: (round, address) => hub.invite(address, round.task, options.inviteTimeoutMs),
    });
  }

  private async runRound(): Promise<void> {
    const { db, chain, hub, options, log } = this.deps;
    // waiting: until enough eligible clients are connected.
    let policyRead = await this.chainRead('policy', () => chain.policy());
    const nextId = db.lastRoundId() + 1;
    while (!this.stopping && hub.connected().length < policyRead.policy.minClients) {
      this.setWaiting(nextId, policyRead.policy.minClients);
      await this.sleep(1000);
      policyRead = await this.chainRead('policy', () => chain.policy());
    }
    this.waitingStatus = null;
    if (this.stopping) return;

    // configuring: the policy and base model in force now, the sample, the invitations.
    const { version: policyVersion, policy } = policyRead;
    const active = await this.chainRead('active model', () => chain.activeModel());
    const baseHash = active.contentHash.replace(/^0x/, '');
    const strategy = this.strategyFor(options.strategy ?? policy.aggregationRule);
    const fit = strategy.configureRound({ roundId: nextId, policy });
    // Adapter rounds draw a fresh adapter from the round's seed: its factors are the update.
    const adapter = adapterTaskFor(policy, roundSeed(options.seed, nextId));
    let base: BaseModel;
    try {
      base = await this.loadBase(baseHash, adapter);
    } catch (error) {
      const row = db.createRound({
        id: nextId,
        baseModel: baseHash,
        policyVersion,
        strategy: strategy.name,
        task: null,
        minClients: policy.minClients,
        deadlineMs: Date.now(),
      });
      this.fail(row.id, `the active model ${baseHash} cannot be loaded: ${message(error)}`, 0);
      return;
    }
    // The sample fixes the round's privacy: m = the clients sampled, q = their share of the
    // eligible ones (and σ_b, sized from m). Computed once, here, and stored with the round.
    const eligible = hub.connected();
    const sample = sampleClients(eligible, policy, roundSeed(options.seed, nextId));
    const privacy = configureRoundPrivacy(
      policy,
      this.clipping.forRound(policy, Math.max(1, sample.length)),
      sample.length,
      eligible.length,
    );
    if (policy.clipTargetQuantile > 0 && policy.secureAggregation) {
      log.warn(
        { round: nextId },
        'adaptive clipping is not available with secure aggregation; the policy clip norm is fixed',
      );
    }
    const task = buildRoundTask({
      roundId: nextId,
      strategy: strategy.name,
      fit,
      base,
      policy,
      policyVersion,
      clipNorm: privacy.clipNorm,
      options,
    });
    const row = db.createRound({
      id: nextId,
      baseModel: baseHash,
      policyVersion,
      strategy: strategy.name,
      task,
      minClients: policy.minClients,
      deadlineMs: task.deadline,
    });
    if (row.id !== nextId) throw new Error(`round id ${row.id} is not the expected ${nextId}`);
    db.setRoundState(row.id, 'configuring');
    db.saveRoundPrivacy(row.id, privacy);
    // Secure aggregation hides single updates: a rule that needs them cannot run (secagg/).
    const secureRefusal = policy.secureAggregation ? secureAggregationRefusal(strategy) : null;
    if (secureRefusal !== null) return this.fail(row.id, secureRefusal, 0);
    const adapterRefusal = adapter ? adapterRoundRefusal(strategy) : null;
    if (adapterRefusal !== null) return this.fail(row.id, adapterRefusal, 0);
    let round: ActiveRound;
    try {
      round = newActiveRound({
        id: row.id,
        state: 'configuring',
        task,
        policy,
        base,
        strategy,
        privacy,
        noise: this.noiseSource(row.id),
      });
    } catch (error) {
      if (!(error instanceof RoundConfigError)) throw error;
      this.fail(row.id, error.message, 0);
      return;
    }
    this.active = round;
    this.publishStatus(round);

    for (const address of sample) db.inviteParticipant(round.id, address);
    // Training begins as the invitations go out, and each acceptance counts as it arrives: a
    // fast client may upload before a slow one has even answered its invitation.
    await this.transition(round, 'training');
    await Promise.all(
      sample.map(
        (address) =>
          new Promise<void>((resolve) =>
            hub.invite(address, task, options.inviteTimeoutMs, (reply) => {
              const accepted = reply?.accept === true;
              db.setParticipantStatus(round.id, address, accepted ? 'accepted' : 'declined');
              if (accepted) round.participants.add(address);
              else {
                const reason = reply?.reason ?? 'no answer';
                log.info({ round: round.id, address, reason }, 'declined');
              }
              resolve();
            }),
          ),
      ),
    );
    if (round.participants.size < policy.minClients) {
      this.fail(
        round.id,
        `only ${round.participants.size} of ${sample.length} invited clients accepted; the policy needs ${policy.minClients}`,
        0,
      );
      return;
    }
    await this.finishRound(round, true);
  }

  /** training (optionally) → aggregating → evaluating → published | failed. */
  private async finishRound(round: ActiveRound, train: boolean): Promise<void> {
    try {
      if (train) {
        if (round.task.secureAggregation) await this.runSecure(round);
        else await this.waitForUploads(round);
        if (this.stopping) return;
        await this.transition(round, 'aggregating');
      }
      await this.aggregateAndPublish(round);
    } catch (error) {
      this.deps.log.error({ round: round.id, err: message(error) }, 'round failed');
      this.fail(round.id, message(error), round.uploaded.size);
    } finally {
      if (!this.stopping || this.isFinished(round.id)) {
        this.deps.metrics.roundDuration.observe(
          { outcome: this.deps.db.getRound(round.id)?.state ?? 'failed' },
          (Date.now() - round.startedMs) / 1000,
        );
        this.active = null;
      }
    }
  }

  /** Secure rounds: the SecAgg+ stages stand in for plain uploads (coordinator/src/secagg). */
  private async runSecure(round: ActiveRound): Promise<void> {
    const abort = new AbortController();
    // stop() wakes the round; a secure round cannot pause (its masks live in memory), so it ends.
    round.wake = () => {
      if (this.stopping) abort.abort();
    };
    if (this.stopping) abort.abort();
    round.secure = await runSecureRound({
      roundId: round.id,
      baseModel: round.base.hash,
      chainId: this.deps.options.chainId,
      policy: round.policy,
      task: { deadline: round.task.deadline, secureAggregation: round.task.secureAggregation! },
      participants: [...round.participants],
      transport: this.deps.hub.secAgg,
      stageTimeoutMs: this.deps.options.inviteTimeoutMs,
      signal: abort.signal,
      log: this.deps.log,
    });
    for (const c of round.secure.contributors) round.uploaded.add(c.address);
  }

  private async waitForUploads(round: ActiveRound): Promise<void> {
    await untilUploadsSettle(round, this.deps.options.reconnectGraceMs, () => this.stopping);
    // Serialize with in-flight acceptances: nothing is accepted after this point.
    await this.serialize(async () => undefined);
  }

  private async aggregateAndPublish(round: ActiveRound): Promise<void> {
    const { db, blobs, models, evaluator, options, chain, hub, log } = this.deps;
    const dropped = [...round.participants].filter((a) => !round.uploaded.has(a));
    for (const address of dropped) db.setParticipantStatus(round.id, address, 'dropped');
    // A secure round stores no submissions: its contributors come from the SecAgg+ sum.
    const submissions: { address: string; commitment: string }[] =
      round.secure?.contributors ?? db.submissions(round.id);
    if (submissions.length < round.policy.minClients) {
      this.fail(
        round.id,
        `only ${submissions.length} updates arrived; the policy needs ${round.policy.minClients}`,
        submissions.length,
      );
      return;
    }
    const delta = round.secure ? round.secure.delta : round.aggregator.result();
    if (delta === null) {
      this.fail(
        round.id,
        `${round.strategy.name} produced no viable aggregate`,
        submissions.length,
      );
      return;
    }
    // The noised aggregate exists from here on: compose it into the privacy account.
    const privacy = this.privacy.account(round.id, round.privacy, round.policy.delta);
    const nextClip = this.clipping.finishRound(
      round.id,
      round.policy,
      round.privacy,
      round.privacy.expectedClients,
      this.noiseSource(round.id),
    );
    if (nextClip !== null) {
      log.info(
        { round: round.id, clipNorm: round.privacy.clipNorm, nextClip },
        'clip norm adapted',
      );
    }
    log.info(
      {
        round: round.id,
        epsilon: privacy.epsilon,
        delta: privacy.delta,
        noiseMultiplier: privacy.noiseMultiplier,
        sampleRate: privacy.sampleRate,
      },
      'privacy accounted',
    );
    const startFlat = flatten(round.base.start, round.base.layout);
    const nextFlat = round.strategy.applyUpdate(startFlat, delta, round.id);
    const next = unflatten(nextFlat, round.base.layout);
    // Adapter rounds: the averaged adapter folded into the base is the candidate.
    const folded = round.base.adapter
      ? foldAdapter(round.base.tensors, round.base.adapter, next)
      : null;
    const tensors = folded ? folded.merged : next;

    await this.transition(round, 'evaluating');
    const parentScore = evaluator.evaluate(
      round.base.manifest,
      round.base.tensors,
      round.base.hash,
    );
    const score = evaluator.evaluate(round.base.manifest, tensors);
    log.info(
      { round: round.id, parentBpc: parentScore.bitsPerChar, bpc: score.bitsPerChar },
      'candidate evaluated',
    );
    if (score.bitsPerChar > parentScore.bitsPerChar + options.publishMarginBpc) {
      this.fail(
        round.id,
        `the candidate scores ${score.bitsPerChar.toFixed(4)} bits/char, worse than its parent's ${parentScore.bitsPerChar.toFixed(4)} by more than ${options.publishMarginBpc}`,
        submissions.length,
      );
      return;
    }
    const candidate = await publishRound(
      {
        db,
        blobs,
        models,
        chain,
        log,
        publicUrl: options.publicUrl,
        proposeActivation: options.proposeActivation,
      },
      {
        roundId: round.id,
        base: round.base,
        strategy: round.strategy,
        tensors,
        adapter: folded?.adapter ?? null,
        submissions,
        score,
        epsilon: privacy.epsilon,
        delta: privacy.delta,
      },
    );
    round.state = 'published';
    this.publishStatus(round);
    const result: RoundResult = {
      roundId: round.id,
      outcome: 'published',
      accepted: submissions.length,
      candidate,
    };
    this.deps.metrics.roundsTotal.inc({ outcome: 'published' });
    hub.broadcastResult(result);
    this.emit('result', result);
  }

  // ------------------------------------------------------------------------------ helpers

  private loadBase(hash: string, adapter: AdapterTask | null): Promise<BaseModel> {
    return loadBaseModel(this.deps.models, hash, adapter);
  }

  private strategyFor(name: string): Strategy {
    let strategy = this.strategies.get(name);
    if (!strategy) {
      strategy = createStrategy(name);
      const saved = loadStrategyState(this.deps.db, this.deps.blobs, strategy.name);
      if (saved) strategy.importState(saved);
      this.strategies.set(name, strategy);
    }
    return strategy;
  }

  private async transition(round: ActiveRound, state: RoundState): Promise<void> {
    await this.serialize(async () => {
      // A resumed round may already be in this state.
      if (round.state !== state) this.deps.db.setRoundState(round.id, state);
      round.state = state;
      this.publishStatus(round);
    });
  }

  private fail(roundId: number, reason: string, accepted: number): void {
    const { db, hub, log, metrics } = this.deps;
    if (!this.isFinished(roundId)) db.setRoundState(roundId, 'failed', { failureReason: reason });
    if (this.active?.id === roundId) {
      this.active.state = 'failed';
      this.publishStatus(this.active);
    }
    log.warn({ round: roundId, reason }, 'round failed');
    metrics.roundsTotal.inc({ outcome: 'failed' });
    const result: RoundResult = {
      roundId,
      outcome: 'failed',
      reason: reason.slice(0, 1000),
      accepted,
    };
    hub.broadcastResult(result);
    this.emit('result', result);
  }

  private isFinished(roundId: number): boolean {
    const state = this.deps.db.getRound(roundId)?.state;
    return state !== undefined && isTerminal(state);
  }

  private statusOf(round: ActiveRound): RoundStatus {
    return {
      roundId: round.id,
      state: round.state,
      baseModel: round.base.hash,
      invited: round.participants.size,
      accepted: round.uploaded.size,
      minClients: round.policy.minClients,
      deadline: round.task.deadline,
    };
  }

  private setWaiting(roundId: number, minClients: number): void {
    const previous = this.waitingStatus;
    if (previous?.roundId === roundId && previous.minClients === minClients) return;
    this.waitingStatus = {
      roundId,
      state: 'waiting',
      baseModel: previous?.baseModel ?? '0'.repeat(64),
      invited: 0,
      accepted: 0,
      minClients,
      deadline: 0,
    };
    this.deps.metrics.setRoundState('waiting');
    this.deps.hub.broadcastStatus(this.waitingStatus);
    this.emit('status', this.waitingStatus);
  }

  private publishStatus(round: ActiveRound): void {
    const status = this.statusOf(round);
    this.deps.metrics.setRoundState(round.state);
    this.emit('status', status);
    const key = `${round.id}:${round.state}`;
    if (key !== this.broadcastKey) {
      // A new state goes out at once.
      if (this.statusTimer) clearTimeout(this.statusTimer);
      this.statusTimer = null;
      this.broadcastKey = key;
      this.deps.hub.broadcastStatus(status);
      return;
    }
    // Same state, new counts (an upload accepted): coalesced to one broadcast per 5 s.
    // Broadcasting every acceptance to every client is O(N²) messages a round — a million at
    // 1,000 clients, enough to stall the event loop past the clients' heartbeat timeout.
    if (this.statusTimer) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = null;
      const current = this.active;
      if (current && `${current.id}:${current.state}` === this.broadcastKey) {
        this.deps.hub.broadcastStatus(this.statusOf(current));
      }
    }, STATUS_COALESCE_MS);
    this.statusTimer.unref();
  }

  /** The round's DP noise source: seeded only when configured (demos, tests); else a CSPRNG. */
  private noiseSource(roundId: number): RandomSource | undefined {
    const seed = this.deps.options.noiseSeed;
    return seed === undefined ? undefined : seededRandomSource(seed + roundId);
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.serial.then(work);
    this.serial = next.catch(() => undefined);
    return next;
  }

  /** A chain read the loop needs, retried through an RPC outage (rounds/chain-retry.ts). */
  private chainRead<T>(what: string, read: () => Promise<T>): Promise<T> {
    return retryChain(what, read, {
      log: this.deps.log,
      limitMs: this.deps.options.chainRetryLimitMs ?? DEFAULT_CHAIN_RETRY_LIMIT_MS,
      sleep: (ms) => this.sleep(ms),
      stopping: () => this.stopping,
      onOutage: (error) => {
        this.loopHealth =
          error === null ? { state: 'running' } : { state: 'retrying', error: message(error) };
      },
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.nudge = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
