/**
 * Rényi differential privacy of the sampled Gaussian mechanism (Mironov 2017; Mironov, Talwar,
 * Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", §3.3), and its
 * conversion to (ε, δ). The same algorithm as TensorFlow Privacy's `compute_rdp` and Opacus's
 * `accountants/analysis/rdp.py`, checked against an independent Python implementation
 * (shared/reference/rdp_reference.py) and against their published values.
 *
 * One step of the mechanism: with probability q a record's contribution (L2 sensitivity 1
 * after clipping) is in the sum, and Gaussian noise of standard deviation z (the noise
 * multiplier) is added. Its RDP at order α is log(A_α)/(α − 1), where A_α is the α-th moment
 * of the likelihood ratio of the mixture (1−q)·N(0, z²) + q·N(1, z²) against N(0, z²).
 */
import { logErfc } from './log-erfc.ts';
import { PrivacyError } from './errors.ts';

/**
 * Opacus's DEFAULT_ALPHAS: orders 1.1 … 10.9 in tenths (small budgets are tightest near 1),
 * then 12 … 63 (large σ and many steps want high orders).
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 52 }, (_, x) => 12 + x),
]);

export interface SampledGaussian {
  /** Probability q that a given record is in a step's batch (Poisson sampling), in [0, 1]. */
  sampleRate: number;
  /** Noise standard deviation divided by the L2 sensitivity (the clip norm), ≥ 0. */
  noiseMultiplier: number;
}

export interface RdpOptions extends SampledGaussian {
  /** How many times the mechanism runs; RDP composes by addition. */
  steps: number;
  /** RDP orders α > 1; DEFAULT_ORDERS when absent. */
  orders?: readonly number[];
}

export interface PrivacySpent {
  epsilon: number;
  /** The order that gave the smallest ε (NaN when every order gives ε = ∞). */
  order: number;
}

/** The RDP of `steps` runs of the sampled Gaussian mechanism, at each order. */
export function computeRdp(options: RdpOptions): Float64Array {
  const { sampleRate: q, noiseMultiplier: z, steps } = options;
  const orders = options.orders ?? DEFAULT_ORDERS;
  checkMechanism(options);
  if (!Number.isInteger(steps) || steps < 0) {
    throw new PrivacyError('INVALID_ARGUMENT', `steps must be an integer ≥ 0, got ${steps}`);
  }
  checkOrders(orders);
  const rdp = new Float64Array(orders.length);
  for (let k = 0; k < orders.length; k++) {
    rdp[k] = steps === 0 ? 0 : rdpOneStep(q, z, orders[k]!) * steps;
  }
  return rdp;
}

/**
 * The smallest ε over the orders such that the mechanism is (ε, δ)-DP, by the conversion of
 * Balle, Barthe, Gaboardi, Hsu, Sato 2020 (Theorem 21), which Opacus and TF Privacy use:
 *   ε(α) = rdp(α) − (log δ + log α)/(α − 1) + log((α − 1)/α).
 * Two guards from Google's dp_accounting: an RDP so small that δ alone covers it
 * (δ² ≥ 1 − exp(−rdp), a KL-divergence bound) gives ε = 0, and ε is never negative
 * ((ε, δ)-DP with ε < 0 implies (0, δ)-DP).
 */
export function rdpToEpsilon(
  rdp: ArrayLike<number>,
  orders: readonly number[],
  delta: number,
): PrivacySpent {
  if (rdp.length !== orders.length) {
    throw new PrivacyError(
      'INVALID_ARGUMENT',
      `the RDP vector has ${rdp.length} entries but there are ${orders.length} orders`,
    );
  }
  if (!(delta > 0 && delta < 1)) {
    throw new PrivacyError('INVALID_ARGUMENT', `δ must be in (0, 1), got ${delta}`);
  }
  checkOrders(orders);
  let best: PrivacySpent = { epsilon: Infinity, order: NaN };
  for (let k = 0; k < orders.length; k++) {
    const alpha = orders[k]!;
    const r = rdp[k]!;
    if (!(r >= 0)) {
      throw new PrivacyError('INVALID_ARGUMENT', `RDP at order ${alpha} is ${r}; it must be ≥ 0`);
    }
    const epsilon =
      delta * delta + Math.expm1(-r) >= 0
        ? 0
        : r - (Math.log(delta) + Math.log(alpha)) / (alpha - 1) + Math.log1p(-1 / alpha);
    // Strict: the first order wins ties, as numpy's argmin does in the reference.
    if (epsilon < best.epsilon) best = { epsilon, order: alpha };
  }
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/** RDP of one step at order α > 1. */
export function rdpOneStep(q: number, z: number, alpha: number): number {
  if (q === 0) return 0;
  if (z === 0) return Infinity;
  // Without sampling the mechanism is the plain Gaussian: α/(2z²).
  if (q === 1) return alpha / (2 * z * z);
  const logA = Number.isInteger(alpha) ? logAInteger(q, z, alpha) : logAFractional(q, z, alpha);
  return logA / (alpha - 1);
}

/**
 * log A_α for integer α by the binomial expansion
 *   A_α = Σᵢ C(α, i)·qⁱ·(1−q)^(α−i)·exp((i² − i)/(2z²)),
 * summed in log space because the last terms reach exp(α²/(2z²)).
 */
function logAInteger(q: number, z: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logBinom = 0; // log C(α, 0)
  let logA = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
    const term = logBinom + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * z * z);
    logA = logAdd(logA, term);
  }
  return logA;
}

/**
 * log A_α for fractional α: the integral split at z0 = z²·log(1/q − 1) + ½, where the two
 * Gaussians' likelihood ratio crosses, turns into two alternating series in the generalised
 * binomial coefficients C(α, i), each term carrying a Gaussian tail ½·erfc(·). Summed until
 * both terms fall below e⁻³⁰, as the reference implementations do.
 */
function logAFractional(q: number, z: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const z0 = z * z * Math.log(1 / q - 1) + 0.5;
  const twoZ2 = 2 * z * z;
  const zSqrt2 = z * Math.SQRT2;
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  let logAbsBinom = 0; // log |C(α, 0)|
  let binomSign = 1;
  for (let i = 0; ; i++) {
    if (i > 0) {
      // C(α, i) = C(α, i−1)·(α − i + 1)/i; α is not an integer, so the factor is never 0.
      const factor = (alpha - i + 1) / i;
      logAbsBinom += Math.log(Math.abs(factor));
      if (factor < 0) binomSign = -binomSign;
    }
    const j = alpha - i;
    const logT0 = logAbsBinom + i * logQ + j * log1mQ;
    const logT1 = logAbsBinom + j * logQ + i * log1mQ;
    const logE0 = -Math.LN2 + logErfc((i - z0) / zSqrt2);
    const logE1 = -Math.LN2 + logErfc((z0 - j) / zSqrt2);
    const logS0 = logT0 + (i * i - i) / twoZ2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoZ2 + logE1;
    if (binomSign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0, alpha);
      logA1 = logSub(logA1, logS1, alpha);
    }
    if (Math.max(logS0, logS1) < -30) break;
  }
  return logAdd(logA0, logA1);
}

/** log(eˣ + eʸ) without overflow. */
function logAdd(x: number, y: number): number {
  const hi = Math.max(x, y);
  const lo = Math.min(x, y);
  if (lo === -Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(eˣ − eʸ) for x ≥ y; an alternating series that goes negative is a numerical failure. */
function logSub(x: number, y: number, alpha: number): number {
  if (y === -Infinity) return x;
  if (x < y) {
    throw new PrivacyError(
      'NUMERICAL_FAILURE',
      `the RDP series at order ${alpha} went negative in log space; choose other orders`,
    );
  }
  if (x === y) return -Infinity;
  return y + Math.log(Math.expm1(x - y));
}

function checkMechanism({ sampleRate, noiseMultiplier }: SampledGaussian): void {
  if (!(sampleRate >= 0 && sampleRate <= 1)) {
    throw new PrivacyError('INVALID_ARGUMENT', `sample rate must be in [0, 1], got ${sampleRate}`);
  }
  if (!(noiseMultiplier >= 0) || noiseMultiplier === Infinity) {
    throw new PrivacyError(
      'INVALID_ARGUMENT',
      `noise multiplier must be finite and ≥ 0, got ${noiseMultiplier}`,
    );
  }
}

function checkOrders(orders: readonly number[]): void {
  if (orders.length === 0) throw new PrivacyError('INVALID_ARGUMENT', 'no RDP orders given');
  for (const alpha of orders) {
    if (!(alpha > 1) || alpha === Infinity) {
      throw new PrivacyError('INVALID_ARGUMENT', `RDP orders must be finite and > 1, got ${alpha}`);
    }
  }
}
