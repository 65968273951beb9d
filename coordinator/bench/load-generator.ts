// A load-generator process for the capacity benches: it holds `count` light contributors, each a
// real Socket.IO connection that signs in with SIWE exactly as a FederatedClient does and, when
// invited, uploads a random update of the round's exact shape (no training: the point is the
// coordinator's load, not the clients'). In a secure round a light client takes part in the
// SecAgg+ stages with the real participant instead (secure-light-client.ts) and masks that
// random update. Run by capacity.ts with child_process.fork, several at once so that
// client-side work is spread over the cores; it reports over the IPC channel.
// Loopback only: the URL it is given must be http://127.0.0.1:<port>.
import { randomFillSync } from 'node:crypto';
import { keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { io, type Socket } from 'socket.io-client';
import {
  type Manifest,
  type NamedTensors,
  encodeTensors,
  sha256Hex,
  type UpdateEncoding,
} from '@commons/shared/engine';
import {
  type ClientToServerEvents,
  type ServerToClientEvents,
  PROTOCOL_VERSION,
  type Challenge,
  type RoundTask,
  signChallenge,
} from '@commons/shared/protocol';
import {
  describeUpload,
  type LocalUpdate,
  sendUpload,
  signUpload,
  socketUploadChannel,
} from '@commons/shared/contributor';
import { SecureLightClient, StageLog, type StagesSeen } from './secure-light-client.ts';

export interface GeneratorInput {
  url: string;
  chainId: number;
  seed: number;
  /** Index of this process's first client (wallets are derived from seed and index). */
  from: number;
  count: number;
  /** Handshakes in flight at once: a stampede of 10,000 would only time out. */
  concurrency: number;
  /**
   * Build every client's update before signing in, for this model and round settings: a light
   * client stands for a contributor whose training happened on its own machine, so its compute
   * must not land in the measured round on this one. A secure round masks the update itself,
   * as fp32 (what FederatedClient hands its SecAgg+ participant): prebuild 'fp32' for one.
   */
  prebuild?: { modelHash: string; encoding: UpdateEncoding; clipNorm: number };
}

export type GeneratorMessage =
  | { type: 'signedIn'; count: number; failed: number; seconds: number; cpuMs: number }
  /** Plain rounds: uploads acknowledged; secure rounds: contributions in the sum (unmask answered). */
  | { type: 'uploaded'; count: number; failed: number; firstInviteMs: number; lastAckMs: number }
  | { type: 'usage'; cpuMs: number; peakRssMb: number; numShares: number; stages: StagesSeen }
  | { type: 'error'; message: string };

/** What the bench asks of a generator over IPC: its CPU time, memory and stage record now. */
export type GeneratorRequest = { type: 'usage' };

/** The examples a light client claims: the FedAvg weight of its update, plain or masked. */
const LIGHT_EXAMPLES = 100;

type LightSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const input = JSON.parse(process.argv[2] ?? '{}') as GeneratorInput;
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(input.url)) {
  throw new Error(`load generators target 127.0.0.1 only, not ${input.url}`);
}
const send = (message: GeneratorMessage) => process.send?.(message);

/** The i-th light client's key: reproducible, never a funded development key. */
function lightKey(seed: number, index: number): string {
  return keccak256(toUtf8Bytes(`commons-capacity:${seed}:${index}`));
}

const sockets: LightSocket[] = [];
let uploaded = 0;
let uploadFailed = 0;
let firstInviteMs = 0;
let lastAckMs = 0;
const manifests = new Map<string, Promise<Manifest>>();
const stageLog = new StageLog();

let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs CPU-bound client work (building updates, SecAgg+ answers) one job at a time per process,
 * the event loop turning before each: hundreds of jobs back to back would block it past
 * Socket.IO's heartbeat timeout and the coordinator would (rightly) drop the clients as gone.
 */
function schedule<T>(job: () => Promise<T>): Promise<T> {
  const run = queue.then(async () => {
    await new Promise((resolve) => setImmediate(resolve));
    return job();
  });
  queue = run.catch(() => undefined);
  return run;
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

async function signIn(index: number): Promise<void> {
  const wallet = new Wallet(lightKey(input.seed, index));
  const socket: LightSocket = io(input.url, {
    transports: ['websocket'],
    reconnection: false,
    timeout: 120_000,
    ackTimeout: 120_000,
  });
  sockets.push(socket);
  const challenge = await new Promise<Challenge>((resolve, reject) => {
    socket.once('auth:challenge', resolve);
    socket.once('connect_error', reject);
  });
  const signed = await signChallenge(challenge, wallet);
  const result = await socket.emitWithAck('auth:login', {
    protocolVersion: PROTOCOL_VERSION,
    ...signed,
  });
  if (!result.ok) throw new Error(`sign-in refused: ${result.error.code}`);
  const secure = new SecureLightClient(socket, wallet, {
    chainId: input.chainId,
    schedule,
    log: stageLog,
  });
  socket.on('round:invite', (task, ack) => {
    // A secure round's participant must exist before the acceptance goes out: secagg:setup
    // follows it.
    const joined = task.secureAggregation ? secure.join(task, secureUpdate(task)) : null;
    ack({ accept: true });
    firstInviteMs ||= Date.now();
    (joined ?? upload(wallet, socket, task)).then(
      () => {
        uploaded++;
        lastAckMs = Date.now();
        report();
      },
      (error: unknown) => {
        uploadFailed++;
        send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
        report();
      },
    );
  });
}

function report(): void {
  send({ type: 'uploaded', count: uploaded, failed: uploadFailed, firstInviteMs, lastAckMs });
}

/** The base model's tensor layout, fetched once per model from the coordinator's store. */
function manifestOf(hash: string): Promise<Manifest> {
  let manifest = manifests.get(hash);
  if (!manifest) {
    manifest = fetch(new URL(`/models/${hash}/manifest.json`, input.url)).then(async (response) => {
      if (!response.ok) throw new Error(`manifest: HTTP ${response.status}`);
      return (await response.json()) as Manifest;
    });
    manifests.set(hash, manifest);
  }
  return manifest;
}

/** A random update of the model's shape with norm half the clip bound, encoded (scheduled). */
function buildFrame(
  manifest: Manifest,
  settings: { encoding: UpdateEncoding; clipNorm: number },
): Promise<Uint8Array> {
  return schedule(async () => {
    const update: NamedTensors = new Map();
    let sumSq = 0;
    for (const { name, shape } of manifest.tensors) {
      const bits = randomFillSync(new Int32Array(shape.reduce((a, b) => a * b, 1)));
      const values = new Float32Array(bits.length);
      for (let i = 0; i < values.length; i++) {
        const v = bits[i]! / 2 ** 31;
        values[i] = v;
        sumSq += v * v;
      }
      update.set(name, { shape: [...shape], data: values });
    }
    const scale = (0.5 * settings.clipNorm) / Math.sqrt(sumSq);
    for (const { data } of update.values()) for (let i = 0; i < data.length; i++) data[i]! *= scale;
    return encodeTensors(update, settings.encoding);
  });
}

/**
 * A secure round's update as training would hand it to the SecAgg+ participant: the fp32 frame
 * of a random update, clipped (norm half the clip bound), weighed by LIGHT_EXAMPLES.
 */
function asLocalUpdate(frame: Uint8Array, clipNorm: number): LocalUpdate {
  return {
    frame,
    sha256: sha256Hex(frame),
    encoding: 'fp32',
    norm: 0.5 * clipNorm,
    rawNorm: 0.5 * clipNorm,
    numExamples: LIGHT_EXAMPLES,
    // No training happened here: the update stands for one done elsewhere.
    steps: 0,
    plannedSteps: 0,
    finalLoss: Number.NaN,
    stoppedEarly: false,
  };
}

/** This client's update for a secure round: prebuilt when it fits, else built now. */
async function secureUpdate(task: RoundTask): Promise<LocalUpdate> {
  const pre = input.prebuild;
  const usable =
    pre?.modelHash === task.baseModel.hash &&
    pre.encoding === 'fp32' &&
    pre.clipNorm <= task.clipNorm;
  const ready = usable ? prebuiltSecure.pop() : undefined;
  if (ready) return ready;
  const settings = { encoding: 'fp32' as const, clipNorm: task.clipNorm };
  const frame = await buildFrame(await manifestOf(task.baseModel.hash), settings);
  return asLocalUpdate(frame, settings.clipNorm);
}

/** Builds, signs and uploads this client's update in chunks, as a FederatedClient does. */
async function upload(wallet: Wallet, socket: LightSocket, task: RoundTask): Promise<void> {
  const pre = input.prebuild;
  const usable =
    pre?.modelHash === task.baseModel.hash &&
    pre.encoding === task.encoding &&
    pre.clipNorm <= task.clipNorm;
  const frame =
    (usable ? prebuilt.pop() : undefined) ??
    (await buildFrame(await manifestOf(task.baseModel.hash), task));
  const unsigned = describeUpload(task, wallet.address, frame, {
    encoding: task.encoding,
    numExamples: LIGHT_EXAMPLES,
  });
  const begin = await signUpload(unsigned, wallet, input.chainId);
  const result = await sendUpload(socketUploadChannel(socket), begin, frame, {
    chunkBytes: task.upload.chunkBytes,
  });
  if (!result.ok) throw new Error(`${result.during} refused: ${result.error.code}`);
}

const prebuilt: Uint8Array[] = [];
const prebuiltSecure: LocalUpdate[] = [];

async function main(): Promise<void> {
  const pre = input.prebuild;
  if (pre) {
    const manifest = await manifestOf(pre.modelHash);
    for (let i = 0; i < input.count; i++) {
      const frame = await buildFrame(manifest, pre);
      if (pre.encoding === 'fp32') prebuiltSecure.push(asLocalUpdate(frame, pre.clipNorm));
      else prebuilt.push(frame);
    }
  }
  const started = performance.now();
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < input.count) {
      const i = input.from + next++;
      await signIn(i).catch((error: unknown) => {
        failed++;
        if (failed <= 3) {
          send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
        }
      });
    }
  };
  await Promise.all(Array.from({ length: input.concurrency }, worker));
  send({
    type: 'signedIn',
    count: input.count - failed,
    failed,
    seconds: (performance.now() - started) / 1000,
    cpuMs: cpuMs(),
  });
}

process.on('message', (request: GeneratorRequest) => {
  if (request.type !== 'usage') return;
  for (const refusal of stageLog.refusals.splice(0)) send({ type: 'error', message: refusal });
  send({
    type: 'usage',
    cpuMs: cpuMs(),
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    numShares: stageLog.numShares,
    stages: stageLog.stages,
  });
});

process.on('disconnect', () => {
  for (const socket of sockets) socket.close();
  process.exit(0);
});
await main();
