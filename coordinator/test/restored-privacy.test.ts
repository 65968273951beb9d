// A private round restored after a restart adds exactly the noise it announced. Its privacy
// (C, z, σ_b, m, q) is fixed when it is configured: with adaptive clipping σ_b = max(m/20, z)
// depends on m, the clients sampled, and a restore that re-derived m from the clients that
// accepted (one of three declined here) noised the update ≈ 2% more than announced.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import {
  decodeCheckpoint,
  readCheckpoint,
  type NamedTensors,
  decodeTensors,
  encodeTensors,
} from '@commons/shared/engine';
import type { RoundResult, RoundTask } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { coordinatorOn, TEST_POLICY } from './fixtures/federation.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

const Z = 0.05;

let dir: string;
let devnet: Devnet;
let base: NamedTensors;
let coordinator: Coordinator | null = null;
let clients: RawClient[] = [];
const wallets: Wallet[] = [];

function inviteTo(client: RawClient, roundId: number): Promise<RoundTask> {
  return new Promise((resolve) => {
    const found = client.invites.find((t) => t.roundId === roundId);
    if (found) return resolve(found);
    client.socket.on('round:invite', (task) => {
      if (task.roundId === roundId) resolve(task);
    });
  });
}

function resultOf(c: Coordinator, roundId: number): Promise<RoundResult> {
  return new Promise((resolve) => {
    const listener = (result: RoundResult) => {
      if (result.roundId !== roundId) return;
      c.engine.off('result', listener);
      resolve(result);
    };
    c.engine.on('result', listener);
  });
}

async function upload(i: number, task: RoundTask, frame: Uint8Array): Promise<void> {
  const ack = await uploadFrame(clients[i]!, wallets[i]!, task, devnet.addresses.chainId, frame);
  if (!ack.ok) throw new Error(`upload refused: ${ack.error.code} ${ack.error.message}`);
}

/** Alice and Bob take part; Carol, connected last, declines every invitation. */
async function start(): Promise<Coordinator> {
  const c = await coordinatorOn(devnet, dir, {
    encoding: 'fp32',
    evalChars: 500,
    publishMarginBpc: 100,
    roundIntervalMs: 0,
  });
  coordinator = c;
  clients = [
    await connectRaw(c.url, wallets[0]!),
    await connectRaw(c.url, wallets[1]!),
    await connectRaw(c.url, wallets[2]!, { accept: false }),
  ];
  return c;
}

async function stop(): Promise<void> {
  for (const client of clients) client.close();
  await coordinator?.close();
  coordinator = null;
}

async function modelTensors(c: Coordinator, hash: string): Promise<NamedTensors> {
  const bytes = async (file: string) =>
    new Uint8Array(await (await fetch(`${c.url}/models/${hash}/${file}`)).arrayBuffer());
  return decodeCheckpoint(await bytes('manifest.json'), await bytes('weights.bin'), {
    expectedHash: hash,
  }).tensors;
}

beforeAll(async () => {
  base = (await readCheckpoint(GENESIS_DIR)).tensors;
  dir = await mkdtemp(path.join(tmpdir(), 'commons-restored-privacy-'));
  devnet = await startDevnet(dir, { ...TEST_POLICY, noiseMultiplier: Z, clipTargetQuantile: 0.5 });
  for (const key of devnet.keys.slice(1, 4)) wallets.push(new Wallet(key));
});

afterAll(async () => {
  await stop();
  await devnet?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a private round restored after a restart', () => {
  it('adds exactly the noise it announced when it was configured', async () => {
    let c = await start();
    // Round 1 may start before Carol is connected; round 2 samples all three.
    const first = resultOf(c, 1);
    const tasks = await Promise.all(clients.slice(0, 2).map((client) => inviteTo(client, 1)));
    for (const i of [0, 1]) {
      await upload(i, tasks[i]!, encodeTensors(randomUpdate(base, i + 1, 0.3), 'fp32'));
    }
    expect((await first).outcome).toBe('published');

    const [task] = await Promise.all(clients.slice(0, 2).map((client) => inviteTo(client, 2)));
    const announced = c.db.roundPrivacy(2)!;
    // m is the three clients sampled, though only two accepted: σ_b = max(3/20, z).
    expect(announced).toMatchObject({ expectedClients: 3, sampleRate: 1, adaptive: true });
    expect(announced.bitNoiseStddev).toBeCloseTo(0.15, 12);
    expect(announced.noiseMultiplier).toBeCloseTo((Z ** -2 - (2 * 0.15) ** -2) ** -0.5, 12);
    expect(announced.clipNorm).toBe(task!.clipNorm);
    const frames = [4, 5].map((seed) => encodeTensors(randomUpdate(base, seed, 0.3), 'fp32'));
    await upload(0, task!, frames[0]!);
    await stop();

    c = await start();
    const second = resultOf(c, 2);
    await inviteTo(clients[1]!, 2);
    await upload(1, task!, frames[1]!);
    const published = await second;
    expect(published.outcome).toBe('published');
    expect(c.db.roundPrivacy(2)).toEqual(announced);

    // The noise is what is left of the candidate once its base (the active model, which round
    // 1's candidate has not replaced: no vote) and the updates' mean are taken away: N(0, (z_Δ·C/n)²) in every coordinate, n = 2.
    const [before, after] = [
      await modelTensors(c, task!.baseModel.hash),
      await modelTensors(c, published.candidate!.hash),
    ];
    const updates = frames.map((f) => decodeTensors(f));
    let sumSq = 0;
    let count = 0;
    for (const [name, { data }] of after) {
      const p = before.get(name)!.data;
      const a = updates[0]!.get(name)!.data;
      const b = updates[1]!.get(name)!.data;
      for (let i = 0; i < data.length; i++) {
        sumSq += (data[i]! - p[i]! - (a[i]! + b[i]!) / 2) ** 2;
        count++;
      }
    }
    const measured = Math.sqrt(sumSq / count);
    const expected = (announced.noiseMultiplier * announced.clipNorm) / 2;
    // The sample std's standard error is 1/√(2·count) of it (< 0.2% here); the noise a restore
    // from the two accepted clients would add (σ_b = 0.1) is 1.8% above the announced.
    expect(count).toBeGreaterThan(20_000);
    expect(Math.abs(measured / expected - 1)).toBeLessThan(0.008);
  });
});
