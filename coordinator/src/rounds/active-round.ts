// The round in memory while it runs: what the engine, admission and recovery share. The
// database row is its durable twin; this is built once per round, by newActiveRound, whether
// the round is new or restored after a restart.
import type { FederationPolicy } from '@commons/chain';
import type { Manifest, NamedTensors } from '@commons/shared/engine';
import type { AdapterTask, RoundState, RoundTask, LayoutEntry } from '@commons/shared/protocol';
import type { RandomSource } from '@commons/shared/privacy';
import type { Aggregator } from '../aggregation/aggregator.ts';
import { layoutOf, type ParameterLayout } from '../aggregation/layout.ts';
import { roundAggregator, type RoundPrivacy } from '../privacy/round-privacy.ts';
import type { SecureRound } from '../secagg/secure-round.ts';
import type { ModelStore } from '../store/models.ts';
import type { Strategy } from '../strategy/strategy.ts';
import { roundAdapter, type RoundAdapter } from './adapter-round.ts';

/**
 * The model a round trains from, loaded once, with the flat layout of the round's update: the
 * model's own tensors, or on an adapter round the adapter's trainable factors.
 */
export interface BaseModel {
  hash: string;
  manifest: Manifest;
  tensors: NamedTensors;
  /** Adapter rounds: the adapter every client drew from the round's seed; otherwise null. */
  adapter: RoundAdapter | null;
  /** What each update is a change of: `tensors`, or the adapter's trainable factors as drawn. */
  start: NamedTensors;
  layout: ParameterLayout;
  entries: LayoutEntry[];
}

export interface ActiveRound {
  id: number;
  state: RoundState;
  task: RoundTask;
  policy: FederationPolicy;
  base: BaseModel;
  strategy: Strategy;
  /** The running aggregate of the accepted updates (never the source of truth: the rows are). */
  aggregator: Aggregator;
  /** An empty aggregator like the round's first, to rebuild the aggregate from the rows. */
  newAggregator: () => Aggregator;
  participants: Set<string>;
  uploaded: Set<string>;
  /** When each disconnected participant went away (ms). */
  awaySince: Map<string, number>;
  /** Participants that gave up on the round (round:withdraw): not waited for, not re-invited. */
  withdrawn: Set<string>;
  /** C, z, σ_b, m, q: fixed when the round was configured, stored with it (round_privacy). */
  privacy: RoundPrivacy;
  /** Secure rounds: the unmasked mean and its contributors, once the SecAgg+ stages ran. */
  secure?: SecureRound;
  startedMs: number;
  /** Resolves when training may end early (everyone uploaded or dropped). */
  wake: () => void;
}

export interface NewActiveRound {
  id: number;
  state: RoundState;
  task: RoundTask;
  policy: FederationPolicy;
  base: BaseModel;
  strategy: Strategy;
  privacy: RoundPrivacy;
  participants?: Iterable<string>;
  /** The round's DP noise source (absent: a CSPRNG). */
  noise: RandomSource | undefined;
}

/**
 * The in-memory round, with the aggregator its strategy and privacy call for. Throws
 * RoundConfigError when the policy's privacy cannot be had with the strategy.
 */
export function newActiveRound(input: NewActiveRound): ActiveRound {
  const { base, strategy, policy, privacy } = input;
  // The round's clip norm and noise are fixed once it is configured: a restored round
  // gets the same ones it announced.
  const newAggregator = () => roundAggregator(strategy, base.layout, privacy, input.noise);
  return {
    id: input.id,
    state: input.state,
    task: input.task,
    policy,
    base,
    strategy,
    aggregator: newAggregator(),
    newAggregator,
    participants: new Set(input.participants ?? []),
    uploaded: new Set(),
    awaySince: new Map(),
    withdrawn: new Set(),
    privacy,
    startedMs: Date.now(),
    wake: () => undefined,
  };
}

/**
 * An update's FedAvg weight: its self-reported example count, capped by the policy's
 * maxExamplesPerUpdate, so that no client makes the average its own by reporting 2^53 − 1.
 * DP rounds weight every update equally whatever this says (privacy/noisy-mean.ts).
 */
export function updateWeight(round: ActiveRound, numExamples: number): number {
  return Math.min(numExamples, round.policy.maxExamplesPerUpdate);
}

/** Loads (and verifies) the round's base model; `adapter` is the round task's, if any. */
export async function loadBaseModel(
  models: ModelStore,
  hash: string,
  adapter: AdapterTask | null = null,
): Promise<BaseModel> {
  const { manifest, tensors } = await models.load(hash);
  const drawn = adapter ? roundAdapter(manifest, adapter) : null;
  const start = drawn ? drawn.trainable : tensors;
  const layout = layoutOf(start);
  const entries = layout.entries.map(({ name, shape }) => ({ name, shape }));
  return { hash, manifest, tensors, adapter: drawn, start, layout, entries };
}

/**
 * Resolves when training may end: every participant uploaded, withdrew or stayed away longer
 * than `reconnectGraceMs`, or the round's deadline passed, or `stopping()` says so. `round.wake`
 * cuts a wait short (an upload, a withdrawal, a disconnection's grace running out).
 */
export async function untilUploadsSettle(
  round: ActiveRound,
  reconnectGraceMs: number,
  stopping: () => boolean,
): Promise<void> {
  while (!stopping()) {
    const now = Date.now();
    if (now >= round.task.deadline) break;
    const waitingFor = [...round.participants].filter((address) => {
      if (round.uploaded.has(address) || round.withdrawn.has(address)) return false;
      const away = round.awaySince.get(address);
      return away === undefined || now - away < reconnectGraceMs;
    });
    if (waitingFor.length === 0) break;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(1000, round.task.deadline - now));
      round.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
