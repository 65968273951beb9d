import type * as FsPromises from 'node:fs/promises';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, expect, it, vi } from 'vitest';

import { writeCheckpoint } from '../src/checkpoint/folder.ts';

// Simulates a disk failure part-way through a write: opening manifest.json (written after
// weights.bin) fails while `failManifest` is set.
const failure = vi.hoisted(() => ({ failManifest: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  const open: typeof actual.open = (path, ...rest) => {
    if (failure.failManifest && String(path).endsWith('manifest.json')) {
      return Promise.reject(
        Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }),
      );
    }
    return actual.open(path, ...rest);
  };
  return { ...actual, open, default: { ...actual, open } };
});

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'commons-checkpoint-atomic-'));
});
afterEach(async () => {
  failure.failManifest = false;
  await rm(work, { recursive: true, force: true });
});

it('leaves no folder, final or temporary, when the disk fails mid-write', async () => {
  failure.failManifest = true;
  await expect(
    writeCheckpoint(join(work, 'ckpt'), {
      config: {
        vocabSize: 2,
        blockSize: 1,
        nLayer: 1,
        nHead: 1,
        nEmbd: 2,
        dropout: 0,
        bias: false,
        tiedHead: true,
      },
      tokenizer: {},
      tensors: new Map([['w', { shape: [2], data: new Float32Array([1, 2]) }]]),
    }),
  ).rejects.toThrow('ENOSPC');
  expect(await readdir(work)).toEqual([]);
});
