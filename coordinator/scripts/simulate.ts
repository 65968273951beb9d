// `npm run simulate -- --clients 50 --rounds 10 [--strategy fedavg] [--seed N] [--out DIR]`:
// federated training on LEAF's non-IID Shakespeare split through the real chain, coordinator and
// clients (lab/simulation/simulation.ts), against a centralised baseline of the same compute.
// Prints a table per round; writes <out>/simulation.json and <out>/val-loss.svg.
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  runSimulation,
  SIMULATION_DEFAULTS,
  type RoundRow,
  type SimulationOptions,
} from '../lab/simulation/simulation.ts';

const USAGE = `usage: npm run simulate -- [options]

  --clients N        virtual contributors, each holding whole speaking roles (default ${SIMULATION_DEFAULTS.clients})
  --rounds N         federated rounds (default ${SIMULATION_DEFAULTS.rounds})
  --strategy NAME    fedavg, fedprox, fedadam, fedyogi, fedadagrad, fedmedian, ... (default fedavg)
  --seed N           role split, wallets, initial weights and sampling (default ${SIMULATION_DEFAULTS.seed})
  --out DIR          where the chain, coordinator data and results go (default .commons/simulation)
  --sample-rate R    fraction of clients invited per round (default ${SIMULATION_DEFAULTS.sampleRate})
  --workers N        client worker threads (default: CPU cores)
  --max-steps N      local optimiser steps per round; 1 is FedSGD (default ${SIMULATION_DEFAULTS.maxSteps})
  --batch-size N     local batch size (default ${SIMULATION_DEFAULTS.batchSize})
  --lr X             client (and baseline) learning rate (default ${SIMULATION_DEFAULTS.learningRate})
  --eval-chars N     held-out characters each candidate is scored on (default ${SIMULATION_DEFAULTS.evalChars})
  --encoding E       fp32, fp16 or int8 updates (default ${SIMULATION_DEFAULTS.encoding})
  --layers N --width N --context N    model shape (default ${SIMULATION_DEFAULTS.model.nLayer}, ${SIMULATION_DEFAULTS.model.nEmbd}, ${SIMULATION_DEFAULTS.model.blockSize})
  --noise SIGMA      DP noise multiplier σ in the policy: N(0, (σ·C)²) on the sum (default 0)
  --clip C           clip norm C of every update (default ${SIMULATION_DEFAULTS.clipNorm})
  --secure-aggregation   mask updates with SecAgg+ (the coordinator sees only their sum)
  --publish-margin B publish a candidate unless worse than its parent by more than B bits/char (default ${SIMULATION_DEFAULTS.publishMarginBpc})
  --no-baseline      skip the centralised baseline`;

function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      options: {
        clients: { type: 'string' },
        rounds: { type: 'string' },
        strategy: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        'sample-rate': { type: 'string' },
        workers: { type: 'string' },
        'max-steps': { type: 'string' },
        'batch-size': { type: 'string' },
        lr: { type: 'string' },
        'eval-chars': { type: 'string' },
        encoding: { type: 'string' },
        layers: { type: 'string' },
        width: { type: 'string' },
        context: { type: 'string' },
        'no-baseline': { type: 'boolean' },
        noise: { type: 'string' },
        clip: { type: 'string' },
        'secure-aggregation': { type: 'boolean' },
        'publish-margin': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return Promise.resolve();
  }
  const d = SIMULATION_DEFAULTS;
  const encoding = values.encoding ?? d.encoding;
  if (encoding !== 'fp32' && encoding !== 'fp16' && encoding !== 'int8') {
    console.error(`--encoding must be fp32, fp16 or int8\n\n${USAGE}`);
    process.exit(2);
  }
  const options: SimulationOptions = {
    ...d,
    clients: whole(values.clients, '--clients') ?? d.clients,
    rounds: whole(values.rounds, '--rounds') ?? d.rounds,
    strategy: values.strategy ?? d.strategy,
    seed: whole(values.seed, '--seed') ?? d.seed,
    out: path.resolve(values.out ?? '.commons/simulation'),
    sampleRate: real(values['sample-rate'], '--sample-rate') ?? d.sampleRate,
    maxSteps: whole(values['max-steps'], '--max-steps') ?? d.maxSteps,
    batchSize: whole(values['batch-size'], '--batch-size') ?? d.batchSize,
    learningRate: real(values.lr, '--lr') ?? d.learningRate,
    evalChars: whole(values['eval-chars'], '--eval-chars') ?? d.evalChars,
    encoding,
    model: {
      ...d.model,
      nLayer: whole(values.layers, '--layers') ?? d.model.nLayer,
      nEmbd: whole(values.width, '--width') ?? d.model.nEmbd,
      blockSize: whole(values.context, '--context') ?? d.model.blockSize,
    },
    baseline: !values['no-baseline'],
    noiseMultiplier: real(values.noise, '--noise') ?? 0,
    clipNorm: real(values.clip, '--clip') ?? d.clipNorm,
    secureAggregation: values['secure-aggregation'] ?? false,
    publishMarginBpc: real(values['publish-margin'], '--publish-margin') ?? d.publishMarginBpc,
    log: (line) => console.log(line),
  };
  const workers = whole(values.workers, '--workers');
  if (workers !== undefined) options.workers = workers;
  if (options.sampleRate <= 0 || options.sampleRate > 1) fail('--sample-rate must be in (0, 1]');

  console.log(HEADER);
  options.onRound = (row) => console.log(formatRow(row));
  return runSimulation(options).then((result) => {
    console.log('');
    console.log(`round 0 (initial model): val loss ${result.initial.valLoss.toFixed(4)}`);
    if (result.baseline.length > 0) {
      console.log('\nround  fed val loss  baseline val loss  baseline steps');
      let fed = result.initial.valLoss;
      for (const point of result.baseline) {
        const row = result.rounds[point.round - 1];
        if (row?.valLoss != null) fed = row.valLoss;
        console.log(
          `${String(point.round).padStart(5)}  ${fed.toFixed(4).padStart(12)}  ${point.valLoss.toFixed(4).padStart(17)}  ${String(point.steps).padStart(14)}`,
        );
      }
    }
    const s = result.seconds;
    console.log(
      `\n${result.options.clients} clients on ${result.workers} threads (${result.backend}); setup ${s.setup.toFixed(0)} s, rounds ${s.rounds.toFixed(0)} s, baseline ${s.baseline.toFixed(0)} s`,
    );
    console.log(`wrote ${result.files.json}`);
    if (result.files.svg) console.log(`wrote ${result.files.svg}`);
  });
}

const HEADER = `round  clients  val loss  bits/char  bytes in     seconds  ε         outcome
-----  -------  --------  ---------  -----------  -------  --------  -------`;

function formatRow(row: RoundRow): string {
  return [
    String(row.round).padStart(5),
    String(row.clients).padStart(7),
    (row.valLoss?.toFixed(4) ?? '—').padStart(8),
    (row.valBpc?.toFixed(4) ?? '—').padStart(9),
    row.bytesIn.toLocaleString('en').padStart(11),
    row.seconds.toFixed(1).padStart(7),
    (row.epsilon === null
      ? row.outcome === 'published'
        ? '∞'
        : '—'
      : row.epsilon.toFixed(3)
    ).padStart(8),
    row.outcome === 'published' ? 'published' : `failed: ${row.reason ?? ''}`,
  ].join('  ');
}

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function whole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) fail(`${flag} must be a whole number, got "${value}"`);
  return Number(value);
}

function real(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) fail(`${flag} must be a number, got "${value}"`);
  return n;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
