// One thread of the simulation's client pool: selects its own tfjs backend (a backend is per
// thread), then hosts its share of the virtual contributors, each a real FederatedClient with
// its own wallet and its own roles' tokens, and reports what they do to the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { Wallet } from 'ethers';
import { selectBackend } from '@commons/shared/engine';
import { FederatedClient } from '@commons/shared/contributor';
import type { PoolMessage, WorkerInput } from './client-pool.ts';

const input = workerData as WorkerInput;
const port = parentPort!;
const post = (message: PoolMessage) => port.postMessage(message);

const backend = await selectBackend();
const clients = input.clients.map((spec) => {
  const client = new FederatedClient({
    coordinator: input.coordinator,
    signer: new Wallet(spec.privateKey),
    chainId: input.chainId,
    data: spec.tokens,
    consent: true,
  });
  const index = spec.index;
  client.on('login', ({ address }) => post({ type: 'login', index, address }));
  client.on('uploaded', (receipt) => post({ type: 'uploaded', index, receipt }));
  client.on('dropped', ({ roundId, reason }) => post({ type: 'dropped', index, roundId, reason }));
  client.on('rejected', ({ error, during }) =>
    post({ type: 'error', index, message: `${during} refused: ${error.code} ${error.message}` }),
  );
  client.on('error', (error) => post({ type: 'error', index, message: error.message }));
  return client;
});
post({ type: 'started', backend: backend.backend });
for (const client of clients) client.connect();

port.on('message', (message: { type: 'close' }) => {
  if (message.type !== 'close') return;
  void Promise.all(clients.map((c) => c.close())).then(() => {
    post({ type: 'closed' });
    port.close();
  });
});
