// The coordinator's side of SecAgg+, as a transport-agnostic state machine mirroring
// Flower's SecAggPlusWorkflow. For each stage the coordinator broadcasts the requests this
// class returns, feeds every reply that arrives before the stage's timeout to receive…(),
// and calls close…() when the stage ends; a client that never answered (or whose reply was
// refused) has dropped out at that stage. Stages and survivor sets (Bonawitz et al.):
//
//   setupRequest()          → SetupRequest (broadcast)
//   receiveKeyAdvertisement · closeKeyAdvertisement() → ShareKeysRequest per node   U1
//   receiveShareKeys        · closeShareKeys()        → MaskedInputRequest per node U2
//   receiveMaskedInput      · closeMaskedInput()      → UnmaskRequest per node      U3
//   receiveUnmask           · finish()                → SecAggResult                U5
//
// What the server holds: one running sum of masked vectors (each reply is added and
// dropped), the public keys, and the reconstructed secrets, which it applies only to that
// sum. For any node it reconstructs either b (it uploaded: node ∈ U3) or s_sk (it did not),
// never both, so no single update can be unmasked; `reconstructed` in the result shows which.
// Any abort throws SecAggError and no sum is returned.
import { equalBytes } from '@noble/ciphers/utils.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { getAddress } from 'ethers';
import { resolveSecAggConfig, type SecAggConfig, type SecAggSettings } from './config.ts';
import { SecAggError, type SecAggErrorCode } from './errors.ts';
import { neighbourGraph } from './graph.ts';
import {
  checkSelfMaskCommitment,
  pairwiseMaskSeed,
  publicKeyOf,
  selfMaskSeed,
  verifyAdvertisement,
} from './keys.ts';
import {
  SECAGG_VERSION,
  keyAdvertisementSchema,
  maskedInputSchema,
  parseSecAggMessage,
  shareKeysResponseSchema,
  unmaskResponseSchema,
  type KeyAdvertisement,
  type MaskedInputRequest,
  type SetupRequest,
  type ShareKeysRequest,
  type ShareKind,
  type UnmaskRequest,
} from './messages.ts';
import { addMasksInto, type MaskFold, type SignedMask } from './prg.ts';
import { dequantizeSum } from './quantization.ts';
import { addVectorInto, ringVectorFromBytes } from './ring.ts';
import { bytesToField, reconstructVerified, ShamirError, type Share } from './shamir.ts';

export type ServerStage =
  'advertise-keys' | 'share-keys' | 'collect-masked-input' | 'unmask' | 'done' | 'aborted';

/** A node that misbehaved, named with what it did. The coordinator decides what follows (e.g. no reward). */
export interface SecAggFault {
  nodeId: number;
  address: string;
  stage: ServerStage;
  reason: 'bad-signature' | 'unreadable-share-packet' | 'inconsistent-share';
  detail: string;
}

export interface SecAggParticipant {
  nodeId: number;
  address: string;
}

export interface SecAggResult {
  roundId: number;
  /** Σ w_i · x_i over the contributors (each x clipped to ±clippingRange). */
  weightedSum: Float32Array;
  /** Σ w_i over the contributors (as quantised). */
  totalWeight: number;
  /** Number of contributors: clients whose masked vector is in the sum (U3). */
  count: number;
  contributors: SecAggParticipant[];
  /** Clients that vanished, with the stage at which they were last expected. */
  dropped: (SecAggParticipant & { stage: ServerStage })[];
  faults: SecAggFault[];
  /** Which secret the server rebuilt for each node: b for contributors, s_sk for dropped ones. */
  reconstructed: { selfMasks: number[]; maskKeys: number[] };
}

export interface SecAggServerOptions {
  roundId: number;
  /** The sampled clients' addresses; node ids are 1, 2, … in this order. */
  participants: readonly string[];
  /** Coordinates per update. */
  vectorLength: number;
  settings?: SecAggSettings;
  /** Seeds the neighbour graph (random unless given). */
  roundSeed?: Uint8Array;
}

export class SecAggServer {
  readonly roundId: number;
  readonly config: SecAggConfig;
  readonly vectorLength: number;
  readonly #roundSeed: Uint8Array;
  readonly #addresses = new Map<number, string>();
  readonly #graph: Map<number, number[]>;
  #stage: ServerStage = 'advertise-keys';
  readonly #faults: SecAggFault[] = [];
  readonly #droppedAt = new Map<number, ServerStage>();

  /** U1: nodes whose signed keys verified. */
  readonly #keys = new Map<number, KeyAdvertisement>();
  /** U2: share packets by sender, keyed by receiver. */
  readonly #packets = new Map<number, Map<number, Uint8Array>>();
  /** U3: nodes whose masked vector is in #aggregate. */
  readonly #uploaded = new Set<number>();
  /** holder → owners whose packets the holder could not open. */
  readonly #unreadable = new Map<number, Set<number>>();
  #aggregate: Uint32Array | null = null;
  /** Per node, what the unmask stage asked of it. */
  readonly #unmaskAsked = new Map<number, { survivors: Set<number>; dropped: Set<number> }>();
  /** owner → revealed shares of the secret needed for it, with the holder as x. */
  readonly #revealed = new Map<number, Share[]>();
  readonly #unmasked = new Set<number>();

  constructor(options: SecAggServerOptions) {
    const n = options.participants.length;
    this.roundId = options.roundId;
    this.vectorLength = options.vectorLength;
    this.config = resolveSecAggConfig(options.settings ?? {}, n, options.vectorLength);
    const seen = new Set<string>();
    options.participants.forEach((address, i) => {
      const normal = getAddress(address);
      if (seen.has(normal))
        throw new SecAggError('INVALID_CONFIG', `participant ${normal} appears twice`);
      seen.add(normal);
      this.#addresses.set(i + 1, normal);
    });
    this.#roundSeed = options.roundSeed ?? randomBytes(32);
    this.#graph = neighbourGraph(
      [...this.#addresses.keys()],
      this.config.numShares,
      this.#roundSeed,
    );
  }

  get stage(): ServerStage {
    return this.#stage;
  }

  get faults(): readonly SecAggFault[] {
    return this.#faults;
  }

  /** The node id the round gave an address, for binding a socket's login to its messages. */
  nodeIdOf(address: string): number | undefined {
    const normal = getAddress(address);
    for (const [id, a] of this.#addresses) if (a === normal) return id;
    return undefined;
  }

  /** A node's neighbourhood (itself included). */
  neighboursOf(nodeId: number): readonly number[] {
    return this.#graph.get(nodeId) ?? [];
  }

  setupRequest(): SetupRequest {
    return {
      version: SECAGG_VERSION,
      stage: 'setup',
      roundId: this.roundId,
      roundSeed: this.#roundSeed,
      config: { ...this.config },
      vectorLength: this.vectorLength,
      participants: [...this.#addresses].map(([nodeId, address]) => ({ nodeId, address })),
    };
  }

  // ── stage guards ───────────────────────────────────────────────────────────

  #expect(stage: ServerStage, roundId: number): void {
    if (this.#stage !== stage) {
      throw new SecAggError('WRONG_STAGE', `the round is at stage ${this.#stage}, not ${stage}`);
    }
    if (roundId !== this.roundId) {
      throw new SecAggError(
        'WRONG_ROUND',
        `a message for round ${roundId} reached round ${this.roundId}`,
      );
    }
  }

  #abort(code: SecAggErrorCode, message: string, nodes: readonly number[] = []): never {
    this.#stage = 'aborted';
    this.#aggregate = null;
    this.#revealed.clear();
    throw new SecAggError(code, `round ${this.roundId} aborted: ${message}`, nodes);
  }

  #name(nodeId: number): string {
    return `node ${nodeId} (${this.#addresses.get(nodeId)})`;
  }

  #fault(nodeId: number, reason: SecAggFault['reason'], detail: string): void {
    this.#faults.push({
      nodeId,
      address: this.#addresses.get(nodeId) as string,
      stage: this.#stage,
      reason,
      detail,
    });
  }

  #markDropped(
    all: Iterable<number>,
    alive: Set<number> | Map<number, unknown>,
    stage: ServerStage,
  ): void {
    for (const id of all)
      if (!alive.has(id) && !this.#droppedAt.has(id)) this.#droppedAt.set(id, stage);
  }

  #requireMinClients(alive: number, stage: string): void {
    if (alive < this.config.minClients) {
      this.#abort(
        'TOO_FEW_CLIENTS',
        `${alive} clients remain after ${stage}; the minimum is ${this.config.minClients}`,
      );
    }
  }

  /** Aborts unless every owner has ≥ threshold neighbours among `holders` able to reveal its share. */
  #requireThreshold(owners: Iterable<number>, holders: Set<number>, after: string): void {
    const t = this.config.reconstructionThreshold;
    for (const owner of owners) {
      const able = this.neighboursOf(owner).filter(
        (h) => holders.has(h) && !(this.#unreadable.get(h)?.has(owner) ?? false),
      );
      if (able.length < t) {
        this.#abort(
          'BELOW_THRESHOLD',
          `${this.#name(owner)} has ${able.length} of its ${this.neighboursOf(owner).length} ` +
            `neighbourhood left after ${after}; ${t} are needed to reconstruct its secret`,
          [owner],
        );
      }
    }
  }

  #sender(nodeId: number, alive: Set<number> | Map<number, unknown>, stage: string): void {
    if (!this.#addresses.has(nodeId)) {
      throw new SecAggError(
        'UNKNOWN_NODE',
        `node ${nodeId} is not a participant of round ${this.roundId}`,
        [nodeId],
      );
    }
    if (!alive.has(nodeId)) {
      throw new SecAggError(
        'UNKNOWN_NODE',
        `${this.#name(nodeId)} is not part of the ${stage} stage`,
        [nodeId],
      );
    }
  }

  // ── advertise keys (U1) ────────────────────────────────────────────────────

  /** Takes one key advertisement. A bad signature names and excludes the node (no throw). */
  receiveKeyAdvertisement(raw: unknown): void {
    const ad = parseSecAggMessage(keyAdvertisementSchema, raw, 'key advertisement');
    this.#expect('advertise-keys', ad.roundId);
    this.#sender(ad.nodeId, this.#addresses, 'advertise-keys');
    if (this.#keys.has(ad.nodeId) || this.#faults.some((f) => f.nodeId === ad.nodeId)) {
      throw new SecAggError(
        'DUPLICATE_MESSAGE',
        `${this.#name(ad.nodeId)} already advertised keys`,
        [ad.nodeId],
      );
    }
    const address = this.#addresses.get(ad.nodeId) as string;
    if (!verifyAdvertisement({ ...ad, address }, ad.signature, ad.signerKey)) {
      this.#fault(
        ad.nodeId,
        'bad-signature',
        `its advertised keys are not signed by ${address}; excluded from the round`,
      );
      return;
    }
    this.#keys.set(ad.nodeId, ad);
  }

  /** Ends key advertisement: each valid node gets its valid neighbours' signed keys. */
  closeKeyAdvertisement(): ShareKeysRequest[] {
    this.#expect('advertise-keys', this.roundId);
    const u1 = new Set(this.#keys.keys());
    this.#markDropped(this.#addresses.keys(), u1, 'advertise-keys');
    this.#requireMinClients(u1.size, 'key advertisement');
    this.#requireThreshold(u1, u1, 'key advertisement');
    this.#stage = 'share-keys';
    return [...u1].map((nodeId) => ({
      version: SECAGG_VERSION,
      stage: 'share-keys',
      roundId: this.roundId,
      nodeId,
      neighbours: this.neighboursOf(nodeId)
        .filter((j) => j !== nodeId && u1.has(j))
        .map((j) => {
          // The advertisement's keys, signature and signer key, without its message envelope.
          const {
            version: _v,
            stage: _s,
            roundId: _r,
            ...keys
          } = this.#keys.get(j) as KeyAdvertisement;
          return keys;
        }),
    }));
  }

  // ── share keys (U2) ────────────────────────────────────────────────────────

  /** Takes one node's packets: exactly one for each valid neighbour. */
  receiveShareKeys(raw: unknown): void {
    const res = parseSecAggMessage(shareKeysResponseSchema, raw, 'share-keys response');
    this.#expect('share-keys', res.roundId);
    this.#sender(res.nodeId, this.#keys, 'share-keys');
    if (this.#packets.has(res.nodeId)) {
      throw new SecAggError(
        'DUPLICATE_MESSAGE',
        `${this.#name(res.nodeId)} already sent its shares`,
        [res.nodeId],
      );
    }
    const expected = this.neighboursOf(res.nodeId).filter(
      (j) => j !== res.nodeId && this.#keys.has(j),
    );
    const got = new Set(res.shares.map((s) => s.to));
    if (got.size !== expected.length || !expected.every((j) => got.has(j))) {
      throw new SecAggError(
        'PROTOCOL_VIOLATION',
        `${this.#name(res.nodeId)} sent packets to [${[...got].join(', ')}], not to its neighbours [${expected.join(', ')}]`,
        [res.nodeId],
      );
    }
    this.#packets.set(res.nodeId, new Map(res.shares.map((s) => [s.to, s.ciphertext])));
  }

  /** Ends share keys: each node gets the packets addressed to it by nodes that also shared. */
  closeShareKeys(): MaskedInputRequest[] {
    this.#expect('share-keys', this.roundId);
    const u2 = new Set(this.#packets.keys());
    this.#markDropped(this.#addresses.keys(), u2, 'share-keys');
    this.#requireMinClients(u2.size, 'share keys');
    this.#requireThreshold(u2, u2, 'share keys');
    this.#stage = 'collect-masked-input';
    return [...u2].map((nodeId) => ({
      version: SECAGG_VERSION,
      stage: 'collect-masked-input',
      roundId: this.roundId,
      nodeId,
      shares: this.neighboursOf(nodeId)
        .filter((j) => j !== nodeId && u2.has(j))
        .map((from) => ({ from, ciphertext: this.#packets.get(from)?.get(nodeId) as Uint8Array })),
    }));
  }

  // ── collect masked input (U3) ──────────────────────────────────────────────

  /** Adds one masked vector to the running sum; the vector itself is not kept. */
  receiveMaskedInput(raw: unknown): void {
    const input = parseSecAggMessage(maskedInputSchema, raw, 'masked input');
    this.#expect('collect-masked-input', input.roundId);
    this.#sender(input.nodeId, this.#packets, 'collect-masked-input');
    if (this.#uploaded.has(input.nodeId)) {
      throw new SecAggError('DUPLICATE_MESSAGE', `${this.#name(input.nodeId)} already uploaded`, [
        input.nodeId,
      ]);
    }
    const words = this.vectorLength + 1;
    const segments = input.vector instanceof Uint8Array ? [input.vector] : input.vector;
    const uploaded = segments.reduce((n, segment) => n + segment.length, 0);
    if (uploaded !== words * 4) {
      throw new SecAggError(
        'MALFORMED_MESSAGE',
        `${this.#name(input.nodeId)} uploaded ${uploaded} bytes; the round expects ${words * 4}`,
        [input.nodeId],
      );
    }
    const senders = new Set(
      this.neighboursOf(input.nodeId).filter((j) => j !== input.nodeId && this.#packets.has(j)),
    );
    for (const { from } of input.rejectedShares) {
      if (!senders.has(from)) {
        throw new SecAggError(
          'PROTOCOL_VIOLATION',
          `${this.#name(input.nodeId)} reports a packet from node ${from}, which was never forwarded to it`,
          [input.nodeId],
        );
      }
    }
    this.#aggregate ??= new Uint32Array(words);
    let at = 0;
    for (const segment of segments) {
      const v = ringVectorFromBytes(segment);
      addVectorInto(this.#aggregate.subarray(at, at + v.length), v, this.config.modulusRange);
      at += v.length;
    }
    this.#uploaded.add(input.nodeId);
    for (const { from, reason } of input.rejectedShares) {
      let owners = this.#unreadable.get(input.nodeId);
      if (!owners) this.#unreadable.set(input.nodeId, (owners = new Set()));
      owners.add(from);
      // The server cannot tell who is lying (it forwarded the packet itself), so the sender is
      // named and its shares from this holder go unused; its masks still cancel through others.
      this.#fault(
        from,
        'unreadable-share-packet',
        `node ${input.nodeId} could not open its share packet: ${reason}`,
      );
    }
  }

  /** Nodes in U2 but not U3 whose pairwise masks sit in some contributor's vector. */
  #maskKeyOwners(): number[] {
    return [...this.#packets.keys()].filter(
      (d) =>
        !this.#uploaded.has(d) &&
        this.neighboursOf(d).some((j) => j !== d && this.#uploaded.has(j)),
    );
  }

  /** Ends uploads: each contributor is asked for b shares of surviving and s_sk shares of dropped neighbours. */
  closeMaskedInput(): UnmaskRequest[] {
    this.#expect('collect-masked-input', this.roundId);
    const u3 = this.#uploaded;
    this.#markDropped(this.#addresses.keys(), u3, 'collect-masked-input');
    this.#requireMinClients(u3.size, 'masked input');
    const maskKeyOwners = new Set(this.#maskKeyOwners());
    this.#requireThreshold([...u3, ...maskKeyOwners], u3, 'masked input');
    this.#stage = 'unmask';
    return [...u3].map((nodeId) => {
      const unreadable = this.#unreadable.get(nodeId) ?? new Set<number>();
      const hood = this.neighboursOf(nodeId).filter((j) => !unreadable.has(j));
      const survivors = hood.filter((j) => u3.has(j));
      const dropped = hood.filter((j) => maskKeyOwners.has(j));
      this.#unmaskAsked.set(nodeId, { survivors: new Set(survivors), dropped: new Set(dropped) });
      return {
        version: SECAGG_VERSION,
        stage: 'unmask',
        roundId: this.roundId,
        nodeId,
        survivors,
        dropped,
      };
    });
  }

  // ── unmask (U5) ────────────────────────────────────────────────────────────

  /** Takes one node's revealed shares: exactly those it was asked for. */
  receiveUnmask(raw: unknown): void {
    const res = parseSecAggMessage(unmaskResponseSchema, raw, 'unmask response');
    this.#expect('unmask', res.roundId);
    this.#sender(res.nodeId, this.#uploaded, 'unmask');
    if (this.#unmasked.has(res.nodeId)) {
      throw new SecAggError(
        'DUPLICATE_MESSAGE',
        `${this.#name(res.nodeId)} already answered unmask`,
        [res.nodeId],
      );
    }
    const asked = this.#unmaskAsked.get(res.nodeId) as {
      survivors: Set<number>;
      dropped: Set<number>;
    };
    const kindOf = (owner: number): ShareKind | null =>
      asked.survivors.has(owner) ? 'self-mask' : asked.dropped.has(owner) ? 'mask-key' : null;
    const answered = new Set(res.shares.map((s) => s.owner));
    const missing = [...asked.survivors, ...asked.dropped].filter((o) => !answered.has(o));
    const wrong = res.shares.filter((s) => kindOf(s.owner) !== s.kind).map((s) => s.owner);
    if (missing.length > 0 || wrong.length > 0) {
      throw new SecAggError(
        'PROTOCOL_VIOLATION',
        `${this.#name(res.nodeId)} answered unmask with the wrong shares (missing [${missing.join(', ')}], ` +
          `unasked or wrong kind [${wrong.join(', ')}])`,
        [res.nodeId],
      );
    }
    this.#unmasked.add(res.nodeId);
    for (const { owner, share } of res.shares) {
      try {
        bytesToField(share);
      } catch {
        this.#fault(
          res.nodeId,
          'inconsistent-share',
          `its share for node ${owner} is not a field element`,
        );
        continue;
      }
      let list = this.#revealed.get(owner);
      if (!list) this.#revealed.set(owner, (list = []));
      list.push({ x: res.nodeId, y: share });
    }
  }

  /** Reconstructs a secret checked against the owner's signed commitment; names holders of bad shares. */
  #reconstruct(owner: number, kind: ShareKind): Uint8Array {
    const t = this.config.reconstructionThreshold;
    const shares = this.#revealed.get(owner) ?? [];
    if (shares.length < t) {
      this.#abort(
        'BELOW_THRESHOLD',
        `only ${shares.length} shares of ${this.#name(owner)}'s ${kind === 'self-mask' ? 'self-mask seed' : 'mask key'} ` +
          `arrived at unmask; ${t} are needed`,
        [owner],
      );
    }
    const advert = this.#keys.get(owner) as KeyAdvertisement;
    const verify =
      kind === 'self-mask'
        ? (b: Uint8Array) => checkSelfMaskCommitment(b, advert.selfMaskCommitment)
        : (sk: Uint8Array) => equalBytes(publicKeyOf(sk), advert.maskingKey);
    try {
      const { secret, badXs } = reconstructVerified(shares, t, verify);
      for (const holder of badXs) {
        this.#fault(
          holder,
          'inconsistent-share',
          `its share of ${this.#name(owner)}'s ${kind} is off the dealt polynomial`,
        );
      }
      return secret;
    } catch (err) {
      if (!(err instanceof ShamirError)) throw err;
      this.#abort(
        'INCONSISTENT_SHARES',
        `the shares of ${this.#name(owner)}'s ${kind} held by [${shares.map((s) => s.x).join(', ')}] do not ` +
          `reconstruct the secret it committed to (it dealt inconsistent shares, or several holders lied)`,
        [owner],
      );
    }
  }

  /** Ends the round: removes every mask from the running sum and decodes it. */
  finish(): SecAggResult {
    const { aggregate, masks, reconstructed } = this.#unmaskingPlan();
    addMasksInto(aggregate, masks, this.config.modulusRange);
    return this.#decode(aggregate, reconstructed);
  }

  /**
   * {@link finish} with the masks removed by `fold`, off this thread (mask-thread.ts's
   * parallelFold splits them across cores).
   */
  async finishWith(fold: MaskFold): Promise<SecAggResult> {
    const { aggregate, masks, reconstructed } = this.#unmaskingPlan();
    return this.#decode(await fold(aggregate, masks, this.config.modulusRange), reconstructed);
  }

  /**
   * Reconstructs every revealed secret (a failure aborts before any mask is touched) and
   * lists the masks to take out of the running sum. The stage moves on, so a second finish is
   * refused while the masks are being removed.
   */
  #unmaskingPlan(): {
    aggregate: Uint32Array;
    masks: SignedMask[];
    reconstructed: SecAggResult['reconstructed'];
  } {
    this.#expect('unmask', this.roundId);
    this.#markDropped(this.#uploaded, this.#unmasked, 'unmask');
    const aggregate = this.#aggregate as Uint32Array;
    const selfMasks = [...this.#uploaded].sort((a, b) => a - b);
    const maskKeys = this.#maskKeyOwners().sort((a, b) => a - b);
    // Reconstruct everything first, so a failure aborts before any mask is touched.
    const bs = selfMasks.map((owner) => this.#reconstruct(owner, 'self-mask'));
    const sks = maskKeys.map((owner) => this.#reconstruct(owner, 'mask-key'));
    const masks: SignedMask[] = bs.map((b) => ({ seed: selfMaskSeed(b, this.roundId), sign: -1 }));
    maskKeys.forEach((d, i) => {
      const sk = sks[i] as Uint8Array;
      for (const j of this.neighboursOf(d)) {
        if (j === d || !this.#uploaded.has(j)) continue;
        // Contributor j added +PRG(s_jd) if j < d, −PRG(s_jd) otherwise; take it back out.
        const seed = pairwiseMaskSeed(
          sk,
          (this.#keys.get(j) as KeyAdvertisement).maskingKey,
          this.roundId,
        );
        masks.push({ seed, sign: j < d ? -1 : 1 });
      }
    });
    this.#aggregate = null;
    this.#stage = 'done';
    return { aggregate, masks, reconstructed: { selfMasks, maskKeys } };
  }

  #decode(aggregate: Uint32Array, reconstructed: SecAggResult['reconstructed']): SecAggResult {
    const { selfMasks } = reconstructed;
    const { weightedSum, totalWeight } = dequantizeSum(aggregate, this.config);
    this.#revealed.clear();
    const participant = (nodeId: number) => ({
      nodeId,
      address: this.#addresses.get(nodeId) as string,
    });
    return {
      roundId: this.roundId,
      weightedSum,
      totalWeight,
      count: this.#uploaded.size,
      contributors: selfMasks.map(participant),
      dropped: [...this.#droppedAt]
        .filter(([id]) => !this.#uploaded.has(id))
        .map(([id, stage]) => ({ ...participant(id), stage })),
      faults: [...this.#faults],
      reconstructed,
    };
  }
}
