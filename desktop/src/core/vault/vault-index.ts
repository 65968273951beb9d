// The vault's index: the sealed list of documents and chats (names, sizes, dates) that lets the
// app list them without decrypting every record. It is a convenience over the records, which
// are the data: a missing or damaged index never means the records are gone, so it is rebuilt
// from them (each one authenticated) rather than replaced by an empty list.
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ChatInfo, ChatMessage, DocumentInfo } from '../../api/vault.ts';
import { SealError, open } from './seal.ts';

export interface StoredDocument extends DocumentInfo {
  /** sha256 of the text: the same text imported twice is skipped. Inside the sealed index. */
  sha256: string;
}

export const indexSchema = z.object({
  documents: z.array(z.custom<StoredDocument>()),
  chats: z.array(z.custom<ChatInfo>()),
});
export type Index = z.infer<typeof indexSchema>;

export const chatRecordSchema = z.object({ history: z.array(z.custom<ChatMessage>()) });

/** Document and chat ids: 128 random bits in hex (adapter records are named otherwise). */
const INDEXED_RECORD = /^([0-9a-f]{32})\.bin$/;

/** The ids of the document and chat records in `recordsDir` (none when it does not exist). */
export async function indexedRecordIds(recordsDir: string): Promise<string[]> {
  let files: string[];
  try {
    files = await readdir(recordsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return files.flatMap((file) => INDEXED_RECORD.exec(file)?.[1] ?? []);
}

export const NEW_CHAT_TITLE = 'New chat';

export function titleFrom(text: string): string {
  const line = text.trim().split('\n', 1)[0] ?? '';
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || NEW_CHAT_TITLE;
}

export interface RebuiltIndex {
  index: Index;
  /** Records that authenticate neither as a document nor as a chat: left where they are. */
  unreadable: string[];
}

/**
 * An index made from the records themselves. The sealing binds each record to its kind and id,
 * so a record that opens as a document is one; what only the lost index knew (a document's file
 * name and import date, a chat's title) is filled in from the record: a name made from its id,
 * the file's modification time, the chat's first question.
 */
export async function rebuildIndex(key: Buffer, recordsDir: string): Promise<RebuiltIndex> {
  const documents: StoredDocument[] = [];
  const chats: ChatInfo[] = [];
  const unreadable: string[] = [];
  for (const id of await indexedRecordIds(recordsDir)) {
    const file = join(recordsDir, `${id}.bin`);
    const sealed = await readFile(file);
    const modified = (await stat(file)).mtime.toISOString();
    const text = openAs(key, 'document', id, sealed);
    if (text !== null) {
      const content = text.toString('utf8');
      const name = `recovered-${id.slice(0, 8)}.txt`;
      documents.push({
        id,
        name,
        path: name,
        size: text.length,
        chars: [...content].length,
        importedAt: modified,
        sha256: createHash('sha256').update(content).digest('hex'),
      });
      continue;
    }
    const chat = parseChat(openAs(key, 'chat', id, sealed));
    if (chat === null) {
      unreadable.push(id);
      continue;
    }
    const firstUser = chat.history.find((m) => m.role === 'user');
    chats.push({
      id,
      title: firstUser ? titleFrom(firstUser.text) : NEW_CHAT_TITLE,
      createdAt: chat.history[0]?.at ?? modified,
      updatedAt: modified,
      messages: chat.history.length,
    });
  }
  documents.sort((a, b) => a.importedAt.localeCompare(b.importedAt));
  return { index: { documents, chats }, unreadable };
}

function openAs(key: Buffer, kind: 'document' | 'chat', id: string, sealed: Buffer): Buffer | null {
  try {
    return open(key, { kind, id }, sealed);
  } catch (err) {
    if (err instanceof SealError) return null;
    throw err;
  }
}

function parseChat(plaintext: Buffer | null): z.infer<typeof chatRecordSchema> | null {
  if (plaintext === null) return null;
  try {
    return chatRecordSchema.parse(JSON.parse(plaintext.toString('utf8')));
  } catch {
    return null;
  }
}
