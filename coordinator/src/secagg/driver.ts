// Runs one SecAgg+ round over the transport: the SecAggServer state machine decides, this
// carries its messages. For each stage the driver sends every live node its request, waits
// for the acknowledgements until the stage's deadline, feeds each valid answer to the server,
// then closes the stage. A node that does not answer in time, disconnects, refuses, or whose
// answer the server refuses has dropped at that stage — an expected input, not an error. An
// abort (SecAggError: too few clients, a neighbourhood below threshold, inconsistent shares)
// propagates: the round fails with its message and nothing is published.
//
// Identity: each answer is bound to the node id the server gave the socket's signed-in address
// (SecAggServer.nodeIdOf); a nodeId inside a message is only checked against it, never trusted.
import { availableParallelism } from 'node:os';
import {
  MaskThread,
  parallelFold,
  SecAggError,
  SecAggServer,
  type SecAggConfig,
  type SecAggFault,
  type SecAggSettings,
} from '@commons/shared/privacy';
import {
  describeIssue,
  maskedInputHeaderSchema,
  secAggAnswerSchema,
  maskedCommitmentDigest,
  verifyMaskedCommitment,
  ProtocolError,
} from '@commons/shared/protocol';
import type { Logger } from 'pino';
import { MaskedUpload } from './masked-upload.ts';
import type { SecAggRequestEvent, SecAggTransport } from './transport.ts';

export type SecAggStage = 'advertise-keys' | 'share-keys' | 'collect-masked-input' | 'unmask';

export interface SecureAggregationInput {
  roundId: number;
  /** The round's base model hash (the masked commitments name it). */
  baseModel: string;
  /** Chain id the EIP-712 masked commitments are bound to. */
  chainId: number;
  /** Checksummed addresses of the accepted participants; node ids follow this order. */
  participants: readonly string[];
  vectorLength: number;
  settings: SecAggSettings;
  transport: SecAggTransport;
  /** Deadline of the quick stages (setup, share-keys, unmask). */
  stageTimeoutMs: number;
  /** Unix ms by which masked inputs must be in: clients train before they mask. */
  maskedInputDeadline: number;
  /** Aborting it (the coordinator stopping) abandons the round at once. */
  signal: AbortSignal;
  log: Logger;
}

export interface SecureContributor {
  address: string;
  nodeId: number;
  /** EIP-712 digest of its MaskedUpdateCommitment (the contributors-root leaf). */
  commitment: string;
}

export interface SecureAggregationOutcome {
  /** Σ w_i · x_i over the contributors, flat (the round's layout). */
  weightedSum: Float32Array;
  /** Σ w_i over the contributors. */
  totalWeight: number;
  /** In node-id order. */
  contributors: SecureContributor[];
  dropped: { address: string; nodeId: number; stage: SecAggStage; reason: string }[];
  faults: SecAggFault[];
  config: SecAggConfig;
  /** Wall milliseconds each stage took. */
  stageMs: Record<SecAggStage, number>;
}

/** A node's answer could not be used; it has dropped at this stage. */
class Unusable extends Error {}

export async function runSecureAggregation(
  input: SecureAggregationInput,
): Promise<SecureAggregationOutcome> {
  const { roundId, transport, signal, log } = input;
  const server = new SecAggServer({
    roundId,
    participants: input.participants,
    vectorLength: input.vectorLength,
    settings: input.settings,
  });
  const addressOf = new Map<number, string>();
  for (const address of input.participants) {
    addressOf.set(server.nodeIdOf(address) as number, address);
  }
  const dropped = new Map<number, { stage: SecAggStage; reason: string }>();
  const stageMs = {} as Record<SecAggStage, number>;

  /** One stage: requests out, answers in until the deadline; unusable answers drop their node. */
  async function exchange(
    stage: SecAggStage,
    event: SecAggRequestEvent,
    requests: readonly { nodeId: number; payload: unknown }[],
    timeoutMs: number,
    receive: (
      address: string,
      nodeId: number,
      reply: Record<string, unknown>,
    ) => Promise<void> | void,
  ): Promise<void> {
    const started = Date.now();
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = () =>
        reject(
          new Error(
            `round ${roundId} stopped during secure aggregation (${stage}): the coordinator is shutting down, and its masks cannot outlive it`,
          ),
        );
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    const one = async ({
      nodeId,
      payload,
    }: {
      nodeId: number;
      payload: unknown;
    }): Promise<void> => {
      const address = addressOf.get(nodeId) as string;
      try {
        const raw = await transport.request(address, event, payload, timeoutMs);
        const answer = secAggAnswerSchema.safeParse(raw);
        if (!answer.success) {
          throw new Unusable(`malformed answer: ${describeIssue(answer.error)}`);
        }
        if (!answer.data.ok) {
          throw new Unusable(`refused: ${answer.data.error.code}: ${answer.data.error.message}`);
        }
        const reply = answer.data.reply;
        if (reply === null || typeof reply !== 'object')
          throw new Unusable('the reply is not an object');
        const claimed = (reply as { nodeId?: unknown }).nodeId;
        if (claimed !== nodeId) {
          throw new Unusable(
            `it answered as node ${String(claimed)}, but its signed-in address is node ${nodeId}`,
          );
        }
        await receive(address, nodeId, reply as Record<string, unknown>);
      } catch (err) {
        if (signal.aborted) return;
        const reason = err instanceof Error ? err.message : String(err);
        if (!(
          err instanceof Unusable ||
          err instanceof SecAggError ||
          err instanceof ProtocolError
        )) {
          // Transport failures (timeout, disconnect) are ordinary dropouts; say which.
          log.info({ round: roundId, address, stage, reason }, 'secure aggregation: no answer');
        } else {
          log.warn(
            { round: roundId, address, stage, reason },
            'secure aggregation: answer refused',
          );
        }
        if (!dropped.has(nodeId)) dropped.set(nodeId, { stage, reason });
      }
    };
    await Promise.race([Promise.all(requests.map(one)), aborted]);
    stageMs[stage] = Date.now() - started;
  }

  // setup → key advertisements (U1)
  const setup = server.setupRequest();
  const everyone = input.participants.map((a) => ({ nodeId: server.nodeIdOf(a) as number }));
  await exchange(
    'advertise-keys',
    'secagg:setup',
    everyone.map(({ nodeId }) => ({ nodeId, payload: setup })),
    input.stageTimeoutMs,
    (_, __, reply) => server.receiveKeyAdvertisement(reply),
  );
  // share keys (U2)
  await exchange(
    'share-keys',
    'secagg:share-keys',
    server.closeKeyAdvertisement().map(withNode),
    input.stageTimeoutMs,
    (_, __, reply) => server.receiveShareKeys(reply),
  );

  // masked input (U3): each vector arrives in chunks before its header answers the request.
  const maskedRequests = server.closeShareKeys();
  const vectorBytes = (input.vectorLength + 1) * 4;
  const uploads = new Map<string, MaskedUpload>();
  for (const { nodeId } of maskedRequests) {
    const address = addressOf.get(nodeId) as string;
    uploads.set(address, new MaskedUpload(address, vectorBytes));
  }
  const commitments = new Map<string, string>();
  transport.routeMaskedChunks((address, chunkRound, index, data) => {
    if (chunkRound !== roundId) {
      throw new ProtocolError(
        'WRONG_ROUND',
        `round ${chunkRound} is not collecting masked inputs; round ${roundId} is`,
      );
    }
    const upload = uploads.get(address);
    if (!upload) {
      throw new ProtocolError(
        'NOT_INVITED',
        `${address} has no masked input open in round ${roundId}`,
      );
    }
    return upload.add(index, data);
  });
  try {
    await exchange(
      'collect-masked-input',
      'secagg:masked-input',
      maskedRequests.map(withNode),
      Math.max(input.stageTimeoutMs, input.maskedInputDeadline - Date.now()),
      (address, _, reply) => {
        const parsed = maskedInputHeaderSchema.safeParse(reply);
        if (!parsed.success) throw new Unusable(`masked input: ${describeIssue(parsed.error)}`);
        const { byteLength, sha256, signature, ...header } = parsed.data;
        const upload = uploads.get(address) as MaskedUpload;
        uploads.delete(address);
        const vector = upload.finish(byteLength, sha256);
        const commitment = {
          roundId,
          baseModel: input.baseModel,
          contributor: address,
          maskedSha256: sha256,
          byteLength,
        };
        verifyMaskedCommitment(commitment, signature, input.chainId);
        server.receiveMaskedInput({ ...header, vector });
        commitments.set(address, maskedCommitmentDigest(commitment, input.chainId));
      },
    );
  } finally {
    transport.routeMaskedChunks(null);
    uploads.clear();
  }

  // unmask (U5)
  await exchange(
    'unmask',
    'secagg:unmask',
    server.closeMaskedInput().map(withNode),
    input.stageTimeoutMs,
    (_, __, reply) => server.receiveUnmask(reply),
  );
  // Removing the masks (a self mask per contributor, more per dropped node) is the one step
  // every client waits on: split across the cores, off the event loop, where threads run.
  const threads = MaskThread.pool(availableParallelism());
  const result =
    threads.length > 0 ? await server.finishWith(parallelFold(threads)) : server.finish();
  return {
    weightedSum: result.weightedSum,
    totalWeight: result.totalWeight,
    contributors: result.contributors.map(({ nodeId, address }) => ({
      address,
      nodeId,
      commitment: commitments.get(address) as string,
    })),
    dropped: result.dropped.map(({ nodeId, address, stage }) => ({
      address,
      nodeId,
      stage: stage as SecAggStage,
      reason: dropped.get(nodeId)?.reason ?? `no answer at ${stage}`,
    })),
    faults: result.faults,
    config: server.config,
    stageMs,
  };
}

function withNode<R extends { nodeId: number }>(request: R): { nodeId: number; payload: R } {
  return { nodeId: request.nodeId, payload: request };
}
