// Where the vault key comes from. The vault key is 32 random bytes, never derived from anything
// the member types; what differs is how it is kept wrapped in the data folder:
//  - keychain: the shell's KeyProvider (in Electron, safeStorage: DPAPI, Keychain, libsecret)
//    encrypts it, so nothing needs typing and the data folder alone does not open the vault;
//  - passphrase: a key derived with scrypt from the passphrase wraps it (AES-GCM), for machines
//    without a keychain (headless, web mode) or members who prefer it.
import { randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { z } from 'zod';
import { ApiError } from '../../api/define.ts';
import { KEY_BYTES, SealError, open, seal } from './seal.ts';

/**
 * An OS keychain, as the Electron main process offers one over `safeStorage`
 * (`encryptString`/`decryptString` on the hex of the bytes). It only wraps and unwraps bytes;
 * the key that does so stays in the operating system.
 */
export interface KeyProvider {
  /** For the key file and diagnostics, e.g. `electron-safeStorage`. */
  readonly name: string;
  /** Whether encryption is available now (safeStorage.isEncryptionAvailable()). */
  available(): Promise<boolean>;
  protect(secret: Uint8Array): Promise<Uint8Array>;
  unprotect(wrapped: Uint8Array): Promise<Uint8Array>;
}

/** scrypt cost: N = 2^15 at least (r = 8, p = 1), ~32 MiB and a fraction of a second per unlock. */
export const MIN_SCRYPT_LOG_N = 15;

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);
export const keyFileSchema = z.discriminatedUnion('protection', [
  z.strictObject({
    version: z.literal(1),
    protection: z.literal('passphrase'),
    kdf: z.strictObject({
      name: z.literal('scrypt'),
      logN: z.number().int().min(MIN_SCRYPT_LOG_N).max(22),
      r: z.literal(8),
      p: z.literal(1),
      salt: b64,
    }),
    /** The vault key sealed under the passphrase key: opening it is the passphrase check. */
    wrappedKey: b64,
    check: b64,
  }),
  z.strictObject({
    version: z.literal(1),
    protection: z.literal('keychain'),
    provider: z.string(),
    wrappedKey: b64,
    /** A constant sealed under the vault key: proves the keychain gave back the right key. */
    check: b64,
  }),
]);
export type KeyFile = z.infer<typeof keyFileSchema>;

const WRAP_NAME = { kind: 'key', id: 'vault-key' };
const CHECK_NAME = { kind: 'key', id: 'check' };
const CHECK_TEXT = Buffer.from('commons vault key check', 'utf8');

function scrypt(passphrase: string, salt: Buffer, logN: number): Promise<Buffer> {
  const N = 2 ** logN;
  // maxmem must exceed 128·N·r bytes, which Node's 32 MiB default does not at N = 2^15.
  const options: ScryptOptions = { N, r: 8, p: 1, maxmem: 256 * N * 8 + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCb(passphrase.normalize('NFKC'), salt, KEY_BYTES, options, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function createPassphraseKey(
  passphrase: string,
  logN = MIN_SCRYPT_LOG_N,
): Promise<{ key: Buffer; file: KeyFile }> {
  if (logN < MIN_SCRYPT_LOG_N) throw new Error(`scrypt log2(N) must be ≥ ${MIN_SCRYPT_LOG_N}`);
  const key = randomBytes(KEY_BYTES);
  const salt = randomBytes(16);
  const kek = await scrypt(passphrase, salt, logN);
  const file: KeyFile = {
    version: 1,
    protection: 'passphrase',
    kdf: { name: 'scrypt', logN, r: 8, p: 1, salt: salt.toString('base64') },
    wrappedKey: seal(kek, WRAP_NAME, key).toString('base64'),
    check: seal(key, CHECK_NAME, CHECK_TEXT).toString('base64'),
  };
  return { key, file };
}

export async function createKeychainKey(
  provider: KeyProvider,
): Promise<{ key: Buffer; file: KeyFile }> {
  const key = randomBytes(KEY_BYTES);
  const wrapped = await provider.protect(key);
  const file: KeyFile = {
    version: 1,
    protection: 'keychain',
    provider: provider.name,
    wrappedKey: Buffer.from(wrapped).toString('base64'),
    check: seal(key, CHECK_NAME, CHECK_TEXT).toString('base64'),
  };
  return { key, file };
}

/** The vault key from its key file; wrong-passphrase or integrity errors say what failed. */
export async function unwrapKey(
  file: KeyFile,
  secret: { passphrase?: string | undefined; provider?: KeyProvider | undefined },
): Promise<Buffer> {
  let key: Buffer;
  if (file.protection === 'passphrase') {
    if (secret.passphrase === undefined) {
      throw new ApiError('wrong-passphrase', 'this vault is protected by a passphrase: enter it');
    }
    const kek = await scrypt(
      secret.passphrase,
      Buffer.from(file.kdf.salt, 'base64'),
      file.kdf.logN,
    );
    try {
      key = open(kek, WRAP_NAME, Buffer.from(file.wrappedKey, 'base64'));
    } catch (err) {
      if (err instanceof SealError) throw new ApiError('wrong-passphrase', 'wrong passphrase');
      throw err;
    }
  } else {
    const provider = secret.provider;
    if (!provider || !(await provider.available())) {
      throw new ApiError(
        'unavailable',
        `this vault is protected by the OS keychain (${file.provider}), which is not available here`,
      );
    }
    key = Buffer.from(await provider.unprotect(Buffer.from(file.wrappedKey, 'base64')));
  }
  try {
    open(key, CHECK_NAME, Buffer.from(file.check, 'base64'));
  } catch {
    throw new ApiError('integrity', 'the vault key file does not match its check value');
  }
  return key;
}
