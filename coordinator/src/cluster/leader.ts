// The leader's side of scale-out rounds: whichever node holds the lease configures each round
// in Redis (who samples how many, the task, the privacy), waits for every node's partial (or
// its death, or the deadline), combines them, adds the DP noise, evaluates the candidate, fixes
// it in Redis, and only then registers it on chain — then the round is published, once.
//
// The round record in Redis is the source of truth, so a new leader resumes where the last one
// stopped: a round still training is waited on again (the cohorts keep running on their nodes),
// a round whose candidate is fixed is published with that very candidate. Every record write
// is fenced: a leader that lost its lease (paused, partitioned, skewed) cannot overwrite the
// next one's work. Chain writes are made idempotent instead: registration checks the chain
// first, and a stale leader can only repeat the fixed candidate, which the registry refuses.
//
// Privacy across cohorts (see docs/ARCHITECTURE.md, "Scale-out"):
//   plain rounds  nodes see their cohort's updates (as a single coordinator does) and send an
//                 un-noised mean; the leader adds N(0, (σC)²) once, to the sum of all
//                 contributions, and divides by their count: the single-node DP-FedAvg mean.
//   secure rounds the clients add the noise, split over the cohort minimum, so that every
//                 cohort sum a node unmasks carries all of σC; the total carries more
//                 (√cohorts · σC), which only over-protects.
//   accounting    one sampled Gaussian step per noised aggregate, at q = Σ sampled / Σ eligible
//                 over all nodes, with the policy's σ; a round re-aggregated by a new leader is
//                 accounted again (a second noised release of the same updates).
//   robust rules  median, trimmed mean and Krum need every update in one place: refused.
import type { CommonsClient, FederationPolicy } from '@commons/chain';
import { addGaussianNoise, RdpAccountant, seededRandomSource } from '@commons/shared/privacy';
import type { RoundResult, RoundStatus } from '@commons/shared/protocol';
import { errorMessage } from '@commons/shared/errors';
import type { Logger } from 'pino';
import { flatten, unflatten } from '../aggregation/layout.ts';
import type { CoordinatorMetrics } from '../observability/metrics.ts';
import { configureRoundPrivacy } from '../privacy/round-privacy.ts';
import { loadBaseModel } from '../rounds/active-round.ts';
import { adapterTaskFor, foldAdapter } from '../rounds/adapter-round.ts';
import type { ClientHub, RoundOptions } from '../rounds/engine.ts';
import type { CandidateEvaluator } from '../rounds/evaluator.ts';
import { publishCandidate } from '../rounds/publisher.ts';
import { buildRoundTask, roundSeed } from '../rounds/round-task.ts';
import { sampleSize } from '../rounds/sampling.ts';
import type { BlobStore } from '../store/blobs.ts';
import type { ModelStore } from '../store/models.ts';
import { averagingStrategyNames, createStrategy } from '../strategy/index.ts';
import type { Strategy, StrategyState } from '../strategy/strategy.ts';
import { FencedError, type LeaderLease } from './lease.ts';
import type { ClusterPartial, ClusterRound, NodeBeat, RoundLog } from './round-log.ts';

/** Why a rule cannot run across cohorts (the round fails with it). */
export function scaleOutRefusal(strategy: Strategy): string | null {
  if (strategy.averages) return null;
  return (
    `SCALE_OUT_NEEDS_AVERAGING: ${strategy.name} needs every update in one place, and in ` +
    `scale-out mode each node sees only its cohort; use ${averagingStrategyNames().join(', ')}`
  );
}

/** Splits `total` samples over nodes in proportion to their clients (largest remainder). */
export function cohortQuotas(nodes: readonly NodeBeat[], total: number): Record<string, number> {
  const clients = nodes.reduce((n, node) => n + node.clients, 0);
  const quotas: Record<string, number> = {};
  if (clients === 0) return quotas;
  const shares = nodes.map((node) => {
    const exact = (total * node.clients) / clients;
    return {
      id: node.nodeId,
      floor: Math.floor(exact),
      rest: exact - Math.floor(exact),
      cap: node.clients,
    };
  });
  let left = total - shares.reduce((n, s) => n + s.floor, 0);
  for (const s of [...shares].sort((a, b) => b.rest - a.rest || a.id.localeCompare(b.id))) {
    if (left > 0 && s.floor < s.cap) {
      s.floor++;
      left--;
    }
  }
  for (const s of shares) quotas[s.id] = s.floor;
  return quotas;
}

export interface LeaderDeps {
  nodeId: string;
  lease: LeaderLease;
  rounds: RoundLog;
  chain: CommonsClient;
  models: ModelStore;
  /** The shared blob store: partial means and strategy tensors. */
  shared: BlobStore;
  evaluator: CandidateEvaluator;
  hub: ClientHub;
  metrics: CoordinatorMetrics;
  log: Logger;
  options: RoundOptions;
  /** How long past a round's duration the leader waits for partials (SecAgg+ unmasking, etc.). */
  partialGraceMs: number;
}

interface StoredAccountant {
  accountant: unknown;
  /** `${round}@${token}` of every noised aggregate composed in. */
  releases: string[];
}

interface StoredStrategy {
  json: Record<string, unknown>;
  tensors: Record<string, string>;
}

export class ClusterLeader {
  private readonly deps: LeaderDeps;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wakeTimer: (() => void) | null = null;
  private waitingKey = '';
  /** When this process first saw each round it drives (its own clock: clocks are not compared). */
  private readonly firstSeen = new Map<number, number>();

  constructor(deps: LeaderDeps) {
    this.deps = deps;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeTimer?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { lease, rounds, log, options } = this.deps;
    while (!this.stopping) {
      const token = lease.token;
      if (token === 0) {
        await this.sleep(200);
        continue;
      }
      try {
        const latest = await rounds.latest();
        if (latest && latest.state !== 'published' && latest.state !== 'failed') {
          await this.drive(latest, token);
        } else if (options.maxRounds > 0 && (latest?.id ?? 0) >= options.maxRounds) {
          await this.sleep(1000);
        } else {
          if (latest) await this.sleep(options.roundIntervalMs);
          const round = await this.configure((latest?.id ?? 0) + 1, token);
          if (round) await this.drive(round, token);
        }
      } catch (error) {
        if (error instanceof FencedError)
          log.warn({ err: error.message }, 'fenced: a newer leader holds the lease');
        else log.error({ err: errorMessage(error) }, 'leader step failed; retrying');
        await this.sleep(1000);
      }
    }
  }

  // ------------------------------------------------------------------ configuring

  private async configure(id: number, token: number): Promise<ClusterRound | null> {
    const { chain, rounds, models, hub, log, options, nodeId } = this.deps;
    const { version: policyVersion, policy } = await chain.policy();
    const nodes = await rounds.liveNodes();
    const clients = nodes.reduce((n, node) => n + node.clients, 0);
    if (clients < policy.minClients) {
      const key = `${id}:${policy.minClients}`;
      if (key !== this.waitingKey) {
        this.waitingKey = key;
        hub.broadcastStatus({
          roundId: id,
          state: 'waiting',
          baseModel: '0'.repeat(64),
          invited: 0,
          accepted: 0,
          minClients: policy.minClients,
          deadline: 0,
        });
      }
      this.deps.metrics.setRoundState('waiting');
      await this.sleep(1000);
      return null;
    }
    const active = await chain.activeModel();
    const baseHash = active.contentHash.replace(/^0x/, '');
    const strategy = await this.strategy(options.strategy ?? policy.aggregationRule);
    const adapter = adapterTaskFor(policy, roundSeed(options.seed, id));
    const base = await loadBaseModel(models, baseHash, adapter);
    const planned = sampleSize(clients, policy);
    const privacy = configureRoundPrivacy(
      policy,
      {
        clipNorm: policy.clipNorm,
        noiseMultiplier: policy.noiseMultiplier,
        adaptive: false,
        bitNoiseStddev: 0,
      },
      planned,
      clients,
    );
    if (policy.clipTargetQuantile > 0) {
      log.warn(
        { round: id },
        'adaptive clipping is not available in scale-out mode; the policy clip norm is fixed',
      );
    }
    // Each secure cohort's sum must carry the whole noise on its own: the clients split it over
    // the cohort minimum, not the round's.
    const cohortMinClients = Math.max(3, Math.ceil(policy.minClients / Math.max(1, nodes.length)));
    const taskPolicy: FederationPolicy = policy.secureAggregation
      ? { ...policy, minClients: cohortMinClients }
      : policy;
    const task = buildRoundTask({
      roundId: id,
      strategy: strategy.name,
      fit: strategy.configureRound({ roundId: id, policy }),
      base,
      policy: taskPolicy,
      policyVersion,
      clipNorm: privacy.clipNorm,
      options,
    });
    const round: ClusterRound = {
      id,
      state: 'training',
      token,
      policyVersion,
      policy,
      strategy: strategy.name,
      baseHash,
      task,
      durationMs: Math.max(0, task.deadline - Date.now()),
      privacy,
      nodes: nodes.map((n) => n.nodeId).sort(),
      quotas: cohortQuotas(nodes, planned),
      cohortMinClients: policy.secureAggregation ? cohortMinClients : 1,
    };
    const refusal = scaleOutRefusal(strategy);
    if (refusal) {
      await this.finish(token, round, {
        roundId: id,
        outcome: 'failed',
        reason: refusal,
        accepted: 0,
      });
      return null;
    }
    await rounds.writeRound(token, round);
    log.info(
      { round: id, nodes: round.nodes, quotas: round.quotas, leader: nodeId },
      'round configured',
    );
    this.broadcast(round, 0);
    return round;
  }

  // ------------------------------------------------------------------ driving a round

  private async drive(round: ClusterRound, token: number): Promise<void> {
    if (!this.firstSeen.has(round.id)) this.firstSeen.set(round.id, performance.now());
    if (round.state === 'training') {
      const partials = await this.collect(round);
      if (this.stopping || this.deps.lease.token !== token) return;
      await this.aggregate(round, token, partials);
    } else if (round.state === 'candidate') {
      await this.publish(round, token);
    }
  }

  /** Waits until every expected node handed in its partial, died, or the time ran out. */
  private async collect(round: ClusterRound): Promise<ClusterPartial[]> {
    const { rounds, log } = this.deps;
    const until = this.firstSeen.get(round.id)! + round.durationMs + this.deps.partialGraceMs;
    let last: ClusterPartial[] = [];
    while (!this.stopping) {
      const { partials, refused } = await rounds.partials(round.id);
      for (const reason of refused) log.warn({ round: round.id, reason }, 'partial refused');
      last = partials;
      const handedIn = new Set(partials.map((p) => p.nodeId));
      const alive = new Set((await rounds.liveNodes()).map((n) => n.nodeId));
      const pending = round.nodes.filter((n) => !handedIn.has(n) && alive.has(n));
      const lost = round.nodes.filter((n) => !handedIn.has(n) && !alive.has(n));
      this.deps.metrics.clusterPartials.set(partials.length);
      if (pending.length === 0) {
        if (lost.length > 0) log.warn({ round: round.id, lost }, 'cohorts of lost nodes dropped');
        break;
      }
      if (performance.now() > until) {
        log.warn(
          { round: round.id, pending },
          'partials missing at the deadline; those cohorts are dropped',
        );
        break;
      }
      await this.sleep(250);
    }
    return last;
  }

  private async aggregate(
    round: ClusterRound,
    token: number,
    partials: ClusterPartial[],
  ): Promise<void> {
    const { shared, models, evaluator, log, options, rounds } = this.deps;
    const counted = partials.filter((p) => p.count > 0 && p.blob !== null);
    const contributors = counted.flatMap((p) => p.contributors);
    const accepted = contributors.length;
    for (const p of partials) {
      if (p.dropped)
        log.warn({ round: round.id, node: p.nodeId, reason: p.dropped }, 'cohort dropped');
    }
    if (accepted < round.policy.minClients) {
      await this.finish(token, round, {
        roundId: round.id,
        outcome: 'failed',
        reason: `only ${accepted} updates arrived across ${partials.length} of ${round.nodes.length} nodes; the policy needs ${round.policy.minClients}`,
        accepted,
      });
      return;
    }
    this.broadcast(round, accepted, 'aggregating');
    const base = await loadBaseModel(models, round.baseHash, round.task.adapter ?? null);
    // Σ weight·mean over cohorts, in float64.
    const sum = new Float64Array(base.layout.size);
    let weight = 0;
    for (const p of counted) {
      const bytes = await shared.read(p.blob!);
      const mean = new Float32Array(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      );
      if (mean.length !== sum.length) {
        throw new Error(
          `node ${p.nodeId}'s partial has ${mean.length} values; the round's layout has ${sum.length}`,
        );
      }
      for (let i = 0; i < sum.length; i++) sum[i]! += (mean[i] as number) * p.weight;
      weight += p.weight;
    }
    const delta = new Float32Array(sum.length);
    const dp = round.privacy.noiseMultiplier > 0 && !round.task.secureAggregation;
    if (dp) {
      // The single-node DP mean: Σ clipped updates + N(0, (σC)²), over their count.
      const noise = new Float32Array(sum.length);
      const random =
        options.noiseSeed === undefined
          ? undefined
          : seededRandomSource(options.noiseSeed + round.id);
      addGaussianNoise(noise, round.privacy.noiseMultiplier * round.privacy.clipNorm, random);
      for (let i = 0; i < sum.length; i++)
        delta[i] = ((sum[i] as number) + (noise[i] as number)) / accepted;
    } else {
      for (let i = 0; i < sum.length; i++) delta[i] = (sum[i] as number) / weight;
    }
    const eligible = partials.reduce((n, p) => n + p.eligible, 0);
    const sampled = partials.reduce((n, p) => n + p.sampled, 0);
    const spent = await this.account(
      round,
      token,
      eligible > 0 ? Math.min(1, sampled / eligible) : 1,
    );
    const strategy = await this.strategy(round.strategy);
    const next = unflatten(
      strategy.applyUpdate(flatten(base.start, base.layout), delta, round.id),
      base.layout,
    );
    const folded = base.adapter ? foldAdapter(base.tensors, base.adapter, next) : null;
    const tensors = folded ? folded.merged : next;
    this.broadcast(round, accepted, 'evaluating');
    const parentScore = evaluator.evaluate(base.manifest, base.tensors, base.hash);
    const score = evaluator.evaluate(base.manifest, tensors);
    if (score.bitsPerChar > parentScore.bitsPerChar + options.publishMarginBpc) {
      await this.finish(token, round, {
        roundId: round.id,
        outcome: 'failed',
        reason: `the candidate scores ${score.bitsPerChar.toFixed(4)} bits/char, worse than its parent's ${parentScore.bitsPerChar.toFixed(4)} by more than ${options.publishMarginBpc}`,
        accepted,
      });
      return;
    }
    // The candidate goes into the shared store and is fixed in Redis before any chain write.
    const adapterHash =
      folded && base.adapter
        ? await models.publish({
            kind: 'adapter',
            config: base.manifest.config,
            tokenizer: base.manifest.tokenizer,
            tensors: folded.adapter,
            adapter: { baseHash: base.hash, lora: base.adapter.task.lora },
            provenance: {
              roundId: round.id,
              rule: base.adapter.task.rule,
              seed: base.adapter.task.seed,
              strategy: strategy.name,
              contributors: accepted,
            },
          })
        : null;
    const hash = await models.publish({
      kind: 'model',
      config: base.manifest.config,
      tokenizer: base.manifest.tokenizer,
      tensors,
      provenance: {
        parent: base.hash,
        ...(adapterHash ? { adapter: adapterHash } : {}),
        roundId: round.id,
        strategy: strategy.name,
        contributors: accepted,
      },
    });
    const fixed: ClusterRound = {
      ...round,
      state: 'candidate',
      candidate: {
        hash,
        adapterHash,
        contributors,
        valLoss: score.loss,
        valBpc: score.bitsPerChar,
        epsilon: Number.isFinite(spent.epsilon) ? spent.epsilon : null,
        delta: spent.delta,
      },
    };
    await rounds.writeRound(token, fixed);
    await this.saveStrategy(token, strategy);
    log.info(
      { round: round.id, hash, accepted, nodes: counted.length, bpc: score.bitsPerChar },
      'candidate fixed',
    );
    await this.publish(fixed, token);
  }

  /** Registers the fixed candidate and posts rewards (each idempotent), then marks it published. */
  private async publish(round: ClusterRound, token: number): Promise<void> {
    const { chain, log, options, lease } = this.deps;
    const candidate = round.candidate!;
    if (lease.token !== token) throw new FencedError(token, 'lease lost before publishing');
    const receipt = await publishCandidate(
      chain,
      {
        roundId: round.id,
        hash: candidate.hash,
        parentHash: round.baseHash,
        adapterHash: candidate.adapterHash,
        publicUrl: options.publicUrl,
        commitments: candidate.contributors.map((c) => c.commitment),
        contributors: candidate.contributors.map((c) => c.address),
        valBpc: candidate.valBpc,
        epsilon: candidate.epsilon ?? Infinity,
        delta: candidate.delta,
        proposeActivation: options.proposeActivation,
      },
      log,
    );
    await this.finish(
      token,
      {
        ...round,
        rewards: receipt.rewards.map((r) => ({ account: r.account, amount: r.amount.toString() })),
      },
      {
        roundId: round.id,
        outcome: 'published',
        accepted: candidate.contributors.length,
        candidate: {
          hash: candidate.hash,
          parentHash: round.baseHash,
          ...(candidate.adapterHash ? { adapterHash: candidate.adapterHash } : {}),
          valLoss: candidate.valLoss,
          valBpc: candidate.valBpc,
          epsilon: candidate.epsilon,
          delta: candidate.delta,
        },
      },
    );
  }

  /** Writes the round's outcome (fenced) and tells every client on every node. */
  private async finish(token: number, round: ClusterRound, result: RoundResult): Promise<void> {
    const { rounds, hub, metrics, log } = this.deps;
    const state = result.outcome === 'published' ? 'published' : 'failed';
    await rounds.writeRound(token, { ...round, state, result });
    metrics.roundsTotal.inc({ outcome: result.outcome });
    const first = this.firstSeen.get(round.id);
    if (first !== undefined)
      metrics.roundDuration.observe({ outcome: state }, (performance.now() - first) / 1000);
    if (result.outcome === 'failed')
      log.warn({ round: round.id, reason: result.reason }, 'round failed');
    else log.info({ round: round.id, hash: result.candidate?.hash }, 'round published');
    this.broadcast({ ...round, state }, result.accepted);
    hub.broadcastResult(result);
  }

  private broadcast(round: ClusterRound, accepted: number, state?: RoundStatus['state']): void {
    const status: RoundStatus = {
      roundId: round.id,
      state: state ?? (round.state === 'candidate' ? 'evaluating' : round.state),
      baseModel: round.baseHash,
      invited: Object.values(round.quotas).reduce((n, q) => n + q, 0),
      accepted,
      minClients: round.policy.minClients,
      deadline: round.task.deadline,
    };
    this.deps.metrics.setRoundState(status.state);
    this.deps.hub.broadcastStatus(status);
  }

  // ------------------------------------------------------------------ durable leader state

  /** Composes this round's noised aggregate into the accountant kept in Redis (fenced). */
  private async account(round: ClusterRound, token: number, sampleRate: number) {
    const { rounds } = this.deps;
    const raw = await rounds.read(rounds.keys.accountant);
    const stored: StoredAccountant = raw
      ? (JSON.parse(raw) as StoredAccountant)
      : { accountant: new RdpAccountant().toJSON(), releases: [] };
    const accountant = RdpAccountant.fromJSON(stored.accountant);
    const release = `${round.id}@${token}`;
    const noiseMultiplier = round.privacy.accountedNoiseMultiplier;
    if (!stored.releases.includes(release)) {
      accountant.step({ sampleRate, noiseMultiplier });
      stored.releases.push(release);
      stored.accountant = accountant.toJSON();
      await rounds.writeFenced(token, rounds.keys.accountant, JSON.stringify(stored));
    }
    return { epsilon: accountant.epsilon(round.policy.delta), delta: round.policy.delta };
  }

  /** The strategy with the state the last leader saved (FedOpt's moments live in Redis + blobs). */
  private async strategy(name: string): Promise<Strategy> {
    const { rounds, shared } = this.deps;
    const strategy = createStrategy(name);
    const raw = await rounds.read(rounds.keys.strategy(strategy.name));
    if (raw) {
      const saved = JSON.parse(raw) as StoredStrategy;
      const tensors: Record<string, Float32Array> = {};
      for (const [key, hash] of Object.entries(saved.tensors)) {
        const bytes = await shared.read(hash);
        tensors[key] = new Float32Array(
          bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
        );
      }
      strategy.importState({ json: saved.json, tensors } satisfies StrategyState);
    }
    return strategy;
  }

  private async saveStrategy(token: number, strategy: Strategy): Promise<void> {
    const state = strategy.exportState();
    if (!state) return;
    const tensors: Record<string, string> = {};
    for (const [key, values] of Object.entries(state.tensors)) {
      tensors[key] = await this.deps.shared.put(
        new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
      );
    }
    const { rounds } = this.deps;
    await rounds.writeFenced(
      token,
      rounds.keys.strategy(strategy.name),
      JSON.stringify({ json: state.json, tensors }),
    );
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeTimer = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
