/**
 * A member's own privacy ledger: every round this machine contributed to, and the privacy
 * loss they compose to. It lives on the member's machine, so the client can refuse a round
 * that would take the member past the community's per-member budget before sending anything.
 *
 * Accounting choice — joined rounds only, WITHOUT amplification by sampling (q = 1):
 * amplification by subsampling bounds the loss over the randomness of who is selected, and
 * holds only if selection is random and independent of the data, if the adversary never
 * learns who was selected, and if every round of the run is counted, joined or not. None of
 * that can be checked from the member's machine: the coordinator picks participants, members
 * may decline rounds (self-selection), a model's lineage publishes its contributors'
 * commitments, and the machine never hears of rounds it was not invited to. Conditioned on
 * participation — which the member knows and an adversary may know — each joined round is a
 * Gaussian mechanism on a contribution of sensitivity C with noise z·C, and rounds not joined
 * never touch the member's data; RDP composes adaptively over the joined rounds. That bound
 * holds whatever the selection was. It is larger than the amplified ε the coordinator reports
 * for a model, never smaller. The announced sample rate is kept in each entry for the record.
 *
 * Per round, DP-FedAvg clips the member's whole local update once and releases it once (in
 * the noisy sum), however many local SGD steps made it: `steps` is 1. The noise multiplier
 * to record is the policy's total z (with adaptive clipping, z, not the update's share z_Δ).
 *
 * When to record — before the update leaves, and for good: the client records a round after
 * training and before the first byte of its update is sent, and never takes the entry back.
 * ε is spent once the update may have left the machine, and the member cannot know what the
 * coordinator kept of an upload that was then refused, cut off, or whose round failed (a
 * refusal can come after the last chunk; a masked input may sit in a secure round's sum). A
 * crash between recording and sending therefore over-counts one round, never under-counts;
 * a ledger that cannot be written stops the update from being sent.
 *
 * The file is versioned JSON, written atomically (temporary file, fsync, rename, fsync of the
 * folder), so a crash leaves the old or the new ledger, never half of one. A file that is not
 * a ledger this code understands is an error, never a reason to start again from zero: a
 * reset ledger would let the member's budget be spent twice.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../../storage/atomic-file.ts';
import { PrivacyError } from './errors.ts';
import type { PrivacySpent } from './rdp.ts';
import { DEFAULT_ORDERS, computeRdp, rdpToEpsilon } from './rdp.ts';

const FORMAT = 'commons-privacy-ledger';
const VERSION = 1;

/** A round as the client sees it when deciding whether to join. */
export interface LedgerRound {
  roundId: number;
  /** The sample rate the round announced (recorded; not used, see the accounting choice). */
  sampleRate: number;
  /** The policy's total noise multiplier z. */
  noiseMultiplier: number;
  /** Noisy releases of this member's clipped contribution in the round; 1 for DP-FedAvg. */
  steps?: number;
  /** The policy's δ when the round ran. */
  delta: number;
}

const entrySchema = z.strictObject({
  roundId: z.number().int().min(1),
  sampleRate: z.number().min(0).max(1),
  noiseMultiplier: z.number().nonnegative(),
  steps: z.number().int().min(1),
  delta: z.number().gt(0).lt(1),
  timestamp: z.iso.datetime(),
});

export type LedgerEntry = z.infer<typeof entrySchema>;

const fileSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  entries: z.array(entrySchema),
});

export interface LedgerCheck {
  allowed: boolean;
  epsilonBefore: number;
  epsilonAfter: number;
  /** One plain sentence for the member. */
  message: string;
}

export class PrivacyLedger {
  readonly path: string;
  private readonly list: LedgerEntry[];
  private readonly total: Float64Array;
  private writing: Promise<void> = Promise.resolve();

  private constructor(path: string, entries: LedgerEntry[]) {
    this.path = path;
    this.list = [];
    this.total = new Float64Array(DEFAULT_ORDERS.length);
    for (const entry of entries) this.add(entry);
  }

  /**
   * Reads the ledger at `path`. A missing file is a member who has never contributed: an
   * empty ledger (written on the first `record`). Anything unreadable throws.
   */
  static async open(path: string): Promise<PrivacyLedger> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new PrivacyLedger(path, []);
      throw error;
    }
    return new PrivacyLedger(path, parseLedger(text, path));
  }

  get entries(): readonly LedgerEntry[] {
    return this.list.map((entry) => ({ ...entry }));
  }

  /** The member's privacy loss so far, at this δ. */
  spent(delta: number): PrivacySpent {
    return rdpToEpsilon(this.total, DEFAULT_ORDERS, delta);
  }

  /**
   * The member's total ε after each entry, in ledger order, at `delta`: the history a
   * member's round list shows, composed exactly as `spent` composes the whole ledger.
   */
  spentAfterEach(delta: number): { roundId: number; epsilon: number }[] {
    const total = new Float64Array(DEFAULT_ORDERS.length);
    return this.list.map((entry) => {
      addRound(total, entry);
      return {
        roundId: entry.roundId,
        epsilon: rdpToEpsilon(total, DEFAULT_ORDERS, delta).epsilon,
      };
    });
  }

  /** Whether joining `round` keeps the member within `budget` at `delta`, and why. */
  check(options: { budget: number; delta: number; round: LedgerRound }): LedgerCheck {
    const { budget, delta, round } = options;
    if (!(budget > 0)) {
      throw new PrivacyError('INVALID_ARGUMENT', `the privacy budget must be > 0, got ${budget}`);
    }
    const entry = toEntry(round, new Date(0));
    const epsilonBefore = this.spent(delta).epsilon;
    if (this.list.some((e) => e.roundId === entry.roundId)) {
      return {
        allowed: false,
        epsilonBefore,
        epsilonAfter: epsilonBefore,
        message: `you already contributed to round ${entry.roundId}; a round is joined once`,
      };
    }
    const after = this.total.slice();
    addRound(after, entry);
    const epsilonAfter = rdpToEpsilon(after, DEFAULT_ORDERS, delta).epsilon;
    const allowed = epsilonAfter <= budget;
    const shown = formatEpsilon(epsilonAfter, budget);
    const message = allowed
      ? `joining round ${entry.roundId} would bring your privacy loss to ε=${shown}, ` +
        `within the community budget of ${budget}`
      : `joining round ${entry.roundId} would bring your privacy loss to ε=${shown}, ` +
        `above the community budget of ${budget}`;
    return { allowed, epsilonBefore, epsilonAfter, message };
  }

  /**
   * Records a round the member contributed to and saves the ledger. Call it before the
   * update leaves the machine: a crash between the two then over-counts, never under-counts.
   */
  async record(round: LedgerRound, now: Date = new Date()): Promise<LedgerEntry> {
    const entry = toEntry(round, now);
    if (this.list.some((e) => e.roundId === entry.roundId)) {
      throw new PrivacyError(
        'DUPLICATE_ROUND',
        `round ${entry.roundId} is already in the privacy ledger ${this.path}`,
      );
    }
    this.add(entry);
    const snapshot = `${JSON.stringify({ format: FORMAT, version: VERSION, entries: this.list }, null, 2)}\n`;
    // Writes are queued so that two records never interleave their renames.
    const write = this.writing.then(() => writeFileAtomic(this.path, snapshot));
    this.writing = write.catch(() => undefined);
    try {
      await write;
    } catch (error) {
      // Not on disk, so not recorded: the caller must not send the update.
      this.remove(entry);
      throw error;
    }
    return { ...entry };
  }

  private add(entry: LedgerEntry): void {
    this.list.push(entry);
    addRound(this.total, entry);
  }

  private remove(entry: LedgerEntry): void {
    this.list.splice(this.list.indexOf(entry), 1);
    this.total.fill(0);
    for (const kept of this.list) addRound(this.total, kept);
  }
}

/** Adds a joined round's RDP, unamplified (q = 1): steps·α/(2z²) at each order. */
function addRound(total: Float64Array, entry: LedgerEntry): void {
  const rdp = computeRdp({
    sampleRate: 1,
    noiseMultiplier: entry.noiseMultiplier,
    steps: entry.steps,
  });
  for (let k = 0; k < rdp.length; k++) total[k]! += rdp[k]!;
}

function toEntry(round: LedgerRound, now: Date): LedgerEntry {
  const parsed = entrySchema.safeParse({
    roundId: round.roundId,
    sampleRate: round.sampleRate,
    noiseMultiplier: round.noiseMultiplier,
    steps: round.steps ?? 1,
    delta: round.delta,
    timestamp: now.toISOString(),
  });
  if (!parsed.success) {
    throw new PrivacyError('INVALID_ARGUMENT', `ledger round: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

function parseLedger(text: string, path: string): LedgerEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PrivacyError(
      'CORRUPT_STATE',
      `the privacy ledger ${path} is not valid JSON; it was not reset — restore it from a backup ` +
        'or move it aside knowingly',
      { cause: error },
    );
  }
  const format = (value as { format?: unknown } | null)?.format;
  const version = (value as { version?: unknown } | null)?.version;
  if (format !== FORMAT) {
    throw new PrivacyError('CORRUPT_STATE', `${path} is not a Commons privacy ledger`);
  }
  if (version !== VERSION) {
    throw new PrivacyError(
      'UNSUPPORTED_VERSION',
      `the privacy ledger ${path} has version ${String(version)}; this client reads version ` +
        `${VERSION} — update Commons rather than starting a new ledger`,
    );
  }
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) {
    throw new PrivacyError(
      'CORRUPT_STATE',
      `the privacy ledger ${path} is damaged: ${z.prettifyError(parsed.error)}`,
    );
  }
  const seen = new Set<number>();
  for (const entry of parsed.data.entries) {
    if (seen.has(entry.roundId)) {
      throw new PrivacyError(
        'CORRUPT_STATE',
        `the privacy ledger ${path} lists round ${entry.roundId} twice`,
      );
    }
    seen.add(entry.roundId);
  }
  return parsed.data.entries;
}

/**
 * ε for a sentence: two decimals, more when two would round across the budget (so the
 * number shown never seems to contradict the verdict), trailing zeros dropped.
 */
function formatEpsilon(epsilon: number, budget: number): string {
  if (!Number.isFinite(epsilon)) return '∞';
  let text = epsilon.toFixed(2);
  for (let digits = 3; digits <= 8 && Number(text) > budget !== epsilon > budget; digits++) {
    text = epsilon.toFixed(digits);
  }
  return String(Number(text));
}
