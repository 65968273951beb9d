// Capacity of one coordinator process on loopback: how many signed-in contributors it holds, and
// how long a 1,000-client round of 1M-parameter int8 updates takes from invitation to a
// published candidate. The coordinator runs in this process (the real startCoordinator against a
// real Hardhat devnet); the contributors are light clients in forked load-generator processes
// (load-generator.ts), so that client-side work does not share this event loop. Every load loop
// is bounded in count and in time and targets 127.0.0.1 only.
//
// Targets (issue 4): ≥ 10,000 connected; the 1,000-client round in ≤ 60 s.
import { FULL_DELTA } from '@commons/chain';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultGenesisUri, startDevnet, type Devnet } from '@commons/contracts';
import type { SecAggEvent } from '@commons/shared/contributor';
import type { ModelConfig } from '@commons/shared/engine';
import type { RoundResult, RoundState } from '@commons/shared/protocol';
import { startCoordinator, type Coordinator } from '../src/coordinator.ts';
import { ONE_MILLION_MODEL, writeInitialModel } from '../lab/simulation/init-model.ts';
import type { GeneratorInput, GeneratorMessage, GeneratorRequest } from './load-generator.ts';
import type { StagesSeen } from './secure-light-client.ts';
import { textTable } from './table.ts';

const GENERATOR = fileURLToPath(new URL('./load-generator.ts', import.meta.url));

export interface ConnectionsRow {
  target: number;
  /** Signed-in contributors the coordinator reported holding at once. */
  connected: number;
  failed: number;
  /** From the first connection attempt to the last sign-in. */
  seconds: number;
  /** Peak RSS of the process hosting the coordinator. */
  peakRssMb: number;
}

export interface RoundRow {
  clients: number;
  params: number;
  outcome: string;
  accepted: number;
  /** From the round being configured to its published result (the target's measure). */
  seconds: number;
  /** From the first invitation a client saw to the last upload acknowledged. */
  uploadSeconds: number;
  bytesIn: number;
  peakRssMb: number;
}

interface Options {
  log: (line: string) => void;
}

/** What the generators report of themselves when asked (GeneratorRequest). */
interface GeneratorUsage {
  /** CPU milliseconds (user + system) of all generator processes so far. */
  cpuMs: number;
  /** The largest peak RSS of one generator process. */
  peakRssMb: number;
  numShares: number;
  /** Each SecAgg+ stage as all light clients together saw it (Unix ms). */
  stages: StagesSeen;
}

interface Generators {
  children: ChildProcess[];
  /** Resolves when every generator has reported its sign-ins (or the time limit passes). */
  signedIn: Promise<{ count: number; failed: number; seconds: number; cpuMs: number }>;
  uploads(): { count: number; failed: number; firstInviteMs: number; lastAckMs: number };
  usage(): Promise<GeneratorUsage>;
  stop(): void;
}

function mergeStages(all: StagesSeen[]): StagesSeen {
  const merged: StagesSeen = {};
  for (const stages of all) {
    for (const [event, seen] of Object.entries(stages) as [
      SecAggEvent,
      StagesSeen[SecAggEvent],
    ][]) {
      if (!seen) continue;
      const into = merged[event];
      merged[event] = into
        ? {
            firstRequestMs: Math.min(into.firstRequestMs, seen.firstRequestMs),
            lastAnswerMs: Math.max(into.lastAnswerMs, seen.lastAnswerMs),
            answered: into.answered + seen.answered,
            refused: into.refused + seen.refused,
          }
        : { ...seen };
    }
  }
  return merged;
}

export function startGenerators(
  base: Omit<GeneratorInput, 'from' | 'count'>,
  total: number,
  processes: number,
  timeLimitMs: number,
  log: (line: string) => void,
): Generators {
  const children: ChildProcess[] = [];
  const signed: { count: number; failed: number; seconds: number; cpuMs: number }[] = [];
  const uploads = new Map<number, Extract<GeneratorMessage, { type: 'uploaded' }>>();
  const usages = new Map<
    ChildProcess,
    (usage: Extract<GeneratorMessage, { type: 'usage' }>) => void
  >();
  let errors = 0;
  const signedIn = new Promise<{ count: number; failed: number; seconds: number; cpuMs: number }>(
    (resolve) => {
      const finish = () => {
        clearTimeout(timer);
        resolve({
          count: signed.reduce((n, s) => n + s.count, 0),
          failed: signed.reduce((n, s) => n + s.failed, 0),
          seconds: Math.max(0, ...signed.map((s) => s.seconds)),
          cpuMs: signed.reduce((n, s) => n + s.cpuMs, 0),
        });
      };
      const timer = setTimeout(() => {
        log(`  sign-in time limit (${timeLimitMs / 1000} s) reached`);
        finish();
      }, timeLimitMs);
      const per = Math.ceil(total / processes);
      for (let p = 0; p < processes; p++) {
        const from = p * per;
        const count = Math.min(per, total - from);
        if (count <= 0) break;
        const input: GeneratorInput = { ...base, from, count };
        const child = fork(GENERATOR, [JSON.stringify(input)], {
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        });
        children.push(child);
        child.on('message', (message: GeneratorMessage) => {
          if (message.type === 'signedIn') {
            signed.push(message);
            if (signed.length === children.length) finish();
          } else if (message.type === 'uploaded') {
            uploads.set(p, message);
          } else if (message.type === 'usage') {
            usages.get(child)?.(message);
          } else if (++errors <= 5) {
            log(`  client error: ${message.message}`);
          }
        });
      }
    },
  );
  return {
    children,
    signedIn,
    uploads: () => {
      const all = [...uploads.values()];
      return {
        count: all.reduce((n, u) => n + u.count, 0),
        failed: all.reduce((n, u) => n + u.failed, 0),
        firstInviteMs: Math.min(...all.map((u) => u.firstInviteMs || Infinity)),
        lastAckMs: Math.max(0, ...all.map((u) => u.lastAckMs)),
      };
    },
    usage: async () => {
      const all = await Promise.all(
        children.map(
          (child) =>
            new Promise<Extract<GeneratorMessage, { type: 'usage' }>>((resolve, reject) => {
              const timer = setTimeout(
                () => reject(new Error('a generator did not report')),
                30_000,
              );
              usages.set(child, (usage) => {
                clearTimeout(timer);
                usages.delete(child);
                resolve(usage);
              });
              child.send({ type: 'usage' } satisfies GeneratorRequest);
            }),
        ),
      );
      return {
        cpuMs: all.reduce((n, u) => n + u.cpuMs, 0),
        peakRssMb: Math.max(0, ...all.map((u) => u.peakRssMb)),
        numShares: Math.max(0, ...all.map((u) => u.numShares)),
        stages: mergeStages(all.map((u) => u.stages)),
      };
    },
    stop: () => {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}

async function clientsHeld(url: string): Promise<number> {
  const response = await fetch(`${url}/healthz`);
  const body = (await response.json()) as { clients: number };
  return body.clients;
}

/** Peak resident memory of this process so far, in MB. */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Light clients sign in and stay connected; no round starts (the minimum is out of reach). */
export async function benchConnections(
  options: Options & { clients?: number; processes?: number; timeLimitMs?: number },
): Promise<ConnectionsRow[]> {
  const { log } = options;
  const target = options.clients ?? 10_000;
  const dir = await mkdtemp(path.join(tmpdir(), 'commons-capacity-'));
  let devnet: Devnet | null = null;
  let coordinator: Coordinator | null = null;
  let generators: Generators | null = null;
  try {
    devnet = await startDevnet(path.join(dir, 'chain'), {
      minClients: 100_000,
      maxClients: 100_000,
      adapter: FULL_DELTA,
    });
    coordinator = await startCoordinator({
      port: 0,
      dataDir: path.join(dir, 'coordinator'),
      rpcUrl: devnet.rpcUrl,
      addressesFile: devnet.addressesFile,
      privateKey: devnet.keys[0]!,
      logLevel: 'warn',
    });
    log(`  ${target.toLocaleString('en')} light clients signing in to ${coordinator.url} …`);
    generators = startGenerators(
      { url: coordinator.url, chainId: devnet.addresses.chainId, seed: 1, concurrency: 64 },
      target,
      options.processes ?? 4,
      options.timeLimitMs ?? 300_000,
      log,
    );
    const signed = await generators.signedIn;
    const connected = await clientsHeld(coordinator.url);
    return [
      {
        target,
        connected,
        failed: target - signed.count,
        seconds: signed.seconds,
        peakRssMb: peakRssMb(),
      },
    ];
  } finally {
    generators?.stop();
    await coordinator?.close();
    await devnet?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** One round with `clients` light contributors uploading int8 updates of a ≈1M-param model. */
export async function benchRound(
  options: Options & { clients?: number; processes?: number; timeLimitMs?: number },
): Promise<RoundRow[]> {
  const run = await runLightRound({ ...options, secure: false });
  return [roundRow(run)];
}

/** What one light-client round measured (the plain or the secure one). */
export interface LightRound extends RoundRow {
  secure: boolean;
  /** CPU seconds from configuring to the result: the process hosting the coordinator. */
  coordinatorCpuSeconds: number;
  /** CPU seconds of every load generator over the same span: the light clients' own work. */
  clientCpuSeconds: number;
  /** The largest peak RSS of one load-generator process. */
  generatorPeakRssMb: number;
  /** Seconds after configuring at which the round first reached each state. */
  states: Partial<Record<RoundState, number>>;
  /** Secure rounds: the neighbourhood size the setup requests announced (0: plain round). */
  numShares: number;
  /**
   * Secure rounds: each SecAgg+ stage as the light clients saw it, in seconds after
   * configuring: its first request received and its last answer sent.
   */
  stages: {
    stage: SecAggEvent;
    firstRequestSeconds: number;
    lastAnswerSeconds: number;
    answered: number;
    refused: number;
  }[];
}

export function roundRow(run: LightRound): RoundRow {
  const { clients, params, outcome, accepted, seconds, uploadSeconds, bytesIn, peakRssMb } = run;
  return { clients, params, outcome, accepted, seconds, uploadSeconds, bytesIn, peakRssMb };
}

export interface LightRoundOptions extends Options {
  secure: boolean;
  clients?: number;
  /** Load-generator processes the light clients are spread over. */
  processes?: number;
  /** The round's deadline and the bench's wait for it. */
  timeLimitMs?: number;
  /** The coordinator's inviteTimeoutMs, which is also its SecAgg+ stage deadline. */
  inviteTimeoutMs?: number;
  /** The model's shape (≈1M parameters unless a test asks for a tiny one). */
  model?: Omit<ModelConfig, 'vocabSize'>;
  /** Wallet seed of the light clients. */
  seed?: number;
}

/**
 * One round from configuring to its published result, on a fresh devnet and coordinator whose
 * policy differs between the plain and the secure round only in secureAggregation: FedAvg,
 * every signed-in client sampled, no DP noise, clip norm 1. The light clients' updates are
 * built before they sign in (int8 frames for a plain round, fp32 for a secure one, which masks
 * them), so the training a contributor does at home is not in the measured round; their
 * uploading, signing and SecAgg+ work is.
 */
export async function runLightRound(options: LightRoundOptions): Promise<LightRound> {
  const { log, secure } = options;
  const clients = options.clients ?? 1000;
  const timeLimitMs = options.timeLimitMs ?? 600_000;
  const dir = await mkdtemp(path.join(tmpdir(), 'commons-round-'));
  let devnet: Devnet | null = null;
  let coordinator: Coordinator | null = null;
  let generators: Generators | null = null;
  try {
    const init = await writeInitialModel(
      path.join(dir, 'init'),
      options.model ?? ONE_MILLION_MODEL,
      1,
    );
    devnet = await startDevnet(
      path.join(dir, 'chain'),
      {
        minClients: clients,
        maxClients: clients,
        sampleRate: 1,
        clipNorm: 1,
        noiseMultiplier: 0,
        secureAggregation: secure,
        adapter: FULL_DELTA,
        aggregationRule: 'fedavg',
        roundDeadlineSeconds: Math.ceil(timeLimitMs / 1000),
      },
      { genesis: { hash: init.hash, uri: defaultGenesisUri(init.hash) } },
    );
    coordinator = await startCoordinator({
      port: 0,
      dataDir: path.join(dir, 'coordinator'),
      rpcUrl: devnet.rpcUrl,
      addressesFile: devnet.addressesFile,
      privateKey: devnet.keys[0]!,
      seedModels: [init.dir],
      encoding: 'int8',
      evalChars: 2_000,
      maxRounds: 1,
      roundIntervalMs: 0,
      // A light client answers at once; the default gives real clients time to wake up.
      inviteTimeoutMs: options.inviteTimeoutMs ?? 60_000,
      logLevel: 'warn',
    });
    const { engine, metrics } = coordinator;
    let configuredMs = 0;
    let configuredAt = 0;
    let coordinatorCpu = process.cpuUsage();
    const states: Partial<Record<RoundState, number>> = {};
    engine.on('status', (status) => {
      if (status.state === 'configuring' && configuredMs === 0) {
        configuredMs = performance.now();
        configuredAt = Date.now();
        coordinatorCpu = process.cpuUsage();
      }
      if (configuredMs === 0 || states[status.state] !== undefined) return;
      const at = (performance.now() - configuredMs) / 1000;
      states[status.state] = at;
      log(`  ${status.state} at ${at.toFixed(1)} s`);
    });
    const result = new Promise<RoundResult>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no round result within ${timeLimitMs / 1000} s`)),
        timeLimitMs,
      );
      engine.once('result', (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    log(
      `  ${clients} light clients, ${init.params.toLocaleString('en')}-parameter model, ` +
        (secure ? 'secure aggregation (SecAgg+) …' : 'int8 updates …'),
    );
    generators = startGenerators(
      {
        url: coordinator.url,
        chainId: devnet.addresses.chainId,
        seed: options.seed ?? 2,
        concurrency: 32,
        prebuild: { modelHash: init.hash, encoding: secure ? 'fp32' : 'int8', clipNorm: 1 },
      },
      clients,
      options.processes ?? 4,
      timeLimitMs,
      log,
    );
    const signed = await generators.signedIn;
    log(`  ${signed.count} signed in after ${signed.seconds.toFixed(1)} s; round running …`);
    const outcome = await result;
    const seconds = (performance.now() - configuredMs) / 1000;
    const cpu = process.cpuUsage(coordinatorCpu);
    const uploads = generators.uploads();
    const usage = await generators.usage();
    const since = (ms: number) => (ms - configuredAt) / 1000;
    const order: SecAggEvent[] = [
      'secagg:setup',
      'secagg:share-keys',
      'secagg:masked-input',
      'secagg:unmask',
    ];
    return {
      clients,
      params: init.params,
      outcome: outcome.outcome === 'published' ? 'published' : `failed: ${outcome.reason ?? ''}`,
      accepted: outcome.accepted,
      seconds,
      uploadSeconds: (uploads.lastAckMs - uploads.firstInviteMs) / 1000,
      // Update bytes received, plain chunks or masked ones (the coordinator's own counter).
      bytesIn: (await metrics.uploadBytes.get()).values.reduce((n, v) => n + v.value, 0),
      peakRssMb: peakRssMb(),
      secure,
      coordinatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
      clientCpuSeconds: (usage.cpuMs - signed.cpuMs) / 1000,
      generatorPeakRssMb: usage.peakRssMb,
      states,
      numShares: usage.numShares,
      stages: order.flatMap((stage) => {
        const seen = usage.stages[stage];
        if (!seen) return [];
        return [
          {
            stage,
            firstRequestSeconds: since(seen.firstRequestMs),
            lastAnswerSeconds: since(seen.lastAnswerMs),
            answered: seen.answered,
            refused: seen.refused,
          },
        ];
      }),
    };
  } finally {
    generators?.stop();
    await coordinator?.close();
    await devnet?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatConnections(rows: ConnectionsRow[]): string {
  return textTable(
    ['target', 'connected', 'failed', 'sign-in s', 'peak RSS MB'],
    rows.map((r) => [
      String(r.target),
      String(r.connected),
      String(r.failed),
      r.seconds.toFixed(1),
      r.peakRssMb.toFixed(0),
    ]),
  );
}

export function formatRound(rows: RoundRow[]): string {
  return textTable(
    ['clients', 'params', 'outcome', 'accepted', 'round s', 'upload s', 'MB in', 'peak RSS MB'],
    rows.map((r) => [
      String(r.clients),
      r.params.toLocaleString('en'),
      r.outcome,
      String(r.accepted),
      r.seconds.toFixed(1),
      r.uploadSeconds.toFixed(1),
      (r.bytesIn / 1e6).toFixed(0),
      r.peakRssMb.toFixed(0),
    ]),
  );
}
