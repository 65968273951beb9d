// The client's side of SecAgg+ (Bonawitz et al. 2017, sparse graph of Bell et al. 2020), as
// a transport-agnostic state machine: each method takes the server's message for one stage
// (unparsed: it is validated here) and returns the reply. One instance serves one round.
//
//   onSetup              → KeyAdvertisement   (two X25519 keys + commitment to b, signed)
//   onShareKeys          → ShareKeysResponse  (Shamir shares of b and s_sk, encrypted per neighbour)
//   onMaskedInputRequest → MaskedInput        (y = x + PRG(b) + Σ ±PRG(s_ij) mod M)
//   onUnmask             → UnmaskResponse     (b shares of survivors, s_sk shares of dropped)
//
// The checks here protect the client from a server that deviates: it recomputes its own
// neighbourhood, verifies every neighbour's signed keys, refuses to mask with fewer than
// `reconstructionThreshold` nodes, never reveals both secrets of one neighbour, and answers
// the unmask stage once.
import { validateSecAggConfig, type SecAggConfig } from './config.ts';
import { SecAggError } from './errors.ts';
import { neighbourhoodOf } from './graph.ts';
import {
  generateKeyPair,
  pairwiseMaskSeed,
  selfMaskCommitment,
  selfMaskSeed,
  shareEncryptionKey,
  signAdvertisement,
  verifyAdvertisement,
  type SecAggSigner,
  type X25519KeyPair,
} from './keys.ts';
import {
  SECAGG_VERSION,
  keyAdvertisementSchema,
  maskedInputRequestSchema,
  parseSecAggMessage,
  setupRequestSchema,
  shareKeysRequestSchema,
  unmaskRequestSchema,
  type KeyAdvertisement,
  type MaskedInput,
  type ShareKeysResponse,
  type UnmaskResponse,
} from './messages.ts';
import { addMasksInto, type MaskFold, type SignedMask } from './prg.ts';
import { quantizeWeighted } from './quantization.ts';
import { ringVectorToBytes } from './ring.ts';
import { randomFieldSecret, splitSecret } from './shamir.ts';
import { decryptShares, encryptShares, type SharePair } from './share-cipher.ts';

type ClientStage = 'setup' | 'share-keys' | 'collect-masked-input' | 'unmask' | 'done';

interface RoundState {
  roundId: number;
  config: SecAggConfig;
  vectorLength: number;
  nodeId: number;
  /** The node's neighbourhood, itself included, recomputed from the round seed. */
  neighbourhood: Set<number>;
  addresses: Map<number, string>;
  encryption: X25519KeyPair;
  masking: X25519KeyPair;
  /** The self-mask seed b. */
  selfMask: Uint8Array;
}

export interface SecAggClientOptions {
  signer: SecAggSigner;
  /** Uniform [0, 1) source for stochastic rounding (the CSPRNG unless a test fixes it). */
  random?: () => number;
}

export class SecAggClient {
  readonly #signer: SecAggSigner;
  readonly #random: (() => number) | undefined;
  #stage: ClientStage = 'setup';
  #round: RoundState | null = null;
  /** Verified keys of the neighbours this node dealt shares to. */
  #neighbourKeys = new Map<number, { encryptionKey: Uint8Array; maskingKey: Uint8Array }>();
  /** This node's own shares of its b and s_sk (x = its node id). */
  #ownShares: SharePair | null = null;
  /** Shares received from the neighbours the server forwarded packets from. */
  #received = new Map<number, SharePair>();
  /** Neighbours whose pairwise mask is in this node's masked vector. */
  #maskedWith = new Set<number>();
  /** Neighbours whose packets did not open: this node cannot reveal their shares. */
  #rejected = new Set<number>();

  constructor(options: SecAggClientOptions) {
    this.#signer = options.signer;
    this.#random = options.random;
  }

  /** This client's node id in the round, once set up. */
  get nodeId(): number | null {
    return this.#round?.nodeId ?? null;
  }

  get stage(): ClientStage {
    return this.#stage;
  }

  #expect(stage: ClientStage, roundId: number, nodeId: number | null): RoundState {
    if (this.#stage !== stage) {
      throw new SecAggError('WRONG_STAGE', `the client is at stage ${this.#stage}, not ${stage}`);
    }
    const round = this.#round as RoundState;
    if (roundId !== round.roundId) {
      throw new SecAggError(
        'WRONG_ROUND',
        `a message for round ${roundId} reached a client in round ${round.roundId}`,
      );
    }
    if (nodeId !== null && nodeId !== round.nodeId) {
      throw new SecAggError(
        'UNKNOWN_NODE',
        `a message for node ${nodeId} reached node ${round.nodeId}`,
      );
    }
    return round;
  }

  /** Setup: check the parameters, find this node, derive the graph, generate and sign keys. */
  async onSetup(raw: unknown): Promise<KeyAdvertisement> {
    if (this.#stage !== 'setup') {
      throw new SecAggError('WRONG_STAGE', `the client is at stage ${this.#stage}, not setup`);
    }
    const setup = parseSecAggMessage(setupRequestSchema, raw, 'setup');
    // The client refuses parameters that would overflow the ring or let the server unmask it.
    validateSecAggConfig(setup.config, setup.participants.length, setup.vectorLength);
    const address = (await this.#signer.getAddress()).toLowerCase();
    const me = setup.participants.find((p) => p.address.toLowerCase() === address);
    if (!me) {
      throw new SecAggError(
        'UNKNOWN_NODE',
        `this client (${address}) is not among the round's participants`,
      );
    }
    const neighbourhood = neighbourhoodOf(
      setup.participants.map((p) => p.nodeId),
      setup.config.numShares,
      setup.roundSeed,
      me.nodeId,
    );
    const round: RoundState = {
      roundId: setup.roundId,
      config: setup.config,
      vectorLength: setup.vectorLength,
      nodeId: me.nodeId,
      neighbourhood: new Set(neighbourhood),
      addresses: new Map(setup.participants.map((p) => [p.nodeId, p.address])),
      encryption: generateKeyPair(),
      masking: generateKeyPair(),
      selfMask: randomFieldSecret(),
    };
    const keys = {
      roundId: round.roundId,
      nodeId: round.nodeId,
      address: me.address,
      encryptionKey: round.encryption.publicKey,
      maskingKey: round.masking.publicKey,
      selfMaskCommitment: selfMaskCommitment(round.selfMask),
    };
    const { signature, signerKey } = await signAdvertisement(keys, this.#signer);
    this.#round = round;
    this.#stage = 'share-keys';
    return keyAdvertisementSchema.parse({
      version: SECAGG_VERSION,
      stage: 'advertise-keys',
      roundId: round.roundId,
      nodeId: round.nodeId,
      encryptionKey: keys.encryptionKey,
      maskingKey: keys.maskingKey,
      selfMaskCommitment: keys.selfMaskCommitment,
      signature,
      signerKey,
    });
  }

  /** Share keys: verify the neighbours' keys, deal shares of b and s_sk, encrypt one packet each. */
  onShareKeys(raw: unknown): ShareKeysResponse {
    const request = parseSecAggMessage(shareKeysRequestSchema, raw, 'share-keys request');
    const round = this.#expect('share-keys', request.roundId, request.nodeId);
    const { reconstructionThreshold: t } = round.config;
    for (const n of request.neighbours) {
      if (n.nodeId === round.nodeId || !round.neighbourhood.has(n.nodeId)) {
        throw new SecAggError(
          'PROTOCOL_VIOLATION',
          `node ${n.nodeId} is not a neighbour of node ${round.nodeId} under this round's seed`,
          [n.nodeId],
        );
      }
      const address = round.addresses.get(n.nodeId) as string;
      const valid = verifyAdvertisement(
        { roundId: round.roundId, address, ...n },
        n.signature,
        n.signerKey,
      );
      if (!valid) {
        throw new SecAggError(
          'BAD_SIGNATURE',
          `the keys forwarded for node ${n.nodeId} are not signed by its address ${address}`,
          [n.nodeId],
        );
      }
    }
    if (request.neighbours.length + 1 < t) {
      throw new SecAggError(
        'BELOW_THRESHOLD',
        `only ${request.neighbours.length + 1} of node ${round.nodeId}'s neighbourhood remain; ${t} are needed`,
        [round.nodeId],
      );
    }
    const holders = [round.nodeId, ...request.neighbours.map((n) => n.nodeId)];
    const bShares = splitSecret(round.selfMask, holders, t);
    const sShares = splitSecret(round.masking.secretKey, holders, t);
    this.#ownShares = {
      selfMaskShare: (bShares[0] as { y: Uint8Array }).y,
      maskKeyShare: (sShares[0] as { y: Uint8Array }).y,
    };
    const shares = request.neighbours.map((n, i) => {
      this.#neighbourKeys.set(n.nodeId, {
        encryptionKey: n.encryptionKey,
        maskingKey: n.maskingKey,
      });
      const key = shareEncryptionKey(round.encryption.secretKey, n.encryptionKey, round.roundId);
      const pair = {
        selfMaskShare: (bShares[i + 1] as { y: Uint8Array }).y,
        maskKeyShare: (sShares[i + 1] as { y: Uint8Array }).y,
      };
      return {
        to: n.nodeId,
        ciphertext: encryptShares(key, round.roundId, round.nodeId, n.nodeId, pair),
      };
    });
    this.#stage = 'collect-masked-input';
    return {
      version: SECAGG_VERSION,
      stage: 'share-keys',
      roundId: round.roundId,
      nodeId: round.nodeId,
      shares,
    };
  }

  /**
   * Masked input: open the forwarded packets, then mask the weighted, quantised update with
   * the self mask and one pairwise mask per sender (+ towards higher ids, − towards lower,
   * so each pair cancels in the sum). A packet that does not open is reported, not fatal:
   * the pairwise mask needs only the sender's public key.
   */
  onMaskedInputRequest(
    raw: unknown,
    update: Float32Array,
    weight: number,
    /** Where to build the masked vector (L + 1 words, all overwritten); fresh by default. */
    out?: Uint32Array,
  ): MaskedInput & { vector: Uint8Array } {
    const { y, masks, modulusRange, answer } = this.#beginMaskedInput(raw, update, weight, out);
    addMasksInto(y, masks, modulusRange);
    return { ...answer, vector: ringVectorToBytes(y) };
  }

  /**
   * {@link onMaskedInputRequest} with the masks folded by `fold` (on another thread:
   * mask-thread.ts), so the caller's thread stays free. `words` is the masked vector as ring
   * words: `out` itself may have been handed to the other thread and be unusable.
   */
  async onMaskedInputRequestAsync(
    raw: unknown,
    update: Float32Array,
    weight: number,
    fold: MaskFold,
    out?: Uint32Array,
  ): Promise<MaskedInput & { vector: Uint8Array; words: Uint32Array }> {
    const { y, masks, modulusRange, answer } = this.#beginMaskedInput(raw, update, weight, out);
    const words = await fold(y, masks, modulusRange);
    return { ...answer, vector: ringVectorToBytes(words), words };
  }

  /**
   * Opens the forwarded packets and quantises the update into the ring; returns the masks
   * still to fold in. The stage moves on here, so a second request is refused while masking.
   */
  #beginMaskedInput(
    raw: unknown,
    update: Float32Array,
    weight: number,
    out: Uint32Array | undefined,
  ): {
    y: Uint32Array;
    masks: SignedMask[];
    modulusRange: number;
    answer: Omit<MaskedInput, 'vector'>;
  } {
    const request = parseSecAggMessage(maskedInputRequestSchema, raw, 'masked-input request');
    const round = this.#expect('collect-masked-input', request.roundId, request.nodeId);
    if (update.length !== round.vectorLength) {
      throw new SecAggError(
        'BAD_INPUT',
        `the update has ${update.length} coordinates; the round aggregates ${round.vectorLength}`,
      );
    }
    if (request.shares.length + 1 < round.config.reconstructionThreshold) {
      throw new SecAggError(
        'BELOW_THRESHOLD',
        `packets from only ${request.shares.length} neighbours reached node ${round.nodeId}; ` +
          `masking with fewer than ${round.config.reconstructionThreshold - 1} would expose it`,
        [round.nodeId],
      );
    }
    const rejectedShares: { from: number; reason: string }[] = [];
    for (const { from, ciphertext } of request.shares) {
      const keys = this.#neighbourKeys.get(from);
      if (!keys) {
        throw new SecAggError(
          'PROTOCOL_VIOLATION',
          `node ${round.nodeId} dealt no shares to node ${from}`,
          [from],
        );
      }
      try {
        const key = shareEncryptionKey(
          round.encryption.secretKey,
          keys.encryptionKey,
          round.roundId,
        );
        this.#received.set(from, decryptShares(key, round.roundId, from, round.nodeId, ciphertext));
      } catch (err) {
        this.#rejected.add(from);
        rejectedShares.push({ from, reason: err instanceof Error ? err.message : String(err) });
      }
      this.#maskedWith.add(from);
    }
    const y = quantizeWeighted(update, weight, round.config, this.#random, out);
    const masks: SignedMask[] = [{ seed: selfMaskSeed(round.selfMask, round.roundId), sign: 1 }];
    for (const peer of this.#maskedWith) {
      const keys = this.#neighbourKeys.get(peer) as { maskingKey: Uint8Array };
      const seed = pairwiseMaskSeed(round.masking.secretKey, keys.maskingKey, round.roundId);
      masks.push({ seed, sign: round.nodeId < peer ? 1 : -1 });
    }
    this.#stage = 'unmask';
    return {
      y,
      masks,
      modulusRange: round.config.modulusRange,
      answer: {
        version: SECAGG_VERSION,
        stage: 'collect-masked-input',
        roundId: round.roundId,
        nodeId: round.nodeId,
        rejectedShares,
      },
    };
  }

  /** Unmask: reveal b shares of the named survivors and s_sk shares of the named dropped, once. */
  onUnmask(raw: unknown): UnmaskResponse {
    const request = parseSecAggMessage(unmaskRequestSchema, raw, 'unmask request');
    const round = this.#expect('unmask', request.roundId, request.nodeId);
    const me = round.nodeId;
    if (!request.survivors.includes(me)) {
      throw new SecAggError(
        'PROTOCOL_VIOLATION',
        `node ${me} uploaded but is not listed among the survivors`,
        [me],
      );
    }
    if (request.dropped.includes(me)) {
      throw new SecAggError('PROTOCOL_VIOLATION', `node ${me} is asked for its own mask key`, [me]);
    }
    for (const id of [...request.survivors, ...request.dropped]) {
      if (id === me) continue;
      if (!this.#maskedWith.has(id)) {
        throw new SecAggError('PROTOCOL_VIOLATION', `node ${me} holds no shares from node ${id}`, [
          id,
        ]);
      }
      if (this.#rejected.has(id)) {
        throw new SecAggError(
          'PROTOCOL_VIOLATION',
          `node ${me} reported node ${id}'s packet as unreadable`,
          [id],
        );
      }
    }
    const own = this.#ownShares as SharePair;
    const shares = [
      ...request.survivors.map((owner) => ({
        owner,
        kind: 'self-mask' as const,
        share:
          owner === me ? own.selfMaskShare : (this.#received.get(owner) as SharePair).selfMaskShare,
      })),
      ...request.dropped.map((owner) => ({
        owner,
        kind: 'mask-key' as const,
        share: (this.#received.get(owner) as SharePair).maskKeyShare,
      })),
    ];
    // Answer once: a second request could name as dropped a node this one named a survivor.
    this.#stage = 'done';
    return { version: SECAGG_VERSION, stage: 'unmask', roundId: round.roundId, nodeId: me, shares };
  }
}
