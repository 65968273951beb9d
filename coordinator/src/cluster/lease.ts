// Leadership of a scale-out coordinator: a lease in Redis with a fencing token (Kleppmann's
// "How to do distributed locking"). One key names the holder and its token; a counter hands
// out tokens, strictly increasing, one per acquisition. The lease's term is Redis's own
// expiry (PX), measured by Redis's clock; a node trusts its leadership only for part of the
// term, measured on its own monotonic clock from before it asked. No wall clock is read, so a
// node whose clock is skewed neither keeps a lease too long nor steals one early.
//
// That alone cannot stop a node that was paused (GC, SIGSTOP, a slow disk) past its term and
// wakes believing it still leads. Fencing does: every write the leader makes to the shared
// round records carries its token, and a Lua script refuses it unless the token is the
// counter's latest (FencedError). Chain writes cannot be fenced by Redis, so the leader fixes
// the candidate's content hash in a fenced write before it registers anything: a stale leader
// can at most repeat the same registration, which ModelRegistry refuses as already registered.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ClusterKeys } from './keys.ts';

/** A leader's write refused because a newer leader holds the lease. */
export class FencedError extends Error {
  override name = 'FencedError';
  constructor(token: number, detail: string) {
    super(`fencing token ${token} is stale: ${detail}`);
  }
}

// Acquire or renew: the holder renews its own lease (same token); anyone takes a free one
// with a fresh token; a lease held by another is left alone (0).
const ACQUIRE = `
local v = redis.call('GET', KEYS[1])
if v then
  local holder, token = string.match(v, '^(.*)|(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * The fencing check every leader write starts with (see RoundLog): the token must be the
 * counter's latest. Exported so each fenced script is this check plus its own write.
 */
export const FENCE_CHECK = `
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
if latest ~= tonumber(ARGV[1]) then
  return redis.error_reply('FENCED latest token is ' .. latest)
end`;

export interface LeaseOptions {
  nodeId: string;
  /** The lease's term in Redis (ms). A dead leader is replaced within about this long. */
  ttlMs: number;
}

export interface LeaseEvents {
  /** This node became leader with this token. */
  elected: [number];
  /** This node stopped leading (lease lost, Redis unreachable past the term, or released). */
  lost: [string];
}

export class LeaderLease extends EventEmitter<LeaseEvents> {
  private readonly redis: Redis;
  private readonly keys: ClusterKeys;
  private readonly log: Logger;
  readonly nodeId: string;
  /** nodeId plus this process's instance id: a restarted node is a new holder. */
  readonly holder: string;
  readonly ttlMs: number;
  private currentToken = 0;
  /** performance.now() until which this node may act as leader. */
  private validUntil = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(redis: Redis, keys: ClusterKeys, options: LeaseOptions, log: Logger) {
    super();
    this.redis = redis;
    this.keys = keys;
    this.log = log;
    this.nodeId = options.nodeId;
    this.holder = `${options.nodeId}/${randomUUID().slice(0, 8)}`;
    this.ttlMs = options.ttlMs;
  }

  /** Tries at once, then every third of the term. */
  start(): void {
    const loop = async () => {
      await this.tick();
      if (this.stopped) return;
      this.timer = setTimeout(() => void loop(), Math.max(50, this.ttlMs / 3));
      this.timer.unref();
    };
    void loop();
  }

  /** This node's token while it leads; 0 when it does not. */
  get token(): number {
    return this.isLeader() ? this.currentToken : 0;
  }

  /** Whether this node may act as leader now (its own monotonic clock, with margin). */
  isLeader(): boolean {
    return this.currentToken > 0 && performance.now() < this.validUntil;
  }

  /** The holder named in Redis now (node id), or null when the lease is free. */
  async leaderNodeId(): Promise<string | null> {
    const value = await this.redis.get(this.keys.leader);
    return value === null ? null : (value.split('/')[0] ?? null);
  }

  /** One acquisition or renewal attempt (start() repeats it every third of the term). */
  async tick(): Promise<void> {
    if (this.stopped) return;
    const asked = performance.now();
    try {
      const token = Number(
        await this.redis.eval(
          ACQUIRE,
          2,
          this.keys.leader,
          this.keys.epoch,
          this.holder,
          this.ttlMs,
        ),
      );
      if (token > 0) {
        // Trust it for 2/3 of the term from before we asked: the rest covers the command's
        // flight time and the rate difference between this machine's clock and Redis's.
        this.validUntil = asked + (this.ttlMs * 2) / 3;
        if (token !== this.currentToken) {
          this.currentToken = token;
          this.log.info({ fencingToken: token }, 'elected leader');
          this.emit('elected', token);
        }
      } else if (this.currentToken > 0) {
        this.step('another node holds the lease');
      }
    } catch (error) {
      // Redis unreachable: leadership lasts only as long as the term already granted.
      if (this.currentToken > 0 && performance.now() >= this.validUntil) {
        this.step(`Redis unreachable: ${(error as Error).message}`);
      }
    }
    if (this.currentToken > 0 && !this.isLeader()) this.step('lease term passed without renewal');
  }

  private step(reason: string): void {
    const token = this.currentToken;
    this.currentToken = 0;
    this.validUntil = 0;
    this.log.warn({ fencingToken: token, reason }, 'no longer leader');
    this.emit('lost', reason);
  }

  /** Stops renewing; releases the lease if held, so another node need not wait out the term. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.currentToken > 0) {
      const value = `${this.holder}|${this.currentToken}`;
      await this.redis.eval(RELEASE, 1, this.keys.leader, value).catch(() => undefined);
      this.step('stopped');
    }
  }
}
