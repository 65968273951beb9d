// Model versions as the ModelRegistry contract records them.
import { fromMicro, fromWad, toMicro, toWad } from './fixed-point.ts';

const ZERO_HASH = '0x' + '0'.repeat(64);

/** What a coordinator states when it registers a candidate version. */
export interface ModelCandidate {
  /** sha256 of the checkpoint: 64 hex characters, with or without 0x. */
  contentHash: string;
  /** Content hash of the registered version it was trained from. */
  parentHash: string;
  /** Where the weights can be fetched (clients verify the hash). */
  uri: string;
  /** Federated round that produced it. */
  roundId: number;
  /** Merkle root of the contributors' commitments (zero hash when none). */
  contributorsRoot?: string;
  /** Validation bits per character. */
  valBpc: number;
  /** Differential-privacy ε spent by the round. */
  epsilon: number;
  /** Differential-privacy δ. */
  delta: number;
}

/** A registered version. */
export interface ModelVersion {
  contentHash: string;
  /** null for the genesis version. */
  parentHash: string | null;
  uri: string;
  roundId: number;
  contributorsRoot: string;
  valBpc: number;
  epsilon: number;
  delta: number;
  registrant: string;
  /** Unix seconds. */
  registeredAt: number;
}

/** The contract's `Candidate` struct. */
export interface CandidateStruct {
  contentHash: string;
  parentHash: string;
  uri: string;
  roundId: bigint;
  contributorsRoot: string;
  valBpcMicro: bigint;
  epsilonMicro: bigint;
  deltaWad: bigint;
}

/** The contract's `ModelVersion` struct as ethers returns it. */
export interface ModelVersionStruct extends CandidateStruct {
  registrant: string;
  registeredAt: bigint;
}

/** A sha256 digest (64 hex, optional 0x) as the bytes32 the contracts store. */
export function hashToBytes32(hash: string): string {
  const hex = hash.startsWith('0x') ? hash.slice(2) : hash;
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error(`Not a sha256 digest (64 hex characters): ${hash}`);
  }
  return '0x' + hex.toLowerCase();
}

export function encodeCandidate(candidate: ModelCandidate): CandidateStruct {
  return {
    contentHash: hashToBytes32(candidate.contentHash),
    parentHash: hashToBytes32(candidate.parentHash),
    uri: candidate.uri,
    roundId: BigInt(candidate.roundId),
    contributorsRoot: candidate.contributorsRoot ?? ZERO_HASH,
    valBpcMicro: toMicro(candidate.valBpc),
    epsilonMicro: epsilonToMicro(candidate.epsilon),
    deltaWad: toWad(candidate.delta),
  };
}

export function decodeModelVersion(raw: ModelVersionStruct): ModelVersion {
  return {
    contentHash: raw.contentHash,
    parentHash: raw.parentHash === ZERO_HASH ? null : raw.parentHash,
    uri: raw.uri,
    roundId: Number(raw.roundId),
    contributorsRoot: raw.contributorsRoot,
    valBpc: fromMicro(raw.valBpcMicro),
    epsilon: raw.epsilonMicro === NO_DP_EPSILON_MICRO ? Infinity : fromMicro(raw.epsilonMicro),
    delta: fromWad(raw.deltaWad),
    registrant: raw.registrant,
    registeredAt: Number(raw.registeredAt),
  };
}

/**
 * How ε = ∞ (a model trained without noise: no differential-privacy guarantee) is stored in the
 * registry's uint64 `epsilonMicro`: the largest value, which no finite ε below 1.8e13 reaches.
 */
export const NO_DP_EPSILON_MICRO = 2n ** 64n - 1n;

function epsilonToMicro(epsilon: number): bigint {
  if (epsilon === Infinity) return NO_DP_EPSILON_MICRO;
  if (!(epsilon >= 0)) throw new Error(`ε must be ≥ 0 or Infinity, got ${epsilon}`);
  return toMicro(epsilon);
}
