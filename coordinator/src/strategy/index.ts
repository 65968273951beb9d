/**
 * Federated strategies, Flower-shaped: configure a round, aggregate it (streaming where the
 * rule allows), apply the aggregate. createStrategy picks one by its policy name.
 */
export {
  createStrategy,
  STRATEGY_NAMES,
  type Aggregator,
  type ClientFitConfig,
  type RoundConfigInput,
  type Strategy,
  type StrategyOptions,
  type StrategyState,
} from './strategy.ts';
export { StrategyError, type StrategyErrorCode } from './errors.ts';
export { FedAvg } from './fedavg.ts';
export { FedProx, type FedProxOptions } from './fedprox.ts';
export { FedOpt, type FedOptOptions } from './fedopt.ts';
export { FedAdam } from './fedadam.ts';
export { FedYogi } from './fedyogi.ts';
export { FedAdagrad } from './fedadagrad.ts';
export { FedMedian } from './fedmedian.ts';
export { TrimmedMean, type TrimmedMeanOptions } from './trimmed-mean.ts';
export { MultiKrum, type MultiKrumOptions } from './multi-krum.ts';
export { Krum, type KrumOptions } from './krum.ts';
