// An update commitment: the client's EIP-712 signature over (round, base model, contributor,
// sha256 of the frame, examples, size). It binds an upload to one round and one base model, so
// replaying it into another round or onto another model fails verification; its digest is the
// leaf the coordinator puts in the round's commitment Merkle root on chain.
import { TypedDataEncoder, verifyTypedData, type Signer, type TypedDataDomain } from 'ethers';
import { ProtocolError } from './errors.ts';
import type { UploadBegin } from './messages.ts';

export const COMMITMENT_TYPES = {
  UpdateCommitment: [
    { name: 'roundId', type: 'uint64' },
    { name: 'baseModel', type: 'bytes32' },
    { name: 'contributor', type: 'address' },
    { name: 'updateSha256', type: 'bytes32' },
    { name: 'encoding', type: 'string' },
    { name: 'numExamples', type: 'uint64' },
    { name: 'byteLength', type: 'uint64' },
  ],
};

/** The signing domain: the federation on one chain (a signature on a testnet is no use on mainnet). */
export function commitmentDomain(chainId: number): TypedDataDomain {
  return { name: 'Commons Federation', version: '1', chainId };
}

type Unsigned = Omit<UploadBegin, 'signature'>;

function typedValue(upload: Unsigned): Record<string, unknown> {
  return {
    roundId: upload.roundId,
    baseModel: '0x' + upload.baseModel,
    contributor: upload.contributor,
    updateSha256: '0x' + upload.sha256,
    encoding: upload.encoding,
    numExamples: upload.numExamples,
    byteLength: upload.byteLength,
  };
}

export async function signCommitment(
  upload: Unsigned,
  signer: Signer,
  chainId: number,
): Promise<string> {
  return signer.signTypedData(commitmentDomain(chainId), COMMITMENT_TYPES, typedValue(upload));
}

/** The EIP-712 digest of a commitment (a bytes32 Merkle leaf). */
export function commitmentDigest(upload: Unsigned, chainId: number): string {
  return TypedDataEncoder.hash(commitmentDomain(chainId), COMMITMENT_TYPES, typedValue(upload));
}

/** Throws BAD_SIGNATURE unless the upload's signature recovers to its stated contributor. */
export function verifyCommitment(upload: UploadBegin, chainId: number): void {
  let signer: string;
  try {
    signer = verifyTypedData(
      commitmentDomain(chainId),
      COMMITMENT_TYPES,
      typedValue(upload),
      upload.signature,
    );
  } catch {
    throw new ProtocolError('BAD_SIGNATURE', 'the update signature is malformed');
  }
  if (signer.toLowerCase() !== upload.contributor.toLowerCase()) {
    throw new ProtocolError(
      'BAD_SIGNATURE',
      `the update signature was made by ${signer}, not ${upload.contributor}`,
    );
  }
}
