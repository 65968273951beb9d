// Vectors in Z_M, M a power of two ≤ 2^32, as Uint32Array: adding masked vectors and
// reading them off the wire. A bitwise AND reduces mod M; storing into a Uint32Array wraps
// the 2^32 case.
import { isLE } from '@noble/ciphers/utils.js';

/** acc ← acc + v (mod modulusRange). */
export function addVectorInto(acc: Uint32Array, v: Uint32Array, modulusRange: number): void {
  if (acc.length !== v.length) {
    throw new Error(`cannot add a vector of ${v.length} words to one of ${acc.length}`);
  }
  const m = modulusRange - 1;
  for (let i = 0; i < acc.length; i++) acc[i] = ((acc[i] as number) + (v[i] as number)) & m;
}

/** The little-endian bytes of a ring vector (a view, no copy, when aligned). */
export function ringVectorToBytes(v: Uint32Array): Uint8Array {
  if (!isLE) throw new Error('secure aggregation encodes ring vectors little-endian only');
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** A ring vector from its little-endian bytes (copied when the bytes are unaligned). */
export function ringVectorFromBytes(bytes: Uint8Array): Uint32Array {
  if (!isLE) throw new Error('secure aggregation decodes ring vectors little-endian only');
  if (bytes.byteLength % 4 !== 0) {
    throw new Error(
      `a ring vector is a whole number of 4-byte words, got ${bytes.byteLength} bytes`,
    );
  }
  if (bytes.byteOffset % 4 === 0)
    return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  // Copy into a fresh buffer: a Node Buffer's slice() is a view of its (pooled) memory.
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Uint32Array(copy.buffer);
}
