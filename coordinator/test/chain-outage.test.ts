// An RPC outage while the coordinator waits for clients: a real TCP proxy in front of the
// Hardhat node cuts every connection for a while, then lets them through again. The round loop
// retries the chain meanwhile (/healthz says so, still 200) and rounds resume once it is back;
// before, the first failed policy read ended the loop for good while /healthz said ok.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevnet, type Devnet } from '@commons/contracts';
import { readCheckpoint, encodeTensors } from '@commons/shared/engine';
import type { RoundResult } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import type { LoopHealth } from '../src/rounds/engine.ts';
import { coordinatorOn, TEST_POLICY } from './fixtures/federation.ts';
import { connectRaw, type RawClient } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

/** A loopback TCP proxy to `target` that can refuse every connection for a while. */
class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private readonly server: net.Server;
  readonly url: string;

  private constructor(server: net.Server, url: string) {
    this.server = server;
    this.url = url;
  }

  static async start(target: URL): Promise<CuttableProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const proxy = new CuttableProxy(server, `http://127.0.0.1:${port}`);
    server.on('connection', (client) => proxy.relay(client, target));
    return proxy;
  }

  /** Drops every open connection and resets each new one until restore(). */
  cutOff(): void {
    this.cut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: net.Socket, target: URL): void {
    if (this.cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }
}

let dir: string;
let devnet: Devnet;
let proxy: CuttableProxy;
let coordinator: Coordinator | undefined;
const clients: RawClient[] = [];

async function loopHealth(): Promise<{ status: number; loop: LoopHealth }> {
  const res = await fetch(`${coordinator!.url}/healthz`);
  const body = (await res.json()) as { roundLoop: LoopHealth };
  return { status: res.status, loop: body.roundLoop };
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-chain-outage-'));
  devnet = await startDevnet(dir, TEST_POLICY);
  proxy = await CuttableProxy.start(new URL(devnet.rpcUrl));
  coordinator = await coordinatorOn({ ...devnet, rpcUrl: proxy.url }, dir, {
    encoding: 'int8',
    evalChars: 500,
    publishMarginBpc: 100,
    roundIntervalMs: 0,
  });
});

afterAll(async () => {
  for (const client of clients) client.close();
  await coordinator?.close();
  await proxy?.close();
  await devnet?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a chain RPC outage', () => {
  it('is retried while the loop waits for clients, and rounds resume once the chain is back', async () => {
    await until('the round loop to run', async () => (await loopHealth()).loop.state === 'running');
    proxy.cutOff();
    await until('the loop to retry the chain', async () => {
      const { status, loop } = await loopHealth();
      return status === 200 && loop.state === 'retrying';
    });
    expect((await loopHealth()).loop.error).toMatch(/ECONNRESET|socket hang up|ECONNREFUSED/);
    // Several retries' worth of outage (the backoff starts at 0.5 s and doubles).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect((await loopHealth()).loop.state).toBe('retrying');
    proxy.restore();
    await until('the loop to run again', async () => (await loopHealth()).loop.state === 'running');

    const base = (await readCheckpoint(GENESIS_DIR)).tensors;
    const wallets = devnet.keys.slice(1, 3).map((key) => new Wallet(key));
    for (const wallet of wallets) clients.push(await connectRaw(coordinator!.url, wallet));
    const result = new Promise<RoundResult>((resolve) =>
      coordinator!.engine.once('result', resolve),
    );
    const tasks = await Promise.all(clients.map((client) => client.nextInvite()));
    for (const [i, wallet] of wallets.entries()) {
      const frame = encodeTensors(randomUpdate(base, i + 1, 0.5), tasks[i]!.encoding);
      const ack = await uploadFrame(
        clients[i]!,
        wallet,
        tasks[i]!,
        devnet.addresses.chainId,
        frame,
      );
      expect(ack.ok).toBe(true);
    }
    expect((await result).outcome).toBe('published');
  });
});
