import { KrumAggregator } from '../aggregation/krum.ts';
import type { Aggregator } from '../aggregation/aggregator.ts';
import type { ParameterLayout } from '../aggregation/layout.ts';
import { FedAvg } from './fedavg.ts';
import { checkOption } from './options.ts';

export interface MultiKrumOptions {
  /** f ≥ 0, the Byzantine updates tolerated (default 1). A round needs n ≥ 2f + 3 updates. */
  byzantine?: number;
  /** m ≥ 1, the best-scored updates averaged (default n − f). */
  selected?: number;
}

/**
 * Multi-Krum (Blanchard et al. 2017): score every update by its squared distances to its
 * n − f − 2 nearest neighbours and average the m best-scored, which excludes updates far
 * from the honest majority. Fewer than 2f + 3 updates: no viable result. Not streaming: the
 * aggregator keeps every frame, and the pairwise distances cost O(N²) memory and
 * O(N² × model size) time (see aggregation/krum.ts).
 */
export class MultiKrum extends FedAvg {
  override readonly name: string = 'multi-krum';
  /** Not a mean: which updates are averaged depends on their pairwise distances. */
  override readonly averages: boolean = false;
  readonly byzantine: number;
  readonly selected: number | undefined;

  constructor({ byzantine = 1, selected }: MultiKrumOptions = {}) {
    super();
    this.byzantine = checkOption('byzantine', byzantine, { min: 0, integer: true });
    this.selected =
      selected === undefined
        ? undefined
        : checkOption('selected', selected, { min: 1, integer: true });
  }

  override createAggregator(layout: ParameterLayout): Aggregator {
    return new KrumAggregator(layout, this.byzantine, this.selected);
  }
}
