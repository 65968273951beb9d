// A light contributor for the scale-out fault tests: the real Socket.IO client with the real
// reconnection (jittered back-off, as FederatedClient's SOCKET_DEFAULTS, only shorter), that
// signs in on every connection, accepts every invitation and uploads a random update of the
// round's shape once `release()` is called — so a test can hold a round mid-training, break
// something, and then let the uploads go.
import type { Wallet } from 'ethers';
import { io, type Socket } from 'socket.io-client';
import { encodeTensors, type NamedTensors } from '@commons/shared/engine';
import {
  type ClientToServerEvents,
  type RoundResult,
  type RoundTask,
  type ServerToClientEvents,
  PROTOCOL_VERSION,
  signChallenge,
} from '@commons/shared/protocol';
import type { RawClient } from '../fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from '../fixtures/updates.ts';

export interface LightClient {
  wallet: Wallet;
  socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  /** Sign-ins so far (one per connection: a reconnection signs in again). */
  signIns: number;
  invites: RoundTask[];
  results: RoundResult[];
  /** Each upload's outcome: 'accepted', or the refusal's code. */
  uploads: Map<number, string>;
  /** Lets held uploads go. */
  release(): void;
  close(): void;
}

export function lightClient(
  url: string,
  wallet: Wallet,
  chainId: number,
  base: NamedTensors,
  seed: number,
  /** Rounds whose upload waits for release() (the others upload at once). */
  hold: ReadonlySet<number> = new Set(),
): LightClient {
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, {
    transports: ['websocket'],
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1_000,
    randomizationFactor: 0.5,
  });
  let open: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    open = resolve;
  });
  const client: LightClient = {
    wallet,
    socket,
    signIns: 0,
    invites: [],
    results: [],
    uploads: new Map(),
    release: () => open(),
    close: () => socket.close(),
  };
  socket.on('auth:challenge', (challenge) => {
    void (async () => {
      const signed = await signChallenge(challenge, wallet);
      const ack = await socket
        .timeout(10_000)
        .emitWithAck('auth:login', { protocolVersion: PROTOCOL_VERSION, ...signed });
      if (ack.ok) client.signIns++;
    })().catch(() => undefined);
  });
  socket.on('round:invite', (task, ack) => {
    client.invites.push(task);
    ack({ accept: true });
    void (async () => {
      if (hold.has(task.roundId)) await released;
      const frame = encodeTensors(
        randomUpdate(base, seed * 1000 + task.roundId, 0.5),
        task.encoding,
      );
      const raw = { socket } as unknown as RawClient;
      const result = await uploadFrame(raw, wallet, task, chainId, frame);
      client.uploads.set(task.roundId, result.ok ? 'accepted' : result.error.code);
    })().catch((error: unknown) =>
      client.uploads.set(task.roundId, `error: ${(error as Error).message}`),
    );
  });
  socket.on('round:result', (result) => {
    client.results.push(result);
  });
  return client;
}
