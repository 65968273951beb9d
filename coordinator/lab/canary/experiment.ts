// The Secret Sharer run end to end through the real stack: canaries planted in one simulated
// contributor's shard, federated rounds by runSimulation (devnet, coordinator, FederatedClients
// in worker threads, real tfjs training), then the exposure of each canary in the last
// published model, loaded from the coordinator's own model store as a member would get it.
import path from 'node:path';
import { type Transformer, type ChatTokenizer, loadModel } from '@commons/shared/engine';
import {
  runSimulation,
  SIMULATION_DEFAULTS,
  type SimulationOptions,
  type SimulationResult,
} from '../simulation/simulation.ts';
import { candidateSentences, makeCanaries, plantCanaries, type Canary } from './canaries.ts';
import {
  extrapolatedExposure,
  logPerplexities,
  rankExposure,
  summarise,
  type CanaryMeasurement,
  type ExposureSummary,
} from './exposure.ts';

/** Each canary's exposure among `candidates` random sentences of its template. */
export function measureExposure(
  model: Transformer,
  tokenizer: ChatTokenizer,
  canaries: readonly Canary[],
  options: { candidates: number; seed: number },
): ExposureSummary {
  const measured: CanaryMeasurement[] = canaries.map((canary, i) => {
    // A seed per canary: its candidates are independent of the other canaries'.
    const others = candidateSentences(canary, options.candidates, options.seed * 1009 + i);
    const [own, ...rest] = logPerplexities(model, tokenizer, [canary.text, ...others]);
    const candidates = Float64Array.from(rest);
    const { rank, size, exposure } = rankExposure(own!, candidates);
    return {
      secret: canary.secret,
      logPerplexity: own!,
      candidateMean: candidates.reduce((a, b) => a + b, 0) / candidates.length,
      rank,
      size,
      exposure,
      extrapolated: extrapolatedExposure(own!, candidates),
    };
  });
  return summarise(measured);
}

export interface CanaryExperimentOptions {
  /** Canaries planted (each with its own template), 1–16. */
  canaries: number;
  /** Times each canary is planted in the shard. */
  repeats: number;
  /** Digits of each secret (secret space 10^digits). */
  digits: number;
  /** Random candidates each canary is ranked among. */
  candidates: number;
  /** The contributor whose data holds the canaries. */
  canaryClient: number;
  /**
   * Every contributor keeps only the first this many characters of its roles (whole lines;
   * default: all of them): a federation of members with a notebook's worth of text each, where
   * local training reads its data several times a round, as on-device fine-tuning does.
   */
  shardChars?: number;
  /** The federation: everything runSimulation takes but where its files go. */
  simulation: Partial<Omit<SimulationOptions, 'out' | 'editShard' | 'baseline'>>;
  /**
   * Also measure control canaries: the same templates with fresh secrets that were never
   * planted. They must look random on any model; if they do not, the template itself (not the
   * secret) is what the ranking picks up and the method is miscalibrated.
   */
  controls?: boolean;
  /** Folder for the simulation's chain, coordinator data and results. */
  out: string;
  seed: number;
  log?: (line: string) => void;
}

export interface CanaryExperimentResult {
  exposure: ExposureSummary;
  /** The never-planted control canaries' exposure, when asked for. */
  control: ExposureSummary | null;
  /** Rounds whose candidate was published (the measured model is the last of them). */
  published: number;
  rounds: number;
  /** Held-out loss of the measured model (nats/token), and of the initial model. */
  valLoss: number;
  initialValLoss: number;
  /** Tokens of the canary client's shard, and how many of them are canary text. */
  shardTokens: number;
  canaryTokens: number;
  simulation: SimulationResult;
  seconds: { simulation: number; measurement: number };
}

export async function runCanaryExperiment(
  options: CanaryExperimentOptions,
): Promise<CanaryExperimentResult> {
  const canaries = makeCanaries(options.canaries, { digits: options.digits }, options.seed);
  let planted = '';
  const simStarted = performance.now();
  const simulation = await runSimulation({
    ...SIMULATION_DEFAULTS,
    ...options.simulation,
    baseline: false,
    seed: options.seed,
    // The measurement must repeat exactly: a test cannot be allowed a 0.3% chance of failing
    // on an unlucky noise draw. Seeded noise is fine here; no privacy claim rests on it.
    noiseSeed: options.seed,
    out: options.out,
    editShard: (index, full) => {
      const text = options.shardChars ? wholeLines(full, options.shardChars) : full;
      if (index !== options.canaryClient) return text;
      planted = plantCanaries(text, canaries, options.repeats, options.seed + 1);
      return planted;
    },
    ...(options.log ? { log: options.log } : {}),
  });
  const simSeconds = (performance.now() - simStarted) / 1000;
  if (planted === '') {
    throw new Error(`client ${options.canaryClient} is not among the simulation's clients`);
  }

  const published = simulation.rounds.filter((r) => r.candidate !== null);
  const last = published.at(-1);
  // No published round: the measured model is the initial one, which never saw a canary.
  const dir = last
    ? path.join(path.resolve(options.out), 'coordinator', 'models', last.candidate!)
    : path.join(path.resolve(options.out), 'init-model');
  const measureStarted = performance.now();
  const { model, tokenizer } = await loadModel(dir, {
    expectedHash: last?.candidate ?? simulation.model.hash,
  });
  try {
    const exposure = measureExposure(model, tokenizer, canaries, {
      candidates: options.candidates,
      seed: options.seed,
    });
    const control = options.controls
      ? measureExposure(
          model,
          tokenizer,
          makeCanaries(options.canaries, { digits: options.digits }, options.seed + 7919),
          { candidates: options.candidates, seed: options.seed + 7919 },
        )
      : null;
    const shardTokens = tokenizer.encode(planted).length;
    const canaryTokens =
      options.repeats *
      canaries.reduce((n, c) => n + tokenizer.encode('\n' + c.text).length - 1, 0);
    return {
      exposure,
      control,
      published: published.length,
      rounds: simulation.rounds.length,
      valLoss: last?.valLoss ?? simulation.initial.valLoss,
      initialValLoss: simulation.initial.valLoss,
      shardTokens,
      canaryTokens,
      simulation,
      seconds: { simulation: simSeconds, measurement: (performance.now() - measureStarted) / 1000 },
    };
  } finally {
    model.dispose();
  }
}

/** The longest run of whole lines from the start of `text` within `chars` characters. */
function wholeLines(text: string, chars: number): string {
  if (text.length <= chars) return text;
  const cut = text.lastIndexOf('\n', chars);
  return text.slice(0, cut > 0 ? cut : chars);
}
