import { describe, expect, it } from 'vitest';
import { KvStore } from '../src/decoder/attention-kernel.ts';

/** softmax(q·Kᵀ · scale) · V for one head, in float64. */
function naive(q: number[], keys: number[][], values: number[][], scale: number): number[] {
  const s = keys.map((k) => k.reduce((a, x, i) => a + x * q[i]!, 0) * scale);
  const max = Math.max(...s);
  const e = s.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return q.map((_, i) => values.reduce((a, v, p) => a + (e[p]! / sum) * v[i]!, 0));
}

describe('the KV store and its attention kernel', () => {
  it.each([64, 96, 4])(
    'head size %i (kernels unrolled for it): the textbook formula with scores spread over ±60, exp in SIMD',
    (d) => {
      const store = KvStore.create({ numLayers: 1, numKvHeads: 1, group: 2, headDim: d })!;
      let seed = d;
      const r = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
      const keys: number[][] = [];
      const values: number[][] = [];
      let worst = 0;
      for (let position = 0; position < 70; position++) {
        const q = Float32Array.from({ length: 2 * d }, r);
        const k = Float32Array.from({ length: d }, r);
        const v = Float32Array.from({ length: d }, r);
        keys.push([...k]);
        values.push([...v]);
        const scale = 60 / d; // |q·k| up to ~d/3: scores across tens of units, most exps tiny
        const out = store.attend(0, position, q, k, v, scale);
        store.length = position + 1;
        for (let head = 0; head < 2; head++) {
          const want = naive([...q.subarray(head * d, (head + 1) * d)], keys, values, scale);
          want.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - out[head * d + i]!))));
        }
      }
      expect(worst).toBeLessThan(1e-5);
    },
  );

  it('attends like the textbook formula for every query head of a GQA layer, growing past its first capacity', () => {
    const shape = { numLayers: 2, numKvHeads: 2, group: 3, headDim: 8 };
    const store = KvStore.create(shape)!;
    expect(store).not.toBeNull();
    const d = shape.headDim;
    const rand = (seed: number) => () =>
      ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const r = rand(7);
    const keys: number[][][] = [[], []]; // per kv head, layer 1
    const values: number[][][] = [[], []];
    let worst = 0;
    for (let position = 0; position < 300; position++) {
      const q = Float32Array.from({ length: 6 * d }, r);
      const k = Float32Array.from({ length: 2 * d }, r);
      const v = Float32Array.from({ length: 2 * d }, r);
      for (let h = 0; h < 2; h++) {
        keys[h]!.push([...k.subarray(h * d, (h + 1) * d)]);
        values[h]!.push([...v.subarray(h * d, (h + 1) * d)]);
      }
      const out = store.attend(1, position, q, k, v, 0.35);
      store.length = position + 1;
      if (position % 37 !== 0 && position !== 299) continue;
      for (let head = 0; head < 6; head++) {
        const h = Math.floor(head / 3);
        const want = naive([...q.subarray(head * d, (head + 1) * d)], keys[h]!, values[h]!, 0.35);
        want.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - out[head * d + i]!))));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    // What was appended reads back in tfjs's layout after the growth copies.
    const { keysT, values: v } = store.read(1, 300);
    expect(keysT[(1 * d + 3) * 300 + 250]).toBeCloseTo(keys[1]![250]![3]!, 6);
    expect(v[(1 * 300 + 299) * d + 5]).toBeCloseTo(values[1]![299]![5]!, 6);
    // And a write in that layout lands where a read finds it.
    store.write(0, keysT, v, 300, 0, 300);
    expect(store.read(0, 300).keysT).toEqual(keysT);
  });

  it('is not made for a head size the SIMD loops cannot step through', () => {
    expect(KvStore.create({ numLayers: 1, numKvHeads: 1, group: 1, headDim: 6 })).toBeNull();
  });
});
