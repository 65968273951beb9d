// The SecAgg+ parameters, named as Flower's SecAggPlusWorkflow names them, and the checks
// that refuse an unsafe setting before any key is generated: a sum that could wrap the
// modulus, a threshold that would let the server learn both secrets of one client, or a
// neighbourhood too small to survive dropouts.
import { SecAggError } from './errors.ts';

/** A resolved configuration: every value fixed for one round of `numClients` clients. */
export interface SecAggConfig {
  /** Neighbourhood size including the node itself (odd, or the whole round). */
  numShares: number;
  /** Shares needed to reconstruct a secret; must exceed numShares / 2. */
  reconstructionThreshold: number;
  /** Each coordinate is clipped to [−clippingRange, clippingRange] before quantisation. */
  clippingRange: number;
  /** Quantised coordinates lie in [0, quantizationRange). */
  quantizationRange: number;
  /** The ring the masked vectors live in: a power of two, at most 2^32. */
  modulusRange: number;
  /** A client's weight (e.g. its example count) is divided by this and must not exceed it. */
  maxWeight: number;
  /** The round aborts when fewer clients than this remain at any stage. */
  minClients: number;
  /** Seconds the coordinator waits for each stage's replies (null: no limit). */
  timeout: number | null;
}

/** What an operator writes: numShares and the threshold may be chosen from n. */
export interface SecAggSettings {
  /** An explicit neighbourhood size, or 'auto' for {@link chooseNumShares}. */
  numShares?: number | 'auto';
  /** An explicit threshold, or a fraction of numShares (Flower's float form), default 'majority'. */
  reconstructionThreshold?: number | 'majority';
  clippingRange?: number;
  quantizationRange?: number;
  modulusRange?: number;
  maxWeight?: number;
  minClients?: number;
  timeout?: number | null;
  /** For 'auto' numShares: the dropout rate the neighbourhoods must withstand. */
  expectedDropout?: number;
}

/** Flower's defaults, except the 2^32 ring and clipping range, which suit model deltas. */
export const SECAGG_DEFAULTS = {
  clippingRange: 8,
  quantizationRange: 2 ** 22,
  modulusRange: 2 ** 32,
  maxWeight: 1,
  minClients: 3,
  timeout: null,
  expectedDropout: 0.1,
} as const;

/** The smallest threshold that keeps the server from collecting shares of both b_i and s_i. */
export function majorityThreshold(numShares: number): number {
  return Math.floor(numShares / 2) + 1;
}

/** log P[Binomial(k, q) < t], summed in log space so large k does not underflow. */
function logBinomialTailBelow(k: number, q: number, t: number): number {
  let logTerm = k * Math.log(1 - q); // j = 0
  let acc = -Infinity;
  for (let j = 0; j < t; j++) {
    acc = Math.max(acc, logTerm) + Math.log1p(Math.exp(-Math.abs(acc - logTerm)));
    logTerm += Math.log((k - j) / (j + 1)) + Math.log(q / (1 - q));
  }
  return acc;
}

/**
 * SecAgg+ neighbourhood size for n clients (Bell et al. 2020): the smallest odd k whose
 * majority threshold still holds for every node with probability 1 − 2^−20 when each client
 * drops independently at `expectedDropout` (a union bound over the n nodes of the binomial
 * tail P[survivors among k < k/2 + 1]). By a Chernoff bound that k grows as O(log n), which is
 * what makes SecAgg+ scale; when no k < n suffices the graph is complete (plain SecAgg).
 */
export function chooseNumShares(numClients: number, expectedDropout = 0.1): number {
  if (!Number.isInteger(numClients) || numClients < 3) {
    throw new SecAggError('INVALID_CONFIG', `numClients must be an integer ≥ 3, got ${numClients}`);
  }
  if (!(expectedDropout >= 0 && expectedDropout < 0.5)) {
    throw new SecAggError(
      'INVALID_CONFIG',
      `expectedDropout must be in [0, 0.5) for a majority threshold to survive, got ${expectedDropout}`,
    );
  }
  if (expectedDropout === 0) return 3;
  const budget = Math.log(2 ** -20) - Math.log(numClients);
  for (let k = 3; k < numClients; k += 2) {
    const tail = logBinomialTailBelow(k, 1 - expectedDropout, majorityThreshold(k));
    if (tail <= budget) return k;
  }
  return numClients;
}

/** Turns settings into a configuration for n clients, then validates it. */
export function resolveSecAggConfig(
  settings: SecAggSettings,
  numClients: number,
  vectorLength: number,
): SecAggConfig {
  const numShares =
    settings.numShares === undefined || settings.numShares === 'auto'
      ? chooseNumShares(numClients, settings.expectedDropout ?? SECAGG_DEFAULTS.expectedDropout)
      : settings.numShares;
  const threshold = settings.reconstructionThreshold ?? 'majority';
  const reconstructionThreshold =
    threshold === 'majority'
      ? majorityThreshold(numShares)
      : threshold > 0 && threshold < 1
        ? Math.max(majorityThreshold(numShares), Math.round(threshold * numShares))
        : threshold;
  const config: SecAggConfig = {
    numShares,
    reconstructionThreshold,
    clippingRange: settings.clippingRange ?? SECAGG_DEFAULTS.clippingRange,
    quantizationRange: settings.quantizationRange ?? SECAGG_DEFAULTS.quantizationRange,
    modulusRange: settings.modulusRange ?? SECAGG_DEFAULTS.modulusRange,
    maxWeight: settings.maxWeight ?? SECAGG_DEFAULTS.maxWeight,
    minClients: settings.minClients ?? SECAGG_DEFAULTS.minClients,
    timeout: settings.timeout === undefined ? SECAGG_DEFAULTS.timeout : settings.timeout,
  };
  validateSecAggConfig(config, numClients, vectorLength);
  return config;
}

function refuse(message: string): never {
  throw new SecAggError('INVALID_CONFIG', message);
}

function isPowerOfTwo(x: number): boolean {
  return Number.isInteger(x) && x > 0 && 2 ** Math.round(Math.log2(x)) === x;
}

/**
 * Refuses a configuration that could give a wrong sum or leak a client's input. Every
 * quantised coordinate (the weight coordinate too) is at most quantizationRange − 1, so the
 * sum of n of them fits the ring only if n · (quantizationRange − 1) < modulusRange.
 */
export function validateSecAggConfig(
  config: SecAggConfig,
  numClients: number,
  vectorLength: number,
): void {
  const n = numClients;
  const { numShares: k, reconstructionThreshold: t } = config;
  // Three is the least: with two, each learns the other's input from the sum.
  if (!Number.isInteger(n) || n < 3) refuse(`the round needs at least 3 clients, got ${n}`);
  if (!Number.isInteger(vectorLength) || vectorLength < 1) {
    refuse(`vectorLength must be a positive integer, got ${vectorLength}`);
  }
  if (!Number.isInteger(config.minClients) || config.minClients < 3) {
    refuse(
      `minClients must be an integer ≥ 3 (with fewer, a sum reveals an input), got ${config.minClients}`,
    );
  }
  if (n < config.minClients) {
    refuse(`${n} clients were sampled but minClients is ${config.minClients}`);
  }
  if (!Number.isInteger(k) || k < 3 || k > n) {
    refuse(`numShares must be an integer in [3, ${n}] for ${n} clients, got ${k}`);
  }
  if (k !== n && k % 2 === 0) {
    refuse(
      `numShares must be odd (the node and (numShares − 1) / 2 neighbours on each side), got ${k}; use ${k + 1}`,
    );
  }
  if (!Number.isInteger(t) || t > k) {
    refuse(`reconstructionThreshold must be an integer ≤ numShares (${k}), got ${t}`);
  }
  if (t < majorityThreshold(k)) {
    refuse(
      `reconstructionThreshold ${t} is not more than half of numShares ${k}: a server could then ` +
        `collect ${t} shares of a client's self mask from some neighbours and ${t} of its mask key ` +
        `from others, and unmask it; use at least ${majorityThreshold(k)}`,
    );
  }
  if (!(Number.isFinite(config.clippingRange) && config.clippingRange > 0)) {
    refuse(`clippingRange must be a positive finite number, got ${config.clippingRange}`);
  }
  if (!(Number.isFinite(config.maxWeight) && config.maxWeight > 0)) {
    refuse(`maxWeight must be a positive finite number, got ${config.maxWeight}`);
  }
  const M = config.modulusRange;
  if (!isPowerOfTwo(M) || M < 2 ** 8 || M > 2 ** 32) {
    refuse(`modulusRange must be a power of two in [2^8, 2^32] (masks are 32-bit words), got ${M}`);
  }
  const Q = config.quantizationRange;
  if (!Number.isInteger(Q) || Q < 2 || Q > M) {
    refuse(`quantizationRange must be an integer in [2, modulusRange = ${M}], got ${Q}`);
  }
  const worstSum = n * (Q - 1);
  if (worstSum >= M) {
    refuse(
      `the sum of ${n} quantised updates can reach ${n} × (${Q} − 1) = ${worstSum}, which overflows ` +
        `modulusRange ${M}; use quantizationRange ≤ ${Math.floor((M - 1) / n) + 1} or fewer clients`,
    );
  }
  if (config.timeout !== null && !(Number.isFinite(config.timeout) && config.timeout > 0)) {
    refuse(`timeout must be a positive number of seconds or null, got ${config.timeout}`);
  }
}
