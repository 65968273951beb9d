// Mask expansion: a 32-byte seed becomes one pseudo-random ring element per coordinate, the
// ChaCha20 keystream (RFC 8439, zero nonce, block counter from 0) read as little-endian 32-bit
// words. Three implementations produce the identical stream, and a test holds them to the same
// bytes: a WebAssembly SIMD kernel that adds the keystream into the vector as it makes it
// (chacha-kernel.ts; the default wherever WebAssembly SIMD runs, Node and browsers alike);
// OpenSSL's ChaCha20 through node:crypto, its keystream added by the same module's SIMD add
// (faster, but only on a thread with a small heap: see chacha-kernel.ts and mask-thread.ts);
// and @noble/ciphers in portable JavaScript.
import { chacha20 } from '@noble/ciphers/chacha.js';
import { isLE } from '@noble/ciphers/utils.js';
import { ChaChaMaskKernel } from './chacha-kernel.ts';

type CreateCipheriv = (
  algorithm: string,
  key: Uint8Array,
  iv: Uint8Array,
) => { update(data: Uint8Array): Uint8Array; final(): Uint8Array };

// getBuiltinModule resolves synchronously in Node ≥ 22 and is absent in browsers, so this
// file imports nowhere that lacks node:crypto.
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as
  { createCipheriv: CreateCipheriv; getCiphers(): string[] } | undefined;

/** Whether node:crypto has a raw ChaCha20 cipher: OpenSSL does, Electron's BoringSSL does not. */
export const hasOpensslChaCha = nodeCrypto?.getCiphers().includes('chacha20') ?? false;

/** OpenSSL's 16-byte ChaCha20 IV: the 32-bit little-endian block counter, then the nonce. */
function opensslCipher(seed: Uint8Array) {
  if (!nodeCrypto || !hasOpensslChaCha) {
    throw new Error("OpenSSL ChaCha20 needs node:crypto's chacha20 cipher, which is absent here");
  }
  return nodeCrypto.createCipheriv('chacha20', seed, new Uint8Array(16));
}

export type ChaChaImplementation = 'wasm' | 'openssl' | 'noble';

const kernel = ChaChaMaskKernel.create();

/** Which implementation {@link addMasksInto} uses here. */
export const defaultChaCha: ChaChaImplementation = kernel
  ? 'wasm'
  : hasOpensslChaCha
    ? 'openssl'
    : 'noble';

/** One mask to fold into a vector: PRG(seed), added (+1) or taken away (−1). */
export interface SignedMask {
  seed: Uint8Array;
  sign: 1 | -1;
}

/** Words per keystream chunk: 64 KiB keeps scratch memory flat whatever the vector length. */
const CHUNK_WORDS = 16384;
const CHUNK_BYTES = CHUNK_WORDS * 4;
const BLOCK_BYTES = 64;
const ZERO_NONCE = new Uint8Array(12);
const ZEROS = new Uint8Array(CHUNK_BYTES);

function checkSeed(seed: Uint8Array): void {
  if (seed.length !== 32) throw new Error(`a mask seed is 32 bytes, got ${seed.length}`);
  if (!isLE) throw new Error('secure aggregation reads keystream words little-endian only');
}

/**
 * Calls `sink` with successive keystream chunks as Uint32 words (each a view of one scratch
 * buffer, valid only during the call) until `words` words have been produced.
 */
function keystreamChunks(
  seed: Uint8Array,
  words: number,
  impl: ChaChaImplementation,
  sink: (chunk: Uint32Array, offset: number) => void,
): void {
  checkSeed(seed);
  if (impl === 'wasm') {
    // The kernel only adds into a vector: the stream is what it adds to zeros.
    const stream = new Uint32Array(words);
    addMasksInto(stream, [{ seed, sign: 1 }], 2 ** 32, 'wasm');
    sink(stream, 0);
    return;
  }
  const scratch = new Uint8Array(CHUNK_BYTES);
  const view = new Uint32Array(scratch.buffer);
  if (impl === 'openssl') {
    const cipher = opensslCipher(seed);
    for (let offset = 0; offset < words; offset += CHUNK_WORDS) {
      const n = Math.min(CHUNK_WORDS, words - offset);
      scratch.set(cipher.update(n === CHUNK_WORDS ? ZEROS : ZEROS.subarray(0, n * 4)));
      sink(view.subarray(0, n), offset);
    }
    return;
  }
  for (let offset = 0; offset < words; offset += CHUNK_WORDS) {
    const n = Math.min(CHUNK_WORDS, words - offset);
    const counter = (offset * 4) / BLOCK_BYTES; // chunks are whole blocks, so no block splits
    chacha20(seed, ZERO_NONCE, ZEROS.subarray(0, n * 4), scratch.subarray(0, n * 4), counter);
    sink(view.subarray(0, n), offset);
  }
}

/** The first `byteLength` keystream bytes (for tests and cross-checks). */
export function chachaKeystream(
  seed: Uint8Array,
  byteLength: number,
  impl: ChaChaImplementation = defaultChaCha,
): Uint8Array {
  const words = Math.ceil(byteLength / 4);
  const out = new Uint8Array(words * 4);
  keystreamChunks(seed, words, impl, (chunk, offset) => {
    out.set(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length * 4), offset * 4);
  });
  return out.subarray(0, byteLength);
}

/**
 * acc ← acc + Σ sign · PRG(seed) (mod modulusRange) over `masks`, without materialising any
 * mask. The modulus is a power of two ≤ 2^32, so a bitwise AND reduces and storing into a
 * Uint32Array wraps the 2^32 case.
 */
export function addMasksInto(
  acc: Uint32Array,
  masks: readonly SignedMask[],
  modulusRange: number,
  impl: ChaChaImplementation = defaultChaCha,
): void {
  for (const { seed } of masks) checkSeed(seed);
  if (impl === 'wasm') {
    if (!kernel) throw new Error('the ChaCha20 WebAssembly kernel needs WebAssembly SIMD');
    kernel.addMasks(acc, masks, modulusRange);
    return;
  }
  if (impl === 'openssl' && kernel) {
    kernel.addKeystreams(acc, masks, modulusRange, (seed) => {
      const cipher = opensslCipher(seed);
      return (bytes) => cipher.update(bytes === CHUNK_BYTES ? ZEROS : ZEROS.subarray(0, bytes));
    });
    return;
  }
  const m = modulusRange - 1;
  for (const { seed, sign } of masks) {
    keystreamChunks(seed, acc.length, impl, (chunk, offset) => {
      const n = chunk.length;
      if (sign === 1) {
        for (let i = 0; i < n; i++)
          acc[offset + i] = ((acc[offset + i] as number) + (chunk[i] as number)) & m;
      } else {
        for (let i = 0; i < n; i++)
          acc[offset + i] = ((acc[offset + i] as number) - (chunk[i] as number)) & m;
      }
    });
  }
}

/** acc ← acc + sign · PRG(seed) (mod modulusRange): {@link addMasksInto} for one mask. */
export function addMaskInto(
  acc: Uint32Array,
  seed: Uint8Array,
  sign: 1 | -1,
  modulusRange: number,
  impl: ChaChaImplementation = defaultChaCha,
): void {
  addMasksInto(acc, [{ seed, sign }], modulusRange, impl);
}

/**
 * Folds masks into a vector somewhere else (another thread) and resolves with the vector,
 * which may be a new view: `acc` itself may have been handed over and be unusable after.
 */
export type MaskFold = (
  acc: Uint32Array,
  masks: readonly SignedMask[],
  modulusRange: number,
) => Promise<Uint32Array>;

/** A fresh mask vector PRG(seed) (mod modulusRange) of `length` words. */
export function expandMask(
  seed: Uint8Array,
  length: number,
  modulusRange: number,
  impl: ChaChaImplementation = defaultChaCha,
): Uint32Array {
  const out = new Uint32Array(length);
  addMaskInto(out, seed, 1, modulusRange, impl);
  return out;
}
