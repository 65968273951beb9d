import type { Aggregator } from '../aggregation/aggregator.ts';
import type { ParameterLayout } from '../aggregation/layout.ts';
import { WeightedMeanAggregator } from '../aggregation/weighted-mean.ts';
import { StrategyError } from './errors.ts';
import type { ClientFitConfig, RoundConfigInput, Strategy, StrategyState } from './strategy.ts';

/**
 * Federated Averaging (McMahan et al. 2017): clients train locally with the policy's epochs
 * and learning rate; the server averages their deltas weighted by example count and adds
 * the average to the model. The base of FedProx, the FedOpt family and the robust rules,
 * which change one phase each.
 */
export class FedAvg implements Strategy {
  readonly name: string = 'fedavg';
  /** A weighted mean, and so are FedProx's and the FedOpt family's (they inherit this). */
  readonly averages: boolean = true;
  readonly serverOptimiser: boolean = false;

  configureRound({ policy }: RoundConfigInput): ClientFitConfig {
    return { localEpochs: policy.localEpochs, learningRate: policy.learningRate, proxMu: 0 };
  }

  /** Streaming weighted mean: O(model) memory whatever the number of updates. */
  createAggregator(layout: ParameterLayout): Aggregator {
    return new WeightedMeanAggregator(layout);
  }

  /** base + Δ, in a fresh array. */
  applyUpdate(base: Float32Array, aggregatedDelta: Float32Array, _roundId: number): Float32Array {
    checkSameSize(base, aggregatedDelta);
    const next = new Float32Array(base.length);
    for (let i = 0; i < base.length; i++) next[i] = base[i]! + aggregatedDelta[i]!;
    return next;
  }

  exportState(): StrategyState | null {
    return null;
  }

  /** Stateless: only state saved by a stateless strategy (none) is accepted. */
  importState(state: StrategyState): void {
    throw new StrategyError(
      'STATE_MISMATCH',
      `${this.name} keeps no state, but was given state for ${String(state.json.strategy)}`,
    );
  }
}

export function checkSameSize(base: Float32Array, delta: Float32Array): void {
  if (base.length !== delta.length) {
    throw new StrategyError(
      'SIZE_MISMATCH',
      `the aggregated delta holds ${delta.length} values, the model ${base.length}`,
    );
  }
}
