import Database from 'better-sqlite3';

import type { RewardEntry } from '@commons/chain';
import type { UpdateEncoding } from '@commons/shared/engine';
import { ROUND_STATES, type RoundState } from '@commons/shared/protocol';

import { assertSha256Hex, StoreError } from './errors.ts';

/**
 * The coordinator's durable state in one SQLite file: rounds and their lifecycle, who was
 * invited, which updates were accepted (in order), published models with their lineage,
 * reward distributions and each strategy's server-side state. Update bytes and checkpoints
 * live beside it on disk (blobs.ts, models.ts); rows name them by sha256.
 *
 * One process owns the file. Every method is synchronous (better-sqlite3): a call either
 * happened, committed, or threw, which is what the round engine's crash recovery needs.
 */

export type { RoundState };
export type ParticipantStatus = 'invited' | 'declined' | 'accepted' | 'dropped';

const TERMINAL_STATES: ReadonlySet<RoundState> = new Set(['published', 'failed']);

/** The one successor of each state on the way to publication; terminal states have none. */
const NEXT_STATE: Readonly<Record<RoundState, RoundState | null>> = {
  waiting: 'configuring',
  configuring: 'training',
  training: 'aggregating',
  aggregating: 'evaluating',
  evaluating: 'published',
  published: null,
  failed: null,
};

/** A round moves one step forward, or from any non-terminal state to failed; nothing else. */
export function canTransition(from: RoundState, to: RoundState): boolean {
  if (TERMINAL_STATES.has(from)) return false;
  return to === 'failed' || NEXT_STATE[from] === to;
}

export function isTerminal(state: RoundState): boolean {
  return TERMINAL_STATES.has(state);
}

export interface Round {
  id: number;
  state: RoundState;
  /** Checkpoint hash the round trains from. */
  baseModel: string;
  policyVersion: number;
  strategy: string;
  /** What clients are told to do (the engine's RoundTask); stored as JSON. */
  task: unknown;
  minClients: number;
  deadlineMs: number;
  createdMs: number;
  updatedMs: number;
  failureReason: string | null;
  candidateHash: string | null;
}

export interface NewRound {
  /** Defaults to the next id; an explicit id lets the engine put it in the task first. */
  id?: number;
  baseModel: string;
  policyVersion: number;
  strategy: string;
  task: unknown;
  minClients: number;
  deadlineMs: number;
}

export interface RoundStateChange {
  failureReason?: string;
  candidateHash?: string;
}

export interface Participant {
  roundId: number;
  address: string;
  status: ParticipantStatus;
  invitedMs: number;
  updatedMs: number;
}

export interface NewSubmission {
  roundId: number;
  address: string;
  /** sha256 of the update frame, which is the name of its blob. */
  sha256: string;
  numExamples: number;
  byteLength: number;
  encoding: UpdateEncoding;
  /** L2 norm of the update; null when the server cannot see it (secure aggregation). */
  norm: number | null;
  /** The client's signed commitment (EIP-712 signature) binding the upload to the round. */
  commitment: string;
}

export interface Submission extends NewSubmission {
  /** 1, 2, 3... within the round: the order in which updates were accepted. */
  seq: number;
  acceptedMs: number;
}

export interface ModelRecord {
  hash: string;
  /** Null for the genesis model. */
  parentHash: string | null;
  /**
   * Adapter rounds: the LoRA adapter that, folded into the parent, gives this model (published
   * in the same store). Null for a full model (genesis, or a full-delta round).
   */
  adapterHash: string | null;
  /** The round that produced it; null for the genesis model. */
  roundId: number | null;
  valLoss: number | null;
  valBpc: number | null;
  /** Privacy spent by the round that produced it; null when it ran without DP. */
  epsilon: number | null;
  delta: number | null;
  registerTx: string | null;
  /** Governor proposal id (a uint256, kept as decimal text). */
  proposalId: string | null;
  publishedMs: number;
}

export type NewModel = Omit<
  ModelRecord,
  'adapterHash' | 'registerTx' | 'proposalId' | 'publishedMs'
> &
  Partial<Pick<ModelRecord, 'adapterHash' | 'registerTx' | 'proposalId'>>;

export type { RewardEntry };

export interface RewardsRecord {
  roundId: number;
  /** Merkle root of the claims. */
  root: string;
  total: bigint;
  entries: RewardEntry[];
  postTx: string | null;
}

export type NewRewards = Omit<RewardsRecord, 'postTx'> & { postTx?: string | null };

export interface StrategyState {
  strategy: string;
  /** The last round this state reflects. */
  roundId: number;
  /** Its JSON; tensors it has are blobs named inside (store/strategy-state.ts). */
  state: unknown;
  updatedMs: number;
}

/**
 * A round's privacy, computed once when it is configured and kept with it (Flower's DP wrappers
 * take the same parameters): a restored round adds exactly the noise it announced.
 */
export interface RoundPrivacy {
  /** C: the clip norm clients clip to and uploads are checked against. */
  clipNorm: number;
  /** z_Δ: the update noise multiplier (the policy's z, less what the clip bits spend). */
  noiseMultiplier: number;
  /** z: the policy's noise multiplier, which bits and update together spend (accounted). */
  accountedNoiseMultiplier: number;
  /** σ_b: the noise on the clip-bit count (0 when not adaptive or without DP). */
  bitNoiseStddev: number;
  /** m: the clients the round sampled (≥ 1), adaptive clipping's fixed denominator. */
  expectedClients: number;
  /** q: the fraction of eligible clients sampled. */
  sampleRate: number;
  /** Whether C adapts from the clients' clip bits. */
  adaptive: boolean;
  /** Secure rounds: clients add the noise before masking; the server adds none. */
  secureAggregation: boolean;
}

/** Adaptive clipping's bits for one round: how many updates fitted under C, of how many. */
export interface ClipBits {
  fitted: number;
  total: number;
}

export interface DatabaseOptions {
  /** Clock for the *_ms columns; tests pass a fixed one. */
  now?: () => number;
  /** How long a statement waits for another connection's lock before failing. */
  busyTimeoutMs?: number;
}

/**
 * Migrations, in order: MIGRATIONS[i] takes PRAGMA user_version from i to i + 1. Append only;
 * a shipped migration is never edited. Tables are STRICT so a wrong type is an error, not a
 * silent conversion. Exported so tests can build a file as an older coordinator left it.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id >= 1),
    state TEXT NOT NULL CHECK (state IN (${ROUND_STATES.map((s) => `'${s}'`).join(', ')})),
    base_model TEXT NOT NULL,
    policy_version INTEGER NOT NULL CHECK (policy_version >= 0),
    strategy TEXT NOT NULL,
    task_json TEXT NOT NULL,
    min_clients INTEGER NOT NULL CHECK (min_clients >= 0),
    deadline_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    failure_reason TEXT,
    candidate_hash TEXT
  ) STRICT;
  CREATE INDEX rounds_open ON rounds (id) WHERE state NOT IN ('published', 'failed');

  -- Addresses compare case-insensitively: a checksummed and a lowercase spelling of one
  -- account are one participant, so neither can sneak in a second update.
  CREATE TABLE participants (
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    address TEXT NOT NULL COLLATE NOCASE,
    status TEXT NOT NULL CHECK (status IN ('invited', 'declined', 'accepted', 'dropped')),
    invited_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (round_id, address)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE submissions (
    round_id INTEGER NOT NULL,
    address TEXT NOT NULL COLLATE NOCASE,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    sha256 TEXT NOT NULL,
    num_examples INTEGER NOT NULL CHECK (num_examples >= 0),
    byte_length INTEGER NOT NULL CHECK (byte_length >= 0),
    encoding TEXT NOT NULL CHECK (encoding IN ('fp32', 'fp16', 'int8')),
    norm REAL,
    commitment TEXT NOT NULL,
    accepted_ms INTEGER NOT NULL,
    PRIMARY KEY (round_id, address),
    UNIQUE (round_id, seq),
    FOREIGN KEY (round_id, address) REFERENCES participants (round_id, address)
  ) STRICT;

  -- No foreign key on parent_hash: the genesis model's parent is outside this database.
  CREATE TABLE models (
    hash TEXT PRIMARY KEY,
    parent_hash TEXT,
    round_id INTEGER REFERENCES rounds (id),
    val_loss REAL,
    val_bpc REAL,
    epsilon REAL,
    delta REAL,
    register_tx TEXT,
    proposal_id TEXT,
    published_ms INTEGER NOT NULL
  ) STRICT;

  -- Token amounts are uint256: decimal text, never a float.
  CREATE TABLE rewards (
    round_id INTEGER PRIMARY KEY REFERENCES rounds (id),
    root TEXT NOT NULL,
    total TEXT NOT NULL,
    entries_json TEXT NOT NULL,
    post_tx TEXT,
    created_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE strategy_state (
    strategy TEXT PRIMARY KEY,
    round_id INTEGER NOT NULL,
    state_json TEXT NOT NULL,
    tensors_blob TEXT,
    updated_ms INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;
  `,
  // 2: strategy_state.tensors_blob was never written (a strategy's tensors are blobs named in
  // its state JSON, store/strategy-state.ts); dropped so no reader looks for them there.
  `
  ALTER TABLE strategy_state DROP COLUMN tensors_blob;
  `,
  // 3: a round's privacy parameters, fixed when it is configured, and adaptive clipping's bit
  // counts, typed (they were strings in meta: privacy.sampleRate.<round>, privacy.clipBits.<round>
  // as "sum,count"; recovery still reads those for a round begun before this version).
  `
  CREATE TABLE round_privacy (
    round_id INTEGER PRIMARY KEY REFERENCES rounds (id),
    clip_norm REAL NOT NULL CHECK (clip_norm > 0),
    noise_multiplier REAL NOT NULL CHECK (noise_multiplier >= 0),
    accounted_noise_multiplier REAL NOT NULL CHECK (accounted_noise_multiplier >= 0),
    bit_noise_stddev REAL NOT NULL CHECK (bit_noise_stddev >= 0),
    expected_clients INTEGER NOT NULL CHECK (expected_clients >= 1),
    sample_rate REAL NOT NULL CHECK (sample_rate >= 0 AND sample_rate <= 1),
    adaptive INTEGER NOT NULL CHECK (adaptive IN (0, 1)),
    secure_aggregation INTEGER NOT NULL CHECK (secure_aggregation IN (0, 1))
  ) STRICT;

  CREATE TABLE clip_bits (
    round_id INTEGER PRIMARY KEY,
    fitted INTEGER NOT NULL CHECK (fitted >= 0),
    total INTEGER NOT NULL CHECK (total >= fitted)
  ) STRICT;
  `,
  // Adapter rounds: a version is its parent plus a LoRA adapter, published beside it.
  `
  ALTER TABLE models ADD COLUMN adapter_hash TEXT;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

interface RoundRow {
  id: number;
  state: RoundState;
  base_model: string;
  policy_version: number;
  strategy: string;
  task_json: string;
  min_clients: number;
  deadline_ms: number;
  created_ms: number;
  updated_ms: number;
  failure_reason: string | null;
  candidate_hash: string | null;
}

interface ParticipantRow {
  round_id: number;
  address: string;
  status: ParticipantStatus;
  invited_ms: number;
  updated_ms: number;
}

interface SubmissionRow {
  round_id: number;
  address: string;
  seq: number;
  sha256: string;
  num_examples: number;
  byte_length: number;
  encoding: UpdateEncoding;
  norm: number | null;
  commitment: string;
  accepted_ms: number;
}

interface ModelRow {
  hash: string;
  parent_hash: string | null;
  adapter_hash: string | null;
  round_id: number | null;
  val_loss: number | null;
  val_bpc: number | null;
  epsilon: number | null;
  delta: number | null;
  register_tx: string | null;
  proposal_id: string | null;
  published_ms: number;
}

interface RewardsRow {
  round_id: number;
  root: string;
  total: string;
  entries_json: string;
  post_tx: string | null;
}

interface StrategyStateRow {
  strategy: string;
  round_id: number;
  state_json: string;
  updated_ms: number;
}

interface RoundPrivacyRow {
  round_id: number;
  clip_norm: number;
  noise_multiplier: number;
  accounted_noise_multiplier: number;
  bit_noise_stddev: number;
  expected_clients: number;
  sample_rate: number;
  adaptive: 0 | 1;
  secure_aggregation: 0 | 1;
}

type Params = Record<string, unknown>;

/** Every statement the store runs, prepared once when the database opens. */
function prepareStatements(db: Database.Database) {
  const one = <Row>(sql: string) => db.prepare<Params, Row>(sql);
  return {
    insertRound: one<never>(
      `INSERT INTO rounds (id, state, base_model, policy_version, strategy, task_json,
         min_clients, deadline_ms, created_ms, updated_ms)
       VALUES (@id, 'waiting', @baseModel, @policyVersion, @strategy, @taskJson,
         @minClients, @deadlineMs, @now, @now)`,
    ),
    getRound: one<RoundRow>(`SELECT * FROM rounds WHERE id = @id`),
    currentRound: one<RoundRow>(
      `SELECT * FROM rounds WHERE state NOT IN ('published', 'failed') ORDER BY id DESC LIMIT 1`,
    ),
    lastRoundId: one<{ id: number | null }>(`SELECT MAX(id) AS id FROM rounds`),
    updateRoundState: one<never>(
      `UPDATE rounds SET state = @to, updated_ms = @now,
         failure_reason = COALESCE(@failureReason, failure_reason),
         candidate_hash = COALESCE(@candidateHash, candidate_hash)
       WHERE id = @id AND state = @from`,
    ),
    insertParticipant: one<never>(
      `INSERT INTO participants (round_id, address, status, invited_ms, updated_ms)
       VALUES (@roundId, @address, 'invited', @now, @now)`,
    ),
    getParticipant: one<ParticipantRow>(
      `SELECT * FROM participants WHERE round_id = @roundId AND address = @address`,
    ),
    updateParticipantStatus: one<never>(
      `UPDATE participants SET status = @status, updated_ms = @now
       WHERE round_id = @roundId AND address = @address`,
    ),
    listParticipants: one<ParticipantRow>(
      `SELECT * FROM participants WHERE round_id = @roundId ORDER BY invited_ms, address`,
    ),
    nextSeq: one<{ seq: number }>(
      `SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM submissions WHERE round_id = @roundId`,
    ),
    insertSubmission: one<never>(
      `INSERT INTO submissions (round_id, address, seq, sha256, num_examples, byte_length,
         encoding, norm, commitment, accepted_ms)
       VALUES (@roundId, @address, @seq, @sha256, @numExamples, @byteLength,
         @encoding, @norm, @commitment, @now)`,
    ),
    getSubmission: one<SubmissionRow>(
      `SELECT * FROM submissions WHERE round_id = @roundId AND address = @address`,
    ),
    listSubmissions: one<SubmissionRow>(
      `SELECT * FROM submissions WHERE round_id = @roundId ORDER BY seq`,
    ),
    insertModel: one<never>(
      `INSERT INTO models (hash, parent_hash, adapter_hash, round_id, val_loss, val_bpc, epsilon,
         delta, register_tx, proposal_id, published_ms)
       VALUES (@hash, @parentHash, @adapterHash, @roundId, @valLoss, @valBpc, @epsilon,
         @delta, @registerTx, @proposalId, @now)`,
    ),
    updateModelChain: one<never>(
      `UPDATE models SET register_tx = COALESCE(@registerTx, register_tx),
         proposal_id = COALESCE(@proposalId, proposal_id)
       WHERE hash = @hash`,
    ),
    getModel: one<ModelRow>(`SELECT * FROM models WHERE hash = @hash`),
    listModels: one<ModelRow>(`SELECT * FROM models ORDER BY published_ms, rowid`),
    insertRewards: one<never>(
      `INSERT INTO rewards (round_id, root, total, entries_json, post_tx, created_ms)
       VALUES (@roundId, @root, @total, @entriesJson, @postTx, @now)`,
    ),
    updateRewardsPost: one<never>(`UPDATE rewards SET post_tx = @postTx WHERE round_id = @roundId`),
    getRewards: one<RewardsRow>(`SELECT * FROM rewards WHERE round_id = @roundId`),
    upsertStrategyState: one<never>(
      `INSERT INTO strategy_state (strategy, round_id, state_json, updated_ms)
       VALUES (@strategy, @roundId, @stateJson, @now)
       ON CONFLICT (strategy) DO UPDATE SET round_id = excluded.round_id,
         state_json = excluded.state_json, updated_ms = excluded.updated_ms`,
    ),
    getStrategyState: one<StrategyStateRow>(
      `SELECT * FROM strategy_state WHERE strategy = @strategy`,
    ),
    insertRoundPrivacy: one<never>(
      `INSERT INTO round_privacy (round_id, clip_norm, noise_multiplier, accounted_noise_multiplier,
         bit_noise_stddev, expected_clients, sample_rate, adaptive, secure_aggregation)
       VALUES (@roundId, @clipNorm, @noiseMultiplier, @accountedNoiseMultiplier,
         @bitNoiseStddev, @expectedClients, @sampleRate, @adaptive, @secureAggregation)`,
    ),
    getRoundPrivacy: one<RoundPrivacyRow>(`SELECT * FROM round_privacy WHERE round_id = @roundId`),
    addClipBit: one<never>(
      `INSERT INTO clip_bits (round_id, fitted, total) VALUES (@roundId, @fitted, 1)
       ON CONFLICT (round_id) DO UPDATE SET fitted = fitted + excluded.fitted, total = total + 1`,
    ),
    getClipBits: one<ClipBits>(`SELECT fitted, total FROM clip_bits WHERE round_id = @roundId`),
    getMeta: one<{ value: string }>(`SELECT value FROM meta WHERE key = @key`),
    setMeta: one<never>(
      `INSERT INTO meta (key, value) VALUES (@key, @value)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ),
  };
}

export class CoordinatorDatabase {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly sql: ReturnType<typeof prepareStatements>;

  private constructor(file: string, db: Database.Database, now: () => number) {
    this.file = file;
    this.db = db;
    this.now = now;
    this.sql = prepareStatements(db);
  }

  /** Opens (creating if needed) and migrates the database in `file`. */
  static open(file: string, opts: DatabaseOptions = {}): CoordinatorDatabase {
    const db = new Database(file);
    try {
      configure(db, opts.busyTimeoutMs ?? 5000);
      migrate(db, file);
      return new CoordinatorDatabase(file, db, opts.now ?? Date.now);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }

  // ---- rounds --------------------------------------------------------------------------------

  /** Creates a round in state 'waiting'. */
  createRound(input: NewRound): Round {
    assertSha256Hex(input.baseModel, 'base model');
    return this.write(() => {
      const last = this.lastRoundId();
      const id = input.id ?? last + 1;
      if (!Number.isSafeInteger(id) || id <= last) {
        // Round ids only grow: a reused id would let an old upload count in a new round.
        throw new StoreError('DUPLICATE', `round id ${id} is not above the last round id ${last}`);
      }
      this.sql.insertRound.run({
        id,
        baseModel: input.baseModel,
        policyVersion: input.policyVersion,
        strategy: input.strategy,
        taskJson: toJson(input.task, 'round task'),
        minClients: input.minClients,
        deadlineMs: input.deadlineMs,
        now: this.now(),
      });
      return this.requireRound(id);
    });
  }

  getRound(id: number): Round | undefined {
    const row = this.sql.getRound.get({ id });
    return row === undefined ? undefined : toRound(row);
  }

  /** The latest round that is neither published nor failed, if any. */
  currentRound(): Round | undefined {
    const row = this.sql.currentRound.get({});
    return row === undefined ? undefined : toRound(row);
  }

  /** The highest round id ever created, 0 when there is none. */
  lastRoundId(): number {
    return this.sql.lastRoundId.get({})?.id ?? 0;
  }

  /**
   * Moves a round to `to`, refusing anything but the next state on the way to publication
   * or a move to 'failed' from a non-terminal state (ILLEGAL_TRANSITION names both states).
   * `failureReason` and `candidateHash` are recorded when given.
   */
  setRoundState(id: number, to: RoundState, change: RoundStateChange = {}): Round {
    if (change.candidateHash !== undefined) assertSha256Hex(change.candidateHash, 'candidate');
    return this.write(() => {
      const from = this.requireRound(id).state;
      if (!canTransition(from, to)) {
        throw new StoreError(
          'ILLEGAL_TRANSITION',
          `round ${id}: illegal transition ${from} → ${to}`,
        );
      }
      this.sql.updateRoundState.run({
        id,
        from,
        to,
        failureReason: change.failureReason ?? null,
        candidateHash: change.candidateHash ?? null,
        now: this.now(),
      });
      return this.requireRound(id);
    });
  }

  // ---- participants --------------------------------------------------------------------------

  /** Records that `address` was invited to round `roundId`; a second invite is DUPLICATE. */
  inviteParticipant(roundId: number, address: string): Participant {
    return this.write(() => {
      this.requireRound(roundId);
      if (this.sql.getParticipant.get({ roundId, address }) !== undefined) {
        throw new StoreError('DUPLICATE', `${address} is already invited to round ${roundId}`);
      }
      this.sql.insertParticipant.run({ roundId, address, now: this.now() });
      return this.requireParticipant(roundId, address);
    });
  }

  setParticipantStatus(roundId: number, address: string, status: ParticipantStatus): Participant {
    return this.write(() => {
      const { changes } = this.sql.updateParticipantStatus.run({
        roundId,
        address,
        status,
        now: this.now(),
      });
      if (changes === 0) {
        throw new StoreError('NOT_FOUND', `${address} was not invited to round ${roundId}`);
      }
      return this.requireParticipant(roundId, address);
    });
  }

  participants(roundId: number): Participant[] {
    return this.sql.listParticipants.all({ roundId }).map(toParticipant);
  }

  // ---- submissions ---------------------------------------------------------------------------

  /**
   * Records an accepted update, in one transaction: the round must be training, the address
   * invited to it, and without an update yet (DUPLICATE otherwise; never a second row). The
   * caller stores the frame first (BlobStore.put resolves only once it is durable), so a
   * committed row always names bytes that are on disk; only then may it tell the client
   * "accepted". `fold`, when given, runs inside the transaction after the row is written (the
   * engine folds the update into its aggregate there): if it throws, nothing is recorded.
   */
  acceptSubmission(input: NewSubmission, fold?: () => void): Submission {
    assertSha256Hex(input.sha256, 'update');
    const { roundId, address } = input;
    return this.write(() => {
      const round = this.requireRound(roundId);
      if (round.state !== 'training') {
        throw new StoreError(
          'ROUND_CLOSED',
          `round ${roundId} is ${round.state}, not training: no update is accepted`,
        );
      }
      if (this.sql.getParticipant.get({ roundId, address }) === undefined) {
        throw new StoreError('NOT_FOUND', `${address} was not invited to round ${roundId}`);
      }
      if (this.sql.getSubmission.get({ roundId, address }) !== undefined) {
        throw new StoreError('DUPLICATE', `round ${roundId} already has an update from ${address}`);
      }
      const seq = this.sql.nextSeq.get({ roundId })?.seq ?? 1;
      this.sql.insertSubmission.run({ ...input, seq, now: this.now() });
      const row = this.sql.getSubmission.get({ roundId, address });
      if (row === undefined) throw new Error('unreachable: inserted submission is missing');
      fold?.();
      return toSubmission(row);
    });
  }

  /** The round's accepted updates in the order they were accepted. */
  submissions(roundId: number): Submission[] {
    return this.sql.listSubmissions.all({ roundId }).map(toSubmission);
  }

  // ---- models --------------------------------------------------------------------------------

  recordModel(input: NewModel): ModelRecord {
    assertSha256Hex(input.hash, 'model');
    if (input.parentHash !== null) assertSha256Hex(input.parentHash, 'parent model');
    if (input.adapterHash != null) assertSha256Hex(input.adapterHash, 'adapter');
    return this.write(() => {
      if (this.sql.getModel.get({ hash: input.hash }) !== undefined) {
        throw new StoreError('DUPLICATE', `model ${input.hash} is already recorded`);
      }
      this.sql.insertModel.run({
        ...input,
        adapterHash: input.adapterHash ?? null,
        registerTx: input.registerTx ?? null,
        proposalId: input.proposalId ?? null,
        now: this.now(),
      });
      return this.requireModel(input.hash);
    });
  }

  /** Records the chain side of a model once known: its registration tx, its proposal id. */
  setModelChainRefs(hash: string, refs: { registerTx?: string; proposalId?: string }): ModelRecord {
    return this.write(() => {
      const { changes } = this.sql.updateModelChain.run({
        hash,
        registerTx: refs.registerTx ?? null,
        proposalId: refs.proposalId ?? null,
      });
      if (changes === 0) throw new StoreError('NOT_FOUND', `model ${hash} is not recorded`);
      return this.requireModel(hash);
    });
  }

  getModel(hash: string): ModelRecord | undefined {
    const row = this.sql.getModel.get({ hash });
    return row === undefined ? undefined : toModel(row);
  }

  /** Every recorded model, oldest first. */
  listModels(): ModelRecord[] {
    return this.sql.listModels.all({}).map(toModel);
  }

  // ---- rewards -------------------------------------------------------------------------------

  /** Records a round's reward distribution once (DUPLICATE otherwise). */
  recordRewards(input: NewRewards): RewardsRecord {
    return this.write(() => {
      this.requireRound(input.roundId);
      if (this.sql.getRewards.get({ roundId: input.roundId }) !== undefined) {
        throw new StoreError('DUPLICATE', `round ${input.roundId} already has rewards`);
      }
      this.sql.insertRewards.run({
        roundId: input.roundId,
        root: input.root,
        total: input.total.toString(),
        entriesJson: JSON.stringify(
          input.entries.map((e) => ({ account: e.account, amount: e.amount.toString() })),
        ),
        postTx: input.postTx ?? null,
        now: this.now(),
      });
      return this.requireRewards(input.roundId);
    });
  }

  /** Records the transaction that posted the round's reward root on chain. */
  setRewardsPosted(roundId: number, postTx: string): RewardsRecord {
    return this.write(() => {
      const { changes } = this.sql.updateRewardsPost.run({ roundId, postTx });
      if (changes === 0) throw new StoreError('NOT_FOUND', `round ${roundId} has no rewards`);
      return this.requireRewards(roundId);
    });
  }

  getRewards(roundId: number): RewardsRecord | undefined {
    const row = this.sql.getRewards.get({ roundId });
    return row === undefined ? undefined : toRewards(row);
  }

  // ---- strategy state ------------------------------------------------------------------------

  /** Replaces the strategy's saved state (one row per strategy: the latest is all it needs). */
  saveStrategyState(strategy: string, saved: { roundId: number; state: unknown }): StrategyState {
    return this.write(() => {
      this.sql.upsertStrategyState.run({
        strategy,
        roundId: saved.roundId,
        stateJson: toJson(saved.state, 'strategy state'),
        now: this.now(),
      });
      const row = this.sql.getStrategyState.get({ strategy });
      if (row === undefined) throw new Error('unreachable: saved strategy state is missing');
      return toStrategyState(row);
    });
  }

  loadStrategyState(strategy: string): StrategyState | undefined {
    const row = this.sql.getStrategyState.get({ strategy });
    return row === undefined ? undefined : toStrategyState(row);
  }

  // ---- round privacy -------------------------------------------------------------------------

  /** Records round `roundId`'s privacy once, when it is configured (DUPLICATE otherwise). */
  saveRoundPrivacy(roundId: number, privacy: RoundPrivacy): void {
    this.write(() => {
      this.requireRound(roundId);
      if (this.sql.getRoundPrivacy.get({ roundId }) !== undefined) {
        throw new StoreError('DUPLICATE', `round ${roundId} already has its privacy parameters`);
      }
      this.sql.insertRoundPrivacy.run({
        roundId,
        clipNorm: privacy.clipNorm,
        noiseMultiplier: privacy.noiseMultiplier,
        accountedNoiseMultiplier: privacy.accountedNoiseMultiplier,
        bitNoiseStddev: privacy.bitNoiseStddev,
        expectedClients: privacy.expectedClients,
        sampleRate: privacy.sampleRate,
        adaptive: privacy.adaptive ? 1 : 0,
        secureAggregation: privacy.secureAggregation ? 1 : 0,
      });
    });
  }

  /** Round `roundId`'s privacy; undefined for a round configured before it was recorded. */
  roundPrivacy(roundId: number): RoundPrivacy | undefined {
    const row = this.sql.getRoundPrivacy.get({ roundId });
    return row === undefined ? undefined : toRoundPrivacy(row);
  }

  /** Counts one update's clip bit for round `roundId` (inside the caller's transaction, if any). */
  addClipBit(roundId: number, fitted: boolean): void {
    this.sql.addClipBit.run({ roundId, fitted: fitted ? 1 : 0 });
  }

  clipBits(roundId: number): ClipBits {
    return this.sql.getClipBits.get({ roundId }) ?? { fitted: 0, total: 0 };
  }

  // ---- meta ----------------------------------------------------------------------------------

  getMeta(key: string): string | undefined {
    return this.sql.getMeta.get({ key })?.value;
  }

  setMeta(key: string, value: string): void {
    this.sql.setMeta.run({ key, value });
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * Runs `fn` as one IMMEDIATE transaction: it takes the write lock before its first read, so
   * the checks it makes still hold when it writes.
   */
  private write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (error) {
      throw translateSqliteError(error);
    }
  }

  private requireRound(id: number): Round {
    const round = this.getRound(id);
    if (round === undefined) throw new StoreError('NOT_FOUND', `round ${id} does not exist`);
    return round;
  }

  private requireParticipant(roundId: number, address: string): Participant {
    const row = this.sql.getParticipant.get({ roundId, address });
    if (row === undefined) {
      throw new StoreError('NOT_FOUND', `${address} was not invited to round ${roundId}`);
    }
    return toParticipant(row);
  }

  private requireModel(hash: string): ModelRecord {
    const model = this.getModel(hash);
    if (model === undefined) throw new StoreError('NOT_FOUND', `model ${hash} is not recorded`);
    return model;
  }

  private requireRewards(roundId: number): RewardsRecord {
    const rewards = this.getRewards(roundId);
    if (rewards === undefined) throw new StoreError('NOT_FOUND', `round ${roundId} has no rewards`);
    return rewards;
  }
}

function configure(db: Database.Database, busyTimeoutMs: number): void {
  // WAL: readers (the HTTP status page, metrics) never block the writer, and a commit is one
  // append to the log instead of rewriting pages in place.
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (mode !== 'wal') {
    throw new StoreError(
      'UNSUPPORTED',
      `SQLite refused WAL mode (journal_mode is ${String(mode)})`,
    );
  }
  // FULL, not WAL's usual NORMAL: NORMAL survives a process crash but may lose the last
  // commits on power loss. The coordinator tells a client "accepted" right after committing
  // its submission and counts that update in the round; that promise must survive a power
  // cut too, so every commit waits for its fsync. The write rate here (a few rows per client
  // per round) makes the cost irrelevant. synchronous is per connection, so it covers every
  // table; the submission rows are the ones that need it.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
}

function migrate(db: Database.Database, file: string): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version > MIGRATIONS.length) {
    throw new StoreError(
      'SCHEMA_TOO_NEW',
      `${file} has schema version ${version}; this coordinator knows up to ${MIGRATIONS.length}`,
    );
  }
  for (let next = version; next < MIGRATIONS.length; next++) {
    // The schema change and its version bump commit together, so a crash mid-migration
    // leaves the previous version, whole.
    db.transaction(() => {
      db.exec(MIGRATIONS[next] ?? '');
      db.pragma(`user_version = ${next + 1}`);
    }).immediate();
  }
}

function translateSqliteError(error: unknown): unknown {
  if (!(error instanceof Database.SqliteError)) return error;
  // Backstops: the methods check first and give better messages; these catch what slips by.
  if (error.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || error.code === 'SQLITE_CONSTRAINT_UNIQUE') {
    return new StoreError('DUPLICATE', error.message, { cause: error });
  }
  if (error.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new StoreError('NOT_FOUND', `a referenced row is missing (${error.message})`, {
      cause: error,
    });
  }
  return error;
}

function toJson(value: unknown, what: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`${what} must be JSON-serialisable`);
  return text;
}

function toRound(row: RoundRow): Round {
  return {
    id: row.id,
    state: row.state,
    baseModel: row.base_model,
    policyVersion: row.policy_version,
    strategy: row.strategy,
    task: JSON.parse(row.task_json) as unknown,
    minClients: row.min_clients,
    deadlineMs: row.deadline_ms,
    createdMs: row.created_ms,
    updatedMs: row.updated_ms,
    failureReason: row.failure_reason,
    candidateHash: row.candidate_hash,
  };
}

function toParticipant(row: ParticipantRow): Participant {
  return {
    roundId: row.round_id,
    address: row.address,
    status: row.status,
    invitedMs: row.invited_ms,
    updatedMs: row.updated_ms,
  };
}

function toSubmission(row: SubmissionRow): Submission {
  return {
    roundId: row.round_id,
    address: row.address,
    seq: row.seq,
    sha256: row.sha256,
    numExamples: row.num_examples,
    byteLength: row.byte_length,
    encoding: row.encoding,
    norm: row.norm,
    commitment: row.commitment,
    acceptedMs: row.accepted_ms,
  };
}

function toModel(row: ModelRow): ModelRecord {
  return {
    hash: row.hash,
    parentHash: row.parent_hash,
    adapterHash: row.adapter_hash,
    roundId: row.round_id,
    valLoss: row.val_loss,
    valBpc: row.val_bpc,
    epsilon: row.epsilon,
    delta: row.delta,
    registerTx: row.register_tx,
    proposalId: row.proposal_id,
    publishedMs: row.published_ms,
  };
}

function toRewards(row: RewardsRow): RewardsRecord {
  const entries = JSON.parse(row.entries_json) as { account: string; amount: string }[];
  return {
    roundId: row.round_id,
    root: row.root,
    total: BigInt(row.total),
    entries: entries.map((e) => ({ account: e.account, amount: BigInt(e.amount) })),
    postTx: row.post_tx,
  };
}

function toStrategyState(row: StrategyStateRow): StrategyState {
  return {
    strategy: row.strategy,
    roundId: row.round_id,
    state: JSON.parse(row.state_json) as unknown,
    updatedMs: row.updated_ms,
  };
}

function toRoundPrivacy(row: RoundPrivacyRow): RoundPrivacy {
  return {
    clipNorm: row.clip_norm,
    noiseMultiplier: row.noise_multiplier,
    accountedNoiseMultiplier: row.accounted_noise_multiplier,
    bitNoiseStddev: row.bit_noise_stddev,
    expectedClients: row.expected_clients,
    sampleRate: row.sample_rate,
    adaptive: row.adaptive === 1,
    secureAggregation: row.secure_aggregation === 1,
  };
}
