// Authenticated encryption of vault records: AES-256-GCM with a fresh random 96-bit nonce per
// write and the record's kind and id as associated data, so a record cannot be decrypted under
// another name (swapping two files on disk is detected, not silently accepted).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const FORMAT = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** What the ciphertext is bound to: its kind and id. */
export interface RecordName {
  kind: string;
  id: string;
}

function associatedData({ kind, id }: RecordName): Buffer {
  return Buffer.from(`commons-vault:${FORMAT}:${kind}:${id}`, 'utf8');
}

/** format byte ‖ nonce ‖ ciphertext ‖ tag. */
export function seal(key: Uint8Array, name: RecordName, plaintext: Uint8Array): Buffer {
  if (key.length !== KEY_BYTES) throw new Error('a vault key is 32 bytes');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(name));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT), nonce, body, cipher.getAuthTag()]);
}

/** Thrown when a sealed record does not authenticate (tampered, truncated, wrong key or name). */
export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

export function open(key: Uint8Array, name: RecordName, sealed: Uint8Array): Buffer {
  if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== FORMAT) {
    throw new SealError(`${name.kind} ${name.id} is truncated or not a vault record`);
  }
  const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(name));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new SealError(`${name.kind} ${name.id} failed authentication`);
  }
}
