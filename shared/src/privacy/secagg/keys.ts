// The key material of one client in one round, and what binds it to the client's Ethereum
// identity. Two X25519 key pairs, as in Bonawitz et al.: (c_pk, c_sk) for encrypting shares
// to neighbours, (s_pk, s_sk) for pairwise masks. The client signs both public keys and a
// commitment to its self-mask seed b (EIP-191 personal_sign), so the server and neighbours
// check them against its address, and a reconstructed b or s_sk can be checked against what
// the client committed to before anyone held a share.
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes } from '@noble/ciphers/utils.js';
import { concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import {
  computeAddress,
  getAddress,
  getBytes,
  hashMessage,
  hexlify,
  SigningKey,
  verifyMessage,
} from 'ethers';
import type * as NodeCrypto from 'node:crypto';
import { randomFieldSecret } from './shamir.ts';

// Key agreement through OpenSSL's X25519 (node:crypto) where it exists: ~0.1 ms against ~1.4 ms
// for @noble/curves (measured here), and a SecAgg+ client makes two agreements per neighbour
// (share keys, then pairwise masks): at k = 31 that was a fifth of its compute. Browsers have
// no synchronous native X25519, so they use @noble/curves; a test holds the two to the same
// secrets. Looked up at run time so that bundling this module for a browser pulls in no Node
// built-in (as prg.ts and checkpoint/hash.ts do).
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as typeof NodeCrypto | undefined;

/** OpenSSL through node:crypto, or portable JavaScript (@noble): for key agreement and signature checks. */
export type X25519Implementation = 'openssl' | 'noble';

/** Which implementation key agreement and advertisement checks use here. */
export const defaultX25519: X25519Implementation = nodeCrypto ? 'openssl' : 'noble';

// DER prefixes of a raw X25519 key (RFC 8410): OpenSSL takes keys as PKCS#8 and SPKI.
const PKCS8_PREFIX = hexToBytes('302e020100300506032b656e04220420');
const SPKI_PREFIX = hexToBytes('302a300506032b656e032100');

/** The label under which every derivation of this protocol version is domain-separated. */
export const SECAGG_DOMAIN = 'commons/secagg/v1';

export interface X25519KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

/** A key pair whose secret is below the Shamir field prime, so it can be secret-shared as is. */
export function generateKeyPair(): X25519KeyPair {
  const secretKey = randomFieldSecret();
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(secretKey);
}

function u32be(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v);
  return out;
}

function u64be(v: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(v));
  return out;
}

/** The bytes every round-bound derivation and associated data starts with. */
export function roundContext(label: string, roundId: number): Uint8Array {
  return concatBytes(utf8ToBytes(`${SECAGG_DOMAIN}/${label}`), u64be(roundId));
}

/** The commitment to a self-mask seed b: a hash, so it reveals nothing of b (32 random bytes). */
export function selfMaskCommitment(b: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8ToBytes(`${SECAGG_DOMAIN}/self-mask-commitment`), b));
}

export function checkSelfMaskCommitment(b: Uint8Array, commitment: Uint8Array): boolean {
  return equalBytes(selfMaskCommitment(b), commitment);
}

/** What a client signs: the round, its node id and address, both public keys and its b commitment. */
export interface AdvertisedKeys {
  roundId: number;
  nodeId: number;
  address: string;
  encryptionKey: Uint8Array;
  maskingKey: Uint8Array;
  selfMaskCommitment: Uint8Array;
}

export function advertisementDigest(keys: AdvertisedKeys): Uint8Array {
  return sha256(
    concatBytes(
      roundContext('keys', keys.roundId),
      u32be(keys.nodeId),
      getBytes(getAddress(keys.address)),
      keys.encryptionKey,
      keys.maskingKey,
      keys.selfMaskCommitment,
    ),
  );
}

/** The part of an ethers Signer the client needs (a Wallet, a browser wallet, a hardware signer). */
export interface SecAggSigner {
  getAddress(): Promise<string>;
  signMessage(message: Uint8Array | string): Promise<string>;
}

/** A signed advertisement: the signature, and the signing account's public key (see below). */
export interface AdvertisementSignature {
  signature: Uint8Array;
  /** Uncompressed secp256k1 public key, 0x04 ‖ x ‖ y. */
  signerKey: Uint8Array;
}

export async function signAdvertisement(
  keys: AdvertisedKeys,
  signer: SecAggSigner,
): Promise<AdvertisementSignature> {
  const digest = advertisementDigest(keys);
  const signature = await signer.signMessage(digest);
  // A wallet holding its key says it; any other signer (a hardware wallet, a browser one)
  // yields it from one signature. A wrong key only gets this client refused by the others.
  const known = (signer as { signingKey?: { publicKey?: unknown } }).signingKey?.publicKey;
  const signerKey = getBytes(
    typeof known === 'string' && known.length === 132
      ? known
      : SigningKey.recoverPublicKey(hashMessage(digest), signature),
  );
  return { signature: getBytes(signature), signerKey };
}

// The DER header of a secp256k1 SubjectPublicKeyInfo (RFC 5480, id-ecPublicKey + secp256k1),
// followed by the uncompressed point: how OpenSSL takes a raw public key.
const SECP256K1_SPKI_PREFIX = hexToBytes('3056301006072a8648ce3d020106052b8104000a034200');

const SECP256K1_HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

function isLowS(signature: Uint8Array): boolean {
  return BigInt(hexlify(signature.subarray(32, 64))) <= SECP256K1_HALF_ORDER;
}

/**
 * True when `signerKey` belongs to `keys.address` and the signature over these keys verifies
 * under it. Where OpenSSL is at hand that is one ECDSA verification (keccak-256 of the
 * EIP-191 message), measured at 0.3 ms against 2.0 ms for recovering the key in JavaScript;
 * a SecAgg+ client checks every neighbour's keys, 34 of them at 1,000 clients. Elsewhere the
 * key is recovered from the signature and compared, which checks the same statement.
 */
export function verifyAdvertisement(
  keys: AdvertisedKeys,
  signature: Uint8Array,
  signerKey: Uint8Array,
  impl: X25519Implementation = defaultX25519,
): boolean {
  try {
    const address = getAddress(keys.address);
    if (signerKey.length !== 65 || computeAddress(hexlify(signerKey)) !== address) return false;
    const digest = advertisementDigest(keys);
    // OpenSSL takes either s; ethers (the other path) only the low one, as Ethereum does.
    if (impl === 'openssl' && nodeCrypto && signature.length === 65 && isLowS(signature)) {
      const publicKey = nodeCrypto.createPublicKey({
        key: Buffer.from(concatBytes(SECP256K1_SPKI_PREFIX, signerKey)),
        format: 'der',
        type: 'spki',
      });
      // The EIP-191 personal message: the prefix with the length, then the 32-byte digest.
      const message = concatBytes(
        utf8ToBytes(`\x19Ethereum Signed Message:\n${digest.length}`),
        digest,
      );
      return nodeCrypto.verify(
        'keccak-256',
        message,
        { key: publicKey, dsaEncoding: 'ieee-p1363' },
        signature.subarray(0, 64),
      );
    }
    return verifyMessage(digest, hexlify(signature)) === address;
  } catch {
    return false;
  }
}

// A client agrees with every neighbour twice on the same secret key: parse it into OpenSSL once.
const privateKeys = new WeakMap<Uint8Array, NodeCrypto.KeyObject>();

function privateKeyObject(crypto: typeof NodeCrypto, secretKey: Uint8Array): NodeCrypto.KeyObject {
  let key = privateKeys.get(secretKey);
  if (!key) {
    key = crypto.createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, secretKey]),
      format: 'der',
      type: 'pkcs8',
    });
    privateKeys.set(secretKey, key);
  }
  return key;
}

/**
 * The X25519 shared secret. A low-order public key (an all-zero shared secret) is refused by
 * throwing, by either implementation: noble throws, OpenSSL fails the derivation, and the check
 * below holds both to it.
 */
export function agree(
  secretKey: Uint8Array,
  publicKey: Uint8Array,
  impl: X25519Implementation = defaultX25519,
): Uint8Array {
  if (secretKey.length !== 32 || publicKey.length !== 32) {
    throw new Error(
      `X25519 keys are 32 bytes, got a ${secretKey.length}-byte secret and a ${publicKey.length}-byte public key`,
    );
  }
  let shared: Uint8Array;
  if (impl === 'openssl') {
    if (!nodeCrypto) throw new Error('OpenSSL X25519 needs node:crypto, which is absent here');
    shared = new Uint8Array(
      nodeCrypto.diffieHellman({
        privateKey: privateKeyObject(nodeCrypto, secretKey),
        publicKey: nodeCrypto.createPublicKey({
          key: Buffer.concat([SPKI_PREFIX, publicKey]),
          format: 'der',
          type: 'spki',
        }),
      }),
    );
  } else {
    shared = x25519.getSharedSecret(secretKey, publicKey);
  }
  if (shared.every((byte) => byte === 0)) {
    throw new Error('X25519 refused a low-order public key (all-zero shared secret)');
  }
  return shared;
}

/** The ChaCha20-Poly1305 key for shares between two nodes (symmetric in the pair). */
export function shareEncryptionKey(
  secretKey: Uint8Array,
  peerPublicKey: Uint8Array,
  roundId: number,
): Uint8Array {
  return pairKey(secretKey, peerPublicKey, roundId, 'share-key');
}

/** The PRG seed of the pairwise mask between two nodes (symmetric in the pair). */
export function pairwiseMaskSeed(
  secretKey: Uint8Array,
  peerPublicKey: Uint8Array,
  roundId: number,
): Uint8Array {
  return pairKey(secretKey, peerPublicKey, roundId, 'pairwise-mask');
}

/** HKDF-SHA256 of the pair's X25519 secret, salted by the round, separated by `purpose`. */
function pairKey(
  secretKey: Uint8Array,
  peerPublicKey: Uint8Array,
  roundId: number,
  purpose: 'share-key' | 'pairwise-mask',
): Uint8Array {
  return hkdf(
    sha256,
    agree(secretKey, peerPublicKey),
    roundContext('salt', roundId),
    utf8ToBytes(`${SECAGG_DOMAIN}/${purpose}`),
    32,
  );
}

/** The PRG seed of a node's self mask, from its secret-shared b. */
export function selfMaskSeed(b: Uint8Array, roundId: number): Uint8Array {
  return hkdf(
    sha256,
    b,
    roundContext('salt', roundId),
    utf8ToBytes(`${SECAGG_DOMAIN}/self-mask`),
    32,
  );
}
