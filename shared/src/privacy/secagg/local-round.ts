// One SecAgg+ round run in-process: every client and the server exchange their messages
// directly, and dropouts are replies that never arrive. It is the reference for how a
// transport wires the two state machines (the coordinator does the same over Socket.IO,
// with timeouts deciding who dropped), and what the tests and the bench drive.
import { SecAggClient } from './client.ts';
import type { SecAggSettings } from './config.ts';
import { SecAggError } from './errors.ts';
import type { SecAggSigner } from './keys.ts';
import { SecAggServer, type SecAggResult } from './server.ts';

export type ReplyStage = 'advertise-keys' | 'share-keys' | 'collect-masked-input' | 'unmask';

export interface LocalRoundOptions {
  roundId: number;
  signers: readonly SecAggSigner[];
  /** One update per signer, in the same order (node id = index + 1). */
  updates: readonly Float32Array[];
  weights?: readonly number[];
  settings?: SecAggSettings;
  roundSeed?: Uint8Array;
  /** Node ids that vanish instead of replying at a stage (and stay gone). */
  dropouts?: Partial<Record<ReplyStage, readonly number[]>>;
  /** Rewrites a reply before the server sees it: tests use it to play a cheating client. */
  tamper?: (stage: ReplyStage, nodeId: number, reply: unknown) => unknown;
  /** Stochastic-rounding source handed to every client. */
  random?: () => number;
}

export interface LocalRoundOutcome {
  result: SecAggResult;
  server: SecAggServer;
  /** Messages a client or the server refused (the sender then counts as dropped). */
  refusals: { stage: ReplyStage; nodeId: number; error: SecAggError }[];
}

export async function runLocalRound(options: LocalRoundOptions): Promise<LocalRoundOutcome> {
  const addresses = await Promise.all(options.signers.map((s) => s.getAddress()));
  const server = new SecAggServer({
    roundId: options.roundId,
    participants: addresses,
    vectorLength: options.updates[0]?.length ?? 0,
    settings: options.settings,
    roundSeed: options.roundSeed,
  });
  const clients = new Map<number, SecAggClient>();
  options.signers.forEach((signer, i) =>
    clients.set(i + 1, new SecAggClient({ signer, random: options.random })),
  );
  const gone = new Set<number>();
  const refusals: LocalRoundOutcome['refusals'] = [];

  // Delivers one request to one client and its reply to the server, unless the client has
  // dropped; a refusal on either side is recorded and leaves the client out of the stage.
  async function exchange(
    stage: ReplyStage,
    nodeId: number,
    ask: (client: SecAggClient) => unknown,
    receive: (reply: unknown) => void,
  ): Promise<void> {
    if (options.dropouts?.[stage]?.includes(nodeId)) gone.add(nodeId);
    if (gone.has(nodeId)) return;
    try {
      const reply = await ask(clients.get(nodeId) as SecAggClient);
      receive(options.tamper ? options.tamper(stage, nodeId, reply) : reply);
    } catch (err) {
      if (!(err instanceof SecAggError)) throw err;
      refusals.push({ stage, nodeId, error: err });
    }
  }

  const setup = server.setupRequest();
  for (const nodeId of clients.keys()) {
    await exchange(
      'advertise-keys',
      nodeId,
      (c) => c.onSetup(setup),
      (r) => server.receiveKeyAdvertisement(r),
    );
  }
  for (const request of server.closeKeyAdvertisement()) {
    await exchange(
      'share-keys',
      request.nodeId,
      (c) => c.onShareKeys(request),
      (r) => server.receiveShareKeys(r),
    );
  }
  for (const request of server.closeShareKeys()) {
    const i = request.nodeId - 1;
    await exchange(
      'collect-masked-input',
      request.nodeId,
      (c) =>
        c.onMaskedInputRequest(
          request,
          options.updates[i] as Float32Array,
          options.weights?.[i] ?? 1,
        ),
      (r) => server.receiveMaskedInput(r),
    );
  }
  for (const request of server.closeMaskedInput()) {
    await exchange(
      'unmask',
      request.nodeId,
      (c) => c.onUnmask(request),
      (r) => server.receiveUnmask(r),
    );
  }
  return { result: server.finish(), server, refusals };
}
