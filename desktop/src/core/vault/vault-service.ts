// vault.*: chats and documents encrypted at rest. Layout in <data>/vault/:
//   key.json          the vault key, wrapped (key-provider.ts)
//   index.bin         sealed JSON: metadata of every document and chat (lists without decrypting all)
//   records/<id>.bin  one sealed record per document, chat or personal adapter
// A record is written before the index names it and dropped from the index before it is
// deleted, so a crash at any point leaves at worst an unlisted file (removed at next unlock),
// never an index entry without its record. The records are the data and the index only lists
// them: when it is missing while records exist, or damaged, unlocking stops with an integrity
// error (an empty index would make every record an orphan to remove) and vault.rebuildIndex
// makes a new one from the records.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open as openFile, rename, rm, stat } from 'node:fs/promises';
import { extname, basename, join } from 'node:path';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { vaultMethods } from '../../api/vault.ts';
import {
  type Chat,
  type ChatInfo,
  type ChatMessage,
  type DocumentInfo,
  type ImportResult,
  type IndexRebuild,
  type VaultStatus,
} from '../../api/vault.ts';
import type { CoreEvents } from '../events.ts';
import { readIfExists, writeFileAtomic } from '@commons/shared/engine';
import { Serial } from '../storage/serial.ts';
import {
  createKeychainKey,
  createPassphraseKey,
  keyFileSchema,
  unwrapKey,
  type KeyFile,
  type KeyProvider,
} from './key-provider.ts';
import { scanPaths, scanTexts, type Scan } from './import-files.ts';
import { SealError, open, seal } from './seal.ts';
import {
  NEW_CHAT_TITLE,
  chatRecordSchema,
  indexSchema,
  indexedRecordIds,
  rebuildIndex,
  titleFrom,
  type Index,
  type StoredDocument,
} from './vault-index.ts';

export type RecordKind = 'document' | 'chat' | 'adapter';

export interface VaultOptions {
  keyProvider?: KeyProvider | undefined;
  /** scrypt cost for passphrase vaults (log2 N, at least 15). */
  scryptLogN?: number | undefined;
}

export class VaultService {
  readonly #dir: string;
  readonly #events: CoreEvents;
  readonly #options: VaultOptions;
  readonly #serial = new Serial();
  #key: Buffer | null = null;
  #index: Index | null = null;

  constructor(dataDir: string, events: CoreEvents, options: VaultOptions = {}) {
    this.#dir = join(dataDir, 'vault');
    this.#events = events;
    this.#options = options;
  }

  get unlocked(): boolean {
    return this.#key !== null;
  }

  get #keyFile(): string {
    return join(this.#dir, 'key.json');
  }

  #recordFile(id: string): string {
    return join(this.#recordsDir, `${id}.bin`);
  }

  async status(): Promise<VaultStatus> {
    const file = await this.#readKeyFile();
    return {
      initialized: file !== null,
      unlocked: this.unlocked,
      protection: file?.protection ?? null,
      keychainAvailable: (await this.#options.keyProvider?.available()) ?? false,
    };
  }

  async #readKeyFile(): Promise<KeyFile | null> {
    const bytes = await readIfExists(this.#keyFile);
    if (bytes === undefined) return null;
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      json = undefined;
    }
    const parsed = keyFileSchema.safeParse(json);
    if (!parsed.success)
      throw new ApiError('integrity', `${this.#keyFile} is not a vault key file`);
    return parsed.data;
  }

  // ---- records: what other services (chat, training) keep in the vault ------------------------

  #requireKey(): Buffer {
    if (!this.#key) throw new ApiError('locked', 'the vault is locked: unlock it first');
    return this.#key;
  }

  async putRecord(kind: RecordKind, id: string, plaintext: Uint8Array): Promise<void> {
    const sealed = seal(this.#requireKey(), { kind, id }, plaintext);
    await writeFileAtomic(this.#recordFile(id), sealed);
  }

  /** The record's plaintext; not-found if absent, integrity if it fails authentication. */
  async getRecord(kind: RecordKind, id: string): Promise<Buffer> {
    const key = this.#requireKey();
    const sealed = await readIfExists(this.#recordFile(id));
    if (sealed === undefined) throw new ApiError('not-found', `no ${kind} ${id} in the vault`);
    try {
      return open(key, { kind, id }, sealed);
    } catch (err) {
      if (err instanceof SealError) {
        throw new ApiError('integrity', `the vault's ${kind} ${id} was altered or damaged on disk`);
      }
      throw err;
    }
  }

  async hasRecord(id: string): Promise<boolean> {
    return (await readIfExists(this.#recordFile(id))) !== undefined;
  }

  async deleteRecord(id: string): Promise<void> {
    await rm(this.#recordFile(id), { force: true });
  }

  // ---- index --------------------------------------------------------------------------------------

  #requireIndex(): Index {
    this.#requireKey();
    return this.#index!;
  }

  async #saveIndex(index: Index): Promise<void> {
    const sealed = seal(
      this.#requireKey(),
      { kind: 'index', id: 'index' },
      Buffer.from(JSON.stringify(index)),
    );
    await writeFileAtomic(this.#indexFile, sealed);
    this.#index = index;
  }

  get #indexFile(): string {
    return join(this.#dir, 'index.bin');
  }

  get #recordsDir(): string {
    return join(this.#dir, 'records');
  }

  async #loadIndex(key: Buffer): Promise<Index> {
    const sealed = await readIfExists(this.#indexFile);
    if (sealed === undefined) {
      // No index and no records: set-up stopped between writing the key and the first index.
      const records = (await indexedRecordIds(this.#recordsDir)).length;
      if (records === 0) return { documents: [], chats: [] };
      throw new ApiError(
        'integrity',
        `the vault's index (${this.#indexFile}) is missing but ${records} records exist; ` +
          'nothing was deleted. Rebuild the index from the records (vault.rebuildIndex) or ' +
          'restore the file from a backup.',
      );
    }
    try {
      return indexSchema.parse(
        JSON.parse(open(key, { kind: 'index', id: 'index' }, sealed).toString('utf8')),
      );
    } catch (err) {
      // A sealed index that opens but is not an index is as damaged as one that does not open.
      throw new ApiError(
        'integrity',
        `the vault's index (${this.#indexFile}) was altered or damaged on disk; nothing was ` +
          'deleted. Rebuild it from the records (vault.rebuildIndex) or restore it from a backup.',
        { cause: err },
      );
    }
  }

  /** Records no index entry names are what a crash between the two writes leaves: removed. */
  async #removeOrphans(index: Index): Promise<void> {
    const named = new Set([...index.documents.map((d) => d.id), ...index.chats.map((c) => c.id)]);
    for (const id of await indexedRecordIds(this.#recordsDir)) {
      if (!named.has(id)) await this.deleteRecord(id);
    }
  }

  /**
   * A new index from the records, for a vault whose index is missing or damaged (an intact one
   * is refused: it knows names and dates the records do not). The damaged index and any record
   * that does not authenticate are moved aside, never deleted.
   */
  async #rebuildIndex(passphrase: string | undefined): Promise<IndexRebuild> {
    if (this.#key) throw new ApiError('conflict', "the vault's index is intact: it is unlocked");
    const file = await this.#readKeyFile();
    if (!file) throw new ApiError('not-found', 'there is no vault yet: set one up first');
    const key = await unwrapKey(file, { passphrase, provider: this.#options.keyProvider });
    const intact = await this.#loadIndex(key).then(
      () => true,
      (err: unknown) => {
        if (err instanceof ApiError && err.code === 'integrity') return false;
        throw err;
      },
    );
    if (intact) throw new ApiError('conflict', "the vault's index is intact: unlock the vault");
    const { index, unreadable } = await rebuildIndex(key, this.#recordsDir);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    if ((await readIfExists(this.#indexFile)) !== undefined) {
      await rename(this.#indexFile, join(this.#dir, `index.damaged-${stamp}.bin`));
    }
    if (unreadable.length > 0) {
      const aside = join(this.#dir, 'unreadable');
      await mkdir(aside, { recursive: true, mode: 0o700 });
      for (const id of unreadable) await rename(this.#recordFile(id), join(aside, `${id}.bin`));
    }
    this.#key = key;
    try {
      await this.#saveIndex(index);
    } catch (err) {
      this.#key = null; // unlocked means an index is loaded
      throw err;
    }
    this.#changed('status');
    return {
      status: await this.status(),
      documents: index.documents.length,
      chats: index.chats.length,
      unreadable,
    };
  }

  #changed(what: 'status' | 'documents' | 'chats'): void {
    this.#events.emit('vault.changed', { unlocked: this.unlocked, what });
  }

  // ---- documents and chats, for other services -------------------------------------------------

  async documentText(id: string): Promise<string> {
    return (await this.getRecord('document', id)).toString('utf8');
  }

  async readChat(id: string): Promise<Chat> {
    const info = this.#requireIndex().chats.find((c) => c.id === id);
    if (!info) throw new ApiError('not-found', `no chat ${id}`);
    const { history } = chatRecordSchema.parse(
      JSON.parse((await this.getRecord('chat', id)).toString('utf8')),
    );
    return { ...info, history };
  }

  /** Replaces a chat's history (append, regenerate) and updates its index entry. */
  async writeChat(id: string, history: ChatMessage[]): Promise<ChatInfo> {
    return this.#serial.run(async () => {
      const index = this.#requireIndex();
      const info = index.chats.find((c) => c.id === id);
      if (!info) throw new ApiError('not-found', `no chat ${id}`);
      await this.putRecord('chat', id, Buffer.from(JSON.stringify({ history })));
      const firstUser = history.find((m) => m.role === 'user');
      const next: ChatInfo = {
        ...info,
        title: info.title === NEW_CHAT_TITLE && firstUser ? titleFrom(firstUser.text) : info.title,
        updatedAt: new Date().toISOString(),
        messages: history.length,
      };
      await this.#saveIndex({ ...index, chats: index.chats.map((c) => (c.id === id ? next : c)) });
      this.#changed('chats');
      return next;
    });
  }

  /** Stores what a scan found, skipping texts already in the vault (same sha256). */
  #import(scan: () => Promise<Scan>): Promise<ImportResult> {
    return this.#serial.run(async () => {
      const index = this.#requireIndex();
      const { texts, skipped } = await scan();
      const seen = new Set(index.documents.map((d) => d.sha256));
      const imported: StoredDocument[] = [];
      for (const found of texts) {
        const sha256 = createHash('sha256').update(found.text).digest('hex');
        if (seen.has(sha256)) {
          skipped.push({ path: found.source, reason: 'already in the vault (same text)' });
          continue;
        }
        seen.add(sha256);
        const doc: StoredDocument = {
          id: newId(),
          name: found.name,
          path: found.path,
          size: found.size,
          chars: [...found.text].length,
          importedAt: new Date().toISOString(),
          sha256,
        };
        await this.putRecord('document', doc.id, Buffer.from(found.text, 'utf8'));
        imported.push(doc);
      }
      if (imported.length > 0) {
        await this.#saveIndex({ ...index, documents: [...index.documents, ...imported] });
        this.#changed('documents');
      }
      return { imported: imported.map(publicDocument), skipped };
    });
  }

  handlers(): Handlers<typeof vaultMethods> {
    return {
      'vault.status': () => this.status(),
      'vault.setup': (input) =>
        this.#serial.run(async () => {
          if ((await this.#readKeyFile()) !== null)
            throw new ApiError('conflict', 'a vault already exists in this data folder');
          let created;
          if (input.protection === 'keychain') {
            const provider = this.#options.keyProvider;
            if (!provider || !(await provider.available())) {
              throw new ApiError(
                'unavailable',
                'no OS keychain is available here: protect the vault with a passphrase',
              );
            }
            created = await createKeychainKey(provider);
          } else {
            created = await createPassphraseKey(input.passphrase, this.#options.scryptLogN);
          }
          await mkdir(this.#recordsDir, { recursive: true, mode: 0o700 });
          await writeFileAtomic(this.#keyFile, JSON.stringify(created.file, null, 2) + '\n');
          this.#key = created.key;
          await this.#saveIndex({ documents: [], chats: [] });
          this.#changed('status');
          return this.status();
        }),
      'vault.unlock': (input) =>
        this.#serial.run(async () => {
          const file = await this.#readKeyFile();
          if (!file) throw new ApiError('not-found', 'there is no vault yet: set one up first');
          if (this.#key) return this.status();
          const key = await unwrapKey(file, {
            passphrase: input.passphrase,
            provider: this.#options.keyProvider,
          });
          const index = await this.#loadIndex(key);
          this.#key = key;
          this.#index = index;
          await this.#removeOrphans(index);
          this.#changed('status');
          return this.status();
        }),
      'vault.rebuildIndex': ({ passphrase }) =>
        this.#serial.run(() => this.#rebuildIndex(passphrase)),
      'vault.lock': () =>
        this.#serial.run(async () => {
          this.lock();
          return this.status();
        }),

      'vault.importFiles': ({ paths }) => this.#import(() => scanPaths(paths)),
      'vault.importText': ({ files }) => this.#import(async () => scanTexts(files)),
      'vault.listDocuments': async () =>
        [...this.#requireIndex().documents].reverse().map(publicDocument),
      'vault.readDocument': async ({ id }) => {
        const doc = this.#requireIndex().documents.find((d) => d.id === id);
        if (!doc) throw new ApiError('not-found', `no document ${id}`);
        return { ...publicDocument(doc), text: await this.documentText(id) };
      },
      'vault.deleteDocument': ({ id }) =>
        this.#serial.run(async () => {
          const index = this.#requireIndex();
          if (!index.documents.some((d) => d.id === id))
            throw new ApiError('not-found', `no document ${id}`);
          await this.#saveIndex({
            ...index,
            documents: index.documents.filter((d) => d.id !== id),
          });
          await this.deleteRecord(id);
          this.#changed('documents');
          return { id };
        }),
      'vault.exportDocuments': async ({ ids, folder }) => {
        const index = this.#requireIndex();
        const info = await stat(folder).catch(() => null);
        if (!info?.isDirectory()) throw new ApiError('not-found', `${folder} is not a folder`);
        const docs = ids.map((id) => {
          const doc = index.documents.find((d) => d.id === id);
          if (!doc) throw new ApiError('not-found', `no document ${id}`);
          return doc;
        });
        const written: string[] = [];
        for (const doc of docs) {
          const text = await this.documentText(doc.id);
          written.push(await writeNew(folder, doc.name, text));
        }
        return { written };
      },

      'vault.createChat': ({ title }) =>
        this.#serial.run(async () => {
          const index = this.#requireIndex();
          const now = new Date().toISOString();
          const chat: ChatInfo = {
            id: newId(),
            title: title ?? NEW_CHAT_TITLE,
            createdAt: now,
            updatedAt: now,
            messages: 0,
          };
          await this.putRecord('chat', chat.id, Buffer.from(JSON.stringify({ history: [] })));
          await this.#saveIndex({ ...index, chats: [...index.chats, chat] });
          this.#changed('chats');
          return chat;
        }),
      'vault.listChats': async () =>
        [...this.#requireIndex().chats].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)),
      'vault.readChat': ({ id }) => this.readChat(id),
      'vault.appendMessage': async ({ chatId, role, text }) => {
        const chat = await this.readChat(chatId);
        return this.writeChat(chatId, [
          ...chat.history,
          { role, text, at: new Date().toISOString() },
        ]);
      },
      'vault.renameChat': ({ id, title }) =>
        this.#serial.run(async () => {
          const index = this.#requireIndex();
          const info = index.chats.find((c) => c.id === id);
          if (!info) throw new ApiError('not-found', `no chat ${id}`);
          const next = { ...info, title };
          await this.#saveIndex({
            ...index,
            chats: index.chats.map((c) => (c.id === id ? next : c)),
          });
          this.#changed('chats');
          return next;
        }),
      'vault.deleteChat': ({ id }) =>
        this.#serial.run(async () => {
          const index = this.#requireIndex();
          if (!index.chats.some((c) => c.id === id))
            throw new ApiError('not-found', `no chat ${id}`);
          await this.#saveIndex({ ...index, chats: index.chats.filter((c) => c.id !== id) });
          await this.deleteRecord(id);
          this.#changed('chats');
          return { id };
        }),
    };
  }

  /** Forgets the key (overwritten in memory) and the decrypted index. */
  lock(): void {
    this.#key?.fill(0);
    this.#key = null;
    this.#index = null;
    this.#changed('status');
  }
}

function newId(): string {
  return randomBytes(16).toString('hex');
}

function publicDocument(doc: StoredDocument): DocumentInfo {
  const { sha256: _sha256, ...info } = doc;
  return info;
}

/** Writes `text` as `name` in `folder`, or as `name (2)`, ... : an export never overwrites. */
async function writeNew(folder: string, name: string, text: string): Promise<string> {
  const ext = extname(name);
  const stem = basename(name, ext);
  for (let n = 1; n < 1000; n++) {
    const file = join(folder, n === 1 ? name : `${stem} (${n})${ext}`);
    try {
      const handle = await openFile(file, 'wx', 0o600);
      try {
        await handle.writeFile(text, 'utf8');
      } finally {
        await handle.close();
      }
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new ApiError('conflict', `${folder} already holds ${name} and 998 numbered copies`);
}
