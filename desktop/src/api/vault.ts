// vault.*: the member's chats and imported documents, encrypted at rest on this machine.
import { z } from 'zod';
import { method } from './define.ts';
import { noInput, recordIdSchema } from './schemas.ts';

/**
 * How the vault key is protected: by the operating system's keychain (Electron safeStorage;
 * nothing to type) or by a passphrase (scrypt), when there is no keychain or the member prefers.
 */
export type VaultProtection = 'keychain' | 'passphrase';

export interface VaultStatus {
  /** Whether a vault exists in the data folder (vault.setup creates it). */
  initialized: boolean;
  unlocked: boolean;
  protection: VaultProtection | null;
  /** Whether this shell offers an OS keychain (false in headless and web modes). */
  keychainAvailable: boolean;
}

export interface DocumentInfo {
  id: string;
  /** File name as imported (e.g. notes.md). */
  name: string;
  /** Folder-relative path when imported as part of a folder, else the name. */
  path: string;
  /** UTF-8 bytes of the text. */
  size: number;
  /** Unicode characters of the text. */
  chars: number;
  /** ISO date of the import. */
  importedAt: string;
}

export interface ImportResult {
  imported: DocumentInfo[];
  /** Files passed over, and why (not .txt/.md, not UTF-8 text, too large, unreadable...). */
  skipped: { path: string; reason: string }[];
}

/** What vault.rebuildIndex found in the records. */
export interface IndexRebuild {
  status: VaultStatus;
  /** Documents and chats the new index lists. */
  documents: number;
  chats: number;
  /** Ids of records that authenticated as neither: moved to vault/unreadable/, never deleted. */
  unreadable: string[];
}

export const CHAT_ROLES = ['user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  text: string;
  /** ISO date. */
  at: string;
  /** For assistant messages: the model version (content hash) and whether the personal adapter was on. */
  model?: { hash: string; adapter: boolean };
}

export interface ChatInfo {
  id: string;
  title: string;
  createdAt: string;
  updatedAt: string;
  messages: number;
}

export interface Chat extends ChatInfo {
  history: ChatMessage[];
}

/** A passphrase: at least 8 characters (it is all that protects the vault without a keychain). */
export const passphraseSchema = z
  .string()
  .min(8, 'a passphrase of at least 8 characters')
  .max(1024);

/** A bare file name as a browser reports it: no folders, nothing that could climb out. */
export const importNameSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\\\0]+$/, 'a file name without folders')
  .refine((name) => name !== '.' && name !== '..', 'a file name');

/**
 * The most characters one vault.importText call carries, all files together: it keeps a call
 * well inside the web bridge's 64 MiB frame (JSON-escaped). The core also applies the vault's
 * per-document byte limit, as for files imported by path. Larger files are better imported by
 * path (the desktop app's dialog).
 */
export const MAX_IMPORT_CHARS = 8 * 1024 * 1024;

export const vaultMethods = {
  'vault.status': method<VaultStatus>()(
    noInput,
    'Whether the vault exists, is unlocked, and how it is protected.',
  ),
  'vault.setup': method<VaultStatus>()(
    z.discriminatedUnion('protection', [
      z.strictObject({ protection: z.literal('keychain') }),
      z.strictObject({ protection: z.literal('passphrase'), passphrase: passphraseSchema }),
    ]),
    'Creates the vault (a fresh random key, protected by the keychain or a passphrase) and leaves it unlocked; conflict if one exists.',
  ),
  'vault.unlock': method<VaultStatus>()(
    z.strictObject({ passphrase: z.string().max(1024).optional() }),
    'Unlocks the vault (passphrase needed only for passphrase protection); wrong-passphrase if it does not match.',
  ),
  'vault.rebuildIndex': method<IndexRebuild>()(
    z.strictObject({ passphrase: z.string().max(1024).optional() }),
    'Rebuilds a missing or damaged index from the records (each authenticated) and leaves the vault unlocked; recovered documents get names made from their ids. A damaged index is kept beside the new one; conflict if the index is intact.',
  ),
  'vault.lock': method<VaultStatus>()(
    noInput,
    'Forgets the key; every vault call then answers locked.',
  ),

  'vault.importFiles': method<ImportResult>()(
    z.strictObject({ paths: z.array(z.string().min(1)).min(1).max(1000) }),
    'Imports .txt and .md files; a folder is imported recursively, other files are skipped with a reason.',
  ),
  'vault.importText': method<ImportResult>()(
    z.strictObject({
      files: z
        .array(z.strictObject({ name: importNameSchema, text: z.string().max(MAX_IMPORT_CHARS) }))
        .min(1)
        .max(100)
        .refine(
          (files) => files.reduce((n, f) => n + f.text.length, 0) <= MAX_IMPORT_CHARS,
          `at most ${MAX_IMPORT_CHARS} characters in one call: send the files in smaller batches`,
        ),
    }),
    'Imports text the page read itself (a file picker or drag and drop in a browser) under the given names; the same rules as importFiles: .txt and .md names only, size-limited, no NUL bytes, duplicates skipped with a reason.',
  ),
  'vault.listDocuments': method<DocumentInfo[]>()(noInput, 'Imported documents, newest first.'),
  'vault.readDocument': method<DocumentInfo & { text: string }>()(
    z.strictObject({ id: recordIdSchema }),
    'A document with its text.',
  ),
  'vault.deleteDocument': method<{ id: string }>()(
    z.strictObject({ id: recordIdSchema }),
    'Deletes a document from the vault.',
  ),
  'vault.exportDocuments': method<{ written: string[] }>()(
    z.strictObject({ ids: z.array(recordIdSchema).min(1), folder: z.string().min(1) }),
    'Writes decrypted copies into a folder (which must exist); never overwrites a file there.',
  ),

  'vault.createChat': method<ChatInfo>()(
    z.strictObject({ title: z.string().max(200).optional() }),
    'Starts an empty chat.',
  ),
  'vault.listChats': method<ChatInfo[]>()(noInput, 'Chats, most recently updated first.'),
  'vault.readChat': method<Chat>()(
    z.strictObject({ id: recordIdSchema }),
    'A chat with its messages.',
  ),
  'vault.appendMessage': method<ChatInfo>()(
    z.strictObject({
      chatId: recordIdSchema,
      role: z.enum(CHAT_ROLES),
      text: z.string().max(1_000_000),
    }),
    'Adds a message to a chat (chat.send does this itself for both sides).',
  ),
  'vault.renameChat': method<ChatInfo>()(
    z.strictObject({ id: recordIdSchema, title: z.string().min(1).max(200) }),
    'Renames a chat.',
  ),
  'vault.deleteChat': method<{ id: string }>()(
    z.strictObject({ id: recordIdSchema }),
    'Deletes a chat.',
  ),
};

export const vaultEvents = {
  /** Lock state or contents changed (import, delete, a new message): lists may be stale. */
  'vault.changed': z.object({
    unlocked: z.boolean(),
    what: z.enum(['status', 'documents', 'chats']),
  }),
};
