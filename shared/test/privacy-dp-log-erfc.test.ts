import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { logErfc } from '../src/privacy/dp/index.ts';

const reference = JSON.parse(
  readFileSync(new URL('../reference/rdp_reference.json', import.meta.url), 'utf8'),
) as { logErfc: { x: number; logErfc: number }[] };

describe('logErfc', () => {
  it('matches 40-digit values in both tails and near zero', () => {
    // mpmath at 40 significant digits: mpmath.log(mpmath.erfc(x)), rounded to 25.
    // Kept as strings: 25 digits are more than a double holds (the test rounds them once).
    const exact: [number, string][] = [
      [-2, '0.6908055736465876567632438'],
      [-0.001, '0.001127742650114876530610657'],
      [1e-8, '-1.128379173461710307849233e-8'],
      [0.5, '-0.7350111298370844030258793'],
      [1.2247, '-2.485597110524126156169922'],
      [3, '-10.72036304198111256773089'],
      [26, '-679.8311997631942302623871'],
      [100, '-10005.17758512266433257047'],
    ];
    for (const [x, value] of exact) {
      // A few ulps: every regime loses at most one digit to cancellation.
      const expected = Number(value);
      expect(Math.abs(logErfc(x) - expected) / Math.abs(expected), `x=${x}`).toBeLessThan(4e-15);
    }
  });

  it('agrees with scipy (log 2 + log_ndtr(−x√2)) from deep negative to 1e5', () => {
    for (const { x, logErfc: expected } of reference.logErfc) {
      // scipy's form loses absolute precision near x = 0 (log 2 + log(½ − …) cancels), so
      // the bound is mixed: 1e-15 absolute plus 1e-14 relative.
      expect(Math.abs(logErfc(x) - expected), `x=${x}`).toBeLessThan(
        1e-15 + 1e-14 * Math.abs(expected),
      );
    }
  });

  it('follows the asymptotic expansion far out, where erfc itself underflows', () => {
    // erfc(x) = exp(−x²)/(x√π)·(1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + …); at x ≥ 50 the terms
    // left out are below 1e-17 relative, so the truncated series is exact to double precision.
    for (const x of [50, 300, 1e4, 1e7]) {
      const t = 1 / (2 * x * x);
      const series = 1 - t + 3 * t * t - 15 * t * t * t + 105 * t ** 4;
      const expected = -x * x - Math.log(x) - 0.5 * Math.log(Math.PI) + Math.log(series);
      expect(Math.abs(logErfc(x) - expected) / Math.abs(expected), `x=${x}`).toBeLessThan(1e-15);
    }
  });

  it('is continuous where the series hands over to the continued fraction', () => {
    const split = Math.sqrt(1.5);
    for (const x of [split, -split]) {
      const below = logErfc(x * (1 - 1e-12));
      const above = logErfc(x * (1 + 1e-12));
      // erfc's slope there is ~0.3 in log space, so 1e-12 of x moves it by ~4e-13.
      expect(Math.abs(above - below)).toBeLessThan(1e-11);
    }
  });

  it('has the right limits and refuses NaN', () => {
    expect(Math.abs(logErfc(0))).toBe(0); // −0 from log1p(−0) is fine
    expect(logErfc(Infinity)).toBe(-Infinity);
    expect(logErfc(-Infinity)).toBe(Math.LN2);
    expect(logErfc(-40)).toBe(Math.LN2);
    expect(() => logErfc(NaN)).toThrow(/NaN/);
  });
});
