import type { FederationPolicy } from '@commons/shared/chain/policy';
import type { ParameterLayout } from '../aggregation/layout.ts';
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
import { TrimmedMean } from './trimmed-mean.ts';

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

export interface Aggregator {
  /**
   * Folds one accepted update in. `frame` is a validated update frame (already checked for
   * shape/finite/norm); weight = numExamples. A frame that does not match the model's layout
   * throws (CheckpointError) and leaves the aggregator as it was.
   */
  add(frame: Uint8Array, numExamples: number): void;
  /** How many updates were folded. */
  readonly count: number;
  /** Bytes of state this aggregator holds now (for the memory claims and metrics). */
  memoryBytes(): number;
  /**
   * The aggregated delta as a flat vector, or null: no viable result (Flower's None: the
   * server keeps the previous model and discards the round).
   */
  result(): Float32Array | null;
}

/** Saved strategy state: small values as JSON, vectors as float32 arrays. */
export interface StrategyState {
  json: Record<string, unknown>;
  tensors: Record<string, Float32Array>;
}

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
