import { describe, expect, it } from 'vitest';
import { hexToBytes } from '@noble/hashes/utils.js';
import {
  addMaskInto,
  chachaKeystream,
  defaultChaCha,
  expandMask,
} from '../src/privacy/secagg/prg.ts';

describe('ChaCha20 mask PRG', () => {
  it('matches the RFC 8439 keystream (appendix A.1, test vector 1: zero key, zero nonce)', () => {
    const expected =
      '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7' +
      'da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586';
    expect(chachaKeystream(new Uint8Array(32), 64, 'noble')).toEqual(hexToBytes(expected));
    expect(chachaKeystream(new Uint8Array(32), 64, 'openssl')).toEqual(hexToBytes(expected));
  });

  it('OpenSSL and @noble/ciphers produce the identical stream across chunk boundaries', () => {
    expect(defaultChaCha).toBe('openssl');
    const seed = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    // 2.5 chunks of 64 KiB plus an odd tail, so partial blocks and counters past one chunk are covered.
    const length = 2 * 65536 + 32768 + 13;
    expect(chachaKeystream(seed, length, 'openssl')).toEqual(
      chachaKeystream(seed, length, 'noble'),
    );
    expect(expandMask(seed, 40000, 2 ** 32, 'openssl')).toEqual(
      expandMask(seed, 40000, 2 ** 32, 'noble'),
    );
  });

  it('adding then subtracting a mask restores the vector, and masks stay inside the ring', () => {
    const seed = new Uint8Array(32).fill(9);
    const v = Uint32Array.from({ length: 5000 }, (_, i) => (i * 2654435761) % 2 ** 20);
    const acc = v.slice();
    addMaskInto(acc, seed, 1, 2 ** 20);
    expect(acc).not.toEqual(v);
    expect(acc.every((x) => x < 2 ** 20)).toBe(true);
    addMaskInto(acc, seed, -1, 2 ** 20);
    expect(acc).toEqual(v);
  });

  it('different seeds give different masks', () => {
    const a = expandMask(new Uint8Array(32).fill(1), 64, 2 ** 32);
    const b = expandMask(new Uint8Array(32).fill(2), 64, 2 ** 32);
    expect(a).not.toEqual(b);
    expect(() => expandMask(new Uint8Array(16), 4, 2 ** 32)).toThrow(/32 bytes, got 16/);
  });
});
