import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { syncDirectory, writeNewFileDurably } from '../src/storage/durable-write.ts';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'commons-durable-write-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('writeNewFileDurably', () => {
  it('writes bytes or text with the mode asked for', async () => {
    await writeNewFileDurably(join(work, 'a.bin'), Uint8Array.of(1, 2, 3));
    await writeNewFileDurably(join(work, 'b.txt'), 'secret', 0o600);
    expect([...(await readFile(join(work, 'a.bin')))]).toEqual([1, 2, 3]);
    expect(await readFile(join(work, 'b.txt'), 'utf8')).toBe('secret');
    if (process.platform !== 'win32') {
      expect((await stat(join(work, 'b.txt'))).mode & 0o777).toBe(0o600);
    }
  });

  it('refuses a name that exists and leaves its content alone', async () => {
    const path = join(work, 'taken');
    await writeFile(path, 'old');
    await expect(writeNewFileDurably(path, 'new')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path, 'utf8')).toBe('old');
  });
});

describe('syncDirectory', () => {
  it('flushes a folder, and is a no-op for one that cannot be opened', async () => {
    await expect(syncDirectory(work)).resolves.toBeUndefined();
    await expect(syncDirectory(join(work, 'missing'))).resolves.toBeUndefined();
  });
});
