import { MedianAggregator } from '../aggregation/coordinate-wise.ts';
import type { Aggregator } from '../aggregation/aggregator.ts';
import type { ParameterLayout } from '../aggregation/layout.ts';
import { FedAvg } from './fedavg.ts';

/**
 * FedMedian (Yin et al. 2018): the aggregate delta is the coordinate-wise median of the
 * updates, unweighted, which a minority of arbitrary updates cannot drag far. Everything
 * else is FedAvg's. Not streaming: the aggregator keeps every frame until the round closes
 * (O(N × model bytes); see aggregation/coordinate-wise.ts).
 */
export class FedMedian extends FedAvg {
  override readonly name: string = 'fedmedian';
  /** Not a mean: the coordinate-wise median is an order statistic. */
  override readonly averages: boolean = false;

  override createAggregator(layout: ParameterLayout): Aggregator {
    return new MedianAggregator(layout);
  }
}
