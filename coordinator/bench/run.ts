/**
 * `npm run bench -w coordinator [-- --json] [-- --only a,b] [-- --round-clients N]
 * [-- --round-processes P] [-- --scale-out-clients N]`: the coordinator's benchmarks, one section each (aggregation,
 * connections, round, secureRound, convergence, secagg, canary, adapters). --round-clients and
 * --round-processes size the light-client rounds (round, secureRound; default 1,000 clients
 * in 4 load-generator processes), for a small run.
 * Prints each section's table (or, with --json, one JSON object keyed by section on stdout,
 * progress on stderr) and always writes that object to bench/results/latest.json.
 *
 * A section is an async function returning its rows plus a formatter for the table: add one
 * to SECTIONS and it is run, printed and saved with the others.
 *
 * Targets: aggregation ≥ 1.0× numpy's np.average throughput, with peak RSS flat in N; ≥ 10,000
 * connected clients; a 1,000-client round of 1M-parameter int8 updates in ≤ 60 s, and the same
 * round with secure aggregation in ≤ 3× the plain one's time. The headline figures are also
 * written at the top level of the JSON: connectedClients, round1000Seconds,
 * secureRound1000Seconds (with plainRound1000Seconds of the same run and secureRoundRatio),
 * fedavgRounds, fedsgdRounds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchAdapters, formatAdapters } from './adapters.ts';
import { benchAggregation, formatAggregation } from './aggregation.ts';
import { benchConnections, benchRound, formatConnections, formatRound } from './capacity.ts';
import { benchConvergence, formatConvergence } from './convergence.ts';
import { benchSecureRound, formatSecureRound } from './secure-capacity.ts';
import { benchCanary, formatCanary } from './canary.ts';
import { LOG_STREAM_ENV } from '../src/observability/logger.ts';
import {
  benchScaleOutConnections,
  benchScaleOutRound,
  formatScaleOutConnections,
  formatScaleOutRound,
  type ScaleOutRoundRow,
} from './scale-out.ts';
import { textTable } from './table.ts';
import { benchSecAgg, type SecAggBenchRow } from '@commons/shared/bench';

const here = dirname(fileURLToPath(import.meta.url));
const json = process.argv.includes('--json');
// With --json stdout is the JSON alone: every coordinator this bench starts logs to stderr.
if (json) process.env[LOG_STREAM_ENV] = 'stderr';
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? new Set((process.argv[onlyAt + 1] ?? '').split(',')) : null;
const log = (line: string) => {
  if (json) process.stderr.write(line + '\n');
  else console.log(line);
};
/** The value after `--name` as a positive integer, or undefined when the flag is absent. */
function intFlag(name: string): number | undefined {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a positive integer`);
  return value;
}
const roundSize = {
  clients: intFlag('--round-clients'),
  processes: intFlag('--round-processes'),
};
/**
 * The scale-out round's clients (default 3,000). One node on this 2-core machine cannot hold
 * 3,000 uploading clients, so the same-work comparison needs a size it survives (e.g. 1,500).
 */
const scaleOutClients = intFlag('--scale-out-clients') ?? 3000;

interface Section<Rows> {
  title: string;
  run: () => Promise<Rows>;
  format: (rows: Rows) => string;
}

/** Streaming FedAvg fold vs np.average, N = 10, 100, 1000 updates of 1M parameters. */
const aggregation: Section<Awaited<ReturnType<typeof benchAggregation>>> = {
  title: 'Aggregation: streaming weighted mean of 1M-parameter updates vs numpy np.average',
  run: () => benchAggregation({ log }),
  format: formatAggregation,
};

/** Light clients held by one coordinator process. */
const connections: Section<Awaited<ReturnType<typeof benchConnections>>> = {
  title: 'Connection capacity: signed-in light clients held by one coordinator on loopback',
  run: () => benchConnections({ log }),
  format: formatConnections,
};

/** A 1,000-client round of ≈1M-parameter int8 updates, invitation to published candidate. */
const round: Section<Awaited<ReturnType<typeof benchRound>>> = {
  title: 'Round capacity: 1,000 light clients, 1M-parameter int8 updates',
  run: () => benchRound({ log, ...roundSize }),
  format: formatRound,
};

/** The same round plain and with secure aggregation (SecAgg+), in one run, end to end. */
const secureRound: Section<Awaited<ReturnType<typeof benchSecureRound>>> = {
  title: 'Secure round: 1,000 light clients, 1M-parameter model, SecAgg+ vs plain',
  run: () => benchSecureRound({ log, ...roundSize }),
  format: formatSecureRound,
};

/** Rounds to the centralised target, FedAvg vs FedSGD (McMahan et al. 2017). */
const convergence: Section<Awaited<ReturnType<typeof benchConvergence>>> = {
  title: 'Convergence on non-IID Shakespeare: rounds to the centralised target, FedAvg vs FedSGD',
  run: () => benchConvergence({ log }),
  format: formatConvergence,
};

/** SecAgg+ compute and bytes next to plain aggregation of the same updates (issue 5). */
const secagg: Section<SecAggBenchRow[]> = {
  title: 'Secure aggregation (SecAgg+): 1M-parameter updates, 10% dropout, vs plain summation',
  run: () => benchSecAgg({ clients: [100, 500, 1000], params: 1_000_000 }),
  format: (rows) =>
    textTable(
      ['clients', 'k', 'client s', 'server s', 'secagg s', 'plain s', 'overhead', 'KiB/client'],
      rows.map((r) => [
        String(r.clients),
        String(r.numShares),
        r.clientSeconds.toFixed(2),
        r.serverSeconds.toFixed(2),
        r.secaggSeconds.toFixed(2),
        r.plainSeconds.toFixed(2),
        `${r.overhead.toFixed(1)}×`,
        (r.bytesPerClient / 1024).toFixed(0),
      ]),
    ),
};

/** Canary exposure without and with the policy's DP noise (Carlini et al. 2019). */
const canary: Section<Awaited<ReturnType<typeof benchCanary>>> = {
  title: 'Canary exposure (The Secret Sharer): planted secrets, without and with DP',
  run: () => benchCanary({ log }),
  format: formatCanary,
};

/** The same on adapter rounds: FFA-LoRA on the genesis model (issue 13). */
const canaryAdapters: Section<Awaited<ReturnType<typeof benchCanary>>> = {
  title: 'Canary exposure on adapter rounds (FFA-LoRA on genesis), without and with DP',
  run: () => benchCanary({ log, adapterRounds: true, canaries: 8, candidates: 1000, rounds: 4 }),
  format: formatCanary,
};

/** Federated LoRA: bytes per contributor at SmolLM2-135M's shape, rounds per rule (issue 13). */
const adapters: Section<Awaited<ReturnType<typeof benchAdapters>>> = {
  title: 'Federated LoRA: bytes per contributor per round, and rounds to a target per rule',
  run: () => benchAdapters({ log }),
  format: formatAdapters,
};

/** Clients held by 1, 2 and 3 scale-out nodes sharing Redis (issue 15). */
const scaleOutConnections: Section<Awaited<ReturnType<typeof benchScaleOutConnections>>> = {
  title: 'Scale-out: signed-in light clients held by 1, 2 and 3 nodes sharing Redis',
  run: () => benchScaleOutConnections({ log }),
  format: formatScaleOutConnections,
};

/** A 3,000-client (--scale-out-clients) round across 3 nodes, next to the same work on one node (issue 15). */
const scaleOut: Section<ScaleOutRoundRow & { cohorts: unknown[] }> = {
  title: `Scale-out round: ${scaleOutClients.toLocaleString('en')} light clients across 3 nodes vs the same work on one node`,
  run: async () => {
    const { partials, ...row } = await benchScaleOutRound({ log, clients: scaleOutClients });
    // Per node: its cohort's size and stage times (not its 1,000 contributors' addresses).
    const cohorts = partials.map((p) => ({ node: p.nodeId, count: p.count, stageMs: p.stageMs }));
    return { ...row, cohorts };
  },
  format: formatScaleOutRound,
};

const SECTIONS = {
  aggregation,
  connections,
  round,
  secureRound,
  convergence,
  secagg,
  canary,
  canaryAdapters,
  adapters,
  scaleOutConnections,
  scaleOut,
} as const;

// Other work on the machine skews every figure: record how busy it was.
const results: Record<string, unknown> = {
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    loadAverageBefore: loadavg()[0],
  },
};
for (const [key, section] of Object.entries(SECTIONS) as [string, Section<unknown>][]) {
  if (only && !only.has(key)) continue;
  log(`${section.title} …`);
  const rows = await section.run();
  results[key] = rows;
  log('');
  log(section.format(rows));
  log('');
}
(results.machine as Record<string, unknown>).loadAverageAfter = loadavg()[0];
// The headline figures the issue asks for, at the top level.
const held = results.connections as { connected: number }[] | undefined;
if (held) results.connectedClients = held[0]?.connected ?? null;
const rounds = results.round as { clients: number; seconds: number; outcome: string }[] | undefined;
if (rounds && rounds[0]?.clients === 1000)
  results.round1000Seconds = rounds[0].outcome === 'published' ? rounds[0].seconds : null;
const secured = results.secureRound as Awaited<ReturnType<typeof benchSecureRound>> | undefined;
if (secured && secured.clients === 1000) {
  results.secureRound1000Seconds = secured.secureSeconds;
  results.plainRound1000Seconds = secured.plainSeconds;
  results.secureRoundRatio = secured.ratio;
}
const converged = results.convergence as
  { fedavgRounds: number | null; fedsgdRounds: number | null } | undefined;
if (converged) {
  results.fedavgRounds = converged.fedavgRounds;
  results.fedsgdRounds = converged.fedsgdRounds;
}
const lora = results.adapters as Awaited<ReturnType<typeof benchAdapters>> | undefined;
if (lora) {
  results.adapterBytesPerRound = lora.adapterBytesPerRound;
  results.fullDeltaBytesPerRound = lora.fullDeltaBytesPerRound;
  results.loraConvergence = lora.convergence.rows.map((r) => ({
    method: r.method,
    rounds: r.rounds,
  }));
}
const exposure = results.canary as
  { canaryExposureNoDp: number; canaryExposureDp: number } | undefined;
if (exposure) {
  results.canaryExposureNoDp = exposure.canaryExposureNoDp;
  results.canaryExposureDp = exposure.canaryExposureDp;
}
const adapterExposure = results.canaryAdapters as
  { canaryExposureNoDp: number; canaryExposureDp: number } | undefined;
if (adapterExposure) {
  results.adapterCanaryExposureNoDp = adapterExposure.canaryExposureNoDp;
  results.adapterCanaryExposureDp = adapterExposure.canaryExposureDp;
}

const spread = results.scaleOut as ScaleOutRoundRow | undefined;
if (spread) {
  results.scaleOut = {
    ...spread,
    // The headline the issue names, next to the per-stage detail.
    nodes: spread.nodes,
    clients: spread.clients,
    roundSeconds: spread.roundSeconds,
    singleNodeSameWorkSeconds: spread.singleNodeSameWorkSeconds,
  };
}

const out = resolve(here, 'results', 'latest.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
if (json) process.stdout.write(JSON.stringify(results) + '\n');
else log(`written to ${out}`);
// Load generators and devnets are gone; tfjs and pino may hold handles open.
process.exit(0);
