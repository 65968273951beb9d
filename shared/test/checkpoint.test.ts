import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { canonicalJson } from '../src/checkpoint/canonical-json.ts';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  type CheckpointInput,
} from '../src/checkpoint/codec.ts';
import { CheckpointError, type CheckpointErrorCode } from '../src/checkpoint/errors.ts';
import { readCheckpoint, writeCheckpoint } from '../src/checkpoint/folder.ts';
import { checkpointHash, sha256Hex } from '../src/checkpoint/hash.ts';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import type { ModelConfig } from '../src/model/config.ts';

const CONFIG: ModelConfig = {
  vocabSize: 4,
  blockSize: 2,
  nLayer: 1,
  nHead: 1,
  nEmbd: 2,
  dropout: 0,
  bias: true,
  tiedHead: false,
};
const TOKENIZER = { type: 'char', vocab: ['a', 'b', 'c', 'd'] };

/** Three tensors; "ln.bias" has 3 floats (12 bytes), so "head" starts after padding. */
function tinyTensors(): NamedTensors {
  const ramp = (n: number, step: number) =>
    Float32Array.from({ length: n }, (_, i) => i * step - 1);
  return new Map([
    ['wte', { shape: [4, 2], data: ramp(8, 0.25) }],
    ['ln.bias', { shape: [3], data: ramp(3, 0.5) }],
    ['head', { shape: [2, 4], data: ramp(8, -0.125) }],
  ]);
}

function tinyInput(overrides: Partial<CheckpointInput> = {}): CheckpointInput {
  return {
    config: CONFIG,
    tokenizer: TOKENIZER,
    tensors: tinyTensors(),
    provenance: { steps: 10, seed: 1, createdAt: '2025-01-01T00:00:00Z' },
    ...overrides,
  };
}

/** Computed once from the fixture above; it must never change across machines or versions. */
const GOLDEN_HASH = '1c0f4a40de2c1bf9beb90e88b0317bd417f95e83a8b5351f6c3f10a627664dfc';

function refusal(fn: () => unknown): CheckpointError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    return error as CheckpointError;
  }
  throw new Error('expected a CheckpointError, but nothing was thrown');
}

function expectRefusal(fn: () => unknown, code: CheckpointErrorCode, fragment: string | RegExp) {
  const error = refusal(fn);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(fragment);
}

async function expectAsyncRefusal(
  promise: Promise<unknown>,
  code: CheckpointErrorCode,
  fragment: string | RegExp,
) {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CheckpointError);
  expect((error as CheckpointError).code).toBe(code);
  expect((error as CheckpointError).message).toMatch(fragment);
}

function expectSameTensors(actual: NamedTensors, expected: NamedTensors) {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, tensor] of expected) {
    const got = actual.get(name);
    expect(got?.shape).toEqual(tensor.shape);
    expect(Array.from(got?.data ?? [])).toEqual(Array.from(tensor.data));
  }
}

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'commons-checkpoint-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Writes the fixture, then lets a test damage one file before reading it back. */
async function damaged(
  edit: (paths: { manifest: string; weights: string }) => Promise<void>,
): Promise<string> {
  const dir = join(work, 'ckpt');
  await writeCheckpoint(dir, tinyInput());
  await edit({ manifest: join(dir, 'manifest.json'), weights: join(dir, 'weights.bin') });
  return dir;
}

async function editManifest(path: string, change: (manifest: Record<string, unknown>) => void) {
  const manifest = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  change(manifest);
  await writeFile(path, JSON.stringify(manifest));
}

describe('checkpoint round trip', () => {
  it('reads back exactly what was written, in order', async () => {
    const input = tinyInput();
    const { hash, dir } = await writeCheckpoint(join(work, 'ckpt'), input);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await readdir(dir)).sort()).toEqual(['manifest.json', 'weights.bin']);

    const loaded = await readCheckpoint(dir, { expectedHash: hash });
    expect(loaded.hash).toBe(hash);
    expectSameTensors(loaded.tensors, input.tensors);
    expect(loaded.manifest.config).toEqual(CONFIG);
    expect(loaded.manifest.tokenizer).toEqual(TOKENIZER);
    expect(loaded.manifest.provenance).toEqual(input.provenance);
    expect(loaded.manifest.kind).toBe('model');
    expect(loaded.manifest.formatVersion).toBe(1);
  });

  it('aligns every tensor to 8 bytes and pads with zeros', () => {
    const { manifest, weights } = encodeCheckpoint(tinyInput());
    expect(manifest.tensors.map((t) => [t.name, t.offset, t.byteLength])).toEqual([
      ['wte', 0, 32],
      ['ln.bias', 32, 12],
      ['head', 48, 32],
    ]);
    expect(weights.length).toBe(80);
    expect(manifest.weightsByteLength).toBe(80);
    expect(Array.from(weights.subarray(44, 48))).toEqual([0, 0, 0, 0]);
  });

  it('accepts the manifest as text, UTF-8 bytes or a parsed object', () => {
    const { manifest, weights, hash } = encodeCheckpoint(tinyInput());
    const text = JSON.stringify(manifest);
    for (const form of [text, new TextEncoder().encode(text), JSON.parse(text) as unknown]) {
      expect(decodeCheckpoint(form, weights).hash).toBe(hash);
    }
  });

  it('returns fresh arrays that share nothing with the weights bytes', () => {
    const { manifest, weights } = encodeCheckpoint(tinyInput());
    const { tensors } = decodeCheckpoint(manifest, weights);
    weights.fill(0);
    expectSameTensors(tensors, tinyTensors());
  });

  it('stores a compact float16 checkpoint, exact for values float16 can hold', async () => {
    const { dir } = await writeCheckpoint(join(work, 'half'), tinyInput({ dtype: 'float16' }));
    const loaded = await readCheckpoint(dir);
    expect(loaded.manifest.tensors.every((t) => t.dtype === 'float16')).toBe(true);
    expect(loaded.manifest.weightsByteLength).toBe(16 + 8 + 16);
    expectSameTensors(loaded.tensors, tinyTensors());
  });

  it('round-trips an adapter-only checkpoint with its base hash and LoRA config', async () => {
    const base = encodeCheckpoint(tinyInput()).hash;
    const lora = { rank: 1, alpha: 2, targets: ['q_proj' as const] };
    const adapterTensors: NamedTensors = new Map([
      ['h0.attn.qkv.loraA', { shape: [2, 1], data: new Float32Array([0.5, -0.5]) }],
      ['h0.attn.qkv.loraB', { shape: [1, 6], data: new Float32Array(6) }],
    ]);
    const { dir, hash } = await writeCheckpoint(
      join(work, 'adapter'),
      tinyInput({ tensors: adapterTensors, adapter: { baseHash: base, lora } }),
    );
    const loaded = await readCheckpoint(dir);
    expect(loaded.hash).toBe(hash);
    expect(loaded.manifest.kind).toBe('adapter');
    expect(loaded.manifest.adapter).toEqual({ baseHash: base, lora });
    expectSameTensors(loaded.tensors, adapterTensors);
  });

  it('checks the tensors against the shapes the model expects', () => {
    const { manifest, weights } = encodeCheckpoint(tinyInput());
    const shapes = new Map([
      ['wte', [4, 2]],
      ['ln.bias', [3]],
      ['head', [2, 4]],
    ]);
    expect(decodeCheckpoint(manifest, weights, { expectedShapes: shapes }).tensors.size).toBe(3);

    const wrong = new Map(shapes).set('head', [4, 2]);
    expectRefusal(
      () => decodeCheckpoint(manifest, weights, { expectedShapes: wrong }),
      'SHAPE_MISMATCH',
      'tensor "head" has shape [2, 4], the model expects [4, 2]',
    );
    const more = new Map(shapes).set('wpe', [2, 2]);
    expectRefusal(
      () => decodeCheckpoint(manifest, weights, { expectedShapes: more }),
      'SHAPE_MISMATCH',
      'tensor "wpe" is missing',
    );
    const fewer = new Map(shapes);
    fewer.delete('ln.bias');
    expectRefusal(
      () => decodeCheckpoint(manifest, weights, { expectedShapes: fewer }),
      'SHAPE_MISMATCH',
      'unexpected tensor "ln.bias"',
    );
  });
});

describe('checkpoint hash', () => {
  it('is sha256 as lowercase hex', () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('is the golden value for the fixed tiny checkpoint', () => {
    expect(encodeCheckpoint(tinyInput()).hash).toBe(GOLDEN_HASH);
  });

  it('ignores provenance: same weights, config and tokenizer give the same hash', () => {
    const a = encodeCheckpoint(tinyInput());
    const b = encodeCheckpoint(
      tinyInput({ provenance: { steps: 99999, seed: 42, createdAt: '2030-12-31', parent: 'x' } }),
    );
    expect(b.hash).toBe(a.hash);
    // Key order of the tokenizer object does not matter either.
    const c = encodeCheckpoint(tinyInput({ tokenizer: { vocab: TOKENIZER.vocab, type: 'char' } }));
    expect(c.hash).toBe(a.hash);
  });

  it('changes with the weights, the config, the tokenizer and the dtype', () => {
    const base = encodeCheckpoint(tinyInput()).hash;
    const tensors = tinyTensors();
    tensors.get('wte')!.data[3] = 7;
    expect(encodeCheckpoint(tinyInput({ tensors })).hash).not.toBe(base);
    expect(encodeCheckpoint(tinyInput({ config: { ...CONFIG, dropout: 0.1 } })).hash).not.toBe(
      base,
    );
    expect(encodeCheckpoint(tinyInput({ tokenizer: { type: 'bpe' } })).hash).not.toBe(base);
    expect(encodeCheckpoint(tinyInput({ dtype: 'float16' })).hash).not.toBe(base);
  });

  it('can be recomputed from the documented definition with another sha256 and JSON writer', async () => {
    const { dir, hash } = await writeCheckpoint(join(work, 'ckpt'), tinyInput());
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    delete manifest.provenance;
    delete manifest.hash;
    const sortKeys = (_key: string, value: unknown) =>
      value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)))
        : value;
    const recomputed = createHash('sha256')
      .update(JSON.stringify(manifest, sortKeys), 'utf8')
      .update(await readFile(join(dir, 'weights.bin')))
      .digest('hex');
    expect(recomputed).toBe(hash);
  });

  it('writes canonical JSON: sorted keys, no whitespace, nothing JSON cannot hold', () => {
    expect(canonicalJson({ b: [1, { d: 'x', c: null }], a: true, z: undefined, e: 1.5 })).toBe(
      '{"a":true,"b":[1,{"c":null,"d":"x"}],"e":1.5}',
    );
    expectRefusal(() => canonicalJson({ a: [NaN] }), 'MALFORMED_MANIFEST', '$.a[0] is NaN');
    expectRefusal(() => canonicalJson({ when: new Date(0) }), 'MALFORMED_MANIFEST', '$.when');
  });
});

describe('refusing a damaged checkpoint', () => {
  it('refuses a flipped byte, naming the expected and the computed hash', async () => {
    let recorded = '';
    const dir = await damaged(async ({ weights, manifest }) => {
      recorded = (JSON.parse(await readFile(manifest, 'utf8')) as { hash: string }).hash;
      const bytes = await readFile(weights);
      bytes[5] = (bytes[5] ?? 0) ^ 0x01;
      await writeFile(weights, bytes);
    });
    const error = (await readCheckpoint(dir).then(
      () => undefined,
      (e: unknown) => e,
    )) as CheckpointError;
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error.code).toBe('HASH_MISMATCH');
    expect(error.message).toContain(`manifest expects hash ${recorded}`);
    expect(error.message).toMatch(/content hashes to [0-9a-f]{64}/);
  });

  it('refuses a truncated weights file, with the byte counts', async () => {
    const dir = await damaged(({ weights }) => truncate(weights, 79));
    await expectAsyncRefusal(
      readCheckpoint(dir),
      'SIZE_MISMATCH',
      'weights are 79 bytes but the manifest describes 80',
    );
  });

  it('refuses a weights file with a byte appended', async () => {
    const dir = await damaged(({ weights }) => appendFile(weights, new Uint8Array([0])));
    await expectAsyncRefusal(
      readCheckpoint(dir),
      'SIZE_MISMATCH',
      'weights are 81 bytes but the manifest describes 80',
    );
  });

  it('refuses a shape that does not match the byte length, naming the tensor', async () => {
    const dir = await damaged(({ manifest }) =>
      editManifest(manifest, (m) => {
        (m.tensors as { shape: number[] }[])[1]!.shape = [4];
      }),
    );
    await expectAsyncRefusal(
      readCheckpoint(dir),
      'SHAPE_MISMATCH',
      'tensor "ln.bias" has shape [4]',
    );
  });

  it('refuses a reshaped tensor whose byte length still fits: the hash covers the index', async () => {
    const dir = await damaged(({ manifest }) =>
      editManifest(manifest, (m) => {
        (m.tensors as { shape: number[] }[])[0]!.shape = [2, 4];
      }),
    );
    await expectAsyncRefusal(readCheckpoint(dir), 'HASH_MISMATCH', 'corrupt');
  });

  it('refuses an unknown format version', async () => {
    const dir = await damaged(({ manifest }) =>
      editManifest(manifest, (m) => {
        m.formatVersion = 99;
      }),
    );
    await expectAsyncRefusal(
      readCheckpoint(dir),
      'UNSUPPORTED_FORMAT',
      'formatVersion 99 is not supported',
    );
  });

  it('refuses something that is not a Commons checkpoint', async () => {
    const dir = await damaged(({ manifest }) =>
      editManifest(manifest, (m) => {
        m.format = 'safetensors';
      }),
    );
    await expectAsyncRefusal(readCheckpoint(dir), 'UNSUPPORTED_FORMAT', 'not a Commons checkpoint');
  });

  it('refuses garbage JSON', async () => {
    const dir = await damaged(({ manifest }) => writeFile(manifest, '{"format": "commons-che'));
    await expectAsyncRefusal(readCheckpoint(dir), 'MALFORMED_MANIFEST', 'not valid JSON');
  });

  it('refuses a manifest that breaks the schema, giving the path', async () => {
    const dir = await damaged(({ manifest }) =>
      editManifest(manifest, (m) => {
        (m.config as Record<string, unknown>).nHead = 'four';
      }),
    );
    await expectAsyncRefusal(readCheckpoint(dir), 'MALFORMED_MANIFEST', 'config.nHead');
  });

  it('refuses schema violations in the tensor index and the adapter rule', () => {
    const { manifest, weights } = encodeCheckpoint(tinyInput());
    expectRefusal(
      () =>
        decodeCheckpoint(
          { ...manifest, tensors: [{ ...manifest.tensors[0], dtype: 'int4' }] },
          weights,
        ),
      'MALFORMED_MANIFEST',
      'tensors[0].dtype',
    );
    expectRefusal(
      () => decodeCheckpoint({ ...manifest, kind: 'adapter' }, weights),
      'MALFORMED_MANIFEST',
      "adapter: adapter info is required when kind is 'adapter'",
    );
    expectRefusal(
      () => decodeCheckpoint({ ...manifest, config: { ...CONFIG, secret: 1 } }, weights),
      'MALFORMED_MANIFEST',
      'config',
    );
    expectRefusal(() => decodeCheckpoint([1, 2], weights), 'MALFORMED_MANIFEST', 'JSON object');
    expectRefusal(
      () => decodeCheckpoint(new Uint8Array([0xff, 0xfe]), weights),
      'MALFORMED_MANIFEST',
      'UTF-8',
    );
  });

  it('refuses overlapping, misaligned, out-of-bounds and duplicate tensors', () => {
    const { manifest, weights } = encodeCheckpoint(tinyInput());
    const withTensor = (index: number, change: Record<string, unknown>) => ({
      ...manifest,
      tensors: manifest.tensors.map((t, i) => (i === index ? { ...t, ...change } : t)),
    });
    expectRefusal(
      () => decodeCheckpoint(withTensor(1, { offset: 24 }), weights),
      'BAD_LAYOUT',
      'tensor "ln.bias" at offset 24 overlaps "wte", which ends at 32',
    );
    expectRefusal(
      () => decodeCheckpoint(withTensor(1, { offset: 36 }), weights),
      'BAD_LAYOUT',
      'offset 36 is not a multiple of 8',
    );
    expectRefusal(
      () => decodeCheckpoint(withTensor(2, { offset: 56 }), weights),
      'BAD_LAYOUT',
      'tensor "head" ends at byte 88, past weightsByteLength 80',
    );
    expectRefusal(
      () => decodeCheckpoint({ ...manifest, weightsByteLength: 96 }, weights),
      'BAD_LAYOUT',
      'the last tensor ends at byte 80 but weightsByteLength is 96',
    );
    expectRefusal(
      () => decodeCheckpoint(withTensor(2, { name: 'wte' }), weights),
      'MALFORMED_MANIFEST',
      'tensor "wte" is listed twice',
    );
  });

  it('refuses non-finite weights even when the hash is consistent, naming the tensor', () => {
    const { manifest, weights } = encodeCheckpoint(tinyInput());
    const poisoned = weights.slice();
    new DataView(poisoned.buffer).setFloat32(48 + 4 * 2, NaN, true);
    const rehashed = { ...manifest, hash: checkpointHash(manifest, poisoned) };
    expectRefusal(() => decodeCheckpoint(rehashed, poisoned), 'NON_FINITE', 'head[2] is NaN');
  });

  it('refuses a missing file, naming it', async () => {
    const dir = await damaged(({ weights }) => rm(weights));
    await expectAsyncRefusal(readCheckpoint(dir), 'MISSING_FILE', 'weights.bin does not exist');
    await expectAsyncRefusal(
      readCheckpoint(join(work, 'nowhere')),
      'MISSING_FILE',
      'manifest.json',
    );
  });

  it('refuses an intact checkpoint that is not the expected one', async () => {
    const { dir, hash } = await writeCheckpoint(join(work, 'ckpt'), tinyInput());
    const other = 'ab'.repeat(32);
    await expectAsyncRefusal(
      readCheckpoint(dir, { expectedHash: other }),
      'UNEXPECTED_HASH',
      `expected checkpoint ${other} but this one is ${hash}`,
    );
    // A bytes32 as the chain gives it (0x-prefixed, any case) is the same hash.
    expect((await readCheckpoint(dir, { expectedHash: `0x${hash.toUpperCase()}` })).hash).toBe(
      hash,
    );
  });
});

describe('refusing to encode what could not be loaded', () => {
  it('refuses NaN, infinity and float16 overflow', () => {
    const nan = tinyTensors();
    nan.get('ln.bias')!.data[1] = NaN;
    expectRefusal(
      () => encodeCheckpoint(tinyInput({ tensors: nan })),
      'NON_FINITE',
      'ln.bias[1] is NaN',
    );
    const big = tinyTensors();
    big.get('wte')!.data[0] = 70000;
    expect(encodeCheckpoint(tinyInput({ tensors: big })).hash).toMatch(/^[0-9a-f]{64}$/);
    expectRefusal(
      () => encodeCheckpoint(tinyInput({ tensors: big, dtype: 'float16' })),
      'NON_FINITE',
      'wte[0] = 70000 overflows float16',
    );
  });

  it('refuses data that does not fill its shape, and an invalid config', () => {
    const tensors: NamedTensors = new Map([['w', { shape: [2, 2], data: new Float32Array(3) }]]);
    expectRefusal(
      () => encodeCheckpoint(tinyInput({ tensors })),
      'SHAPE_MISMATCH',
      'tensor "w" has shape [2, 2] but 3 values',
    );
    expectRefusal(
      () => encodeCheckpoint(tinyInput({ config: { ...CONFIG, nHead: 3 } })),
      'MALFORMED_MANIFEST',
      'nEmbd must be divisible by nHead',
    );
    expectRefusal(
      () => encodeCheckpoint(tinyInput({ tokenizer: 'char' })),
      'MALFORMED_MANIFEST',
      'tokenizer',
    );
  });
});

describe('atomic write', () => {
  it('leaves nothing behind when encoding fails', async () => {
    const tensors = tinyTensors();
    tensors.get('head')!.data[0] = Infinity;
    await expectAsyncRefusal(
      writeCheckpoint(join(work, 'ckpt'), tinyInput({ tensors })),
      'NON_FINITE',
      'head[0]',
    );
    expect(await readdir(work)).toEqual([]);
  });

  it('never replaces an existing checkpoint and cleans up its temporary folder', async () => {
    const dir = join(work, 'ckpt');
    const first = await writeCheckpoint(dir, tinyInput());
    const other = tinyTensors();
    other.get('wte')!.data[0] = 5;
    await expectAsyncRefusal(
      writeCheckpoint(dir, tinyInput({ tensors: other })),
      'ALREADY_EXISTS',
      'already exists',
    );
    expect(await readdir(work)).toEqual(['ckpt']);
    expect((await readCheckpoint(dir)).hash).toBe(first.hash);
  });

  it('cleans up when the final rename fails', async () => {
    // A file where the folder should go makes the rename fail after both files are written.
    const target = join(work, 'ckpt');
    await writeFile(target, 'not a folder');
    await expect(writeCheckpoint(target, tinyInput())).rejects.toThrow();
    expect(await readdir(work)).toEqual(['ckpt']);
    expect(await readFile(target, 'utf8')).toBe('not a folder');
  });
});
