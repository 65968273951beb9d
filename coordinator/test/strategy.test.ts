import type { FederationPolicy } from '@commons/chain';
import { type NamedTensors, encodeTensors } from '@commons/shared/engine';
import { describe, expect, it } from 'vitest';
import { layoutOf } from '../src/aggregation/layout.ts';
import { secureAggregationRefusal } from '../src/secagg/secure-round.ts';
import {
  FedAdagrad,
  FedAdam,
  FedAvg,
  FedYogi,
  STRATEGY_NAMES,
  StrategyError,
  averagingStrategyNames,
  createStrategy,
  type FedOpt,
  type FedOptOptions,
} from '../src/strategy/index.ts';

const POLICY: FederationPolicy = {
  clipNorm: 1,
  noiseMultiplier: 0,
  minClients: 1,
  maxClients: 10,
  sampleRate: 1,
  localEpochs: 3,
  learningRate: 0.05,
  aggregationRule: 'fedavg',
  secureAggregation: false,
  epsilonBudget: 10,
  delta: 1e-5,
  roundDeadlineSeconds: 60,
  clipTargetQuantile: 0,
  secAggNumShares: 0,
  secAggThreshold: 0.666667,
  maxExamplesPerUpdate: 10_000,
  adapter: { rule: 'full-delta', rank: 0, alpha: 0, targets: [] },
};

const LAYOUT = layoutOf([
  { name: 'w', shape: [2] },
  { name: 'b', shape: [1] },
]);

function frame(values: [number, number, number]): Uint8Array {
  const tensors: NamedTensors = new Map([
    ['w', { shape: [2], data: Float32Array.of(values[0], values[1]) }],
    ['b', { shape: [1], data: Float32Array.of(values[2]) }],
  ]);
  return encodeTensors(tensors, 'fp32');
}

/** |actual − expected| ≤ 1e-6 relative (float32 state and output) for every element. */
function expectClose(actual: Float32Array, expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((e, i) => {
    expect(Math.abs(actual[i]! - e)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(e)));
  });
}

describe('createStrategy', () => {
  it('knows every rule by its policy name', () => {
    expect(STRATEGY_NAMES).toEqual([
      'fedavg',
      'fedprox',
      'fedadam',
      'fedyogi',
      'fedadagrad',
      'fedmedian',
      'trimmed-mean',
      'krum',
      'multi-krum',
    ]);
    for (const name of STRATEGY_NAMES) expect(createStrategy(name).name).toBe(name);
  });

  it('refuses an unknown name, listing the known ones', () => {
    const attempt = () => createStrategy('fedsgd');
    expect(attempt).toThrow(StrategyError);
    expect(attempt).toThrow(
      /UNKNOWN_STRATEGY: unknown strategy "fedsgd"; known strategies: fedavg, /,
    );
    expect(() => createStrategy('toString')).toThrow(/UNKNOWN_STRATEGY/);
  });

  it('refuses options the strategy does not read, and values out of range', () => {
    expect(() => createStrategy('fedavg', { mu: 0.1 })).toThrow(/fedavg does not take option "mu"/);
    expect(() => createStrategy('krum', { selected: 3 })).toThrow(/INVALID_OPTION/);
    for (const options of [{ eta: 0 }, { beta1: 1 }, { beta2: -0.1 }, { tau: 0 }]) {
      expect(() => createStrategy('fedadam', options)).toThrow(/INVALID_OPTION/);
    }
    expect(() => createStrategy('fedprox', { mu: -1 })).toThrow(/mu must be/);
    expect(() => createStrategy('trimmed-mean', { trimFraction: 0.5 })).toThrow(/INVALID_OPTION/);
    expect(() => createStrategy('multi-krum', { byzantine: 1.5 })).toThrow(/INVALID_OPTION/);
    expect(() => createStrategy('multi-krum', { selected: 0 })).toThrow(/INVALID_OPTION/);
  });

  it('says which rules average (the ones DP noise and secure aggregation can wrap)', () => {
    const averaging = STRATEGY_NAMES.filter((name) => createStrategy(name).averages);
    expect(averaging).toEqual(['fedavg', 'fedprox', 'fedadam', 'fedyogi', 'fedadagrad']);
    expect(averagingStrategyNames()).toEqual(averaging);
    // A mean-averaging rule runs under secure aggregation; an order statistic is refused by name.
    expect(secureAggregationRefusal(createStrategy('fedadam'))).toBeNull();
    expect(secureAggregationRefusal(createStrategy('fedmedian'))).toBe(
      'fedmedian needs individual updates, which secure aggregation hides; with secure ' +
        'aggregation use fedavg, fedprox, fedadam, fedyogi, fedadagrad',
    );
  });
});

describe('configureRound', () => {
  it('sends the policy epochs and learning rate; μ only for FedProx', () => {
    const input = { roundId: 4, policy: POLICY };
    for (const name of STRATEGY_NAMES.filter((n) => n !== 'fedprox')) {
      expect(createStrategy(name).configureRound(input)).toEqual({
        localEpochs: 3,
        learningRate: 0.05,
        proxMu: 0,
      });
    }
    expect(createStrategy('fedprox').configureRound(input).proxMu).toBe(0.01);
    expect(createStrategy('fedprox', { mu: 0.5 }).configureRound(input)).toEqual({
      localEpochs: 3,
      learningRate: 0.05,
      proxMu: 0.5,
    });
  });
});

describe('FedAvg', () => {
  it('runs a round: weighted mean of the deltas, added to the base', () => {
    const strategy = new FedAvg();
    const aggregator = strategy.createAggregator(LAYOUT);
    expect(aggregator.result()).toBeNull();
    aggregator.add(frame([1, 0, -2]), 1);
    aggregator.add(frame([4, 3, 1]), 2);
    const delta = aggregator.result()!;
    expectClose(delta, [3, 2, 0]); // (1·1 + 2·4) / 3, (0 + 6) / 3, (−2 + 2) / 3
    const base = Float32Array.of(10, 20, 30);
    const next = strategy.applyUpdate(base, delta, 1);
    expectClose(next, [13, 22, 30]);
    expect(base).toEqual(Float32Array.of(10, 20, 30));
    expect(strategy.exportState()).toBeNull();
    expect(() => strategy.applyUpdate(base, Float32Array.of(1), 1)).toThrow(/SIZE_MISMATCH/);
  });

  it('FedProx aggregates as FedAvg', () => {
    const aggregator = createStrategy('fedprox').createAggregator(LAYOUT);
    aggregator.add(frame([1, 0, -2]), 1);
    aggregator.add(frame([4, 3, 1]), 2);
    expectClose(aggregator.result()!, [3, 2, 0]);
  });
});

describe('robust strategies run a round through their aggregators', () => {
  const deltas: [number, number, number][] = [
    [1, 10, 0],
    [2, 20, 0],
    [3, 30, 0],
    [4, 40, 0],
    [1000, -1000, 1000],
  ];
  const run = (name: string, options = {}) => {
    const strategy = createStrategy(name, options);
    const aggregator = strategy.createAggregator(LAYOUT);
    deltas.forEach((d) => aggregator.add(frame(d), 1));
    return strategy.applyUpdate(new Float32Array(3), aggregator.result()!, 1);
  };

  it('fedmedian, trimmed-mean, krum, multi-krum', () => {
    expectClose(run('fedmedian'), [3, 20, 0]);
    expectClose(run('trimmed-mean'), [3, 20, 0]); // ⌊0.2·5⌋ = 1 cut each side: mean of 2, 3, 4
    expectClose(run('trimmed-mean', { trimFraction: 0 }), [202, -180, 200]);
    // f = 1: scores on the 2 nearest, ‖uᵢ − uⱼ‖² = 101·(i − j)² among the first four:
    // u0 505, u1 202, u2 202, u3 505, u4 huge. Krum takes u1 (ties go to the first added).
    expectClose(run('krum'), [2, 20, 0]);
    expectClose(run('multi-krum', { selected: 2 }), [2.5, 25, 0]); // mean of u1 and u2
    expectClose(run('multi-krum'), [2.5, 25, 0]); // m = n − f = 4: u0…u3
  });
});

/** The paper's Algorithm 2, written out for plain arrays, float32 where the strategy stores. */
function reference(
  kind: 'adam' | 'yogi' | 'adagrad',
  { eta, beta1, beta2, tau }: Required<FedOptOptions>,
  base: number[],
  deltas: number[][],
): number[][] {
  const f = Math.fround;
  let m = base.map(() => 0);
  let v = base.map(() => f(tau * tau));
  let x = base.map(f);
  const steps: number[][] = [];
  for (const delta of deltas) {
    m = m.map((mi, i) => f(beta1 * mi + (1 - beta1) * delta[i]!));
    v = v.map((vi, i) => {
      const d2 = delta[i]! * delta[i]!;
      if (kind === 'adam') return f(beta2 * vi + (1 - beta2) * d2);
      if (kind === 'yogi') return f(vi - (1 - beta2) * d2 * Math.sign(vi - d2));
      return f(vi + d2);
    });
    x = x.map((xi, i) => f(xi + (eta * m[i]!) / (Math.sqrt(v[i]!) + tau)));
    steps.push(x);
  }
  return steps;
}

describe('FedOpt: FedAdam, FedYogi, FedAdagrad', () => {
  const options = { eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
  const base = [1, -2, 0.5];
  const deltas = [
    [0.1, -0.2, 0],
    [0.005, 0.3, -0.01],
  ];
  const make: Record<'adam' | 'yogi' | 'adagrad', () => FedOpt> = {
    adam: () => new FedAdam(options),
    yogi: () => new FedYogi(options),
    adagrad: () => new FedAdagrad(options),
  };

  it('one step, by hand', () => {
    // m = 0.1·Δ; Adam v = 0.99·τ² + 0.01·Δ²; Yogi v = τ² + 0.01·Δ² (Δ² > τ²) or τ² (Δ = 0);
    // Adagrad v = τ² + Δ². x = base + η·m / (√v + τ).
    const step = (strategy: FedOpt) =>
      strategy.applyUpdate(Float32Array.from(base), Float32Array.from(deltas[0]!), 1);
    const x = (b: number, d: number, v: number) => b + (0.1 * 0.1 * d) / (Math.sqrt(v) + 1e-3);
    expectClose(step(make.adam()), [
      x(1, 0.1, 0.99e-6 + 0.01 * 0.01),
      x(-2, -0.2, 0.99e-6 + 0.01 * 0.04),
      0.5,
    ]);
    expectClose(step(make.yogi()), [x(1, 0.1, 1e-6 + 1e-4), x(-2, -0.2, 1e-6 + 4e-4), 0.5]);
    expectClose(step(make.adagrad()), [x(1, 0.1, 1e-6 + 0.01), x(-2, -0.2, 1e-6 + 0.04), 0.5]);
    // Adam's first coordinate, as a number: 1 + 0.001 / (√1.0099e-4 + 0.001).
    expect(step(make.adam())[0]).toBeCloseTo(1.0905028, 6);
  });

  it('two steps against Algorithm 2 (Yogi moves v both ways)', () => {
    for (const kind of ['adam', 'yogi', 'adagrad'] as const) {
      const strategy = make[kind]();
      const expected = reference(kind, options, base, deltas);
      const x1 = strategy.applyUpdate(Float32Array.from(base), Float32Array.from(deltas[0]!), 1);
      expectClose(x1, expected[0]!);
      const x2 = strategy.applyUpdate(x1, Float32Array.from(deltas[1]!), 2);
      expectClose(x2, expected[1]!);
      expect(strategy.steps).toBe(2);
    }
    // Yogi's second step, coordinate 0: Δ² = 2.5e-5 < v = 1.01e-4, so v shrinks by 0.01·Δ².
    const yogi = make.yogi();
    yogi.applyUpdate(Float32Array.from(base), Float32Array.from(deltas[0]!), 1);
    yogi.applyUpdate(Float32Array.from(base), Float32Array.from(deltas[1]!), 2);
    expect(yogi.exportState()!.tensors.v![0]).toBeCloseTo(1.01e-4 - 0.01 * 2.5e-5, 10);
  });

  it('does not mutate the base', () => {
    const input = Float32Array.from(base);
    make.adam().applyUpdate(input, Float32Array.from(deltas[0]!), 1);
    expect(input).toEqual(Float32Array.from(base));
  });

  it('exported state, imported into a fresh strategy, continues identically', () => {
    for (const kind of ['adam', 'yogi', 'adagrad'] as const) {
      const original = make[kind]();
      expect(original.exportState()).toBeNull();
      const x1 = original.applyUpdate(Float32Array.from(base), Float32Array.from(deltas[0]!), 7);
      const state = original.exportState()!;
      expect(state.json).toEqual({ strategy: original.name, t: 1, roundId: 7 });
      // Round-trip the vectors through bytes, as the engine stores them.
      const bytes = (a: Float32Array) => new Float32Array(new Uint8Array(a.buffer).slice().buffer);
      const restored = make[kind]();
      restored.importState({
        json: JSON.parse(JSON.stringify(state.json)) as Record<string, unknown>,
        tensors: { m: bytes(state.tensors.m!), v: bytes(state.tensors.v!) },
      });
      state.tensors.m!.fill(99); // exported arrays are copies
      const d2 = Float32Array.from(deltas[1]!);
      expect(restored.applyUpdate(x1, d2, 8)).toEqual(original.applyUpdate(x1, d2, 8));
      expect(restored.applyUpdate(x1, d2, 9)).toEqual(original.applyUpdate(x1, d2, 9));
      expect(restored.exportState()).toEqual(original.exportState());
    }
  });

  it('refuses state from another strategy or of the wrong shape', () => {
    const adam = make.adam();
    adam.applyUpdate(Float32Array.from(base), Float32Array.from(deltas[0]!), 1);
    const state = adam.exportState()!;
    expect(() => make.yogi().importState(state)).toThrow(/STATE_MISMATCH/);
    expect(() => new FedAvg().importState(state)).toThrow(/STATE_MISMATCH/);
    expect(() =>
      make.adam().importState({ json: state.json, tensors: { m: state.tensors.m! } }),
    ).toThrow(/STATE_MISMATCH/);
    const restored = make.adam();
    restored.importState(state);
    expect(() => restored.applyUpdate(new Float32Array(5), new Float32Array(5), 2)).toThrow(
      /SIZE_MISMATCH/,
    );
  });
});
