// The vault's keychain in Electron: safeStorage wraps the vault key with a key the operating
// system keeps (DPAPI, Keychain, libsecret), so the data folder alone does not open the vault.
// safeStorage works on strings, so the bytes travel as hex.
import { safeStorage } from 'electron';
import type { KeyProvider } from '../core/vault/key-provider.ts';

export function safeStorageKeyProvider(): KeyProvider {
  return {
    name: 'electron-safeStorage',
    async available() {
      // On Linux without a secret service safeStorage falls back to a hard-coded password;
      // that protects nothing, so it does not count as a keychain.
      if (!safeStorage.isEncryptionAvailable()) return false;
      return (
        process.platform !== 'linux' || safeStorage.getSelectedStorageBackend() !== 'basic_text'
      );
    },
    async protect(secret) {
      return new Uint8Array(safeStorage.encryptString(Buffer.from(secret).toString('hex')));
    },
    async unprotect(wrapped) {
      return new Uint8Array(Buffer.from(safeStorage.decryptString(Buffer.from(wrapped)), 'hex'));
    },
  };
}
