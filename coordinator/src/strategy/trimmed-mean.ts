import { TrimmedMeanAggregator } from '../aggregation/coordinate-wise.ts';
import type { Aggregator } from '../aggregation/aggregator.ts';
import type { ParameterLayout } from '../aggregation/layout.ts';
import { FedAvg } from './fedavg.ts';
import { checkOption } from './options.ts';

export interface TrimmedMeanOptions {
  /** β ∈ [0, 0.5): the fraction of values cut from each side per coordinate (default 0.2). */
  trimFraction?: number;
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018; Flower's FedTrimmedAvg): per parameter, the
 * ⌊βN⌋ smallest and ⌊βN⌋ largest values are dropped and the rest averaged, unweighted.
 * Not streaming: the aggregator keeps every frame until the round closes (O(N × model
 * bytes); see aggregation/coordinate-wise.ts).
 */
export class TrimmedMean extends FedAvg {
  override readonly name: string = 'trimmed-mean';
  /** Not a mean: which values are trimmed depends on every update, so it is not a mean of them. */
  override readonly averages: boolean = false;
  readonly trimFraction: number;

  constructor({ trimFraction = 0.2 }: TrimmedMeanOptions = {}) {
    super();
    this.trimFraction = checkOption('trimFraction', trimFraction, { min: 0, below: 0.5 });
  }

  override createAggregator(layout: ParameterLayout): Aggregator {
    return new TrimmedMeanAggregator(layout, this.trimFraction);
  }
}
