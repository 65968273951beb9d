import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Wallet } from 'ethers';
import { Server, type Socket } from 'socket.io';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { encodeCheckpoint } from '../src/checkpoint/index.ts';
import { FederatedClient } from '../src/federation/client.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { Transformer } from '../src/model/transformer.ts';
import { PrivacyLedger } from '../src/privacy/dp/ledger.ts';
import type { FederationPolicy } from '@commons/chain';
import {
  PROTOCOL_VERSION,
  type Challenge,
  type InviteReply,
  type RoundTask,
  type Withdrawal,
} from '../src/protocol/messages.ts';
import { verifySiweLogin } from '../src/protocol/siwe.ts';
import { frameByteLength } from '../src/protocol/upload.ts';
import type { ContributorInput } from './fixtures/ledger-contributor.ts';

// The member's privacy ledger is written before the update leaves the machine (ledger.ts): a
// crash between the two must over-count ε, never under-count it. The coordinator here is a
// real Socket.IO server on loopback that speaks the protocol's sign-in and upload steps and
// serves a real checkpoint; the contributor is the real FederatedClient.

const TEXT = 'The gnome moved again. The gnome is watching the roses.\n'.repeat(20);
const CHAIN_ID = 31337;
const POLICY: ContributorInput['policy'] = {
  clipNorm: 1,
  noiseMultiplier: 1,
  minClients: 1,
  sampleRate: 1,
  epsilonBudget: 100,
  delta: 1e-5,
};
const CONTRIBUTOR = fileURLToPath(new URL('./fixtures/ledger-contributor.ts', import.meta.url));

let checkpoint: { hash: string; manifest: Uint8Array; weights: Uint8Array; frameBytes: number };

beforeAll(async () => {
  await selectBackend({ force: 'cpu' });
  const tokenizer = ChatTokenizer.train(TEXT, 270);
  const config: ModelConfig = {
    vocabSize: tokenizer.vocabSize,
    blockSize: 8,
    nLayer: 1,
    nHead: 2,
    nEmbd: 8,
    dropout: 0,
    bias: true,
    tiedHead: true,
  };
  const model = Transformer.create(config, 1);
  const encoded = encodeCheckpoint({
    config,
    tokenizer: tokenizer.toJSON(),
    tensors: model.toTensors(),
  });
  model.dispose();
  checkpoint = {
    hash: encoded.hash,
    manifest: new TextEncoder().encode(JSON.stringify(encoded.manifest)),
    weights: encoded.weights,
    frameBytes: frameByteLength(encoded.manifest.tensors, 'fp32'),
  };
});

/** What the coordinator saw of a round, and the hooks a test reacts with. */
interface Coordinator {
  url: string;
  withdrawals: Withdrawal[];
  begins: number;
  /** Resolves when the first chunk of an update arrives (it is never acknowledged). */
  firstChunk: Promise<void>;
  /** Resolves with the first round:withdraw. */
  withdrawn: Promise<Withdrawal>;
  close(): Promise<void>;
}

/**
 * Signs clients in (checking their SIWE signature), invites each to round 1 and takes its
 * upload:begin (or refuses it); chunks are received but never acknowledged, so the upload
 * stays in flight.
 */
async function startCoordinator(options: { refuseUploads?: boolean } = {}): Promise<Coordinator> {
  const http: HttpServer = createServer((req, res) => {
    const file = { manifest: checkpoint.manifest, weights: checkpoint.weights };
    const path = req.url ?? '';
    const body = path.endsWith('/manifest.json')
      ? file.manifest
      : path.endsWith('/weights.bin')
        ? file.weights
        : null;
    if (!path.startsWith(`/models/${checkpoint.hash}/`) || !body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.byteLength }).end(body);
  });
  const io = new Server(http, { transports: ['websocket'] });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  let chunkArrived!: () => void;
  let withdrew!: (w: Withdrawal) => void;
  const coordinator: Coordinator = {
    url,
    withdrawals: [],
    begins: 0,
    firstChunk: new Promise((resolve) => (chunkArrived = resolve)),
    withdrawn: new Promise((resolve) => (withdrew = resolve)),
    close: async () => {
      await io.close();
    },
  };
  io.on('connection', (socket: Socket) => {
    const now = Date.now();
    const challenge: Challenge = {
      protocolVersion: PROTOCOL_VERSION,
      domain: new URL(url).host,
      uri: url,
      chainId: CHAIN_ID,
      nonce: randomBytes(8).toString('hex'),
      statement: 'Sign in to the test coordinator.',
      issuedAt: new Date(now).toISOString(),
      expirationTime: new Date(now + 300_000).toISOString(),
    };
    socket.emit('auth:challenge', challenge);
    socket.on('auth:login', (login: { message: string; signature: string }, ack) => {
      const address = verifySiweLogin(challenge, login.message, login.signature);
      ack({ ok: true, address });
      const task: RoundTask = {
        protocolVersion: PROTOCOL_VERSION,
        roundId: 1,
        strategy: 'fedavg',
        baseModel: { hash: checkpoint.hash, path: `/models/${checkpoint.hash}/` },
        policyVersion: 1,
        train: {
          localEpochs: 1,
          learningRate: 1e-2,
          batchSize: 2,
          maxSteps: 1,
          proxMu: 0,
          seed: 7,
        },
        clipNorm: POLICY.clipNorm,
        encoding: 'fp32',
        upload: { frameBytes: checkpoint.frameBytes, chunkBytes: 1024 },
        deadline: Date.now() + 120_000,
      };
      // The login's acknowledgement and the invitation may cross: a client that is not yet
      // signed in on its side declines, and is asked again.
      const invite = () =>
        socket.emit('round:invite', task, (reply: InviteReply) => {
          if (!reply.accept && reply.reason === 'not signed in') setImmediate(invite);
        });
      invite();
    });
    socket.on('upload:begin', (_begin: unknown, ack) => {
      coordinator.begins++;
      ack(
        options.refuseUploads
          ? { ok: false, error: { code: 'DEADLINE_PASSED', message: 'this test takes no uploads' } }
          : { ok: true, uploadId: 'upload-0001' },
      );
    });
    socket.on('upload:chunk', () => chunkArrived());
    socket.on('round:withdraw', (w: Withdrawal) => {
      coordinator.withdrawals.push(w);
      withdrew(w);
    });
  });
  return coordinator;
}

let coordinator: Coordinator | undefined;
let dir: string | undefined;

afterEach(async () => {
  await coordinator?.close();
  coordinator = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe("the contributor's privacy ledger", () => {
  it('holds the round once the upload has started, though the client is killed right then', async () => {
    coordinator = await startCoordinator();
    dir = mkdtempSync(join(tmpdir(), 'commons-ledger-kill-'));
    const ledgerPath = join(dir, 'privacy-ledger.json');
    const input: ContributorInput = {
      coordinator: coordinator.url,
      privateKey: Wallet.createRandom().privateKey,
      ledgerPath,
      data: TEXT,
      policy: POLICY,
    };
    const child = spawn(process.execPath, [CONTRIBUTOR, JSON.stringify(input)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );
    const first = await Promise.race([
      coordinator.firstChunk.then(() => 'chunk' as const),
      exited.then(() => 'exited' as const),
    ]);
    expect(first, `the contributor exited before uploading:\n${output}`).toBe('chunk');
    // The update's bytes are arriving: the process dies here, with no chance to clean up.
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const ledger = await PrivacyLedger.open(ledgerPath);
    expect(ledger.entries.map((e) => [e.roundId, e.noiseMultiplier, e.delta])).toEqual([
      [1, POLICY.noiseMultiplier, POLICY.delta],
    ]);
    // Restarted, the member does not join the round a second time.
    const again = ledger.check({
      budget: POLICY.epsilonBudget,
      delta: POLICY.delta,
      round: { roundId: 1, sampleRate: 1, noiseMultiplier: 1, delta: POLICY.delta },
    });
    expect(again.allowed).toBe(false);
  });

  it('sends nothing and withdraws when the round cannot be recorded', async () => {
    // Refused at once, so that a client that sends anyway is seen without waiting on a timeout.
    coordinator = await startCoordinator({ refuseUploads: true });
    dir = mkdtempSync(join(tmpdir(), 'commons-ledger-unwritable-'));
    const folder = join(dir, 'ledger');
    const ledger = await PrivacyLedger.open(join(folder, 'privacy-ledger.json'));
    // Where the ledger's folder would be is a file: the entry cannot be saved.
    writeFileSync(folder, 'not a folder');
    const client = new FederatedClient({
      coordinator: coordinator.url,
      signer: Wallet.createRandom(),
      data: TEXT,
      consent: true,
      privacy: {
        ledger,
        policies: { policyAt: () => Promise.resolve(POLICY as FederationPolicy) },
      },
      socket: { reconnection: false },
    });
    const errors: string[] = [];
    client.on('error', (err) => errors.push(err.message));
    let withdrawal: Withdrawal;
    try {
      client.connect();
      withdrawal = await coordinator.withdrawn;
    } finally {
      await client.close();
    }
    expect(coordinator.begins).toBe(0);
    expect(withdrawal.roundId).toBe(1);
    expect(withdrawal.reason).toMatch(/could not record round 1 in the privacy ledger/);
    expect(errors.join('\n')).toMatch(/could not record round 1 in the privacy ledger/);
    expect(ledger.entries).toEqual([]);
  });
});
