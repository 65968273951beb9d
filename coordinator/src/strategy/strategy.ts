import type { FederationPolicy } from '@commons/chain';
import type { Aggregator } from '../aggregation/aggregator.ts';
import type { ParameterLayout } from '../aggregation/layout.ts';

/**
 * A federated strategy, shaped like Flower's `Strategy`: its methods are the phases of a
 * round. The round engine calls configureRound when a round opens, createAggregator once per
 * round and add() for every accepted update, then result() and applyUpdate when training
 * closes, and exportState after publishing. Every vector is the model's flat parameter
 * vector in checkpoint order (aggregation/layout.ts).
 */
export interface Strategy {
  readonly name: string;
  /**
   * Whether the aggregate is a (weighted) mean of the updates. Only then do two wrappers
   * apply: DP noise of σ·C on the sum is calibrated (privacy/noisy-mean.ts), and secure
   * aggregation, which reveals only the sum, is enough (secagg/). The order-statistic rules
   * (median, trimmed mean, Krum) need the individual updates and say false.
   */
  readonly averages: boolean;
  /**
   * Whether it keeps server-optimiser state per coordinate across rounds (FedOpt's m and v).
   * Such state means nothing for adapter rounds, whose coordinates are a fresh adapter's each
   * round (rounds/adapter-round.ts refuses them).
   */
  readonly serverOptimiser: boolean;
  /**
   * configure_fit: what every sampled client is told to do this round. The server sends it
   * with the round task unchanged.
   */
  configureRound(input: RoundConfigInput): ClientFitConfig;
  /**
   * aggregate_fit, streaming half: a fresh, empty aggregator for one round. The server folds
   * each accepted update into it as it arrives and drops the frame.
   */
  createAggregator(layout: ParameterLayout): Aggregator;
  /**
   * aggregate_fit, second half: the new global parameters from the round's base and the
   * aggregated delta; the server evaluates them as the round's candidate. FedOpt applies its
   * server optimiser here (and advances its state). Never mutates `base`.
   */
  applyUpdate(base: Float32Array, aggregatedDelta: Float32Array, roundId: number): Float32Array;
  /** Server-optimiser state to persist after a round (FedOpt: m, v, t); null when stateless. */
  exportState(): StrategyState | null;
  /** Restores what exportState returned, so the next round continues exactly. */
  importState(state: StrategyState): void;
}

export interface RoundConfigInput {
  roundId: number;
  policy: FederationPolicy;
}

/** The fit instructions every sampled client receives. */
export interface ClientFitConfig {
  localEpochs: number;
  learningRate: number;
  /** FedProx's proximal weight μ: clients add μ/2·‖w − w_global‖² to their loss. 0: plain SGD. */
  proxMu: number;
}

/** Saved strategy state: small values as JSON, vectors as float32 arrays. */
export interface StrategyState {
  json: Record<string, unknown>;
  tensors: Record<string, Float32Array>;
}
