import {
  CheckpointError,
  type NamedTensors,
  decodeTensors,
  encodeTensors,
  type UpdateEncoding,
} from '@commons/shared/engine';
import { describe, expect, it } from 'vitest';
import {
  MedianAggregator,
  TrimmedMeanAggregator,
  median,
  selectInPlace,
  trimmedMean,
} from '../src/aggregation/coordinate-wise.ts';
import { readValues, viewFrame } from '../src/aggregation/frame-view.ts';
import { AggregationError } from '../src/aggregation/aggregator.ts';
import { KrumAggregator } from '../src/aggregation/krum.ts';
import { flatten, layoutOf, unflatten, type ParameterLayout } from '../src/aggregation/layout.ts';
import { WeightedMeanAggregator } from '../src/aggregation/weighted-mean.ts';

/** Deterministic uniform [0, 1) (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Odd sizes and odd name lengths on purpose: values land at unaligned frame offsets, tensors
 * end mid-vector of 4, and "big" crosses the fold's 64K-value chunk.
 */
const SHAPES: [string, number[]][] = [
  ['a', [3]],
  ['scalar', []],
  ['empty', [0]],
  ['w.5x7', [5, 7]],
  ['big', [70001]],
  ['bias', [6]],
];
const LAYOUT = layoutOf(SHAPES.map(([name, shape]) => ({ name, shape })));

function randomTensors(random: () => number, scale = 1, shapes = SHAPES): NamedTensors {
  const tensors: NamedTensors = new Map();
  for (const [name, shape] of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: size }, () => (random() * 2 - 1) * scale);
    tensors.set(name, { shape, data });
  }
  return tensors;
}

/** Σ wᵢ·xᵢ / Σ wᵢ in float64, over flat vectors. */
function weightedMean(vectors: Float32Array[], weights: number[]): Float64Array {
  const out = new Float64Array(vectors[0]!.length);
  let total = 0;
  vectors.forEach((v, n) => {
    total += weights[n]!;
    for (let i = 0; i < v.length; i++) out[i]! += weights[n]! * v[i]!;
  });
  for (let i = 0; i < out.length; i++) out[i]! /= total;
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function flatFrame(values: number[], layout = layoutOf([{ name: 'x', shape: [values.length] }])) {
  const tensors: NamedTensors = new Map([
    ['x', { shape: [values.length], data: Float32Array.from(values) }],
  ]);
  return { frame: encodeTensors(tensors, 'fp32'), layout };
}

describe('layout', () => {
  it('lays tensors end to end in checkpoint order, from a Map or a list', () => {
    const tensors = randomTensors(rng(1));
    const fromMap = layoutOf(tensors);
    expect(fromMap).toEqual(LAYOUT);
    expect(LAYOUT.size).toBe(3 + 1 + 0 + 35 + 70001 + 6);
    expect(LAYOUT.entries.map((e) => e.offset)).toEqual([0, 3, 4, 4, 39, 70040]);
  });

  it('flatten and unflatten are inverses, and unflatten copies', () => {
    const tensors = randomTensors(rng(2));
    const flat = flatten(tensors, LAYOUT);
    const back = unflatten(flat, LAYOUT);
    for (const [name, { shape, data }] of tensors) {
      expect(back.get(name)!.shape).toEqual(shape);
      expect(back.get(name)!.data).toEqual(data);
    }
    flat[0] = 42;
    expect(back.get('a')!.data[0]).not.toBe(42);
  });

  it('refuses tensors that do not match the layout', () => {
    const tensors = randomTensors(rng(3));
    tensors.set('a', { shape: [1, 3], data: new Float32Array(3) });
    expect(() => flatten(tensors, LAYOUT)).toThrow(/SHAPE_MISMATCH/);
    tensors.delete('a');
    expect(() => flatten(tensors, LAYOUT)).toThrow(/NAME_MISMATCH/);
    expect(() => unflatten(new Float32Array(3), LAYOUT)).toThrow(/SIZE_MISMATCH/);
    expect(() =>
      layoutOf([
        { name: 'x', shape: [1] },
        { name: 'x', shape: [2] },
      ]),
    ).toThrow(/BAD_LAYOUT/);
  });
});

describe('frame view', () => {
  it('reads any range of the flat vector as decodeTensors does, in every encoding', () => {
    const tensors = randomTensors(rng(4), 0.5);
    for (const encoding of ['fp32', 'fp16', 'int8'] as UpdateEncoding[]) {
      const frame = encodeTensors(tensors, encoding);
      const expected = flatten(decodeTensors(frame), LAYOUT);
      const view = viewFrame(frame, LAYOUT);
      const out = new Float32Array(LAYOUT.size);
      readValues(view, LAYOUT, 0, LAYOUT.size, out);
      expect(out).toEqual(expected);
      // A range that starts inside one tensor and ends inside another.
      const part = new Float32Array(50);
      readValues(view, LAYOUT, 2, 50, part);
      expect(part).toEqual(expected.subarray(2, 52));
    }
  });

  it('refuses a frame of another model or a broken frame', () => {
    const other = encodeTensors(randomTensors(rng(5), 1, [['a', [4]]]), 'fp32');
    expect(() => viewFrame(other, LAYOUT)).toThrow(CheckpointError);
    const renamed = randomTensors(rng(6));
    renamed.set('A', renamed.get('a')!);
    renamed.delete('a');
    const reordered = encodeTensors(renamed, 'fp32');
    expect(() => viewFrame(reordered, LAYOUT)).toThrow(/NAME_MISMATCH/);
    const frame = encodeTensors(randomTensors(rng(7)), 'fp32');
    expect(() => viewFrame(frame.subarray(0, frame.length - 1), LAYOUT)).toThrow(/TRUNCATED/);
    const padded = new Uint8Array(frame.length + 1);
    padded.set(frame);
    expect(() => viewFrame(padded, LAYOUT)).toThrow(/MALFORMED_FRAME/);
    const reshaped = randomTensors(rng(8));
    reshaped.set('w.5x7', { shape: [7, 5], data: reshaped.get('w.5x7')!.data });
    expect(() => viewFrame(encodeTensors(reshaped, 'fp32'), LAYOUT)).toThrow(/SHAPE_MISMATCH/);
  });
});

describe('WeightedMeanAggregator (FedAvg, streaming)', () => {
  const N = 7;
  const random = rng(10);
  const updates = Array.from({ length: N }, () => randomTensors(random, 0.1));
  const weights = Array.from({ length: N }, (_, i) => 1 + ((i * 37) % 11));

  it('fp32: equals the weighted mean of the decoded updates to 1e-6', () => {
    const aggregator = new WeightedMeanAggregator(LAYOUT);
    const frames = updates.map((u) => encodeTensors(u, 'fp32'));
    frames.forEach((frame, i) => aggregator.add(frame, weights[i]!));
    expect(aggregator.count).toBe(N);
    const expected = weightedMean(
      frames.map((f) => flatten(decodeTensors(f), LAYOUT)),
      weights,
    );
    const result = aggregator.result()!;
    expect(result).toHaveLength(LAYOUT.size);
    // Float64 accumulation: the float32 result is the exact mean, rounded once.
    expect(maxAbsDiff(result, expected)).toBeLessThan(1e-6 * 0.1);
    for (let i = 0; i < result.length; i++) expect(result[i]).toBe(Math.fround(expected[i]!));
  });

  it('fp16 and int8: the mean of the decoded updates, within the encodings bounds of the originals', () => {
    const originals = weightedMean(
      updates.map((u) => flatten(u, LAYOUT)),
      weights,
    );
    for (const encoding of ['fp16', 'int8'] as UpdateEncoding[]) {
      const aggregator = new WeightedMeanAggregator(LAYOUT);
      const frames = updates.map((u) => encodeTensors(u, encoding));
      frames.forEach((frame, i) => aggregator.add(frame, weights[i]!));
      const decoded = weightedMean(
        frames.map((f) => flatten(decodeTensors(f), LAYOUT)),
        weights,
      );
      const result = aggregator.result()!;
      expect(maxAbsDiff(result, decoded)).toBeLessThan(1e-8);
      // fp16: half an ulp of values below 0.125 is 2^-14; int8: half a step, scale / 2 ≤ 0.1 / 254.
      const bound = encoding === 'fp16' ? 2 ** -14 : 0.1 / 254 + 1e-7;
      expect(maxAbsDiff(result, originals)).toBeLessThanOrEqual(bound);
    }
  });

  it('folds a round of mixed encodings', () => {
    const encodings: UpdateEncoding[] = ['fp32', 'fp16', 'int8'];
    const aggregator = new WeightedMeanAggregator(LAYOUT);
    const frames = updates.map((u, i) => encodeTensors(u, encodings[i % 3]!));
    frames.forEach((frame, i) => aggregator.add(frame, weights[i]!));
    const expected = weightedMean(
      frames.map((f) => flatten(decodeTensors(f), LAYOUT)),
      weights,
    );
    expect(maxAbsDiff(aggregator.result()!, expected)).toBeLessThan(1e-8);
  });

  it('does not depend on the order updates arrive in', () => {
    const frames = updates.map((u) => encodeTensors(u, 'fp32'));
    const forward = new WeightedMeanAggregator(LAYOUT);
    const backward = new WeightedMeanAggregator(LAYOUT);
    const shuffled = new WeightedMeanAggregator(LAYOUT);
    frames.forEach((f, i) => forward.add(f, weights[i]!));
    for (let i = N - 1; i >= 0; i--) backward.add(frames[i]!, weights[i]!);
    for (const i of [3, 0, 6, 2, 5, 1, 4]) shuffled.add(frames[i]!, weights[i]!);
    const a = forward.result()!;
    expect(maxAbsDiff(a, backward.result()!)).toBeLessThanOrEqual(1e-7 * 0.1);
    expect(maxAbsDiff(a, shuffled.result()!)).toBeLessThanOrEqual(1e-7 * 0.1);
  });

  it('has no viable result before the first update', () => {
    expect(new WeightedMeanAggregator(LAYOUT).result()).toBeNull();
  });

  it('holds the same memory whatever the number of updates', () => {
    const aggregator = new WeightedMeanAggregator(LAYOUT);
    const before = aggregator.memoryBytes();
    expect(before).toBeGreaterThanOrEqual(LAYOUT.size * 8);
    const frame = encodeTensors(updates[0]!, 'int8');
    for (let i = 0; i < 200; i++) aggregator.add(frame, 1);
    expect(aggregator.memoryBytes()).toBe(before);
    // One 1M-parameter model: 8 MB of float64 sum and a fixed scratch, not N frames.
    const big = new WeightedMeanAggregator(layoutOf([{ name: 'w', shape: [1000, 1000] }]));
    expect(big.memoryBytes()).toBeLessThan(8_000_000 + 512 * 1024);
  });

  it('refuses a frame of another model or a bad weight, leaving the sum as it was', () => {
    const aggregator = new WeightedMeanAggregator(LAYOUT);
    aggregator.add(encodeTensors(updates[0]!, 'fp32'), 2);
    const before = aggregator.result();
    const wrong = encodeTensors(randomTensors(rng(11), 1, [['a', [3]]]), 'fp32');
    expect(() => aggregator.add(wrong, 1)).toThrow(CheckpointError);
    for (const bad of [0, -1, Number.NaN, Infinity]) {
      expect(() => aggregator.add(encodeTensors(updates[1]!, 'fp32'), bad)).toThrow(
        AggregationError,
      );
    }
    expect(aggregator.count).toBe(1);
    expect(aggregator.result()).toEqual(before);
  });

  it('skips an all-zero int8 tensor (scale 0) and keeps a Node Buffer frame', () => {
    const layout = layoutOf([{ name: 'z', shape: [9] }]);
    const zeros: NamedTensors = new Map([['z', { shape: [9], data: new Float32Array(9) }]]);
    const ones: NamedTensors = new Map([['z', { shape: [9], data: new Float32Array(9).fill(1) }]]);
    const aggregator = new WeightedMeanAggregator(layout);
    aggregator.add(Buffer.from(encodeTensors(zeros, 'int8')), 3);
    aggregator.add(Buffer.from(encodeTensors(ones, 'int8')), 1);
    expect(aggregator.result()).toEqual(new Float32Array(9).fill(0.25));
  });
});

describe('order statistics', () => {
  it('selectInPlace puts the k-th smallest at k, smaller before and larger after', () => {
    const random = rng(20);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(random() * 80);
      // Few distinct values: duplicates are the hard case for partitioning.
      const values = Float64Array.from({ length: n }, () => Math.floor(random() * 9) - 4);
      const sorted = [...values].sort((a, b) => a - b);
      const k = Math.floor(random() * n);
      const a = values.slice();
      selectInPlace(a, 0, n, k);
      expect(a[k]).toBe(sorted[k]);
      for (let i = 0; i < k; i++) expect(a[i]).toBeLessThanOrEqual(a[k]!);
      for (let i = k + 1; i < n; i++) expect(a[i]).toBeGreaterThanOrEqual(a[k]!);
      expect([...a].sort((x, y) => x - y)).toEqual(sorted);
    }
  });

  it('median of odd and even counts (even: mean of the two middle values)', () => {
    expect(median(Float64Array.of(3, 1, 2))).toBe(2);
    expect(median(Float64Array.of(4, 1, 3, 2))).toBe(2.5);
    expect(median(Float64Array.of(7))).toBe(7);
    expect(median(Float64Array.of(-1, 5))).toBe(2);
    expect(median(Float64Array.of(5, 5, 1, 5))).toBe(5);
  });

  it('trimmed mean drops cut values from each side', () => {
    expect(trimmedMean(Float64Array.of(10, 1, 2, 3, -100), 1)).toBe(2);
    expect(trimmedMean(Float64Array.of(4, 1, 3, 2), 1)).toBe(2.5);
    expect(trimmedMean(Float64Array.of(4, 1, 3, 2), 0)).toBe(2.5);
  });

  /** Updates of one 3-value tensor: per coordinate, the values listed. */
  function roundOf(columns: number[][]): { layout: ParameterLayout; frames: Uint8Array[] } {
    const layout = layoutOf([{ name: 'x', shape: [columns.length] }]);
    const n = columns[0]!.length;
    const frames = Array.from({ length: n }, (_, r) =>
      flatFrame(
        columns.map((c) => c[r]!),
        layout,
      ),
    ).map((f) => f.frame);
    return { layout, frames };
  }

  it('MedianAggregator: coordinate-wise, unweighted, odd and even N', () => {
    const odd = roundOf([
      [1, 100, 3],
      [-5, 0, 5],
      [2, 2, -1e6],
    ]);
    const aggregator = new MedianAggregator(odd.layout);
    odd.frames.forEach((f, i) => aggregator.add(f, 1 + 1000 * i)); // weights are ignored
    expect(aggregator.result()).toEqual(Float32Array.of(3, 0, 2));

    const even = roundOf([
      [1, 2, 3, 4],
      [10, -10, 0, 0],
    ]);
    const evenAggregator = new MedianAggregator(even.layout);
    even.frames.forEach((f) => evenAggregator.add(f, 1));
    expect(evenAggregator.result()).toEqual(Float32Array.of(2.5, 0));
    expect(new MedianAggregator(even.layout).result()).toBeNull();
  });

  it('TrimmedMeanAggregator: cuts ⌊βN⌋ from each side', () => {
    const { layout, frames } = roundOf([
      [10, 1, 2, 3, -100],
      [1, 1, 1, 1, 1],
    ]);
    const aggregator = new TrimmedMeanAggregator(layout, 0.2); // N = 5: cut 1
    frames.forEach((f) => aggregator.add(f, 1));
    expect(aggregator.result()).toEqual(Float32Array.of(2, 1));
    const none = new TrimmedMeanAggregator(layout, 0.1); // ⌊0.5⌋ = 0: the plain mean
    frames.forEach((f) => none.add(f, 1));
    expect(none.result()![0]).toBeCloseTo(-84 / 5, 5);
  });

  it('walks a model larger than one block like a per-coordinate reference', () => {
    // 5 updates × 300k values: 1.5M values, so the coordinates span two blocks.
    const shapes: [string, number[]][] = [
      ['w', [299_999]],
      ['b', [1]],
    ];
    const layout = layoutOf(shapes.map(([name, shape]) => ({ name, shape })));
    const random = rng(21);
    const updates = Array.from({ length: 5 }, () => randomTensors(random, 1, shapes));
    const frames = updates.map((u) => encodeTensors(u, 'fp16'));
    const flats = frames.map((f) => flatten(decodeTensors(f), layout));
    const aggregator = new MedianAggregator(layout);
    frames.forEach((f) => aggregator.add(f, 1));
    expect(aggregator.memoryBytes()).toBe(frames.reduce((s, f) => s + f.byteLength, 0));
    const result = aggregator.result()!;
    for (const i of [...Array.from({ length: 301 }, (_, k) => k * 997), layout.size - 1]) {
      const sorted = flats.map((f) => f[i]!).sort((a, b) => a - b);
      expect(result[i]).toBe(sorted[2]);
    }
  });
});

describe('KrumAggregator', () => {
  it('scores by the n − f − 2 nearest squared distances (hand-computed)', () => {
    // Scalars 0, 1, 2, 10 with f = 0: each scored on its 2 nearest.
    // 0: 1 + 4 = 5; 1: 1 + 1 = 2; 2: 1 + 4 = 5; 10: 64 + 81 = 145.
    const layout = layoutOf([{ name: 'x', shape: [1] }]);
    const frames = [0, 1, 2, 10].map((v) => flatFrame([v], layout).frame);
    const krum = new KrumAggregator(layout, 0, 1);
    frames.forEach((f) => krum.add(f, 1));
    expect(krum.result()).toEqual(Float32Array.of(1));
    expect(krum.selection).toEqual([1]);
    // Multi-Krum m = 2: update 1, then 0 (ties with 2, added first); plain mean 0.5.
    const multi = new KrumAggregator(layout, 0, 2);
    frames.forEach((f, i) => multi.add(f, 100 * (i + 1)));
    expect(multi.result()).toEqual(Float32Array.of(0.5));
    expect(multi.selection).toEqual([1, 0]);
  });

  it('picks an honest update when f Byzantine outliers are present', () => {
    const random = rng(30);
    const f = 2;
    const honest = 7;
    const shapes: [string, number[]][] = [
      ['w', [4, 5]],
      ['b', [3]],
    ];
    const layout = layoutOf(shapes.map(([name, shape]) => ({ name, shape })));
    const center = randomTensors(random, 1, shapes);
    const updates: NamedTensors[] = [];
    for (let i = 0; i < honest; i++) {
      const noisy: NamedTensors = new Map();
      for (const [name, { shape, data }] of center) {
        noisy.set(name, { shape, data: data.map((x) => x + (random() - 0.5) * 0.01) });
      }
      updates.push(noisy);
    }
    // Byzantine: far away, and claiming huge example counts.
    updates.splice(2, 0, randomTensors(random, 50, shapes));
    updates.splice(5, 0, randomTensors(random, 50, shapes));
    const byzantine = new Set([2, 5]);
    const frames = updates.map((u) => encodeTensors(u, 'fp32'));
    const weight = (i: number) => (byzantine.has(i) ? 1e6 : 10);

    const krum = new KrumAggregator(layout, f, 1);
    frames.forEach((fr, i) => krum.add(fr, weight(i)));
    const result = krum.result()!;
    const [pick] = krum.selection!;
    expect(byzantine.has(pick!)).toBe(false);
    expect(result).toEqual(flatten(decodeTensors(frames[pick!]!), layout));

    const m = 4;
    const multi = new KrumAggregator(layout, f, m);
    frames.forEach((fr, i) => multi.add(fr, weight(i)));
    const mean = multi.result()!;
    const selection = multi.selection!;
    expect(selection).toHaveLength(m);
    expect(selection.some((i) => byzantine.has(i))).toBe(false);
    const expected = weightedMean(
      selection.map((i) => flatten(decodeTensors(frames[i]!), layout)),
      selection.map(() => 1),
    );
    expect(maxAbsDiff(mean, expected)).toBeLessThan(1e-6);

    // Default m = n − f: every honest update, none of the outliers.
    const all = new KrumAggregator(layout, f, undefined);
    frames.forEach((fr, i) => all.add(fr, weight(i)));
    all.result();
    expect([...all.selection!].sort((a, b) => a - b)).toEqual([0, 1, 3, 4, 6, 7, 8]);
  });

  it('has no viable result with n ≤ 2f + 2 updates or none at all', () => {
    const layout = layoutOf([{ name: 'x', shape: [2] }]);
    const krum = new KrumAggregator(layout, 1, 1);
    expect(krum.result()).toBeNull();
    for (let i = 0; i < 4; i++) krum.add(flatFrame([i, i], layout).frame, 1);
    expect(krum.result()).toBeNull(); // 4 ≤ 2·1 + 2
    krum.add(flatFrame([0, 0], layout).frame, 1);
    expect(krum.result()).not.toBeNull();
  });
});
