// A masked update commitment: what a secure-aggregation contributor signs instead of an
// UpdateCommitment. The coordinator never sees the update, so the commitment cannot name its
// hash, encoding or example count (the weight is itself masked in the vector); it binds what
// the coordinator does see — the round, the base model, the contributor and the sha256 and
// size of the masked vector it uploaded — so a contributor cannot later deny the vector that
// went into the sum, and the coordinator cannot claim a contribution nobody signed. Its digest
// is the leaf of the round's contributors root on chain, as an UpdateCommitment's is.
import { TypedDataEncoder, verifyTypedData, type Signer } from 'ethers';
import { commitmentDomain } from './commitment.ts';
import { ProtocolError } from './errors.ts';

export const MASKED_COMMITMENT_TYPES = {
  MaskedUpdateCommitment: [
    { name: 'roundId', type: 'uint64' },
    { name: 'baseModel', type: 'bytes32' },
    { name: 'contributor', type: 'address' },
    { name: 'maskedSha256', type: 'bytes32' },
    { name: 'byteLength', type: 'uint64' },
  ],
};

export interface MaskedCommitment {
  roundId: number;
  /** Base model hash, 64 hex without 0x. */
  baseModel: string;
  contributor: string;
  /** sha256 of the masked vector's bytes, 64 hex without 0x. */
  maskedSha256: string;
  byteLength: number;
}

function typedValue(c: MaskedCommitment): Record<string, unknown> {
  return {
    roundId: c.roundId,
    baseModel: '0x' + c.baseModel,
    contributor: c.contributor,
    maskedSha256: '0x' + c.maskedSha256,
    byteLength: c.byteLength,
  };
}

export function signMaskedCommitment(
  c: MaskedCommitment,
  signer: Signer,
  chainId: number,
): Promise<string> {
  return signer.signTypedData(commitmentDomain(chainId), MASKED_COMMITMENT_TYPES, typedValue(c));
}

/** The EIP-712 digest (a bytes32 Merkle leaf). */
export function maskedCommitmentDigest(c: MaskedCommitment, chainId: number): string {
  return TypedDataEncoder.hash(commitmentDomain(chainId), MASKED_COMMITMENT_TYPES, typedValue(c));
}

/** Throws BAD_SIGNATURE unless `signature` recovers to the commitment's contributor. */
export function verifyMaskedCommitment(
  c: MaskedCommitment,
  signature: string,
  chainId: number,
): void {
  let signer: string;
  try {
    signer = verifyTypedData(
      commitmentDomain(chainId),
      MASKED_COMMITMENT_TYPES,
      typedValue(c),
      signature,
    );
  } catch {
    throw new ProtocolError('BAD_SIGNATURE', 'the masked update commitment signature is malformed');
  }
  if (signer.toLowerCase() !== c.contributor.toLowerCase()) {
    throw new ProtocolError(
      'BAD_SIGNATURE',
      `the masked update commitment was signed by ${signer}, not ${c.contributor}`,
    );
  }
}
