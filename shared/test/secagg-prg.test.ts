import { describe, expect, it } from 'vitest';
import { hexToBytes } from '@noble/hashes/utils.js';
import {
  addMaskInto,
  addMasksInto,
  chachaKeystream,
  defaultChaCha,
  expandMask,
} from '../src/privacy/secagg/prg.ts';
import { ringVectorFromBytes } from '../src/privacy/secagg/ring.ts';

describe('ChaCha20 mask PRG', () => {
  it('matches the RFC 8439 keystream (appendix A.1, test vector 1: zero key, zero nonce)', () => {
    const expected =
      '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7' +
      'da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586';
    expect(chachaKeystream(new Uint8Array(32), 64, 'noble')).toEqual(hexToBytes(expected));
    expect(chachaKeystream(new Uint8Array(32), 64, 'openssl')).toEqual(hexToBytes(expected));
    expect(chachaKeystream(new Uint8Array(32), 64, 'wasm')).toEqual(hexToBytes(expected));
  });

  it('the WebAssembly kernel streams the same words as OpenSSL at every length around its 64-word groups', () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => (i * 91 + 5) & 0xff);
    for (const words of [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 70001]) {
      expect(chachaKeystream(seed, words * 4, 'wasm')).toEqual(
        chachaKeystream(seed, words * 4, 'openssl'),
      );
    }
  });

  it('folding many masks at once equals folding them one by one, in every implementation', () => {
    const masks = Array.from({ length: 7 }, (_, k) => ({
      seed: new Uint8Array(32).fill(k * 13 + 1),
      sign: (k % 3 === 0 ? -1 : 1) as 1 | -1,
    }));
    for (const modulus of [2 ** 32, 2 ** 20]) {
      const v = Uint32Array.from({ length: 4099 }, (_, i) => (i * 2654435761) % modulus);
      const oneByOne = v.slice();
      for (const { seed, sign } of masks) addMaskInto(oneByOne, seed, sign, modulus, 'noble');
      for (const impl of ['wasm', 'openssl', 'noble'] as const) {
        const batched = v.slice();
        addMasksInto(batched, masks, modulus, impl);
        expect(batched).toEqual(oneByOne);
      }
    }
  });

  it('OpenSSL added by the WebAssembly ring add folds the same masks as the ChaCha20 kernel, at lengths around its groups and 64 KiB chunks', () => {
    const masks = Array.from({ length: 3 }, (_, k) => ({
      seed: Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + k * 7 + 3) & 0xff),
      sign: (k === 1 ? -1 : 1) as 1 | -1,
    }));
    for (const words of [1, 3, 4, 5, 63, 64, 65, 16383, 16384, 16385, 16448, 40001]) {
      const v = Uint32Array.from({ length: words }, (_, i) => (i * 2654435761) % 2 ** 24);
      const viaKernel = v.slice();
      addMasksInto(viaKernel, masks, 2 ** 24, 'wasm');
      const viaOpenssl = v.slice();
      addMasksInto(viaOpenssl, masks, 2 ** 24, 'openssl');
      expect(viaOpenssl).toEqual(viaKernel);
    }
  });

  it('WebAssembly (the default here), OpenSSL and @noble/ciphers produce the identical stream across chunk boundaries', () => {
    expect(defaultChaCha).toBe('wasm');
    const seed = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    // 2.5 chunks of 64 KiB plus an odd tail, so partial blocks and counters past one chunk are covered.
    const length = 2 * 65536 + 32768 + 13;
    expect(chachaKeystream(seed, length, 'openssl')).toEqual(
      chachaKeystream(seed, length, 'noble'),
    );
    expect(chachaKeystream(seed, length, 'wasm')).toEqual(chachaKeystream(seed, length, 'noble'));
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

  it('reads ring words from an unaligned view of a pooled Node Buffer (how socket chunks arrive)', () => {
    const pool = Buffer.alloc(64);
    const words = Uint32Array.of(1, 0xffffffff, 123456789);
    pool.set(new Uint8Array(words.buffer), 5);
    const unaligned = pool.subarray(5, 17);
    expect(unaligned.byteOffset % 4).not.toBe(0);
    expect(ringVectorFromBytes(unaligned)).toEqual(words);
  });
});
