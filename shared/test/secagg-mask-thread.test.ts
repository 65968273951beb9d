import { afterAll, describe, expect, it } from 'vitest';
import { MaskThread, parallelFold } from '../src/privacy/secagg/mask-thread.ts';
import { addMasksInto, type SignedMask } from '../src/privacy/secagg/prg.ts';

const masks: SignedMask[] = Array.from({ length: 5 }, (_, k) => ({
  seed: Uint8Array.from({ length: 32 }, (_, i) => (i * 53 + k * 17 + 1) & 0xff),
  sign: k % 2 === 0 ? 1 : -1,
}));
const vector = (length: number, modulus: number) =>
  Uint32Array.from({ length }, (_, i) => (i * 2654435761) % modulus);

describe('the mask thread', () => {
  const thread = MaskThread.start();
  afterAll(() => thread?.stop());

  it('starts here (Node has OpenSSL ChaCha20)', () => {
    expect(thread).not.toBeNull();
    expect(thread?.alive).toBe(true);
  });

  it('folds the same masks as the calling thread, for a vector that owns its buffer (handed over) and for a view (copied)', async () => {
    for (const [length, modulus] of [
      [1, 2 ** 32],
      [16385, 2 ** 32],
      [40001, 2 ** 20],
    ] as const) {
      const expected = vector(length, modulus);
      addMasksInto(expected, masks, modulus, 'wasm');
      const owned = vector(length, modulus);
      const back = await thread!.fold(owned, masks, modulus);
      expect(back).toEqual(expected);
      expect(owned.length).toBe(0); // handed over: the caller uses what comes back

      const backing = new Uint32Array(length + 8);
      const view = backing.subarray(4, 4 + length);
      view.set(vector(length, modulus));
      const same = await thread!.fold(view, masks, modulus);
      expect(same).toBe(view);
      expect(view).toEqual(expected);
    }
  });

  it('runs jobs in flight together, each answered with its own vector', async () => {
    const inputs = [vector(3000, 2 ** 32), vector(5000, 2 ** 32), vector(7000, 2 ** 32)];
    const expected = inputs.map((v) => {
      const copy = v.slice();
      addMasksInto(copy, masks, 2 ** 32, 'noble');
      return copy;
    });
    const results = await Promise.all(inputs.map((v) => thread!.fold(v, masks, 2 ** 32)));
    expect(results).toEqual(expected);
  });

  it('a job in flight when the thread stops fails with a message saying so; later folds run on the calling thread', async () => {
    const own = MaskThread.start()!;
    const inFlight = own.fold(vector(1 << 18, 2 ** 32), masks, 2 ** 32);
    const failed = expect(inFlight).rejects.toThrow(
      /mask thread stopped while masking; this masked input is lost/,
    );
    await own.stop();
    await failed;
    expect(own.alive).toBe(false);
    const expected = vector(100, 2 ** 32);
    addMasksInto(expected, masks, 2 ** 32, 'wasm');
    expect(await own.fold(vector(100, 2 ** 32), masks, 2 ** 32)).toEqual(expected);
  });

  it('a bad seed is refused on the thread and reported, and the thread goes on', async () => {
    const bad = [{ seed: new Uint8Array(16), sign: 1 as const }];
    await expect(thread!.fold(vector(64, 2 ** 32), bad, 2 ** 32)).rejects.toThrow(
      /masking failed: a mask seed is 32 bytes, got 16/,
    );
    const expected = vector(64, 2 ** 32);
    addMasksInto(expected, masks, 2 ** 32, 'wasm');
    expect(await thread!.fold(vector(64, 2 ** 32), masks, 2 ** 32)).toEqual(expected);
  });

  it('parallelFold splits the masks across threads and adds the partial vectors: the same sum, with two threads, one, or none', async () => {
    const many: SignedMask[] = Array.from({ length: 9 }, (_, k) => ({
      seed: Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + k * 31 + 5) & 0xff),
      sign: k % 3 === 0 ? -1 : 1,
    }));
    const pool = MaskThread.pool(2);
    expect(pool).toHaveLength(2);
    for (const threads of [pool, pool.slice(0, 1), []]) {
      for (const modulus of [2 ** 32, 2 ** 18]) {
        const expected = vector(20000, modulus);
        addMasksInto(expected, many, modulus, 'wasm');
        const fold = parallelFold(threads);
        expect(await fold(vector(20000, modulus), many, modulus)).toEqual(expected);
        expect(await fold(vector(20000, modulus), many.slice(0, 1), modulus)).toEqual(
          (() => {
            const one = vector(20000, modulus);
            addMasksInto(one, many.slice(0, 1), modulus, 'noble');
            return one;
          })(),
        );
      }
    }
  });
});
