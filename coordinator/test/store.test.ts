import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { encodeCheckpoint, sha256Hex, type CheckpointInput } from '@commons/shared/engine';

import { BlobStore } from '../src/store/blobs.ts';
import {
  canTransition,
  CoordinatorDatabase,
  MIGRATIONS,
  SCHEMA_VERSION,
  type NewSubmission,
} from '../src/store/database.ts';
import { StoreError } from '../src/store/errors.ts';
import { ModelStore } from '../src/store/models.ts';

const BASE = 'b'.repeat(64);
const ALICE = '0x00000000000000000000000000000000000a11cE';
const BOB = '0x0000000000000000000000000000000000000b0b';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'commons-store-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `fn` and returns the StoreError it throws (fails the test if it throws anything else). */
function storeError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error('expected a StoreError, nothing was thrown');
}

function openDb(file = join(dir, 'coordinator.db')): CoordinatorDatabase {
  let clock = 1_000;
  return CoordinatorDatabase.open(file, { now: () => clock++ });
}

function newRound(db: CoordinatorDatabase) {
  return db.createRound({
    baseModel: BASE,
    policyVersion: 1,
    strategy: 'fedavg',
    task: { clipNorm: 1.5, train: { localEpochs: 1 } },
    minClients: 2,
    deadlineMs: 99_000,
  });
}

function submission(roundId: number, address: string, bytes: string): NewSubmission {
  return {
    roundId,
    address,
    sha256: sha256Hex(new TextEncoder().encode(bytes)),
    numExamples: 10,
    byteLength: bytes.length,
    encoding: 'fp16',
    norm: 0.5,
    commitment: `0x${'1'.repeat(64)}`,
  };
}

/** A round in training with ALICE and BOB invited. */
function trainingRound(db: CoordinatorDatabase) {
  const round = newRound(db);
  db.setRoundState(round.id, 'configuring');
  db.inviteParticipant(round.id, ALICE);
  db.inviteParticipant(round.id, BOB);
  db.setRoundState(round.id, 'training');
  return round;
}

describe('CoordinatorDatabase', () => {
  it('runs in WAL mode with the current schema version, on the file itself', () => {
    const file = join(dir, 'coordinator.db');
    const db = openDb(file);
    newRound(db);
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      raw.close();
      db.close();
    }
  });

  it('walks a round through its lifecycle and knows the current round', () => {
    const db = openDb();
    expect(db.currentRound()).toBeUndefined();
    expect(db.lastRoundId()).toBe(0);
    const round = newRound(db);
    expect(round).toMatchObject({ id: 1, state: 'waiting', baseModel: BASE, strategy: 'fedavg' });
    expect(round.task).toEqual({ clipNorm: 1.5, train: { localEpochs: 1 } });
    for (const state of ['configuring', 'training', 'aggregating', 'evaluating'] as const) {
      expect(db.setRoundState(round.id, state).state).toBe(state);
      expect(db.currentRound()?.id).toBe(round.id);
    }
    const candidate = 'c'.repeat(64);
    const published = db.setRoundState(round.id, 'published', { candidateHash: candidate });
    expect(published).toMatchObject({ state: 'published', candidateHash: candidate });
    expect(db.currentRound()).toBeUndefined();
    expect(db.lastRoundId()).toBe(1);
    db.close();
  });

  it('refuses illegal transitions, naming them', () => {
    const db = openDb();
    const round = newRound(db);
    const skip = storeError(() => db.setRoundState(round.id, 'training'));
    expect(skip.code).toBe('ILLEGAL_TRANSITION');
    expect(skip.message).toContain('round 1: illegal transition waiting → training');
    expect(db.getRound(round.id)?.state).toBe('waiting');

    db.setRoundState(round.id, 'failed', { failureReason: 'no clients' });
    expect(db.getRound(round.id)).toMatchObject({ state: 'failed', failureReason: 'no clients' });
    const revive = storeError(() => db.setRoundState(round.id, 'configuring'));
    expect(revive.message).toContain('failed → configuring');
    expect(storeError(() => db.setRoundState(round.id, 'failed')).code).toBe('ILLEGAL_TRANSITION');
    expect(storeError(() => db.setRoundState(42, 'configuring')).code).toBe('NOT_FOUND');

    expect(canTransition('training', 'failed')).toBe(true);
    expect(canTransition('training', 'training')).toBe(false);
    expect(canTransition('published', 'failed')).toBe(false);
    db.close();
  });

  it('accepts each participant update once, in order, and refuses a duplicate', () => {
    const file = join(dir, 'coordinator.db');
    const db = openDb(file);
    const round = trainingRound(db);
    const first = db.acceptSubmission(submission(round.id, BOB, 'bob'));
    const second = db.acceptSubmission(submission(round.id, ALICE, 'alice'));
    expect([first.seq, second.seq]).toEqual([1, 2]);

    const again = storeError(() => db.acceptSubmission(submission(round.id, BOB, 'bob again')));
    expect(again.code).toBe('DUPLICATE');
    expect(again.message).toContain(BOB);
    // Another spelling of the same account is the same participant.
    const shouted = storeError(() =>
      db.acceptSubmission(submission(round.id, ALICE.toLowerCase(), 'alice again')),
    );
    expect(shouted.code).toBe('DUPLICATE');

    expect(db.submissions(round.id).map((s) => [s.seq, s.address])).toEqual([
      [1, BOB],
      [2, ALICE],
    ]);
    const raw = new Database(file, { readonly: true });
    try {
      const count = raw
        .prepare('SELECT COUNT(*) AS n FROM submissions WHERE address = ? COLLATE NOCASE')
        .get(BOB) as { n: number };
      expect(count.n).toBe(1);
    } finally {
      raw.close();
      db.close();
    }
  });

  it('refuses updates outside training or from someone not invited', () => {
    const db = openDb();
    const round = newRound(db);
    db.inviteParticipant(round.id, ALICE);
    expect(storeError(() => db.acceptSubmission(submission(round.id, ALICE, 'a'))).code).toBe(
      'ROUND_CLOSED',
    );
    db.setRoundState(round.id, 'configuring');
    db.setRoundState(round.id, 'training');
    const stranger = '0x000000000000000000000000000000000000dEaD';
    expect(storeError(() => db.acceptSubmission(submission(round.id, stranger, 'x'))).code).toBe(
      'NOT_FOUND',
    );
    db.acceptSubmission(submission(round.id, ALICE, 'a'));
    db.setRoundState(round.id, 'aggregating');
    expect(db.submissions(round.id)).toHaveLength(1);
    expect(storeError(() => db.inviteParticipant(round.id, ALICE)).code).toBe('DUPLICATE');
    db.close();
  });

  it('keeps everything across close and reopen', () => {
    const file = join(dir, 'coordinator.db');
    const db = openDb(file);
    const round = trainingRound(db);
    db.setParticipantStatus(round.id, ALICE, 'accepted');
    db.setParticipantStatus(round.id, BOB, 'declined');
    db.acceptSubmission(submission(round.id, ALICE, 'alice'));
    const model = 'd'.repeat(64);
    db.recordModel({
      hash: model,
      parentHash: BASE,
      roundId: round.id,
      valLoss: 1.25,
      valBpc: 2.5,
      epsilon: null,
      delta: 1e-5,
    });
    db.setModelChainRefs(model, { registerTx: '0xabc', proposalId: (2n ** 200n).toString() });
    const big = 10n ** 30n;
    db.recordRewards({
      roundId: round.id,
      root: `0x${'e'.repeat(64)}`,
      total: big,
      entries: [{ account: ALICE, amount: big }],
    });
    db.setRewardsPosted(round.id, '0xdef');
    db.saveStrategyState('fedadam', { roundId: round.id, state: { m: [1, 2] } });
    db.setMeta('deployment', '31337:0xregistry');
    db.close();

    const reopened = openDb(file);
    expect(reopened.currentRound()).toMatchObject({ id: round.id, state: 'training' });
    expect(reopened.participants(round.id).map((p) => [p.address, p.status])).toEqual([
      [ALICE, 'accepted'],
      [BOB, 'declined'],
    ]);
    expect(reopened.submissions(round.id)).toMatchObject([{ address: ALICE, seq: 1, norm: 0.5 }]);
    expect(reopened.getModel(model)).toMatchObject({
      parentHash: BASE,
      valBpc: 2.5,
      epsilon: null,
      registerTx: '0xabc',
      proposalId: (2n ** 200n).toString(),
    });
    expect(reopened.listModels().map((m) => m.hash)).toEqual([model]);
    expect(reopened.getRewards(round.id)).toEqual({
      roundId: round.id,
      root: `0x${'e'.repeat(64)}`,
      total: big,
      entries: [{ account: ALICE, amount: big }],
      postTx: '0xdef',
    });
    expect(reopened.loadStrategyState('fedadam')).toMatchObject({
      roundId: round.id,
      state: { m: [1, 2] },
    });
    expect(reopened.getMeta('deployment')).toBe('31337:0xregistry');
    // Ids keep growing after a restart.
    expect(newRound(reopened).id).toBe(round.id + 1);
    reopened.close();
  });

  it('takes an explicit round id only above the last one', () => {
    const db = openDb();
    const first = db.createRound({ ...roundInput(), id: 7 });
    expect(first.id).toBe(7);
    expect(storeError(() => db.createRound({ ...roundInput(), id: 7 })).code).toBe('DUPLICATE');
    expect(storeError(() => db.createRound({ ...roundInput(), id: 3 })).code).toBe('DUPLICATE');
    expect(newRound(db).id).toBe(8);
    db.close();
  });

  it('upgrades a version 1 database in place, keeping its rows and dropping tensors_blob', () => {
    const file = join(dir, 'coordinator.db');
    const old = new Database(file);
    old.exec(MIGRATIONS[0]!);
    old.pragma('user_version = 1');
    old
      .prepare(
        `INSERT INTO strategy_state (strategy, round_id, state_json, tensors_blob, updated_ms)
         VALUES ('fedadam', 3, '{"json":{"t":3},"tensors":{}}', NULL, 0)`,
      )
      .run();
    old.close();

    const db = openDb(file);
    expect(db.loadStrategyState('fedadam')).toMatchObject({
      roundId: 3,
      state: { json: { t: 3 }, tensors: {} },
    });
    db.close();
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const columns = raw.prepare(`SELECT name FROM pragma_table_info('strategy_state')`).all();
      expect(columns.map((c) => (c as { name: string }).name)).not.toContain('tensors_blob');
    } finally {
      raw.close();
    }
  });

  it('refuses a database written by a newer coordinator', () => {
    const file = join(dir, 'coordinator.db');
    openDb(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(storeError(() => openDb(file)).code).toBe('SCHEMA_TOO_NEW');
  });
});

function roundInput() {
  return {
    baseModel: BASE,
    policyVersion: 0,
    strategy: 'fedavg',
    task: {},
    minClients: 1,
    deadlineMs: 0,
  };
}

describe('BlobStore', () => {
  it('stores content under its sha256, fanned out, idempotently', async () => {
    const blobs = await BlobStore.open(join(dir, 'blobs'));
    const bytes = new TextEncoder().encode('an update frame');
    const hash = await blobs.put(bytes);
    expect(hash).toBe(sha256Hex(bytes));
    expect(blobs.path(hash)).toBe(join(dir, 'blobs', hash.slice(0, 2), hash.slice(2)));
    expect(await blobs.put(bytes)).toBe(hash);
    expect(await blobs.has(hash)).toBe(true);
    expect(await blobs.read(hash)).toEqual(bytes);
    expect(blobs.readSync(hash)).toEqual(bytes);

    const other = await blobs.put(new Uint8Array([1, 2, 3]));
    expect(await blobs.list()).toEqual([hash, other].sort());
    expect(await blobs.delete(hash)).toBe(true);
    expect(await blobs.delete(hash)).toBe(false);
    expect(await blobs.has(hash)).toBe(false);
    await expect(blobs.read(hash)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await blobs.list()).toEqual([other]);
    // Nothing left behind in the temporary folder.
    expect(await readdir(join(dir, 'blobs', '.tmp'))).toEqual([]);
  });

  it('refuses a blob whose bytes were corrupted on disk, naming it', async () => {
    const blobs = await BlobStore.open(join(dir, 'blobs'));
    const hash = await blobs.put(new TextEncoder().encode('precious'));
    await writeFile(blobs.path(hash), 'pre_ious');
    await expect(blobs.read(hash)).rejects.toThrow(`blob ${hash} is corrupt`);
    await expect(blobs.read(hash)).rejects.toMatchObject({ code: 'CORRUPT' });
    expect(storeError(() => blobs.readSync(hash)).code).toBe('CORRUPT');
  });

  it('refuses names that are not hashes (no path traversal)', async () => {
    const blobs = await BlobStore.open(join(dir, 'blobs'));
    for (const name of ['../../etc/passwd', 'AB'.repeat(32), 'ab/'.padEnd(64, 'c'), '']) {
      expect(storeError(() => blobs.path(name)).code).toBe('BAD_HASH');
      await expect(blobs.read(name)).rejects.toMatchObject({ code: 'BAD_HASH' });
    }
  });
});

function tinyCheckpoint(seed = 1): CheckpointInput {
  return {
    config: {
      vocabSize: 4,
      blockSize: 2,
      nLayer: 1,
      nHead: 1,
      nEmbd: 2,
      dropout: 0,
      bias: false,
      tiedHead: true,
    },
    tokenizer: { kind: 'test' },
    tensors: new Map([
      ['wte', { shape: [4, 2], data: Float32Array.from({ length: 8 }, (_, i) => i * seed) }],
      ['ln.g', { shape: [3], data: new Float32Array([1, 1, seed]) }],
    ]),
    provenance: { note: 'test' },
  };
}

describe('ModelStore', () => {
  it('publishes checkpoints under their hash, idempotently, and loads them verified', async () => {
    const models = await ModelStore.open(join(dir, 'models'));
    const input = tinyCheckpoint();
    const expected = encodeCheckpoint(input).hash;
    expect(await models.has(expected)).toBe(false);
    expect(await models.publish(input)).toBe(expected);
    expect(await models.publish(input)).toBe(expected);
    expect(await models.publish(encodeCheckpoint(input))).toBe(expected);
    const half = encodeCheckpoint({ ...tinyCheckpoint(2), dtype: 'float16' });
    expect(await models.publish(half)).toBe(half.hash);
    expect(await models.list()).toEqual([expected, half.hash].sort());

    const loaded = await models.load(expected);
    expect(loaded.hash).toBe(expected);
    expect(loaded.tensors.get('ln.g')?.data).toEqual(new Float32Array([1, 1, 1]));

    const files = await models.files(expected);
    const weights = files?.['weights.bin'];
    expect(weights?.size).toBe(encodeCheckpoint(input).weights.length);
    expect(new Uint8Array(await readFile(weights?.path ?? ''))).toEqual(
      encodeCheckpoint(input).weights,
    );
    expect(await readdir(join(dir, 'models', '.staging'))).toEqual([]);
  });

  it('refuses an encoded checkpoint that does not match its hash', async () => {
    const models = await ModelStore.open(join(dir, 'models'));
    const encoded = encodeCheckpoint(tinyCheckpoint());
    const tampered = { ...encoded, weights: encoded.weights.map((b, i) => (i === 0 ? b ^ 1 : b)) };
    await expect(models.publish(tampered)).rejects.toMatchObject({ code: 'HASH_MISMATCH' });
    expect(await models.list()).toEqual([]);
  });

  it('refuses to load a damaged model and reports absent ones', async () => {
    const models = await ModelStore.open(join(dir, 'models'));
    const hash = await models.publish(tinyCheckpoint());
    const weightsPath = join(models.dir(hash), 'weights.bin');
    const weights = await readFile(weightsPath);
    weights[0] = (weights[0] ?? 0) ^ 0xff;
    await writeFile(weightsPath, weights);
    await expect(models.load(hash)).rejects.toMatchObject({ code: 'HASH_MISMATCH' });

    const absent = 'f'.repeat(64);
    await expect(models.load(absent)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await models.files(absent)).toBeUndefined();
    expect(() => models.dir('../x')).toThrow(StoreError);
  });
});
