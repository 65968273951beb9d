// The vault through the public API: encryption at rest, passphrase check, tamper detection,
// folder import with skip reasons, export and chats. Real files, real AES-GCM and scrypt.
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../src/api/define.ts';
import { createCore, type Core } from '../src/core/core.ts';

const SECRET_LINE = 'The treasure lies under the third olive tree';
const PASSPHRASE = 'correct horse battery staple';

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw err;
  return err;
}

describe('vault', () => {
  let dir: string;
  let core: Core;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commons-vault-'));
    await mkdir(join(dir, 'notes', 'deep'), { recursive: true });
    await writeFile(join(dir, 'notes', 'secret.txt'), `${SECRET_LINE}.\n`);
    await writeFile(join(dir, 'notes', 'deep', 'plan.md'), '# Plan\n\nPlant more olive trees.\n');
    await writeFile(join(dir, 'notes', 'photo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    await writeFile(join(dir, 'notes', 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    core = await createCore({ dataDir: join(dir, 'data') });
  });
  afterAll(async () => {
    await core.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is locked until set up, then imports a folder and keeps no plaintext on disk', async () => {
    const h = core.invoke;
    expect(await h('vault.status')).toMatchObject({
      initialized: false,
      unlocked: false,
    });
    expect((await rejection(h('vault.listDocuments'))).code).toBe('locked');
    // Headless: no keychain, so keychain protection is refused with a reason.
    expect((await rejection(h('vault.setup', { protection: 'keychain' }))).code).toBe(
      'unavailable',
    );

    await h('vault.setup', { protection: 'passphrase', passphrase: PASSPHRASE });
    const result = await h('vault.importFiles', { paths: [join(dir, 'notes')] });
    expect(result.imported.map((d) => d.path).sort()).toEqual(['deep/plan.md', 'secret.txt']);
    const reasons = Object.fromEntries(
      result.skipped.map((s) => [s.path.split('/').pop(), s.reason]),
    );
    expect(reasons['photo.png']).toMatch(/not a text file/);
    expect(reasons['latin1.txt']).toMatch(/not UTF-8/);

    const secret = result.imported.find((d) => d.name === 'secret.txt')!;
    expect(secret).toMatchObject({ size: SECRET_LINE.length + 2, chars: SECRET_LINE.length + 2 });
    expect((await h('vault.readDocument', { id: secret.id })).text).toBe(`${SECRET_LINE}.\n`);

    // The same text again is skipped, not duplicated.
    const again = await h('vault.importFiles', { paths: [join(dir, 'notes', 'secret.txt')] });
    expect(again.imported).toEqual([]);
    expect(again.skipped[0]?.reason).toMatch(/already in the vault/);

    const chat = await h('vault.createChat', {});
    await h('vault.appendMessage', { chatId: chat.id, role: 'user', text: 'olive harvest dates?' });
    const info = (await h('vault.listChats'))[0]!;
    expect(info).toMatchObject({ id: chat.id, messages: 1, title: 'olive harvest dates?' });

    // Nothing the member wrote appears in any file of the data folder.
    const files = await readdir(join(dir, 'data'), { recursive: true, withFileTypes: true });
    const contents = await Promise.all(
      files.filter((f) => f.isFile()).map((f) => readFile(join(f.parentPath, f.name), 'latin1')),
    );
    expect(contents.length).toBeGreaterThan(3);
    for (const text of contents) {
      expect(text).not.toContain('treasure');
      expect(text).not.toContain('olive');
      expect(text).not.toContain('secret.txt');
    }
  });

  it('refuses a wrong passphrase and opens with the right one', async () => {
    const h = core.invoke;
    await h('vault.lock');
    expect((await rejection(h('vault.listDocuments'))).code).toBe('locked');
    const wrong = await rejection(
      h('vault.unlock', { passphrase: 'correct horse battery stapler' }),
    );
    expect(wrong.code).toBe('wrong-passphrase');
    expect(wrong.message).not.toContain('stapler');
    expect(await h('vault.status')).toMatchObject({ unlocked: false });

    // A fresh core over the same folder (an app restart) unlocks with the right passphrase.
    const restarted = await createCore({ dataDir: join(dir, 'data') });
    try {
      await restarted.invoke('vault.unlock', { passphrase: PASSPHRASE });
      const docs = await restarted.invoke('vault.listDocuments');
      expect(docs).toHaveLength(2);
    } finally {
      await restarted.close();
    }
    await h('vault.unlock', { passphrase: PASSPHRASE });
  });

  it('detects a record altered on disk or swapped for another, and exports without overwriting', async () => {
    const h = core.invoke;
    const docs = await h('vault.listDocuments');
    const [a, b] = docs as [(typeof docs)[0], (typeof docs)[0]];
    const fileOf = (id: string) => join(dir, 'data', 'vault', 'records', `${id}.bin`);

    const original = await readFile(fileOf(a.id));
    const flipped = Buffer.from(original);
    flipped[flipped.length - 20]! ^= 0x01;
    await writeFile(fileOf(a.id), flipped);
    expect((await rejection(h('vault.readDocument', { id: a.id }))).code).toBe('integrity');

    // A valid record of another document under this id fails too (id is associated data).
    await writeFile(fileOf(a.id), await readFile(fileOf(b.id)));
    expect((await rejection(h('vault.readDocument', { id: a.id }))).code).toBe('integrity');

    await writeFile(fileOf(a.id), original);
    const out = join(dir, 'export');
    await mkdir(out);
    const first = await h('vault.exportDocuments', { ids: [a.id], folder: out });
    const second = await h('vault.exportDocuments', { ids: [a.id], folder: out });
    expect(first.written[0]).not.toBe(second.written[0]);
    expect(await readFile(second.written[0]!, 'utf8')).toBe(
      (await h('vault.readDocument', { id: a.id })).text,
    );

    await h('vault.deleteDocument', { id: a.id });
    expect((await rejection(h('vault.readDocument', { id: a.id }))).code).toBe('not-found');
  });
});

describe('vault index damage', () => {
  let dir: string;
  let core: Core;
  const vaultDir = () => join(dir, 'vault');
  const recordFiles = async () => (await readdir(join(vaultDir(), 'records'))).sort();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'commons-vault-index-'));
    core = await createCore({ dataDir: dir });
    const h = core.invoke;
    await h('vault.setup', { protection: 'passphrase', passphrase: PASSPHRASE });
    await h('vault.importText', {
      files: [
        { name: 'secret.txt', text: `${SECRET_LINE}.\n` },
        { name: 'plan.md', text: '# Plan\n\nPlant more olive trees.\n' },
      ],
    });
    const chat = await h('vault.createChat', {});
    await h('vault.appendMessage', { chatId: chat.id, role: 'user', text: 'olive harvest dates?' });
    await h('vault.lock');
  });
  afterAll(async () => {
    await core.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses to unlock without its index while records exist, and deletes none', async () => {
    const h = core.invoke;
    const before = await recordFiles();
    expect(before).toHaveLength(3);
    await rm(join(vaultDir(), 'index.bin'));
    const refused = await rejection(h('vault.unlock', { passphrase: PASSPHRASE }));
    expect(refused.code).toBe('integrity');
    expect(refused.message).toMatch(/index .* is missing but 3 records exist/);
    expect(refused.message).toContain('vault.rebuildIndex');
    expect(await h('vault.status')).toMatchObject({ unlocked: false });
    expect(await recordFiles()).toEqual(before);
  });

  it('rebuilds the index from the records, each authenticated, with the passphrase', async () => {
    const h = core.invoke;
    const wrong = await rejection(h('vault.rebuildIndex', { passphrase: 'not the passphrase' }));
    expect(wrong.code).toBe('wrong-passphrase');
    const rebuilt = await h('vault.rebuildIndex', { passphrase: PASSPHRASE });
    expect(rebuilt).toMatchObject({ documents: 2, chats: 1, unreadable: [] });
    expect(rebuilt.status.unlocked).toBe(true);
    const texts = await Promise.all(
      (await h('vault.listDocuments')).map(
        async (d) => (await h('vault.readDocument', { id: d.id })).text,
      ),
    );
    expect(texts.sort()).toEqual(['# Plan\n\nPlant more olive trees.\n', `${SECRET_LINE}.\n`]);
    const [chat] = await h('vault.listChats');
    expect(chat).toMatchObject({ title: 'olive harvest dates?', messages: 1 });
    expect((await h('vault.readChat', { id: chat!.id })).history[0]?.text).toBe(
      'olive harvest dates?',
    );
    // The same text is still recognised as already imported.
    const again = await h('vault.importText', {
      files: [{ name: 'x.txt', text: `${SECRET_LINE}.\n` }],
    });
    expect(again.imported).toEqual([]);
    // An intact index is not thrown away for one that knows less.
    await h('vault.lock');
    expect((await rejection(h('vault.rebuildIndex', { passphrase: PASSPHRASE }))).code).toBe(
      'conflict',
    );
    await h('vault.unlock', { passphrase: PASSPHRASE });
    expect(await h('vault.listDocuments')).toHaveLength(2);
    await h('vault.lock');
  });

  it('treats a damaged index as an integrity error, keeps it, and sets aside unreadable records', async () => {
    const h = core.invoke;
    const index = join(vaultDir(), 'index.bin');
    const damaged = Buffer.from(await readFile(index));
    damaged[damaged.length - 1]! ^= 0x01;
    await writeFile(index, damaged);
    // A file that looks like a record but authenticates as nothing.
    const stranger = 'f'.repeat(32);
    await writeFile(join(vaultDir(), 'records', `${stranger}.bin`), Buffer.alloc(64, 7));
    const before = await recordFiles();
    const refused = await rejection(h('vault.unlock', { passphrase: PASSPHRASE }));
    expect(refused.code).toBe('integrity');
    expect(refused.message).toMatch(/index .* altered or damaged/);
    expect(await recordFiles()).toEqual(before);

    const rebuilt = await h('vault.rebuildIndex', { passphrase: PASSPHRASE });
    expect(rebuilt).toMatchObject({ documents: 2, chats: 1, unreadable: [stranger] });
    expect(await readFile(join(vaultDir(), 'unreadable', `${stranger}.bin`))).toEqual(
      Buffer.alloc(64, 7),
    );
    const kept = (await readdir(vaultDir())).filter((f) => f.startsWith('index.damaged-'));
    expect(kept).toHaveLength(1);
    expect(await readFile(join(vaultDir(), kept[0]!))).toEqual(damaged);
    expect(await recordFiles()).toHaveLength(3);
  });

  it('calls a key file that is not JSON an integrity error', async () => {
    const h = core.invoke;
    await h('vault.lock');
    await writeFile(join(vaultDir(), 'key.json'), '{ not json');
    expect((await rejection(h('vault.status'))).code).toBe('integrity');
    const refused = await rejection(h('vault.unlock', { passphrase: PASSPHRASE }));
    expect(refused.code).toBe('integrity');
    expect(refused.message).toContain('is not a vault key file');
    expect(await recordFiles()).toHaveLength(3);
  });
});
