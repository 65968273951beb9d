// Convergence on LEAF's non-IID Shakespeare split, after McMahan et al. 2017 ("Communication-
// Efficient Learning of Deep Networks from Decentralized Data", table 2/4): how many rounds FedAvg
// (several local steps per round) and FedSGD (one local step per round) need to reach a target
// validation loss, and the ratio. Both are full simulations through the real chain, coordinator
// and clients (lab/simulation/simulation.ts).
//
// The target is the centralised baseline's validation loss ×1.05, the baseline being the same
// initial model trained in one place on the union of the clients' data for the compute of the
// first `targetRounds` FedAvg rounds (the sum of the steps the clients took in them). The paper
// fixes a target accuracy the same way: a level the centralised model reaches, asked of both
// federated methods. Each run stops at the target or at its round cap; a run that does not get
// there reports null, and the ratio is then a lower bound ("> cap / fedavg").
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { runSimulation, SIMULATION_DEFAULTS } from '../lab/simulation/simulation.ts';

export interface ConvergenceResult {
  clients: number;
  localStepsFedAvg: number;
  /** Centralised optimiser steps behind the target. */
  baselineSteps: number;
  baselineLoss: number;
  targetLoss: number;
  initialLoss: number;
  fedavgRounds: number | null;
  fedavgCap: number;
  fedsgdRounds: number | null;
  fedsgdCap: number;
  /** fedsgdRounds / fedavgRounds; with a capped FedSGD run, the lower bound cap / fedavgRounds. */
  ratio: number | null;
  ratioIsLowerBound: boolean;
  fedavgLosses: (number | null)[];
  fedsgdLosses: (number | null)[];
  seconds: number;
}

interface Options {
  log: (line: string) => void;
  clients?: number;
  /** FedAvg local steps per round. */
  localSteps?: number;
  targetRounds?: number;
  fedavgCap?: number;
  fedsgdCap?: number;
  seed?: number;
}

export async function benchConvergence(options: Options): Promise<ConvergenceResult> {
  const { log } = options;
  const started = performance.now();
  const clients = options.clients ?? 10;
  const localSteps = options.localSteps ?? 10;
  const targetRounds = options.targetRounds ?? 1;
  const fedavgCap = options.fedavgCap ?? 20;
  const fedsgdCap = options.fedsgdCap ?? 150;
  const seed = options.seed ?? 1;
  const dir = await mkdtemp(path.join(tmpdir(), 'commons-convergence-'));
  const common = {
    ...SIMULATION_DEFAULTS,
    clients,
    seed,
    evalChars: 10_000,
    log: (line: string) => log(`    ${line}`),
  };
  try {
    log(`  FedAvg: ${clients} clients × ${localSteps} local steps, up to ${fedavgCap} rounds …`);
    const fedavg = await runSimulation({
      ...common,
      out: path.join(dir, 'fedavg'),
      rounds: fedavgCap,
      maxSteps: localSteps,
      baseline: true,
      baselineRounds: targetRounds,
      onRound: (row) =>
        log(`    fedavg round ${row.round}: val loss ${row.valLoss?.toFixed(4) ?? '—'}`),
    });
    const point = fedavg.baseline.at(-1)!;
    const targetLoss = point.valLoss * 1.05;
    const reached = (losses: (number | null)[]) => {
      const i = losses.findIndex((loss) => loss !== null && loss <= targetLoss);
      return i < 0 ? null : i + 1;
    };
    const fedavgLosses = fedavg.rounds.map((r) => r.valLoss);
    const fedavgRounds = reached(fedavgLosses);
    log(
      `  target: centralised ${point.steps} steps → ${point.valLoss.toFixed(4)}, ×1.05 = ${targetLoss.toFixed(4)}; FedAvg reached it in ${fedavgRounds ?? `> ${fedavgCap}`} rounds`,
    );

    log(`  FedSGD: ${clients} clients × 1 local step, up to ${fedsgdCap} rounds …`);
    const fedsgd = await runSimulation({
      ...common,
      out: path.join(dir, 'fedsgd'),
      rounds: fedsgdCap,
      maxSteps: 1,
      baseline: false,
      targetLoss,
      onRound: (row) => {
        if (row.round % 10 === 0) {
          log(`    fedsgd round ${row.round}: val loss ${row.valLoss?.toFixed(4) ?? '—'}`);
        }
      },
    });
    const fedsgdLosses = fedsgd.rounds.map((r) => r.valLoss);
    const fedsgdRounds = reached(fedsgdLosses);
    let ratio: number | null = null;
    if (fedavgRounds !== null) ratio = (fedsgdRounds ?? fedsgdCap) / fedavgRounds;
    return {
      clients,
      localStepsFedAvg: localSteps,
      baselineSteps: point.steps,
      baselineLoss: point.valLoss,
      targetLoss,
      initialLoss: fedavg.initial.valLoss,
      fedavgRounds,
      fedavgCap,
      fedsgdRounds,
      fedsgdCap,
      ratio,
      ratioIsLowerBound: fedsgdRounds === null,
      fedavgLosses,
      fedsgdLosses,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatConvergence(r: ConvergenceResult): string {
  const rounds = (n: number | null, cap: number) => (n === null ? `> ${cap}` : String(n));
  return [
    `target val loss ${r.targetLoss.toFixed(4)} (centralised ${r.baselineSteps} steps: ${r.baselineLoss.toFixed(4)} ×1.05; initial ${r.initialLoss.toFixed(4)})`,
    '',
    'method   local steps  rounds to target',
    '-------  -----------  ----------------',
    `FedAvg   ${String(r.localStepsFedAvg).padStart(11)}  ${rounds(r.fedavgRounds, r.fedavgCap).padStart(16)}`,
    `FedSGD   ${'1'.padStart(11)}  ${rounds(r.fedsgdRounds, r.fedsgdCap).padStart(16)}`,
    '',
    `FedSGD / FedAvg rounds: ${r.ratio === null ? 'n/a (FedAvg did not reach the target)' : `${r.ratioIsLowerBound ? '> ' : ''}${r.ratio.toFixed(1)}×`} (McMahan et al. 2017 report 95× on non-IID Shakespeare)`,
  ].join('\n');
}
