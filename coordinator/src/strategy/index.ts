/**
 * Federated strategies, Flower-shaped: configure a round, aggregate it (streaming where the
 * rule allows), apply the aggregate. createStrategy picks one by its policy name. The
 * registry lives here, above the strategies, so that no strategy file imports it back.
 */
import { StrategyError } from './errors.ts';
import { FedAdagrad } from './fedadagrad.ts';
import { FedAdam } from './fedadam.ts';
import { FedAvg } from './fedavg.ts';
import { FedMedian } from './fedmedian.ts';
import type { FedOptOptions } from './fedopt.ts';
import { FedProx } from './fedprox.ts';
import { FedYogi } from './fedyogi.ts';
import { Krum } from './krum.ts';
import { MultiKrum } from './multi-krum.ts';
import type { Strategy } from './strategy.ts';
import { TrimmedMean } from './trimmed-mean.ts';

export type { ClientFitConfig, RoundConfigInput, Strategy, StrategyState } from './strategy.ts';
export type { Aggregator } from '../aggregation/aggregator.ts';
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

/** Hyper-parameters, each read only by the strategies named beside it. */
export interface StrategyOptions extends FedOptOptions {
  /** fedprox: μ, the proximal term's weight (default 0.01). */
  mu?: number;
  /** trimmed-mean: β, the fraction trimmed from each side, [0, 0.5) (default 0.2). */
  trimFraction?: number;
  /** krum, multi-krum: f, Byzantine updates tolerated (default 1). */
  byzantine?: number;
  /** multi-krum: m, updates averaged (default n − f). */
  selected?: number;
}

const FEDOPT_KEYS = ['eta', 'beta1', 'beta2', 'tau'] as const;

/** Each strategy by name, with the options it reads. */
const REGISTRY: Record<
  string,
  { options: readonly (keyof StrategyOptions)[]; create: (o: StrategyOptions) => Strategy }
> = {
  fedavg: { options: [], create: () => new FedAvg() },
  fedprox: { options: ['mu'], create: (o) => new FedProx(o) },
  fedadam: { options: FEDOPT_KEYS, create: (o) => new FedAdam(o) },
  fedyogi: { options: FEDOPT_KEYS, create: (o) => new FedYogi(o) },
  fedadagrad: { options: FEDOPT_KEYS, create: (o) => new FedAdagrad(o) },
  fedmedian: { options: [], create: () => new FedMedian() },
  'trimmed-mean': { options: ['trimFraction'], create: (o) => new TrimmedMean(o) },
  krum: { options: ['byzantine'], create: (o) => new Krum(o) },
  'multi-krum': { options: ['byzantine', 'selected'], create: (o) => new MultiKrum(o) },
};

/** Every name createStrategy knows. */
export const STRATEGY_NAMES: readonly string[] = Object.keys(REGISTRY);

/**
 * The strategy called `name` (a policy's aggregationRule is one), configured by `options`.
 * Refuses unknown names, and options the strategy does not read (a typo would otherwise be
 * silently ignored), with a StrategyError.
 */
export function createStrategy(name: string, options: StrategyOptions = {}): Strategy {
  const entry = Object.hasOwn(REGISTRY, name) ? REGISTRY[name] : undefined;
  if (entry === undefined) {
    throw new StrategyError(
      'UNKNOWN_STRATEGY',
      `unknown strategy "${name}"; known strategies: ${STRATEGY_NAMES.join(', ')}`,
    );
  }
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && !(entry.options as readonly string[]).includes(key)) {
      throw new StrategyError(
        'INVALID_OPTION',
        `${name} does not take option "${key}"` +
          (entry.options.length > 0 ? ` (it takes ${entry.options.join(', ')})` : ''),
      );
    }
  }
  return entry.create(options);
}

/** The names of the strategies whose aggregate is a mean (Strategy.averages), for messages. */
export function averagingStrategyNames(): string[] {
  return STRATEGY_NAMES.filter((name) => createStrategy(name).averages);
}
