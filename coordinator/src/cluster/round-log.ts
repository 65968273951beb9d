// The shared state of scale-out rounds, in Redis: each round's record (written by the leader
// only, every write fenced by its token), each node's partial (a Redis Stream per round, one
// entry per node, deduplicated by an idempotency set in the same script), node heartbeats, and
// the leader's small durable state (the privacy accountant, strategy state). The partial's
// vector itself lives in the shared blob store; the stream carries its hash.
import type { FederationPolicy } from '@commons/chain';
import type { RoundResult, RoundTask } from '@commons/shared/protocol';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { RoundPrivacy } from '../store/database.ts';
import { FENCE_CHECK, FencedError } from './lease.ts';
import type { ClusterKeys } from './keys.ts';

export type ClusterRoundState = 'training' | 'candidate' | 'published' | 'failed';

/** What the leader fixed before any chain write: the candidate and what publishing needs. */
export interface ClusterCandidate {
  hash: string;
  adapterHash: string | null;
  contributors: { address: string; commitment: string }[];
  valLoss: number;
  valBpc: number;
  /** Cumulative ε (null: no noise, no guarantee). */
  epsilon: number | null;
  delta: number;
}

export interface ClusterRound {
  id: number;
  state: ClusterRoundState;
  /** The fencing token of the leader that configured it. */
  token: number;
  policyVersion: number;
  policy: FederationPolicy;
  strategy: string;
  baseHash: string;
  /** The task every node sends its cohort (each node re-bases the deadline on its own clock). */
  task: RoundTask;
  /** How long the round trains, from when a node takes it (clocks are not compared). */
  durationMs: number;
  privacy: RoundPrivacy;
  /** The nodes alive when it was configured: the leader waits for a partial from each. */
  nodes: string[];
  /** How many clients each node samples. */
  quotas: Record<string, number>;
  /** Secure rounds: the fewest survivors a cohort unmasks with (the clients' noise is split over it). */
  cohortMinClients: number;
  candidate?: ClusterCandidate;
  result?: RoundResult;
  /** Reward entries of a published round ({account, amount in base units as a decimal}). */
  rewards?: { account: string; amount: string }[];
}

const partialSchema = z.strictObject({
  nodeId: z.string().min(1).max(128),
  roundId: z.number().int().positive(),
  /** Hash of the cohort's mean (float32, the round's flat layout) in the shared blob store. */
  blob: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  /** Σ weights behind the mean (example counts; the update count on DP rounds). */
  weight: z.number().nonnegative(),
  count: z.number().int().nonnegative(),
  contributors: z.array(
    z.strictObject({
      address: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
      commitment: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
    }),
  ),
  eligible: z.number().int().nonnegative(),
  sampled: z.number().int().nonnegative(),
  /** Set when the node gave its cohort up (restarted mid-round, cohort too small, ...). */
  dropped: z.string().max(1000).optional(),
  /** Milliseconds the cohort spent per stage (invite, train/upload or secagg stages). */
  stageMs: z.record(z.string(), z.number()).optional(),
});
export type ClusterPartial = z.infer<typeof partialSchema>;

export interface NodeBeat {
  nodeId: string;
  url: string;
  clients: number;
  pid: number;
}

// Fenced writes: the fence check, then the write. KEYS[1] is always the fencing counter.
const WRITE_ROUND = `${FENCE_CHECK}
redis.call('SET', KEYS[2], ARGV[2])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if last < tonumber(ARGV[3]) then redis.call('SET', KEYS[3], ARGV[3]) end
return 1`;

const WRITE_KEY = `${FENCE_CHECK}
redis.call('SET', KEYS[2], ARGV[2])
return 1`;

// A node's partial: counted once whatever the retries (a reply lost to a Redis restart, a
// node re-sending after it reconnects): the set decides, in the same script as the append.
const POST_PARTIAL = `
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[1], '*', 'partial', ARGV[2])
  return 1
end
return 0`;

function fenced(error: unknown, token: number): unknown {
  const text = error instanceof Error ? error.message : String(error);
  return text.includes('FENCED') ? new FencedError(token, text) : error;
}

export class RoundLog {
  private readonly redis: Redis;
  readonly keys: ClusterKeys;

  constructor(redis: Redis, keys: ClusterKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  // ------------------------------------------------------------------------ the leader's writes

  /** Writes a round record under `token`; throws FencedError if a newer leader exists. */
  async writeRound(token: number, round: ClusterRound): Promise<void> {
    const { keys } = this;
    try {
      await this.redis.eval(
        WRITE_ROUND,
        3,
        keys.epoch,
        keys.round(round.id),
        keys.lastRound,
        token,
        JSON.stringify(round),
        round.id,
      );
    } catch (error) {
      throw fenced(error, token);
    }
  }

  /** Writes one of the leader's keys (accountant, strategy state) under `token`. */
  async writeFenced(token: number, key: string, value: string): Promise<void> {
    try {
      await this.redis.eval(WRITE_KEY, 2, this.keys.epoch, key, token, value);
    } catch (error) {
      throw fenced(error, token);
    }
  }

  async read(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  // ------------------------------------------------------------------------ anyone's reads

  async lastRoundId(): Promise<number> {
    return Number((await this.redis.get(this.keys.lastRound)) ?? 0);
  }

  async round(id: number): Promise<ClusterRound | null> {
    const raw = await this.redis.get(this.keys.round(id));
    return raw === null ? null : (JSON.parse(raw) as ClusterRound);
  }

  /** The latest round's record, if any round was ever configured. */
  async latest(): Promise<ClusterRound | null> {
    const id = await this.lastRoundId();
    return id > 0 ? this.round(id) : null;
  }

  // ------------------------------------------------------------------------ partials

  /** Appends this node's partial once; false when it was already there (a retry). */
  async postPartial(partial: ClusterPartial): Promise<boolean> {
    const { keys } = this;
    const added = await this.redis.eval(
      POST_PARTIAL,
      2,
      keys.partials(partial.roundId),
      keys.partialNodes(partial.roundId),
      partial.nodeId,
      JSON.stringify(partialSchema.parse(partial)),
    );
    return Number(added) === 1;
  }

  /**
   * The round's partials, at most one per node (the first), each validated: a malformed entry
   * is reported in `refused` with the reason, never counted.
   */
  async partials(roundId: number): Promise<{ partials: ClusterPartial[]; refused: string[] }> {
    const entries = await this.redis.xrange(this.keys.partials(roundId), '-', '+');
    const byNode = new Map<string, ClusterPartial>();
    const refused: string[] = [];
    for (const [id, fields] of entries) {
      const raw = fields[fields.indexOf('partial') + 1];
      let parsed;
      try {
        parsed = partialSchema.safeParse(JSON.parse(raw ?? ''));
      } catch (error) {
        refused.push(`stream entry ${id} is not JSON: ${(error as Error).message}`);
        continue;
      }
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        refused.push(`stream entry ${id}: ${issue?.path.join('.')}: ${issue?.message}`);
      } else if (parsed.data.roundId !== roundId) {
        refused.push(`stream entry ${id} names round ${parsed.data.roundId}, not ${roundId}`);
      } else if (!byNode.has(parsed.data.nodeId)) {
        byNode.set(parsed.data.nodeId, parsed.data);
      }
    }
    return { partials: [...byNode.values()], refused };
  }

  // ------------------------------------------------------------------------ membership

  /** Refreshes this node's heartbeat; it expires `ttlMs` after the last refresh. */
  async beat(beat: NodeBeat, ttlMs: number): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.node(beat.nodeId), JSON.stringify(beat), 'PX', ttlMs)
      .sadd(this.keys.nodes, beat.nodeId)
      .exec();
  }

  async leave(nodeId: string): Promise<void> {
    await this.redis.del(this.keys.node(nodeId));
  }

  /** The nodes whose heartbeat has not expired. */
  async liveNodes(): Promise<NodeBeat[]> {
    const ids = await this.redis.smembers(this.keys.nodes);
    if (ids.length === 0) return [];
    const values = await this.redis.mget(ids.map((id) => this.keys.node(id)));
    return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as NodeBeat]));
  }
}
