import { describe, expect, it } from 'vitest';
import {
  chooseNumShares,
  resolveSecAggConfig,
  validateSecAggConfig,
  type SecAggConfig,
} from '../src/privacy/secagg/config.ts';
import { SecAggError } from '../src/privacy/secagg/errors.ts';
import { neighbourGraph, neighbourhoodOf } from '../src/privacy/secagg/graph.ts';
import {
  dequantizeSum,
  quantizationErrorBound,
  quantizeWeighted,
  defaultQuantize,
} from '../src/privacy/secagg/quantization.ts';

const base: SecAggConfig = {
  numShares: 5,
  reconstructionThreshold: 3,
  clippingRange: 1,
  quantizationRange: 2 ** 22,
  modulusRange: 2 ** 32,
  maxWeight: 1,
  minClients: 3,
  timeout: null,
};

function refusal(config: Partial<SecAggConfig>, n = 10): SecAggError {
  try {
    validateSecAggConfig({ ...base, ...config }, n, 100);
  } catch (err) {
    expect(err).toBeInstanceOf(SecAggError);
    expect((err as SecAggError).code).toBe('INVALID_CONFIG');
    return err as SecAggError;
  }
  throw new Error('the configuration was accepted');
}

describe('SecAgg+ configuration', () => {
  it('accepts a safe configuration', () => {
    expect(() => validateSecAggConfig(base, 10, 100)).not.toThrow();
  });

  it('refuses a sum of n quantised updates that could wrap the modulus, naming the numbers', () => {
    // 1025 · (2^22 − 1) = 4299160575 ≥ 2^32; 1024 clients fit.
    expect(() =>
      validateSecAggConfig({ ...base, numShares: 21, reconstructionThreshold: 11 }, 1024, 10),
    ).not.toThrow();
    const err = refusal({ numShares: 21, reconstructionThreshold: 11 }, 1025);
    expect(err.message).toContain('1025 × (4194304 − 1) = 4299160575');
    expect(err.message).toContain('modulusRange 4294967296');
    expect(err.message).toContain('quantizationRange ≤ 4190212');
    refusal({ quantizationRange: 2 ** 16, modulusRange: 2 ** 16 });
  });

  it('refuses a threshold that lets the server collect both secrets of a node', () => {
    const err = refusal({ numShares: 7, reconstructionThreshold: 3 });
    expect(err.message).toMatch(
      /reconstructionThreshold 3 is not more than half of numShares 7.*at least 4/,
    );
    expect(refusal({ reconstructionThreshold: 6 }).message).toMatch(/≤ numShares \(5\), got 6/);
  });

  it('refuses an even or oversized neighbourhood, bad ranges and bad minimums', () => {
    expect(refusal({ numShares: 4 }).message).toMatch(/must be odd.*got 4; use 5/);
    expect(refusal({ numShares: 11 }).message).toMatch(/in \[3, 10\] for 10 clients, got 11/);
    expect(refusal({ modulusRange: 3 * 2 ** 20 }).message).toMatch(/power of two/);
    expect(refusal({ clippingRange: 0 }).message).toMatch(/clippingRange must be a positive/);
    expect(refusal({ minClients: 2 }).message).toMatch(/minClients must be an integer ≥ 3/);
    expect(refusal({ minClients: 11 }).message).toMatch(
      /10 clients were sampled but minClients is 11/,
    );
    expect(refusal({ timeout: -1 }).message).toMatch(/timeout/);
    // A complete graph may be even: it is plain SecAgg.
    expect(() =>
      validateSecAggConfig({ ...base, numShares: 10, reconstructionThreshold: 6 }, 10, 1),
    ).not.toThrow();
  });

  it('chooses numShares growing as O(log n), odd, and complete for small rounds', () => {
    const ks = [10, 100, 1000, 10_000, 100_000].map((n) => chooseNumShares(n));
    expect(ks[0]).toBe(10); // too few clients for a sparse graph at 10% dropout
    for (const k of ks.slice(1)) expect(k % 2).toBe(1);
    for (let i = 1; i < ks.length; i++) expect(ks[i]).toBeGreaterThanOrEqual(ks[i - 1] as number);
    // Each 10× in n adds a roughly constant number of neighbours (logarithmic growth).
    expect((ks[4] as number) - (ks[3] as number)).toBeLessThanOrEqual(
      (ks[2] as number) - (ks[1] as number) + 2,
    );
    expect(ks[4]).toBeLessThan(100);
    // More expected dropout needs bigger neighbourhoods.
    expect(chooseNumShares(1000, 0.3)).toBeGreaterThan(chooseNumShares(1000, 0.1));
    const auto = resolveSecAggConfig({}, 1000, 10);
    expect(auto.numShares).toBe(ks[2]);
    expect(auto.reconstructionThreshold).toBe(Math.floor((ks[2] as number) / 2) + 1);
  });
});

describe('neighbour graph', () => {
  it('gives every node numShares neighbours including itself, symmetrically, fixed by the seed', () => {
    const ids = Array.from({ length: 11 }, (_, i) => i + 1);
    const seed = new Uint8Array(32).fill(7);
    const g = neighbourGraph(ids, 5, seed);
    for (const [id, hood] of g) {
      expect(hood).toHaveLength(5);
      expect(hood).toContain(id);
      for (const j of hood) expect(g.get(j)).toContain(id);
    }
    expect(neighbourGraph(ids, 5, seed)).toEqual(g);
    expect(neighbourGraph(ids, 5, new Uint8Array(32).fill(8))).not.toEqual(g);
    for (const hood of neighbourGraph(ids, 11, seed).values()) expect(hood).toEqual(ids);
  });

  it("a client's own neighbourhood is its entry in the server's graph, and an unknown node is refused", () => {
    const ids = Array.from({ length: 40 }, (_, i) => 3 * i + 2);
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
    for (const k of [3, 7, 40]) {
      const g = neighbourGraph(ids, k, seed);
      for (const id of ids) expect(neighbourhoodOf(ids, k, seed, id)).toEqual(g.get(id));
    }
    expect(() => neighbourhoodOf(ids, 7, seed, 1)).toThrow(/node 1 is not in the graph/);
  });
});

describe('quantisation', () => {
  const q = { clippingRange: 1, quantizationRange: 2 ** 16, maxWeight: 10 };

  it('sums weighted updates within the stated bound and recovers the total weight', () => {
    const n = 6;
    const L = 2000;
    const updates = Array.from({ length: n }, (_, i) =>
      Float32Array.from({ length: L }, (_, k) => Math.sin(i + k)),
    );
    const weights = [1, 2, 3, 4, 5, 10];
    const sum = new Uint32Array(L + 1);
    updates.forEach((u, i) =>
      quantizeWeighted(u, weights[i] as number, q).forEach(
        (v, k) => (sum[k] = (sum[k] as number) + v),
      ),
    );
    const { weightedSum, totalWeight } = dequantizeSum(sum, q);
    expect(totalWeight).toBeCloseTo(25, 3);
    const bound = quantizationErrorBound(q, n) + 1e-5;
    for (let k = 0; k < L; k++) {
      const exact = updates.reduce((s, u, i) => s + (weights[i] as number) * (u[k] as number), 0);
      expect(Math.abs((weightedSum[k] as number) - exact)).toBeLessThan(bound);
    }
  });

  it('clips to the clipping range and rounds without bias', () => {
    const clipped = dequantizeSum(quantizeWeighted(Float32Array.of(5, -5), 10, q), q).weightedSum;
    expect(clipped[0]).toBeCloseTo(10, 3);
    expect(clipped[1]).toBeCloseTo(-10, 3);
    // A value a third of a quantum above a grid point: the mean over many roundings lands on it.
    const quantum = (2 * q.clippingRange) / (q.quantizationRange - 1);
    const x = Float32Array.from({ length: 20000 }, () => -1 + (1000 + 1 / 3) * quantum);
    let mean = 0;
    const levels = quantizeWeighted(x, 10, q);
    for (let k = 1; k < levels.length; k++) mean += (levels[k] as number) / x.length;
    expect(mean).toBeGreaterThan(1000 + 1 / 3 - 0.02);
    expect(mean).toBeLessThan(1000 + 1 / 3 + 0.02);
  });

  it('refuses non-finite coordinates and out-of-range weights, naming them', () => {
    expect(() => quantizeWeighted(Float32Array.of(0, NaN), 1, q)).toThrow(/coordinate 1 is NaN/);
    expect(() => quantizeWeighted(Float32Array.of(0), 11, q)).toThrow(
      /\(0, maxWeight = 10\], got 11/,
    );
    expect(() => quantizeWeighted(Float32Array.of(0), 0, q)).toThrow(/got 0/);
    // Past the first batch, and after a batch that held a NaN in its tail lanes.
    for (const impl of ['wasm', 'js'] as const) {
      const long = new Float32Array(16384 + 7);
      long[16384 + 5] = -Infinity;
      expect(() => quantizeWeighted(long, 1, q, undefined, undefined, impl)).toThrow(
        /coordinate 16389 is -Infinity/,
      );
      expect(
        quantizeWeighted(Float32Array.of(0.5, 0.25, 0.125), 1, q, undefined, undefined, impl),
      ).toHaveLength(4);
    }
  });

  it('the WebAssembly quantiser is bit-identical to the JavaScript loop, clipping, edges and tails included', () => {
    expect(defaultQuantize).toBe('wasm');
    const wide = { clippingRange: 0.3, quantizationRange: 2 ** 22, maxWeight: 7 };
    for (const length of [1, 3, 4, 5, 16383, 16384, 16385, 40001]) {
      const x = Float32Array.from({ length }, (_, k) =>
        k % 97 === 0 ? 0.3 : k % 89 === 0 ? -0.3 : k % 83 === 0 ? 5 : Math.sin(k * 0.37) * 0.4,
      );
      for (const config of [q, wide]) {
        const draws = (seed: number) => {
          let state = seed;
          // A fixed uniform source, so both loops see the same rounding bits.
          return () => (state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32;
        };
        const viaWasm = quantizeWeighted(x, 3, config, draws(length), undefined, 'wasm');
        const viaJs = quantizeWeighted(x, 3, config, draws(length), undefined, 'js');
        expect(viaWasm).toEqual(viaJs);
      }
    }
  });
});
