import { MultiKrum } from './multi-krum.ts';

export interface KrumOptions {
  /** f ≥ 0, the Byzantine updates tolerated (default 1). A round needs n ≥ 2f + 3 updates. */
  byzantine?: number;
}

/**
 * Krum (Blanchard et al. 2017): Multi-Krum with m = 1 — the aggregate is the single update
 * whose n − f − 2 nearest neighbours are closest to it.
 */
export class Krum extends MultiKrum {
  override readonly name: string = 'krum';

  constructor({ byzantine }: KrumOptions = {}) {
    super({ byzantine, selected: 1 });
  }
}
