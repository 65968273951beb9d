// Canary exposure (Carlini et al. 2019, "The Secret Sharer"): how much of a secret planted in
// one contributor's notes the federation's published model gives away, without DP noise and
// with the policy's noise multiplier at the same clip norm. Both runs go through the real
// devnet, coordinator and FederatedClients (lab/canary/experiment.ts); the control row
// is never-planted secrets of the same templates on the no-DP model (must look random).
// Larger than the test's runs: more canaries, more candidates, more rounds.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  runCanaryExperiment,
  type CanaryExperimentOptions,
  type CanaryExperimentResult,
} from '../lab/canary/experiment.ts';
import type { ExposureSummary } from '../lab/canary/exposure.ts';
import { LORA_TARGETS, type PolicyAdapter } from '@commons/chain';
import { GENESIS_DIR } from '../src/config.ts';
import { textTable } from './table.ts';

export interface CanaryRow {
  run: 'no DP' | 'DP' | 'control (never planted)';
  noiseMultiplier: number;
  clipNorm: number;
  canaries: number;
  candidates: number;
  /** Mean rank exposure over the canaries, bits, and its standard error. */
  exposure: number;
  standardError: number;
  /** What a model knowing nothing of the canaries shows: mean (bits) and SE of the mean. */
  randomMean: number;
  randomStandardError: number;
  zScore: number;
  pValue: number;
  /** Mean skew-normal extrapolated exposure (§4.3), bits. */
  extrapolated: number;
  /** Largest single canary's rank exposure, bits (log2 |R| at most). */
  maxExposure: number;
  valLoss: number;
  initialValLoss: number;
  /** ε at the policy's δ after the last round (null: no noise, no guarantee). */
  epsilon: number | null;
  published: number;
  rounds: number;
  seconds: number;
}

export interface CanaryBenchResult {
  /** Headline figures: mean exposure in bits, without and with DP noise. */
  canaryExposureNoDp: number;
  canaryExposureDp: number;
  canaryRandomExposure: number;
  rows: CanaryRow[];
  settings: Omit<CanaryExperimentOptions, 'out' | 'log'>;
}

interface Options {
  log: (line: string) => void;
  canaries?: number;
  candidates?: number;
  rounds?: number;
  noiseMultiplier?: number;
  /**
   * Adapter rounds instead: FFA-LoRA on the genesis model (a trained base, as a community's is),
   * rank 16 on every projection so that an adapter round can memorise at all.
   */
  adapterRounds?: boolean;
}

/** The adapter the canary's adapter rounds train: FFA-LoRA, rank 16, every projection. */
export const CANARY_ADAPTER: PolicyAdapter = {
  rule: 'ffa-lora',
  rank: 16,
  alpha: 32,
  targets: [...LORA_TARGETS],
};

export async function benchCanary(options: Options): Promise<CanaryBenchResult> {
  const { log } = options;
  const settings = {
    canaries: options.canaries ?? 16,
    repeats: 20,
    digits: 6,
    candidates: options.candidates ?? 4000,
    canaryClient: 0,
    shardChars: 20_000,
    seed: 1,
    simulation: {
      clients: 4,
      rounds: options.rounds ?? 5,
      batchSize: 8,
      maxSteps: 50,
      localEpochs: 2,
      learningRate: 0.005,
      clipNorm: 20,
      encoding: 'int8',
      evalChars: 5000,
      // The noised model is measured even when it scores worse than its parent.
      publishMarginBpc: 1e6,
      ...(options.adapterRounds ? { base: GENESIS_DIR, adapter: CANARY_ADAPTER } : {}),
    },
  } satisfies Omit<CanaryExperimentOptions, 'out' | 'log'>;
  const sigma = options.noiseMultiplier ?? 1;
  const dir = await mkdtemp(path.join(tmpdir(), 'commons-bench-canary-'));
  try {
    log(`  no DP: ${settings.canaries} canaries × ${settings.repeats} in client 0's notes…`);
    const noDp = await runCanaryExperiment({
      ...settings,
      controls: true,
      out: path.join(dir, 'no-dp'),
    });
    log(`  DP (σ = ${sigma}, C = ${settings.simulation.clipNorm})…`);
    const dp = await runCanaryExperiment({
      ...settings,
      simulation: { ...settings.simulation, noiseMultiplier: sigma },
      out: path.join(dir, 'dp'),
    });
    const rows = [
      row('no DP', 0, noDp, noDp.exposure),
      row('DP', sigma, dp, dp.exposure),
      row('control (never planted)', 0, noDp, noDp.control!),
    ];
    return {
      canaryExposureNoDp: noDp.exposure.mean,
      canaryExposureDp: dp.exposure.mean,
      canaryRandomExposure: noDp.exposure.random.mean,
      rows,
      settings,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  function row(
    run: CanaryRow['run'],
    noiseMultiplier: number,
    result: CanaryExperimentResult,
    summary: ExposureSummary,
  ): CanaryRow {
    return {
      run,
      noiseMultiplier,
      clipNorm: settings.simulation.clipNorm,
      canaries: summary.canaries.length,
      candidates: settings.candidates,
      exposure: summary.mean,
      standardError: summary.standardError,
      randomMean: summary.random.mean,
      randomStandardError: summary.random.standardError,
      zScore: summary.zScore,
      pValue: summary.pValue,
      extrapolated: summary.meanExtrapolated,
      maxExposure: Math.max(...summary.canaries.map((c) => c.exposure)),
      valLoss: result.valLoss,
      initialValLoss: result.initialValLoss,
      epsilon: result.simulation.rounds.at(-1)?.epsilon ?? null,
      published: result.published,
      rounds: result.rounds,
      seconds: result.seconds.simulation + result.seconds.measurement,
    };
  }
}

export function formatCanary(result: CanaryBenchResult): string {
  const head = [
    'run',
    'σ',
    'C',
    'exposure (bits)',
    'random',
    'z',
    'p',
    'extrapolated',
    'max',
    'val loss',
    'ε',
    'published',
  ];
  const lines = result.rows.map((r) => [
    r.run,
    String(r.noiseMultiplier),
    String(r.clipNorm),
    `${r.exposure.toFixed(2)} ± ${r.standardError.toFixed(2)}`,
    `${r.randomMean.toFixed(2)} ± ${r.randomStandardError.toFixed(2)}`,
    r.zScore.toFixed(1),
    r.pValue < 1e-4 ? r.pValue.toExponential(1) : r.pValue.toFixed(4),
    r.extrapolated.toFixed(2),
    r.maxExposure.toFixed(2),
    `${r.initialValLoss.toFixed(2)} → ${r.valLoss.toFixed(2)}`,
    r.epsilon === null ? '∞' : r.epsilon.toFixed(2),
    `${r.published}/${r.rounds}`,
  ]);
  const s = result.settings;
  return [
    textTable(head, lines, 'left'),
    `${s.canaries} canaries of ${s.digits} digits, ${s.repeats}× each in one of ${s.simulation.clients} clients' ` +
      `${(s.shardChars ?? 0).toLocaleString('en')}-char notes; ${s.simulation.rounds} rounds × ${s.simulation.maxSteps} local steps; ` +
      `rank among ${s.candidates.toLocaleString('en')} candidates; exposure = log2|R| − log2 rank (± SE over canaries)`,
  ].join('\n');
}
