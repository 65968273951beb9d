// The whole-round cost of secure aggregation at scale: in one bench run, a plain round and a
// secure (SecAgg+) round with the same light clients and model, each from "configuring" to its
// published result on its own devnet and coordinator (runLightRound in capacity.ts). The secure
// round's time is split into its phases as the clients and the engine saw them.
//
// Target (issue): the secure round in ≤ 3× the plain one's time.
//
// Read the ratio with the machine in mind: the light clients run on the bench machine's cores
// next to the coordinator, so a round's wall time includes all their client-side work one after
// another — for SecAgg+ that is every client's key agreements, Shamir dealing and mask
// expansions (k PRG vectors each), which at home runs on each contributor's own machine in
// parallel. clientCpuSeconds and coordinatorCpuSeconds say how much of each there was.
import type { RoundState } from '@commons/shared/protocol';
import { runLightRound, type LightRound } from './capacity.ts';
import { textTable } from './table.ts';

export interface SecureRoundPhase {
  phase: string;
  /** Seconds after configuring at which the phase began. */
  fromSeconds: number;
  seconds: number;
}

export interface SecureRoundBench {
  clients: number;
  params: number;
  /** Both rounds, plain first. */
  rows: LightRound[];
  /** Configuring to published; null when the round did not publish. */
  plainSeconds: number | null;
  secureSeconds: number | null;
  /** secureSeconds / plainSeconds. */
  ratio: number | null;
  /**
   * The coordinator's CPU seconds in the secure round over the plain one's: the part of the
   * cost that does not move to contributors' machines outside a bench.
   */
  coordinatorCpuRatio: number;
  /** The secure round's time, phase by phase (they add up to secureSeconds). */
  securePhases: SecureRoundPhase[];
}

export interface SecureRoundOptions {
  log: (line: string) => void;
  clients?: number;
  processes?: number;
  /** Each round's deadline and the bench's wait for it (default 15 min). */
  timeLimitMs?: number;
}

export async function benchSecureRound(options: SecureRoundOptions): Promise<SecureRoundBench> {
  const { log } = options;
  const timeLimitMs = options.timeLimitMs ?? 900_000;
  const common = { log, timeLimitMs, clients: options.clients, processes: options.processes };
  log(' plain round:');
  const plain = await runLightRound({ ...common, secure: false });
  log(' secure round:');
  const secure = await runLightRound({
    ...common,
    secure: true,
    // The SecAgg+ stage deadline. Each contributor answers a stage with its own machine's
    // compute in a fraction of a second; here every light client's answer is computed on
    // the bench's few cores one after another, so a stage lasts the sum of all of them. Any
    // shorter deadline than the round's would drop clients the bench itself kept waiting.
    inviteTimeoutMs: timeLimitMs,
  });
  const seconds = (run: LightRound) => (run.outcome === 'published' ? run.seconds : null);
  const plainSeconds = seconds(plain);
  const secureSeconds = seconds(secure);
  return {
    clients: secure.clients,
    params: secure.params,
    rows: [plain, secure],
    plainSeconds,
    secureSeconds,
    ratio: plainSeconds && secureSeconds ? secureSeconds / plainSeconds : null,
    coordinatorCpuRatio: secure.coordinatorCpuSeconds / plain.coordinatorCpuSeconds,
    securePhases: phasesOf(secure),
  };
}

/**
 * A secure round's phases, each from one boundary to the next: the engine's states (configuring,
 * aggregating) and, within training, the first request of each SecAgg+ stage and the last
 * unmask answer as the light clients saw them. Server-side work between stages (closing one,
 * preparing the next) counts in the stage before; after the last unmask answer the server
 * reconstructs the self masks and removes them from the sum.
 */
export function phasesOf(run: LightRound): SecureRoundPhase[] {
  const stage = (name: string) => run.stages.find((s) => s.stage === name);
  const at = (state: RoundState) => run.states[state];
  const unmask = stage('secagg:unmask');
  const marks: [string, number | undefined][] = [
    ['invitations', 0],
    ['advertise keys', stage('secagg:setup')?.firstRequestSeconds],
    ['share keys', stage('secagg:share-keys')?.firstRequestSeconds],
    ['masked input', stage('secagg:masked-input')?.firstRequestSeconds],
    ['unmask', unmask?.firstRequestSeconds],
    ['unmasking (server)', unmask?.lastAnswerSeconds],
    ['evaluate + publish', at('aggregating')],
  ];
  const known = marks.filter((m): m is [string, number] => m[1] !== undefined);
  return known.map(([phase, from], i) => {
    const to = known[i + 1]?.[1] ?? run.seconds;
    return { phase, fromSeconds: from, seconds: to - from };
  });
}

export function formatSecureRound(bench: SecureRoundBench): string {
  const rounds = textTable(
    [
      'round',
      'clients',
      'k',
      'outcome',
      'accepted',
      'round s',
      'coord CPU s',
      'client CPU s',
      'MB in',
      'peak RSS MB',
      'gen RSS MB',
    ],
    bench.rows.map((r) => [
      r.secure ? 'secure' : 'plain',
      String(r.clients),
      r.secure ? String(r.numShares) : '-',
      r.outcome,
      String(r.accepted),
      r.seconds.toFixed(1),
      r.coordinatorCpuSeconds.toFixed(1),
      r.clientCpuSeconds.toFixed(1),
      (r.bytesIn / 1e6).toFixed(0),
      r.peakRssMb.toFixed(0),
      r.generatorPeakRssMb.toFixed(0),
    ]),
  );
  const ratio =
    (bench.ratio === null
      ? 'secure / plain round time: n/a'
      : `secure / plain round time: ${bench.ratio.toFixed(2)}×`) +
    `; coordinator CPU: ${bench.coordinatorCpuRatio.toFixed(2)}×`;
  const secure = bench.rows.find((r) => r.secure);
  const answered = (phase: string) => {
    const event = {
      'advertise keys': 'secagg:setup',
      'share keys': 'secagg:share-keys',
      'masked input': 'secagg:masked-input',
      unmask: 'secagg:unmask',
    }[phase];
    const seen = secure?.stages.find((s) => s.stage === event);
    return seen ? `${seen.answered}/${seen.refused}` : '';
  };
  const phases = textTable(
    ['secure round phase', 'from s', 'seconds', 'answered/refused'],
    bench.securePhases.map((p) => [
      p.phase,
      p.fromSeconds.toFixed(1),
      p.seconds.toFixed(1),
      answered(p.phase),
    ]),
  );
  return `${rounds}\n\n${ratio}\n\n${phases}`;
}
