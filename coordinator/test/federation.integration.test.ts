// The whole federation, for real: a Hardhat chain with Commons deployed, the coordinator as its
// own process, two FederatedClients training the genesis model and a third contributor that
// uploads late. The coordinator is killed with SIGKILL mid-round (two updates accepted, one
// outstanding) and restarted: the round resumes, nothing accepted is lost or counted twice,
// the candidate is registered on chain with the commitment root of exactly the three updates,
// and a contributor claims its reward.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDevnet, type Devnet } from '@commons/contracts';
import { CommonsClient, FULL_DELTA, buildMerkleTree } from '@commons/chain';
import {
  readCheckpoint,
  sha256Hex,
  type NamedTensors,
  encodeTensors,
  readCorpus,
  splitText,
  Rng,
} from '@commons/shared/engine';
import { FederatedClient, type UploadReceipt } from '@commons/shared/contributor';
import {
  signCommitment,
  type RoundResult,
  type RoundTask,
  chunksOf,
} from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';

const BIN = fileURLToPath(new URL('../bin/commons-coordinator.ts', import.meta.url));

let dir: string;
let devnet: Devnet;
let port: number;
let url: string;
let coordinator: ChildProcess | null = null;
const clients: FederatedClient[] = [];
const receipts: UploadReceipt[] = [];
const results: RoundResult[] = [];

/** Starts the coordinator process and resolves once it logs that it listens. */
async function startCoordinatorProcess(): Promise<ChildProcess> {
  const keyFile = path.join(dir, 'coordinator.key');
  await writeFile(keyFile, devnet.keys[0]!);
  await chmod(keyFile, 0o600);
  const child = spawn(
    process.execPath,
    [
      BIN,
      ...['--port', String(port), '--data-dir', path.join(dir, 'coordinator')],
      ...['--rpc', devnet.rpcUrl, '--addresses', devnet.addressesFile, '--key-file', keyFile],
      ...['--encoding', 'int8', '--batch-size', '2', '--max-steps', '2', '--eval-chars', '2000'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, COMMONS_LOG_LEVEL: 'info' } },
  );
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code}`)));
    lines.on('line', (line) => {
      if (line.includes('"msg":"listening"')) resolve();
    });
  });
  return child;
}

async function health(): Promise<{
  round: { roundId: number; state: string; accepted: number } | null;
}> {
  const response = await fetch(`${url}/healthz`);
  return (await response.json()) as {
    round: { roundId: number; state: string; accepted: number } | null;
  };
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 120_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A real (random, clipped) int8 update for the late contributor. */
async function lateUpdate(task: RoundTask): Promise<Uint8Array> {
  const { tensors } = await readCheckpoint(GENESIS_DIR);
  const rng = new Rng(7);
  const update: NamedTensors = new Map();
  let sumSq = 0;
  for (const [name, { shape, data }] of tensors) {
    const values = Float32Array.from(data, () => rng.normal());
    for (const v of values) sumSq += v * v;
    update.set(name, { shape, data: values });
  }
  const scale = (0.5 * task.clipNorm) / Math.sqrt(sumSq);
  for (const { data } of update.values()) for (let i = 0; i < data.length; i++) data[i]! *= scale;
  return encodeTensors(update, task.encoding);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-federation-'));
  devnet = await startDevnet(dir, {
    minClients: 3,
    maxClients: 10,
    sampleRate: 1,
    clipNorm: 1,
    noiseMultiplier: 0,
    secureAggregation: false,
    aggregationRule: 'fedavg',
    learningRate: 0.001,
    roundDeadlineSeconds: 600,
    adapter: FULL_DELTA,
  });
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  coordinator = await startCoordinatorProcess();
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  coordinator?.kill('SIGKILL');
  await devnet?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('federated round with a coordinator crash', () => {
  it('resumes after kill -9 without losing or double counting an update, and publishes on chain', async () => {
    const { train } = splitText(readCorpus());
    const texts = [train.slice(0, 20_000), train.slice(20_000, 40_000)];
    for (const [i, text] of texts.entries()) {
      const client = new FederatedClient({
        coordinator: url,
        signer: new Wallet(devnet.keys[i + 1]!),
        data: text,
        consent: true,
        socket: { reconnectionDelay: 200, reconnectionDelayMax: 1_000 },
      });
      client.on('uploaded', (receipt) => receipts.push(receipt));
      client.on('result', (result) => results.push(result));
      client.connect();
      clients.push(client);
    }
    const lateWallet = new Wallet(devnet.keys[3]!);
    let late: RawClient = await connectRaw(url, lateWallet);
    const task = await late.nextInvite();
    expect(task.roundId).toBe(1);

    // Both trained updates are accepted; the late one is still outstanding.
    await until('two accepted updates', () => (receipts.length === 2 ? true : undefined), 170_000);
    expect((await health()).round).toMatchObject({ roundId: 1, state: 'training', accepted: 2 });

    // Crash: no shutdown handler runs.
    coordinator!.kill('SIGKILL');
    await new Promise((resolve) => coordinator!.once('exit', resolve));
    late.close();
    coordinator = await startCoordinatorProcess();

    // The round is back in training with both accepted updates; the trained clients reconnect.
    expect((await health()).round).toMatchObject({ roundId: 1, state: 'training', accepted: 2 });
    late = await connectRaw(url, lateWallet);
    const again = await late.nextInvite();
    expect(again.roundId).toBe(1);
    const frame = await lateUpdate(again);
    const unsigned = {
      roundId: again.roundId,
      baseModel: again.baseModel.hash,
      contributor: lateWallet.address,
      encoding: again.encoding,
      byteLength: frame.byteLength,
      sha256: sha256Hex(frame),
      numExamples: 1000,
    };
    const signature = await signCommitment(unsigned, lateWallet, devnet.addresses.chainId);
    const begin = await late.socket.emitWithAck('upload:begin', { ...unsigned, signature });
    if (!begin.ok) throw new Error(begin.error.message);
    for (const [index, chunk] of [...chunksOf(frame, again.upload.chunkBytes)].entries()) {
      expect((await late.socket.emitWithAck('upload:chunk', begin.uploadId, index, chunk)).ok).toBe(
        true,
      );
    }
    const end = await late.socket.emitWithAck('upload:end', begin.uploadId);
    if (!end.ok) throw new Error(end.error.message);

    const result = await until('round 1 result', () => results.find((r) => r.roundId === 1));
    expect(result.outcome).toBe('published');
    expect(result.accepted).toBe(3);
    // Each trained client uploaded exactly once, before the crash.
    expect(receipts.map((r) => r.roundId)).toEqual([1, 1]);

    const db = new Database(path.join(dir, 'coordinator', 'coordinator.db'), { readonly: true });
    const rows = db
      .prepare('SELECT address, commitment FROM submissions WHERE round_id = 1 ORDER BY seq')
      .all() as { address: string; commitment: string }[];
    db.close();
    expect(rows).toHaveLength(3);
    expect(new Set(rows.map((r) => r.address.toLowerCase())).size).toBe(3);

    const chain = await CommonsClient.connect({
      rpcUrl: devnet.rpcUrl,
      addresses: devnet.addresses,
      privateKey: devnet.keys[3]!,
    });
    try {
      const version = await chain.modelVersion(result.candidate!.hash);
      expect(version.roundId).toBe(1);
      expect(version.parentHash).toBe(devnet.addresses.genesis.hash);
      const commitments = [...receipts.map((r) => r.commitment), end.commitment];
      expect(version.contributorsRoot).toBe(buildMerkleTree(commitments).root);

      // The late contributor fetches its claim from the coordinator and claims its share.
      const budget = await chain.roundBudget();
      const response = await fetch(`${url}/rewards/1/${lateWallet.address.toLowerCase()}`);
      expect(response.status).toBe(200);
      const claim = (await response.json()) as {
        root: string;
        index: number;
        account: string;
        amount: string;
        proof: string[];
      };
      expect(claim.root).toBe((await chain.rewardRound(1)).root);
      expect(BigInt(claim.amount)).toBe(budget / 3n);
      expect(rows.map((r) => r.address.toLowerCase())).toContain(claim.account.toLowerCase());
      const mine = { ...claim, amount: BigInt(claim.amount) };
      expect((await fetch(`${url}/rewards/1/${Wallet.createRandom().address}`)).status).toBe(404);
      expect((await fetch(`${url}/rewards/x/${lateWallet.address}`)).status).toBe(400);
      const before = await chain.balanceOf(lateWallet.address);
      await chain.claimReward(1, mine);
      expect(await chain.balanceOf(lateWallet.address)).toBe(before + budget / 3n);
    } finally {
      chain.destroy();
    }
    late.close();
  });
});
