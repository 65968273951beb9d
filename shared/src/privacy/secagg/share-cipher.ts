// One encrypted share packet, from a node to one neighbour: its Shamir shares of b and of
// s_sk at the neighbour's x. ChaCha20-Poly1305 under the pair's HKDF key; the associated
// data binds round id, sender and receiver, so a packet replayed into another round or
// redirected to another node fails authentication.
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { concatBytes, randomBytes } from '@noble/hashes/utils.js';
import { roundContext } from './keys.ts';
import { SECRET_BYTES } from './shamir.ts';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** nonce ‖ ciphertext of (b share ‖ s_sk share) ‖ tag. */
export const SHARE_CIPHERTEXT_BYTES = NONCE_BYTES + 2 * SECRET_BYTES + TAG_BYTES;

export interface SharePair {
  selfMaskShare: Uint8Array;
  maskKeyShare: Uint8Array;
}

function associatedData(roundId: number, from: number, to: number): Uint8Array {
  const ids = new Uint8Array(8);
  const view = new DataView(ids.buffer);
  view.setUint32(0, from);
  view.setUint32(4, to);
  return concatBytes(roundContext('share', roundId), ids);
}

export function encryptShares(
  key: Uint8Array,
  roundId: number,
  from: number,
  to: number,
  shares: SharePair,
): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const sealed = chacha20poly1305(key, nonce, associatedData(roundId, from, to)).encrypt(
    concatBytes(shares.selfMaskShare, shares.maskKeyShare),
  );
  return concatBytes(nonce, sealed);
}

/** Opens a packet; throws when it was not sealed for this round, sender and receiver. */
export function decryptShares(
  key: Uint8Array,
  roundId: number,
  from: number,
  to: number,
  ciphertext: Uint8Array,
): SharePair {
  if (ciphertext.length !== SHARE_CIPHERTEXT_BYTES) {
    throw new Error(`a share packet is ${SHARE_CIPHERTEXT_BYTES} bytes, got ${ciphertext.length}`);
  }
  const plain = chacha20poly1305(
    key,
    ciphertext.subarray(0, NONCE_BYTES),
    associatedData(roundId, from, to),
  ).decrypt(ciphertext.subarray(NONCE_BYTES));
  return {
    selfMaskShare: plain.slice(0, SECRET_BYTES),
    maskKeyShare: plain.slice(SECRET_BYTES),
  };
}
