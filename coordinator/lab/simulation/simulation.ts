// A federated-training simulation end to end, through the production code: a hardhat devnet with
// Commons deployed (a freshly initialised model as genesis), the real coordinator in this process
// on loopback, and N real FederatedClients in a worker-thread pool, each holding whole speaking
// roles of the training text (LEAF's non-IID Shakespeare split). Every round is a real round:
// SIWE sign-in, invitation, local training, int8 upload, aggregation, evaluation on the held-out
// tail, publication to the model store and ModelRegistry. Between rounds each published
// candidate is activated on chain (governance in fast-forward, devnet-governance.ts) so the next
// round trains it. Afterwards a centralised baseline of the same compute runs on the union of
// the clients' data, for the comparison FedAvg is judged by.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_POLICY, defaultGenesisUri, startDevnet, type Devnet } from '@commons/contracts';
import { FULL_DELTA, type FederationPolicy } from '@commons/chain';
import {
  readCheckpoint,
  type UpdateEncoding,
  type ModelConfig,
  readCorpus,
  splitText,
  ChatTokenizer,
} from '@commons/shared/engine';
import type { RoundResult, RoundStatus } from '@commons/shared/protocol';
import { startCoordinator, type Coordinator } from '../../src/coordinator.ts';
import { CandidateEvaluator } from '../../src/rounds/evaluator.ts';
import { runBaseline, type BaselinePoint } from './baseline.ts';
import { ClientPool } from './client-pool.ts';
import { DevnetGovernance } from './devnet-governance.ts';
import { SIMULATION_MODEL, writeInitialModel } from './init-model.ts';
import { assignRoles, parseRoles } from './roles.ts';
import { lineChartSvg } from './svg-chart.ts';

export interface SimulationOptions {
  clients: number;
  rounds: number;
  /** Coordinator strategy (fedavg, fedprox, fedadam, ...). */
  strategy: string;
  seed: number;
  /** Folder for the chain, the coordinator's data, simulation.json and val-loss.svg. */
  out: string;
  /** Fraction of connected clients invited each round. */
  sampleRate: number;
  /** Worker threads hosting the clients; default: CPU cores. */
  workers?: number;
  batchSize: number;
  /** Local optimiser steps per round (1: FedSGD). */
  maxSteps: number;
  localEpochs: number;
  learningRate: number;
  clipNorm: number;
  /**
   * The policy's DP noise multiplier σ: the coordinator adds Gaussian noise of standard
   * deviation σ·clipNorm to the sum of clipped updates (default 0: no noise).
   */
  noiseMultiplier?: number;
  /** Mask updates with SecAgg+ (the server sees only their sum). */
  secureAggregation?: boolean;
  /**
   * What a round trains (the policy's adapter): a LoRA adapter on the model, by FFA-LoRA or
   * LoRA-FedAvg, or the whole model (default: full-delta, what a model trained from scratch needs).
   */
  adapter?: FederationPolicy['adapter'];
  /** Seed the coordinator's DP noise, so a run repeats exactly (never for a real privacy claim). */
  noiseSeed?: number;
  encoding: UpdateEncoding;
  /** Held-out characters each candidate is scored on. */
  evalChars: number;
  /** The coordinator refuses a candidate worse than its parent by more than this (bits/char). */
  publishMarginBpc: number;
  /** Model shape (the vocabulary is the genesis tokenizer's). */
  model: Omit<ModelConfig, 'vocabSize'>;
  /**
   * A checkpoint folder to start from (e.g. the genesis model, for adapter rounds on a trained
   * base) instead of a fresh initialisation of `model`.
   */
  base?: string;
  /** Run the centralised baseline after the rounds. */
  baseline: boolean;
  /** Only the baseline's first N round-equivalents (default: as many as the rounds run). */
  baselineRounds?: number;
  /** Stop early once a published round's val loss is at or below this. */
  targetLoss?: number;
  /**
   * Rewrites client `index`'s shard text before it is tokenised, e.g. to plant canary
   * sentences in one contributor's private data (lab/canary); the split and every other
   * shard are unchanged.
   */
  editShard?: (index: number, text: string) => string;
  log?: (line: string) => void;
  onRound?: (row: RoundRow) => void;
}

/** A model already on disk as the simulation's starting point. */
async function existingModel(
  dir: string,
): Promise<{ hash: string; dir: string; params: number; config: ModelConfig }> {
  const { manifest, tensors, hash } = await readCheckpoint(dir);
  const params = [...tensors.values()].reduce((n, t) => n + t.data.length, 0);
  return { hash, dir, params, config: manifest.config };
}

export const SIMULATION_DEFAULTS: Omit<SimulationOptions, 'out'> = {
  clients: 50,
  rounds: 10,
  strategy: 'fedavg',
  seed: 1,
  sampleRate: 1,
  batchSize: 8,
  maxSteps: 10,
  localEpochs: 1,
  learningRate: 0.003,
  clipNorm: 1000,
  encoding: 'int8',
  evalChars: 20_000,
  publishMarginBpc: 0.02,
  model: SIMULATION_MODEL,
  baseline: true,
};

export interface RoundRow {
  round: number;
  outcome: 'published' | 'failed';
  reason?: string;
  /** Updates accepted. */
  clients: number;
  valLoss: number | null;
  valBpc: number | null;
  /** Upload bytes the coordinator accepted this round. */
  bytesIn: number;
  /** From configuring to the result. */
  seconds: number;
  /** Local optimiser steps all accepted clients took together. */
  steps: number;
  baseModel: string;
  candidate: string | null;
  /** The candidate's (ε at the policy's δ) spent so far; null without noise or candidate. */
  epsilon: number | null;
  /** Mean L2 norm of the uploaded deltas before clipping (how hard clipNorm binds). */
  meanRawNorm: number | null;
}

export interface SimulationResult {
  date: string;
  options: Omit<SimulationOptions, 'log' | 'onRound'>;
  backend: string;
  workers: number;
  model: { config: ModelConfig; params: number; hash: string };
  split: {
    roles: number;
    clients: number;
    minChars: number;
    medianChars: number;
    maxChars: number;
  };
  policy: FederationPolicy;
  initial: { valLoss: number; valBpc: number };
  rounds: RoundRow[];
  baseline: BaselinePoint[];
  seconds: { setup: number; rounds: number; baseline: number; total: number };
  files: { json: string; svg: string | null };
}

/** Runs the simulation; writes `<out>/simulation.json` and `<out>/val-loss.svg`. */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const out = path.resolve(options.out);
  // Only the folders this run owns are replaced; anything else in `out` is left alone.
  for (const sub of ['chain', 'coordinator', 'init-model']) {
    await rm(path.join(out, sub), { recursive: true, force: true });
  }
  await mkdir(out, { recursive: true });

  // The non-IID split, from the training part only.
  const { train, val } = splitText(readCorpus());
  const roles = parseRoles(train);
  const shards = assignRoles(roles, options.clients, options.seed);
  const sizes = shards.map((s) => s.text.length).sort((a, b) => a - b);
  const split = {
    roles: roles.length,
    clients: shards.length,
    minChars: sizes[0]!,
    medianChars: sizes[Math.floor(sizes.length / 2)]!,
    maxChars: sizes.at(-1)!,
  };
  log(
    `split: ${roles.length} roles over ${shards.length} clients, ${split.minChars}–${split.maxChars} chars each`,
  );

  const init = options.base
    ? await existingModel(options.base)
    : await writeInitialModel(path.join(out, 'init-model'), options.model, options.seed);
  const { manifest, tensors } = await readCheckpoint(init.dir);
  const tokenizer = ChatTokenizer.fromJSON(manifest.tokenizer);
  const data = shards.map((s, i) =>
    Int32Array.from(
      tokenizer.encodeText(options.editShard ? options.editShard(i, s.text) : s.text),
    ),
  );
  const tooShort = data.findIndex((tokens) => tokens.length <= init.config.blockSize);
  if (tooShort >= 0) {
    throw new Error(
      `client ${tooShort} has too little text to train with context ${init.config.blockSize}`,
    );
  }
  log(`model: ${init.params.toLocaleString('en')} parameters, ${init.hash.slice(0, 12)}…`);

  const sample = Math.ceil(options.sampleRate * options.clients);
  // Tolerate a fifth of a round's sample dropping out.
  const minClients = Math.min(options.clients, Math.max(1, Math.ceil(0.8 * sample)));
  const policy: FederationPolicy = {
    ...DEFAULT_POLICY,
    minClients,
    maxClients: options.clients + 1,
    sampleRate: options.sampleRate,
    localEpochs: options.localEpochs,
    learningRate: options.learningRate,
    clipNorm: options.clipNorm,
    noiseMultiplier: options.noiseMultiplier ?? 0,
    secureAggregation: options.secureAggregation ?? false,
    adapter: options.adapter ?? FULL_DELTA,
    aggregationRule: 'fedavg',
    roundDeadlineSeconds: 3600,
  };

  let devnet: Devnet | null = null;
  let coordinator: Coordinator | null = null;
  let pool: ClientPool | null = null;
  let governance: DevnetGovernance | null = null;
  try {
    // Deployed with one client more than there are as the minimum, so round 1 waits until the
    // whole pool has signed in; the real minimum is put in force once it has.
    devnet = await startDevnet(
      path.join(out, 'chain'),
      { ...policy, minClients: options.clients + 1 },
      { genesis: { hash: init.hash, uri: defaultGenesisUri(init.hash) } },
    );
    governance = new DevnetGovernance(devnet.rpcUrl, devnet.addresses);
    coordinator = await startCoordinator({
      port: 0,
      dataDir: path.join(out, 'coordinator'),
      rpcUrl: devnet.rpcUrl,
      addressesFile: devnet.addressesFile,
      privateKey: devnet.keys[0]!,
      strategy: options.strategy,
      encoding: options.encoding,
      batchSize: options.batchSize,
      maxSteps: options.maxSteps,
      evalChars: options.evalChars,
      maxRounds: options.rounds,
      seedModels: [init.dir],
      roundIntervalMs: 1000,
      publishMarginBpc: options.publishMarginBpc,
      seed: options.seed,
      ...(options.noiseSeed === undefined ? {} : { noiseSeed: options.noiseSeed }),
      logLevel: 'warn',
    });
    const evaluator = new CandidateEvaluator({ text: val, maxChars: options.evalChars });
    const initial = evaluator.evaluate(manifest, tensors);

    pool = await ClientPool.start({
      coordinator: coordinator.url,
      chainId: devnet.addresses.chainId,
      data,
      seed: options.seed,
      ...(options.workers ? { workers: options.workers } : {}),
    });
    const problems = new Map<string, number>();
    pool.on('clientError', ({ message }) => {
      const count = (problems.get(message) ?? 0) + 1;
      problems.set(message, count);
      if (count === 1) log(`client: ${message}`);
    });
    const steps = new Map<number, number>();
    const rawNorms = new Map<number, number[]>();
    pool.on('uploaded', ({ receipt }) => {
      steps.set(receipt.roundId, (steps.get(receipt.roundId) ?? 0) + receipt.steps);
      rawNorms.set(receipt.roundId, [...(rawNorms.get(receipt.roundId) ?? []), receipt.rawNorm]);
    });
    log(`${options.clients} clients signed in on ${pool.workers} worker threads`);
    const setupSeconds = (performance.now() - started) / 1000;

    const rows: RoundRow[] = [];
    const roundsStarted = performance.now();
    const { engine, db } = coordinator;
    const configuredAt = new Map<number, { ms: number; base: string }>();
    const onStatus = (status: RoundStatus) => {
      if (status.state === 'configuring' && !configuredAt.has(status.roundId)) {
        configuredAt.set(status.roundId, { ms: performance.now(), base: status.baseModel });
      }
    };
    engine.on('status', onStatus);
    let expectedBase = init.hash;
    const finished = new Promise<void>((resolve, reject) => {
      const onResult = (result: RoundResult) => {
        void (async () => {
          const start = configuredAt.get(result.roundId);
          const submissions = db.submissions(result.roundId);
          const row: RoundRow = {
            round: result.roundId,
            outcome: result.outcome,
            ...(result.reason ? { reason: result.reason } : {}),
            clients: result.accepted,
            valLoss: result.candidate?.valLoss ?? null,
            valBpc: result.candidate?.valBpc ?? null,
            bytesIn: submissions.reduce((sum, s) => sum + s.byteLength, 0),
            seconds: start ? (performance.now() - start.ms) / 1000 : 0,
            steps: steps.get(result.roundId) ?? 0,
            baseModel: start?.base ?? '',
            candidate: result.candidate?.hash ?? null,
            epsilon: result.candidate?.epsilon ?? null,
            meanRawNorm: mean(rawNorms.get(result.roundId) ?? []),
          };
          if (start && start.base !== expectedBase) {
            log(
              `round ${row.round} trained ${start.base.slice(0, 12)}…, not the last published model`,
            );
          }
          if (result.candidate) {
            // Before the engine's pause between rounds ends, so the next round trains it.
            await governance!.activate(result.candidate.hash);
            expectedBase = result.candidate.hash;
          }
          rows.push(row);
          options.onRound?.(row);
          const reached =
            options.targetLoss !== undefined &&
            row.valLoss !== null &&
            row.valLoss <= options.targetLoss;
          if (rows.length >= options.rounds || reached) {
            engine.off('result', onResult);
            resolve();
          }
        })().catch(reject);
      };
      engine.on('result', onResult);
    });
    // Everyone is in: the real minimum takes effect and round 1 begins.
    await governance.setPolicy(policy);
    await finished;
    engine.off('status', onStatus);
    const roundsSeconds = (performance.now() - roundsStarted) / 1000;
    const backend = coordinator.backend.backend;
    const workers = pool.workers;
    await pool.close();
    pool = null;
    await coordinator.close();
    coordinator = null;

    let baseline: BaselinePoint[] = [];
    const baselineStarted = performance.now();
    if (options.baseline) {
      log('centralised baseline of the same compute…');
      const union = new Int32Array(data.reduce((n, d) => n + d.length, 0));
      let at = 0;
      for (const d of data) {
        union.set(d, at);
        at += d.length;
      }
      baseline = await runBaseline({
        manifest,
        tensors,
        tokens: union,
        stepsPerRound: rows.slice(0, options.baselineRounds ?? rows.length).map((r) => r.steps),
        batchSize: options.batchSize,
        learningRate: options.learningRate,
        seed: options.seed,
        evaluator,
        onRound: (p) =>
          log(`  baseline round ${p.round}: ${p.steps} steps, val loss ${p.valLoss.toFixed(4)}`),
      });
    }
    const baselineSeconds = (performance.now() - baselineStarted) / 1000;

    const { log: _log, onRound: _onRound, editShard: _editShard, ...recorded } = options;
    const jsonFile = path.join(out, 'simulation.json');
    const svgFile = path.join(out, 'val-loss.svg');
    const result: SimulationResult = {
      date: new Date().toISOString(),
      options: { ...recorded, out },
      backend,
      workers,
      model: { config: init.config, params: init.params, hash: init.hash },
      split,
      policy,
      initial: { valLoss: initial.loss, valBpc: initial.bitsPerChar },
      rounds: rows,
      baseline,
      seconds: {
        setup: setupSeconds,
        rounds: roundsSeconds,
        baseline: baselineSeconds,
        total: (performance.now() - started) / 1000,
      },
      files: { json: jsonFile, svg: svgFile },
    };
    await writeFile(svgFile, valLossChart(result));
    await writeFile(jsonFile, JSON.stringify(result, null, 2) + '\n');
    return result;
  } finally {
    await pool?.close();
    await coordinator?.close();
    governance?.destroy();
    await devnet?.stop();
  }
}

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Validation loss per round: the federated run (failed rounds keep the last model) and the baseline. */
export function valLossChart(result: SimulationResult): string {
  let last = result.initial.valLoss;
  const federated: [number, number][] = [[0, last]];
  for (const row of result.rounds) {
    if (row.valLoss !== null) last = row.valLoss;
    federated.push([row.round, last]);
  }
  const series = [
    {
      label: `${result.options.strategy} (${result.options.clients} clients, ${result.options.maxSteps} local steps)`,
      points: federated,
    },
  ];
  if (result.baseline.length > 0) {
    series.push({
      label: 'centralised, same compute',
      points: result.baseline.map((p) => [p.round, p.valLoss]),
    });
  }
  return lineChartSvg({
    title: 'Validation loss on the held-out tail of tinyshakespeare',
    xLabel: 'round',
    yLabel: 'validation loss (nats/token)',
    series,
    integerX: true,
  });
}
