import { FedAvg } from './fedavg.ts';
import { checkOption } from './options.ts';
import type { ClientFitConfig, RoundConfigInput } from './strategy.ts';

export interface FedProxOptions {
  /** μ ≥ 0, the proximal term's weight (default 0.01). */
  mu?: number;
}

/**
 * FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): FedAvg's
 * aggregation, but clients minimise their loss plus μ/2·‖w − w_global‖², which keeps
 * heterogeneous clients from drifting far from the global model. The server's only part is
 * to send μ with the fit instructions.
 */
export class FedProx extends FedAvg {
  override readonly name: string = 'fedprox';
  readonly mu: number;

  constructor({ mu = 0.01 }: FedProxOptions = {}) {
    super();
    this.mu = checkOption('mu', mu, { min: 0 });
  }

  override configureRound(input: RoundConfigInput): ClientFitConfig {
    return { ...super.configureRound(input), proxMu: this.mu };
  }
}
