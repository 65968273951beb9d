/**
 * `node coordinator/bench/secagg-round.ts [clients]`: one real round with secure aggregation
 * and one plain round, the same clients, data and training (5 FederatedClients by default,
 * 2 local steps, the genesis model), each on its own devnet whose policy differs only in
 * secureAggregation. Prints the wall seconds of each round from the moment it starts training
 * (invitations out) to its result, and the secure round's SecAgg+ overhead.
 */
import { FULL_DELTA } from '@commons/chain';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { startDevnet } from '@commons/contracts';
import { FederatedClient } from '@commons/shared/contributor';
import { readCorpus, splitText } from '@commons/shared/engine';
import type { RoundResult } from '@commons/shared/protocol';
import { startCoordinator } from '../src/coordinator.ts';

const numClients = Number(process.argv[2] ?? 5);
const { train } = splitText(readCorpus());

async function oneRound(
  secureAggregation: boolean,
): Promise<{ seconds: number; result: RoundResult }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'commons-secagg-bench-'));
  const devnet = await startDevnet(
    dir,
    {
      minClients: 3,
      maxClients: 100,
      sampleRate: 1,
      clipNorm: 1,
      noiseMultiplier: 0,
      secureAggregation,
      adapter: FULL_DELTA,
      aggregationRule: 'fedavg',
      learningRate: 0.01,
      roundDeadlineSeconds: 600,
    },
    { devAccounts: Math.max(8, numClients + 1) },
  );
  const coordinator = await startCoordinator({
    port: 0,
    dataDir: path.join(dir, 'coordinator'),
    rpcUrl: devnet.rpcUrl,
    addressesFile: devnet.addressesFile,
    privateKey: devnet.keys[0]!,
    batchSize: 2,
    maxSteps: 2,
    evalChars: 2000,
    publishMarginBpc: 1,
    roundIntervalMs: 0,
    maxRounds: 1,
    logLevel: 'silent',
  });
  const clients: FederatedClient[] = [];
  try {
    let trainingAt = 0;
    coordinator.engine.on('status', (s) => {
      if (s.roundId === 1 && s.state === 'training' && trainingAt === 0) trainingAt = Date.now();
    });
    const done = new Promise<RoundResult>((resolve) => coordinator.engine.once('result', resolve));
    // All clients sign in before the round opens: the engine waits for minClients, so the
    // first three would otherwise start it alone. Connect them, then let the policy's 3 count.
    for (let i = 0; i < numClients; i++) {
      const client = new FederatedClient({
        coordinator: coordinator.url,
        signer: new Wallet(devnet.keys[i + 1]!),
        data: train.slice(i * 2000, i * 2000 + 1200),
        consent: true,
      });
      client.connect();
      clients.push(client);
    }
    const result = await done;
    return { seconds: (Date.now() - trainingAt) / 1000, result };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await coordinator.close();
    await devnet.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const secure = await oneRound(true);
const plain = await oneRound(false);
const line = (name: string, r: { seconds: number; result: RoundResult }) =>
  `${name.padEnd(7)} ${r.seconds.toFixed(2).padStart(7)} s  ${r.result.outcome} with ${r.result.accepted} contributors`;
console.log(`one round, ${numClients} clients, genesis model, 2 local steps each`);
console.log(line('secure', secure));
console.log(line('plain', plain));
console.log(`secure aggregation adds ${(secure.seconds - plain.seconds).toFixed(2)} s`);
