// Model versions and open-weights base models as the ModelRegistry contract records them.
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
  /**
   * The full version it builds on. Omitted: the candidate is a full version, its own base
   * (baseHash = contentHash). An adapter version gives its parent's baseHash.
   */
  baseHash?: string;
  /**
   * sha256 of the LoRA adapter checkpoint that, folded into the parent, gives contentHash.
   * Omitted: a full version.
   */
  adapterHash?: string;
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
  /** The full version it builds on (its nearest full ancestor; itself when it is full). */
  baseHash: string;
  /** The adapter folded into the parent to make it; null for a full version. */
  adapterHash: string | null;
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
  baseHash: string;
  adapterHash: string;
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
    baseHash: hashToBytes32(candidate.baseHash ?? candidate.contentHash),
    adapterHash: candidate.adapterHash ? hashToBytes32(candidate.adapterHash) : ZERO_HASH,
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
    baseHash: raw.baseHash,
    adapterHash: raw.adapterHash === ZERO_HASH ? null : raw.adapterHash,
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

/**
 * How a base model's files are laid out, as ModelRegistry records it: a Hugging Face folder
 * (config.json, safetensors, tokenizer) or one GGUF file.
 */
export const BASE_MODEL_FORMATS = ['hf-folder', 'gguf'] as const;
export type BaseModelFormat = (typeof BASE_MODEL_FORMATS)[number];

/** What a proposal states about an open-weights base model it records. */
export interface BaseModelInput {
  /** The model-library identity: sha256 of the canonical manifest of its files (64 hex, optional 0x). */
  identity: string;
  format: BaseModelFormat;
  /** The licence it is published under, as the hub names it ("apache-2.0", "llama3.2"). */
  licence: string;
  /** Its public name ("HuggingFaceTB/SmolLM2-135M-Instruct"). */
  name: string;
}

/** A recorded base model. */
export interface BaseModelRecord {
  /** 0x-prefixed bytes32. */
  identity: string;
  /** As recorded; one of BASE_MODEL_FORMATS for every record this client proposes. */
  format: string;
  licence: string;
  name: string;
  /** Who recorded it: the timelock, for every record made through governance. */
  registrant: string;
  /** Unix seconds. */
  registeredAt: number;
}

/** The contract's `BaseModel` struct as ethers returns it. */
export interface BaseModelStruct {
  identity: string;
  format: string;
  licence: string;
  name: string;
  registrant: string;
  registeredAt: bigint;
}

export function decodeBaseModel(raw: BaseModelStruct): BaseModelRecord {
  return {
    identity: raw.identity,
    format: raw.format,
    licence: raw.licence,
    name: raw.name,
    registrant: raw.registrant,
    registeredAt: Number(raw.registeredAt),
  };
}

/**
 * The arguments of `recordBaseModel`, checked as the contract checks them (and the format
 * against the ones Commons reads), so a proposal that would revert on execution is refused
 * before anyone votes on it.
 */
export function encodeBaseModel(model: BaseModelInput): [string, string, string, string] {
  if (!(BASE_MODEL_FORMATS as readonly string[]).includes(model.format)) {
    throw new Error(
      `A base model's format is one of ${BASE_MODEL_FORMATS.join(', ')}, not "${model.format}"`,
    );
  }
  if (model.name.trim() === '') throw new Error("A base model's name must not be empty");
  if (model.licence.trim() === '') {
    throw new Error(`State the licence ${model.name} is published under (e.g. apache-2.0)`);
  }
  const identity = hashToBytes32(model.identity);
  if (identity === ZERO_HASH) throw new Error("A base model's identity must not be zero");
  return [identity, model.format, model.licence, model.name];
}
