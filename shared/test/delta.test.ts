import { describe, expect, it } from 'vitest';

import { applyDelta, computeDelta, l2Norm } from '../src/checkpoint/delta.ts';
import { CheckpointError, type CheckpointErrorCode } from '../src/checkpoint/errors.ts';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../src/checkpoint/float16.ts';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import { decodeTensors, encodeTensors } from '../src/checkpoint/update-codec.ts';

function expectRefusal(fn: () => unknown, code: CheckpointErrorCode, fragment: string | RegExp) {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  expect((caught as CheckpointError).code).toBe(code);
  expect((caught as CheckpointError).message).toMatch(fragment);
}

/** Deterministic pseudo-random values in [-amplitude, amplitude]. */
function noise(n: number, seed: number, amplitude = 1): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32 - 0.5) * 2 * amplitude;
  });
}

function tensors(entries: [string, number[], Float32Array][]): NamedTensors {
  return new Map(entries.map(([name, shape, data]) => [name, { shape, data }]));
}

describe('deltas', () => {
  const base = tensors([
    ['a', [2, 2], new Float32Array([1, 2, 3, 4])],
    ['b', [3], new Float32Array([0.5, -0.5, 0.25])],
  ]);
  const updated = tensors([
    ['a', [2, 2], new Float32Array([1.5, 2, 2, 4.25])],
    ['b', [3], new Float32Array([0.5, 0.5, 0])],
  ]);

  it('computes updated − base and applies it back', () => {
    const delta = computeDelta(base, updated);
    expect([...delta.keys()]).toEqual(['a', 'b']);
    expect(Array.from(delta.get('a')!.data)).toEqual([0.5, 0, -1, 0.25]);
    expect(Array.from(delta.get('b')!.data)).toEqual([0, 1, -0.25]);
    expect(delta.get('a')!.shape).toEqual([2, 2]);

    const restored = applyDelta(base, delta);
    for (const [name, { data }] of updated) {
      expect(Array.from(restored.get(name)!.data)).toEqual(Array.from(data));
    }
    const halfway = applyDelta(base, delta, 0.5);
    expect(Array.from(halfway.get('a')!.data)).toEqual([1.25, 2, 2.5, 4.125]);
    // Inputs are untouched.
    expect(Array.from(base.get('a')!.data)).toEqual([1, 2, 3, 4]);
  });

  it('refuses tensors that do not correspond, naming them', () => {
    const missing = tensors([['a', [2, 2], new Float32Array(4)]]);
    expectRefusal(
      () => computeDelta(base, missing),
      'NAME_MISMATCH',
      'tensor "b" is in base but not in updated',
    );
    const extra = new Map(updated).set('c', { shape: [1], data: new Float32Array(1) });
    expectRefusal(
      () => applyDelta(base, extra),
      'NAME_MISMATCH',
      'tensor "c" is in delta but not in base',
    );
    const reshaped = new Map(updated).set('a', { shape: [4], data: new Float32Array(4) });
    expectRefusal(
      () => computeDelta(base, reshaped),
      'SHAPE_MISMATCH',
      'tensor "a" is [2, 2] in base but [4] in updated',
    );
  });

  it('measures the global L2 norm across all tensors', () => {
    expect(
      l2Norm(
        tensors([
          ['x', [2], new Float32Array([3, 4])],
          ['y', [1], new Float32Array([12])],
        ]),
      ),
    ).toBe(13);
    expect(l2Norm(new Map())).toBe(0);
  });

  it('accumulates the norm in float64', () => {
    const n = 1_000_000;
    const small = Math.fround(1e-3);
    const norm = l2Norm(tensors([['x', [n], new Float32Array(n).fill(small)]]));
    // A float32 running sum drifts by orders of magnitude more than this.
    expect(Math.abs(norm - small * Math.sqrt(n))).toBeLessThan(1e-9);
  });
});

describe('update frames', () => {
  const update = tensors([
    ['h0.attn.qkv.weight', [4, 6], noise(24, 1, 0.1)],
    ['scalar', [], new Float32Array([-2.5])],
    ['empty', [0, 3], new Float32Array(0)],
    ['ünïcode name', [5], noise(5, 2, 3)],
  ]);

  it('round-trips fp32 exactly, with names, shapes and order', () => {
    const frame = encodeTensors(update, 'fp32');
    const decoded = decodeTensors(frame);
    expect([...decoded.keys()]).toEqual([...update.keys()]);
    for (const [name, { shape, data }] of update) {
      expect(decoded.get(name)!.shape).toEqual(shape);
      expect(Array.from(decoded.get(name)!.data)).toEqual(Array.from(data));
    }
  });

  it('writes the documented header', () => {
    const frame = encodeTensors(update, 'int8');
    expect(Array.from(frame.subarray(0, 4))).toEqual([0x43, 0x4d, 0x55, 0x50]);
    const view = new DataView(frame.buffer);
    expect(view.getUint8(4)).toBe(1);
    expect(view.getUint8(5)).toBe(2);
    expect(view.getUint16(6, true)).toBe(0);
    expect(view.getUint32(8, true)).toBe(4);
  });

  it('keeps fp16 within 2^-11 relative error, and exact where float16 can hold the value', () => {
    const values = noise(1000, 3, 100);
    const exact = values.map((x) => float16BitsToFloat32(float32ToFloat16Bits(x)));
    const decoded = decodeTensors(
      encodeTensors(
        tensors([
          ['v', [1000], values],
          ['exact', [1000], exact],
        ]),
        'fp16',
      ),
    );
    const v = decoded.get('v')!.data;
    values.forEach((x, i) => {
      if (Math.abs(x) >= 2 ** -14)
        expect(Math.abs((v[i] ?? 0) - x) / Math.abs(x)).toBeLessThanOrEqual(2 ** -11);
    });
    expect(Array.from(decoded.get('exact')!.data)).toEqual(Array.from(exact));
  });

  it('keeps int8 within half a quantisation step of every value', () => {
    const values = noise(4096, 4, 0.02);
    const frame = encodeTensors(tensors([['v', [64, 64], values]]), 'int8');
    // magic..count (12) + name length (2) + "v" (1) + rank (1) + 2 dims (8), then the scale.
    const scale = new DataView(frame.buffer).getFloat32(24, true);
    const maxAbs = values.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(scale).toBe(Math.fround(maxAbs / 127));
    expect(frame.length).toBe(28 + 4096);

    const decoded = decodeTensors(frame).get('v')!.data;
    const epsilon = 1e-6 * maxAbs;
    let worst = 0;
    values.forEach((x, i) => (worst = Math.max(worst, Math.abs((decoded[i] ?? 0) - x))));
    expect(worst).toBeLessThanOrEqual(scale / 2 + epsilon);
    // The largest magnitude lands on ±127 and comes back (nearly) exactly.
    const peak = values.findIndex((x) => Math.abs(x) === maxAbs);
    expect(Math.abs((decoded[peak] ?? 0) - (values[peak] ?? 0))).toBeLessThanOrEqual(epsilon);
  });

  it('quantises symmetrically and gives an all-zero tensor scale 0', () => {
    const frame = encodeTensors(tensors([['z', [3], new Float32Array(3)]]), 'int8');
    expect(new DataView(frame.buffer).getFloat32(20, true)).toBe(0);
    expect(Array.from(decodeTensors(frame).get('z')!.data)).toEqual([0, 0, 0]);

    const symmetric = decodeTensors(
      encodeTensors(tensors([['s', [4], new Float32Array([1, -1, 0.3, -0.3])]]), 'int8'),
    ).get('s')!.data;
    expect(symmetric[0]).toBe(-(symmetric[1] ?? 0));
    expect(symmetric[2]).toBe(-(symmetric[3] ?? 0));
  });

  it('accepts a Node Buffer that sits inside a larger pool', () => {
    const frame = encodeTensors(update, 'fp16');
    const pooled = Buffer.alloc(frame.length + 3);
    pooled.set(frame, 3);
    expect(decodeTensors(pooled.subarray(3)).size).toBe(4);
  });

  it('decodes into one vector end to end, in every encoding, or refuses a frame that overflows it', () => {
    for (const encoding of ['fp32', 'fp16', 'int8'] as const) {
      // An unaligned frame inside a pool, so the fp32 path copies bytes at any offset.
      const encoded = encodeTensors(update, encoding);
      const pooled = Buffer.alloc(encoded.length + 1);
      pooled.set(encoded, 1);
      const frame = pooled.subarray(1);
      const fresh = [...decodeTensors(frame).values()].flatMap((t) => Array.from(t.data));
      const into = new Float32Array(30);
      const views = decodeTensors(frame, into);
      expect(Array.from(into)).toEqual(fresh);
      expect(views.get('scalar')!.data.buffer).toBe(into.buffer);
      expect(() => decodeTensors(frame, new Float32Array(29))).toThrow(
        /"ünïcode name" takes the frame past the 29 values expected/,
      );
    }
    const bad = encodeTensors(update, 'fp32');
    new DataView(bad.buffer, bad.byteOffset).setFloat32(bad.length - 4, Number.NaN, true);
    expect(() => decodeTensors(bad, new Float32Array(30))).toThrow(CheckpointError);
  });

  it('refuses to encode what it could not decode', () => {
    const nan = tensors([['bad', [2], new Float32Array([0, NaN])]]);
    expectRefusal(() => encodeTensors(nan, 'int8'), 'NON_FINITE', 'bad[1] is NaN');
    expectRefusal(() => encodeTensors(nan, 'fp32'), 'NON_FINITE', 'bad[1] is NaN');
    expectRefusal(
      () => encodeTensors(tensors([['big', [1], new Float32Array([1e6])]]), 'fp16'),
      'NON_FINITE',
      'overflows float16',
    );
    expectRefusal(
      () => encodeTensors(tensors([['w', [2, 2], new Float32Array(3)]]), 'fp32'),
      'SHAPE_MISMATCH',
      'tensor "w"',
    );
    expectRefusal(() => encodeTensors(update, 'int4' as 'int8'), 'UNSUPPORTED_ENCODING', 'int4');
  });
});

describe('malformed update frames', () => {
  const good = encodeTensors(
    tensors([
      ['first', [2, 3], noise(6, 5)],
      ['second', [4], noise(4, 6)],
    ]),
    'int8',
  );
  const edited = (at: number, bytes: number[]) => {
    const copy = good.slice();
    copy.set(bytes, at);
    return copy;
  };

  it('refuses every truncation of a valid frame', () => {
    for (let length = 0; length < good.length; length++) {
      expectRefusal(
        () => decodeTensors(good.subarray(0, length)),
        'TRUNCATED',
        'frame ends at byte',
      );
    }
  });

  it('refuses trailing bytes', () => {
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    expectRefusal(
      () => decodeTensors(longer),
      'MALFORMED_FRAME',
      '1 unexpected bytes after the last tensor',
    );
  });

  it('refuses a bad magic, version, encoding or reserved field', () => {
    expectRefusal(() => decodeTensors(edited(0, [0x7b])), 'BAD_MAGIC', 'not an update frame');
    expectRefusal(() => decodeTensors(edited(4, [2])), 'UNSUPPORTED_FORMAT', 'version 2');
    expectRefusal(() => decodeTensors(edited(5, [7])), 'UNSUPPORTED_ENCODING', 'encoding id 7');
    expectRefusal(() => decodeTensors(edited(6, [1])), 'MALFORMED_FRAME', 'reserved');
  });

  it('refuses bad names, duplicate names, bad scales and -128', () => {
    // Layout of the first tensor: name length at 12, "first" at 14, rank at 19, dims at 20,
    // scale at 28, data at 32..38; the second tensor's name length is at 38, name at 40.
    expectRefusal(() => decodeTensors(edited(14, [0xff])), 'MALFORMED_FRAME', 'not valid UTF-8');
    const duplicate = encodeTensors(
      tensors([
        ['aa', [1], new Float32Array([1])],
        ['ab', [1], new Float32Array([1])],
      ]),
      'fp32',
    );
    duplicate[14 + 2 + 1 + 4 + 4 + 2 + 1] = 0x61; // second name "ab" -> "aa"
    expectRefusal(() => decodeTensors(duplicate), 'MALFORMED_FRAME', 'tensor "aa" appears twice');

    const negative = good.slice();
    new DataView(negative.buffer).setFloat32(28, -1, true);
    expectRefusal(() => decodeTensors(negative), 'MALFORMED_FRAME', 'int8 scale -1');
    const nanScale = good.slice();
    new DataView(nanScale.buffer).setFloat32(28, NaN, true);
    expectRefusal(() => decodeTensors(nanScale), 'MALFORMED_FRAME', 'int8 scale NaN');
    expectRefusal(() => decodeTensors(edited(32, [0x80])), 'MALFORMED_FRAME', '-128');
  });

  it('refuses non-finite floats', () => {
    const frame = encodeTensors(tensors([['w', [2], new Float32Array([1, 2])]]), 'fp32');
    new DataView(frame.buffer).setFloat32(frame.length - 4, Infinity, true);
    expectRefusal(() => decodeTensors(frame), 'NON_FINITE', 'w[1] is Infinity');
  });

  it('refuses a header that announces more data than there is, without allocating it', () => {
    const huge = edited(20, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // dims 2^32-1 × 2^32-1
    expectRefusal(() => decodeTensors(huge), 'TRUNCATED', '"first" data needs');
    const count = edited(8, [0xff, 0xff, 0xff, 0xff]);
    expectRefusal(() => decodeTensors(count), 'TRUNCATED', 'tensor 2 name length');
  });
});
