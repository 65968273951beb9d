// The Secret Sharer (Carlini et al. 2019) against Commons' federation: canaries planted in one
// contributor's private notes, rounds through the real devnet, coordinator and FederatedClients
// (real tfjs training), exposure measured in the published model. Without noise the canaries
// must be exposed far beyond chance (the test has power); with the policy's DP noise, under the
// same clip norm, they must be indistinguishable from random. The measurement's parts are
// checked first against cases whose answer is known.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, evaluate, Rng, Transformer } from '@commons/shared/engine';
import { candidateSentences, makeCanaries, plantCanaries } from '../lab/canary/canaries.ts';
import {
  extrapolatedExposure,
  exposurePValue,
  fitSkewNormal,
  logPerplexities,
  randomExposure,
  rankExposure,
  skewNormalLogCdf,
} from '../lab/canary/exposure.ts';
import { runCanaryExperiment, type CanaryExperimentOptions } from '../lab/canary/experiment.ts';
import { genesisTokenizer, SIMULATION_MODEL } from '../lab/simulation/init-model.ts';

/** Φ(x) by the trapezoid rule on the density: a reference independent of the code under test. */
function normalCdf(x: number): number {
  let sum = 0;
  const lo = -40;
  const n = 200_000;
  const h = (x - lo) / n;
  for (let i = 0; i <= n; i++) {
    const t = lo + i * h;
    const w = i === 0 || i === n ? 0.5 : 1;
    sum += w * Math.exp(-0.5 * t * t);
  }
  return (sum * h) / Math.sqrt(2 * Math.PI);
}

describe('canary measurement', () => {
  beforeAll(async () => {
    await selectBackend();
  });

  it('draws distinct candidates of the canary template, never the canary itself', () => {
    const [canary] = makeCanaries(1, { digits: 4 }, 3);
    const candidates = candidateSentences(canary!, 2000, 5);
    expect(new Set(candidates).size).toBe(2000);
    expect(candidates).not.toContain(canary!.text);
    for (const c of candidates) expect(c).toMatch(/^the secret code of alice is \d{4}$/);
    // Uniform secrets: each first digit about a tenth of the time (binomial sd ≈ 13).
    const firsts = new Array<number>(10).fill(0);
    for (const c of candidates) firsts[Number(c.at(-4))]! += 1;
    for (const count of firsts) expect(Math.abs(count - 200)).toBeLessThan(60);
  });

  it('plants each canary `repeats` times as whole lines and keeps every original line in order', () => {
    const text = Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n');
    const canaries = makeCanaries(3, { digits: 6 }, 1);
    const planted = plantCanaries(text, canaries, 4, 9).split('\n');
    for (const c of canaries) expect(planted.filter((l) => l === c.text)).toHaveLength(4);
    const kept = planted.filter((l) => l.startsWith('line '));
    expect(kept.join('\n')).toBe(text);
  });

  it('rank exposure, its random expectation and the p-value behave as under the null', () => {
    expect(rankExposure(0, [1, 2, 3])).toEqual({ rank: 1, size: 4, exposure: 2 });
    expect(rankExposure(5, [1, 2, 3]).exposure).toBe(0);
    // Uniform ranks: mean and sd of exposure tend to 1/ln 2.
    const { mean, sd } = randomExposure(100_000);
    expect(mean).toBeCloseTo(1 / Math.LN2, 3);
    expect(sd).toBeCloseTo(1 / Math.LN2, 2);
    // Under the null the p-value is (conservatively) uniform: about 5% fall below 0.05.
    const rng = new Rng(11);
    let below = 0;
    const trials = 2000;
    for (let t = 0; t < trials; t++) {
      const exposures = Array.from({ length: 8 }, () => {
        const rank = 1 + rng.int(1001);
        return Math.log2(1001) - Math.log2(rank);
      });
      if (exposurePValue(exposures) < 0.05) below++;
    }
    expect(below / trials).toBeGreaterThan(0.03);
    expect(below / trials).toBeLessThan(0.06);
    // Eight canaries each ranked first among 1,001: p = P(Gamma(8) ≥ 8·ln 1001) ≈ 2e-16.
    expect(exposurePValue(new Array<number>(8).fill(Math.log2(1001)))).toBeLessThan(1e-12);
  });

  it('the skew-normal fit recovers a known normal and extrapolates its lower tail', () => {
    const rng = new Rng(4);
    const samples = Float64Array.from({ length: 20_000 }, () => 50 + 3 * rng.normal());
    const fit = fitSkewNormal(samples);
    // A normal is the skew-normal of shape 0.
    expect(Math.abs(fit.shape)).toBeLessThan(0.5);
    for (const z of [-1, -3]) {
      const exact = Math.log(normalCdf(z));
      expect(skewNormalLogCdf(50 + 3 * z, { location: 50, scale: 3, shape: 0 })).toBeCloseTo(
        exact,
        4,
      );
    }
    // Deep in the tail, far past what 20,000 samples can rank: Φ(−6) ≈ 9.87e-10 → 29.9 bits.
    expect(extrapolatedExposure(50 - 18, samples)).toBeGreaterThan(28);
    expect(extrapolatedExposure(50 - 18, samples)).toBeLessThan(32);
    // A skewed family: shape α gives P(X ≤ ξ) = 1/2 − arctan(α)/π.
    const lc = skewNormalLogCdf(0, { location: 0, scale: 1, shape: 3 });
    expect(Math.exp(lc)).toBeCloseTo(0.5 - Math.atan(3) / Math.PI, 5);
  });

  it('batched log-perplexities equal the model loss of each sentence alone', async () => {
    const tokenizer = await genesisTokenizer();
    const model = Transformer.create({ ...SIMULATION_MODEL, vocabSize: tokenizer.vocabSize }, 7);
    try {
      const sentences = [
        'the secret code of alice is 123456',
        'the secret code of bob is 000001',
        'a line of a different length',
      ];
      const batched = logPerplexities(model, tokenizer, sentences, 2);
      sentences.forEach((s, i) => {
        const ids = Int32Array.from(tokenizer.encode('\n' + s));
        const { loss, tokens } = evaluate(model, { tokens: ids, chars: 1 });
        expect(batched[i]).toBeCloseTo((loss * tokens) / Math.LN2, 2);
      });
    } finally {
      model.dispose();
    }
  });
});

/**
 * Four contributors with a notebook's worth of text each (20,000 characters of their roles),
 * one of whom has 8 secret codes, 20 times each, among its lines (a quarter of its tokens);
 * 4 rounds of 50 local Adam steps (two passes over the notes), the same clip norm in both runs
 * (C = 20, about the size of an update, so clipping alone barely changes training). Each
 * canary is ranked among 1,000 other secrets of its template.
 */
const FEDERATION = {
  canaries: 8,
  repeats: 20,
  digits: 6,
  candidates: 1000,
  canaryClient: 0,
  shardChars: 20_000,
  seed: 1,
  simulation: {
    clients: 4,
    rounds: 4,
    workers: 2,
    batchSize: 8,
    maxSteps: 50,
    localEpochs: 2,
    learningRate: 0.005,
    clipNorm: 20,
    encoding: 'int8',
    evalChars: 5000,
    // Measure the model the rounds produced, even when the noise makes it worse than its parent.
    publishMarginBpc: 1e6,
  },
} satisfies Omit<CanaryExperimentOptions, 'out'>;

describe('canary exposure through federated rounds', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'commons-canary-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('without DP noise the planted canaries are exposed far beyond chance', async () => {
    const result = await runCanaryExperiment({
      ...FEDERATION,
      controls: true,
      out: path.join(dir, 'no-dp'),
    });
    expect(result.published).toBe(FEDERATION.simulation.rounds);
    const { exposure, control } = result;
    // Power: the mean over 8 canaries lies more than 3 null standard errors (0.5 bit each)
    // above random, and Fisher's combined p-value is below 1e-3.
    expect(exposure.zScore).toBeGreaterThan(3);
    expect(exposure.pValue).toBeLessThan(1e-3);
    // Calibration: never-planted secrets of the same templates rank as random on this model.
    expect(Math.abs(control!.zScore)).toBeLessThan(3);
  }, 300_000);

  it('with DP noise (σ = 1, same clip norm) exposure is indistinguishable from random', async () => {
    const result = await runCanaryExperiment({
      ...FEDERATION,
      simulation: { ...FEDERATION.simulation, noiseMultiplier: 1 },
      out: path.join(dir, 'dp'),
    });
    // Every round published: the measured model holds the canary client's noised updates.
    expect(result.published).toBe(FEDERATION.simulation.rounds);
    expect(result.simulation.rounds.at(-1)!.epsilon).toBeGreaterThan(0);
    const { exposure } = result;
    // Tolerance: within 3 standard errors of the random mean (±1.5 bits for 8 canaries), which a
    // model that knows nothing of the canaries misses 0.3% of the time — so the noise is seeded
    // (the experiment's seed), and this run gives the same figures every time.
    expect(Math.abs(exposure.zScore)).toBeLessThan(3);
    expect(exposure.pValue).toBeGreaterThan(1e-3);
  }, 300_000);
});
