// A load-generator process for the capacity benches: it holds `count` light contributors, each a
// real Socket.IO connection that signs in with SIWE exactly as a FederatedClient does and, when
// invited, uploads a random update of the round's exact shape (no training: the point is the
// coordinator's load, not the clients'). Run by capacity.ts with child_process.fork, several at
// once so that client-side signing is spread over the cores; it reports over the IPC channel.
// Loopback only: the URL it is given must be http://127.0.0.1:<port>.
import { randomFillSync } from 'node:crypto';
import { keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { io, type Socket } from 'socket.io-client';
import {
  type Manifest,
  type NamedTensors,
  encodeTensors,
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
  sendUpload,
  signUpload,
  socketUploadChannel,
} from '@commons/shared/contributor';

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
   * must not land in the measured round on this one.
   */
  prebuild?: { modelHash: string; encoding: UpdateEncoding; clipNorm: number };
}

export type GeneratorMessage =
  | { type: 'signedIn'; count: number; failed: number; seconds: number }
  | { type: 'uploaded'; count: number; failed: number; firstInviteMs: number; lastAckMs: number }
  | { type: 'error'; message: string };

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
  socket.on('round:invite', (task, ack) => {
    ack({ accept: true });
    firstInviteMs ||= Date.now();
    upload(wallet, socket, task).then(
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

let building: Promise<unknown> = Promise.resolve();

/**
 * A random update of the model's shape with norm half the clip bound, encoded. Frames are built
 * one at a time per process, yielding between them: building hundreds at once would block this
 * event loop past Socket.IO's heartbeat timeout and the coordinator would (rightly) drop the
 * clients as gone.
 */
function buildFrame(
  manifest: Manifest,
  settings: { encoding: UpdateEncoding; clipNorm: number },
): Promise<Uint8Array> {
  const frame = building.then(async () => {
    await new Promise((resolve) => setImmediate(resolve));
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
  building = frame.catch(() => undefined);
  return frame;
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
    numExamples: 100,
  });
  const begin = await signUpload(unsigned, wallet, input.chainId);
  const result = await sendUpload(socketUploadChannel(socket), begin, frame, {
    chunkBytes: task.upload.chunkBytes,
  });
  if (!result.ok) throw new Error(`${result.during} refused: ${result.error.code}`);
}

const prebuilt: Uint8Array[] = [];

async function main(): Promise<void> {
  if (input.prebuild) {
    const manifest = await manifestOf(input.prebuild.modelHash);
    for (let i = 0; i < input.count; i++) prebuilt.push(await buildFrame(manifest, input.prebuild));
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
  });
}

process.on('disconnect', () => {
  for (const socket of sockets) socket.close();
  process.exit(0);
});
await main();
