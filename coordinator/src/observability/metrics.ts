import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import {
  REJECT_CODES,
  type RejectCode,
  ROUND_STATES,
  type RoundState,
} from '@commons/shared/protocol';

/**
 * The coordinator's Prometheus metrics, in a registry of its own (never prom-client's global
 * one), so two coordinators in one process (tests) do not share counters.
 */
export type RoundOutcome = 'published' | 'failed';

export interface CoordinatorMetrics {
  registry: Registry;
  connectedClients: Gauge;
  authenticatedClients: Gauge;
  roundDuration: Histogram<'outcome'>;
  roundsTotal: Counter<'outcome'>;
  uploadBytes: Counter;
  updatesAccepted: Counter;
  rejections: Counter<'code'>;
  roundState: Gauge<'state'>;
  /** Scale-out mode: 1 while this node holds the leader lease. */
  clusterLeader: Gauge;
  /** Scale-out mode: this node's fencing token while it leads (0 otherwise). */
  clusterLeaseToken: Gauge;
  /** Scale-out mode: nodes with a live heartbeat, as the last look at Redis saw them. */
  clusterNodes: Gauge;
  /** Scale-out mode (leader): partials handed in for the round being collected. */
  clusterPartials: Gauge;
  /** Records a finished round: its duration and its outcome. */
  observeRound(outcome: RoundOutcome, durationSeconds: number): void;
  /** Counts one refusal sent to a client. */
  reject(code: RejectCode): void;
  /** Sets commons_round_state to 1 for `state` and 0 for every other (all 0 for null). */
  setRoundState(state: RoundState | null): void;
}

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
}

const OUTCOMES: readonly RoundOutcome[] = ['published', 'failed'];

export function createMetrics(opts: MetricsOptions = {}): CoordinatorMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const connectedClients = new Gauge({
    name: 'commons_connected_clients',
    help: 'Socket.IO clients connected now',
    registers,
  });
  const authenticatedClients = new Gauge({
    name: 'commons_authenticated_clients',
    help: 'Connected clients that signed in (SIWE)',
    registers,
  });
  const roundDuration = new Histogram({
    name: 'commons_round_duration_seconds',
    help: 'Time from round creation to its terminal state',
    labelNames: ['outcome'] as const,
    // Rounds take from seconds (tests, tiny models) to hours (many slow clients).
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600],
    registers,
  });
  const roundsTotal = new Counter({
    name: 'commons_rounds_total',
    help: 'Rounds that ended, by outcome',
    labelNames: ['outcome'] as const,
    registers,
  });
  const uploadBytes = new Counter({
    name: 'commons_upload_bytes_total',
    help: 'Update bytes received from clients',
    registers,
  });
  const updatesAccepted = new Counter({
    name: 'commons_updates_accepted_total',
    help: 'Client updates accepted into a round',
    registers,
  });
  const rejections = new Counter({
    name: 'commons_rejections_total',
    help: 'Refusals sent to clients, by refusal code',
    labelNames: ['code'] as const,
    registers,
  });
  const roundState = new Gauge({
    name: 'commons_round_state',
    help: 'State of the current round (1 for the current state, 0 otherwise)',
    labelNames: ['state'] as const,
    registers,
  });

  const clusterLeader = new Gauge({
    name: 'commons_cluster_leader',
    help: 'Scale-out mode: 1 while this node holds the leader lease',
    registers,
  });
  const clusterLeaseToken = new Gauge({
    name: 'commons_cluster_lease_token',
    help: "Scale-out mode: this node's fencing token while it leads, 0 otherwise",
    registers,
  });
  const clusterNodes = new Gauge({
    name: 'commons_cluster_nodes',
    help: 'Scale-out mode: coordinator nodes with a live heartbeat',
    registers,
  });
  const clusterPartials = new Gauge({
    name: 'commons_cluster_round_partials',
    help: 'Scale-out mode (leader): cohort partials handed in for the round being collected',
    registers,
  });

  // Every label value exists from the start at 0, so rate() and alerts see a series before
  // its first event.
  for (const outcome of OUTCOMES) roundsTotal.labels(outcome).inc(0);
  for (const code of REJECT_CODES) rejections.labels(code).inc(0);
  for (const state of ROUND_STATES) roundState.labels(state).set(0);

  return {
    registry,
    connectedClients,
    authenticatedClients,
    roundDuration,
    roundsTotal,
    uploadBytes,
    updatesAccepted,
    rejections,
    roundState,
    clusterLeader,
    clusterLeaseToken,
    clusterNodes,
    clusterPartials,
    observeRound(outcome, durationSeconds) {
      roundDuration.labels(outcome).observe(durationSeconds);
      roundsTotal.labels(outcome).inc();
    },
    reject(code) {
      rejections.labels(code).inc();
    },
    setRoundState(current) {
      for (const state of ROUND_STATES) roundState.labels(state).set(state === current ? 1 : 0);
    },
  };
}
