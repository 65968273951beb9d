/**
 * log(erfc(x)) for every real x, accurate to a few ulps in both tails, where erfc itself
 * underflows (x > 26.5) or where 1 − erf(x) would cancel. The RDP of the sampled Gaussian at
 * fractional orders sums terms of the form log(½·erfc((i − z0)/(σ√2))) whose arguments reach
 * the hundreds, so `Math.log(erfc(x))` is not an option.
 *
 * Two regimes, split where both converge fast (x² = 3/2, as Numerical Recipes' incomplete
 * gamma functions split for Q(½, x²) = erfc(x)):
 * - |x| < √1.5: erf by its all-positive series, then log1p(−erf); erfc ≥ 0.083 there, so at
 *   most one digit is lost to cancellation.
 * - x ≥ √1.5: Laplace's continued fraction for erfcx(x) = exp(x²)·erfc(x), evaluated by the
 *   modified Lentz method, so that log erfc = −x² + log erfcx(x) never forms exp(−x²). It is
 *   the convergent form of the asymptotic expansion erfc(x) ~ exp(−x²)/(x√π)·(1 − 1/(2x²) +
 *   3/(4x⁴) − …), which diverges at any fixed x, so the fraction is used in its place.
 * - x ≤ −√1.5: erfc(x) = 2 − erfc(−x), with erfc(−x) ≤ 0.083 from the fraction above.
 */
const SPLIT = Math.sqrt(1.5);
const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const EPS = 2 ** -53;
const TINY = 1e-300;
const MAX_ITERATIONS = 10_000;

export function logErfc(x: number): number {
  if (Number.isNaN(x)) throw new RangeError('logErfc: x is NaN');
  if (x === Infinity) return -Infinity;
  if (x === -Infinity) return Math.LN2;
  if (Math.abs(x) < SPLIT) return Math.log1p(-erfSeries(x));
  if (x > 0) return logErfcFraction(x);
  // erfc(x) = 2 − erfc(|x|) = 2·(1 − erfc(|x|)/2).
  return Math.LN2 + Math.log1p(-0.5 * Math.exp(logErfcFraction(-x)));
}

/** erf(x) = (2/√π)·x·exp(−x²)·Σₙ (2x²)ⁿ/(1·3·…·(2n+1)): every term positive, no cancellation. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = 1;
  let sum = 1;
  for (let n = 1; n < MAX_ITERATIONS; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * EPS) break;
  }
  return TWO_OVER_SQRT_PI * x * Math.exp(-x2) * sum;
}

/**
 * log erfc(x) for x ≥ √1.5 from the continued fraction of Q(½, x²) (Numerical Recipes
 * `gcf` with a = ½): erfc(x) = exp(−x²)·(x/√π)·h, with h → 1/(x² + ½ − …).
 */
function logErfcFraction(x: number): number {
  const x2 = x * x;
  const a = 0.5;
  let b = x2 + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return -x2 + Math.log(x) - LOG_SQRT_PI + Math.log(h);
}
