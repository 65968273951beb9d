import { Signature, Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import {
  agree,
  defaultX25519,
  generateKeyPair,
  pairwiseMaskSeed,
  shareEncryptionKey,
  signAdvertisement,
  verifyAdvertisement,
} from '../src/privacy/secagg/keys.ts';

describe('SecAgg+ key agreement (X25519)', () => {
  it('matches RFC 7748 §6.1 with OpenSSL and with @noble/curves', () => {
    const alice = hexToBytes('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const bobPublic = hexToBytes(
      'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
    );
    const expected = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(bytesToHex(agree(alice, bobPublic, 'openssl'))).toBe(expected);
    expect(bytesToHex(agree(alice, bobPublic, 'noble'))).toBe(expected);
  });

  it('OpenSSL and @noble/curves agree on the protocol’s own keys, both ways round', () => {
    expect(defaultX25519).toBe('openssl');
    for (let i = 0; i < 20; i++) {
      const a = generateKeyPair();
      const b = generateKeyPair();
      const secret = agree(a.secretKey, b.publicKey, 'openssl');
      expect(agree(a.secretKey, b.publicKey, 'noble')).toEqual(secret);
      expect(agree(b.secretKey, a.publicKey, 'openssl')).toEqual(secret);
    }
    // The derived keys are symmetric in the pair, as the share cipher and the masks need.
    const a = generateKeyPair();
    const b = generateKeyPair();
    expect(shareEncryptionKey(a.secretKey, b.publicKey, 7)).toEqual(
      shareEncryptionKey(b.secretKey, a.publicKey, 7),
    );
    expect(pairwiseMaskSeed(a.secretKey, b.publicKey, 7)).toEqual(
      pairwiseMaskSeed(b.secretKey, a.publicKey, 7),
    );
  });

  it('both refuse a low-order public key, and keys of the wrong size', () => {
    const { secretKey } = generateKeyPair();
    // u = 0 and u = 1 are points of small order: the shared secret would be all zeros.
    for (const lowOrder of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
      expect(() => agree(secretKey, lowOrder, 'openssl')).toThrow();
      expect(() => agree(secretKey, lowOrder, 'noble')).toThrow();
    }
    expect(() => agree(secretKey, new Uint8Array(31))).toThrow(/32 bytes/);
  });
});

describe('SecAgg+ key advertisements (secp256k1, EIP-191)', () => {
  const wallet = new Wallet('0x' + '42'.repeat(32));
  const keys = {
    roundId: 7,
    nodeId: 3,
    address: wallet.address,
    encryptionKey: generateKeyPair().publicKey,
    maskingKey: generateKeyPair().publicKey,
    selfMaskCommitment: new Uint8Array(32).fill(5),
  };

  it('OpenSSL verification and key recovery accept the same signed keys and refuse the same forgeries', async () => {
    const { signature, signerKey } = await signAdvertisement(keys, wallet);
    expect(signerKey).toEqual(
      Uint8Array.from(Buffer.from(wallet.signingKey.publicKey.slice(2), 'hex')),
    );
    // A signer that does not expose its key (a hardware or browser wallet): recovered, same key.
    const opaque = {
      getAddress: () => wallet.getAddress(),
      signMessage: (m: Uint8Array | string) => wallet.signMessage(m),
    };
    expect((await signAdvertisement(keys, opaque)).signerKey).toEqual(signerKey);
    const other = Wallet.createRandom();
    const forged = await signAdvertisement(keys, other);
    const flipped = signature.slice();
    flipped[10] = (flipped[10] as number) ^ 1;
    // The same signature with s replaced by n − s: valid ECDSA, but not in Ethereum's low-s form.
    const sig = Signature.from(Buffer.from(signature).toString('hex').replace(/^/, '0x'));
    const highS = Uint8Array.from(Buffer.from(sig.serialized.slice(2), 'hex'));
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    highS.set(Buffer.from((n - BigInt(sig.s)).toString(16).padStart(64, '0'), 'hex'), 32);
    highS[64] = (highS[64] as number) === 27 ? 28 : 27;
    for (const impl of ['openssl', 'noble'] as const) {
      expect(verifyAdvertisement(keys, signature, signerKey, impl)).toBe(true);
      // another account's key and signature, or its key with ours: refused (address mismatch)
      expect(verifyAdvertisement(keys, forged.signature, forged.signerKey, impl)).toBe(false);
      expect(verifyAdvertisement(keys, signature, forged.signerKey, impl)).toBe(false);
      expect(verifyAdvertisement(keys, flipped, signerKey, impl)).toBe(false);
      expect(verifyAdvertisement({ ...keys, nodeId: 4 }, signature, signerKey, impl)).toBe(false);
      expect(verifyAdvertisement(keys, highS, signerKey, impl)).toBe(false);
      expect(verifyAdvertisement(keys, signature, signerKey.subarray(1), impl)).toBe(false);
    }
  });
});
