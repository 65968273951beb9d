import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { openHfFolder, writeHfFolder } from '../src/formats/hf-folder.ts';
import { encodeSafetensors, SafetensorsFile } from '../src/formats/safetensors.ts';
import { TINY_DECODERS } from '../reference/tiny-decoders.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-model-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A safetensors file whose header is `header` (raw JSON text) followed by `dataBytes` bytes. */
async function rawFile(name: string, header: string, dataBytes: number): Promise<string> {
  const file = path.join(dir, name);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  await writeFile(file, Buffer.concat([prefix, Buffer.from(header), Buffer.alloc(dataBytes)]));
  return file;
}

describe('safetensors', () => {
  it('round-trips F32 exactly, and F16 / BF16 to their precision', async () => {
    const data = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 3));
    const file = path.join(dir, 'round-trip.safetensors');
    await writeFile(
      file,
      encodeSafetensors(
        [
          { name: 'a', shape: [8, 8], data },
          { name: 'b', shape: [64], data, dtype: 'F16' },
          { name: 'c', shape: [2, 32], data, dtype: 'BF16' },
        ],
        { format: 'pt' },
      ),
    );
    const st = await SafetensorsFile.open(file);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect([...st.entries.keys()]).toEqual(['a', 'b', 'c']);
    const a = await st.read('a');
    expect(a.shape).toEqual([8, 8]);
    expect([...a.data]).toEqual([...data]);
    const b = await st.read('b');
    const c = await st.read('c');
    data.forEach((v, i) => {
      expect(Math.abs(b.data[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -24);
      expect(Math.abs(c.data[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
    });
    await expect(st.read('nope')).rejects.toThrow(/MISSING_TENSOR: .* holds no tensor "nope"/);
    await st.close();
  });

  it('refuses a truncated file before reading tensors', async () => {
    const bytes = encodeSafetensors([{ name: 'w', shape: [4, 4], data: new Float32Array(16) }]);
    const file = path.join(dir, 'truncated.safetensors');
    await writeFile(file, bytes.subarray(0, bytes.length - 5));
    await expect(SafetensorsFile.open(file)).rejects.toThrow(
      /TRUNCATED: .* the tensors need 64 data bytes but the file holds 59/,
    );
    await writeFile(file, bytes.subarray(0, 20));
    await expect(SafetensorsFile.open(file)).rejects.toThrow(/TRUNCATED: .* byte header but is 20/);
  });

  it('refuses offsets outside the data, overlaps and gaps', async () => {
    const outside = await rawFile(
      'outside.safetensors',
      JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [1000, 1008] } }),
      8,
    );
    await expect(SafetensorsFile.open(outside)).rejects.toThrow(
      /OUT_OF_BOUNDS: .*"w" starts at data byte 1000/,
    );
    const overlap = await rawFile(
      'overlap.safetensors',
      JSON.stringify({
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      }),
      12,
    );
    await expect(SafetensorsFile.open(overlap)).rejects.toThrow(/OUT_OF_BOUNDS: .*overlap or gap/);
    const trailing = await rawFile(
      'trailing.safetensors',
      JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }),
      100,
    );
    await expect(SafetensorsFile.open(trailing)).rejects.toThrow(/OUT_OF_BOUNDS: .*92 bytes after/);
  });

  it('refuses an unknown dtype, a shape that disagrees with its bytes, and a bad header', async () => {
    const i64 = await rawFile(
      'i64.safetensors',
      JSON.stringify({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }),
      8,
    );
    await expect(SafetensorsFile.open(i64)).rejects.toThrow(/UNKNOWN_DTYPE: .*"w" is I64/);
    const shape = await rawFile(
      'shape.safetensors',
      JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }),
      8,
    );
    await expect(SafetensorsFile.open(shape)).rejects.toThrow(
      /SHAPE_MISMATCH: .*F32 \[3\] is 12 bytes but its offsets span 8/,
    );
    const notJson = await rawFile('not-json.safetensors', '{"w": ', 0);
    await expect(SafetensorsFile.open(notJson)).rejects.toThrow(/MALFORMED_HEADER: .*not JSON/);
  });

  it('refuses a header over 100 MB from its length field alone', async () => {
    const file = path.join(dir, 'huge-header.safetensors');
    const prefix = Buffer.alloc(16);
    prefix.writeBigUInt64LE(100_000_001n);
    await writeFile(file, prefix);
    await expect(SafetensorsFile.open(file)).rejects.toThrow(
      /HEADER_TOO_LARGE: .*100000001 byte header; the limit is 100000000/,
    );
  });
});

describe('Hugging Face model folders', () => {
  const tiny = TINY_DECODERS[0]!;
  const config = parseDecoderConfig(tiny.config);

  it('reads sharded weights through model.safetensors.index.json, and several EOS ids', async () => {
    const folder = path.join(dir, 'sharded');
    const tensors = randomDecoderWeights(config, 3);
    await writeHfFolder(folder, {
      config: tiny.config,
      generationConfig: { bos_token_id: 1, eos_token_id: [2, 7] },
      tensors,
    });
    // Re-split the single file into two shards with an index, as the hub ships big models.
    const single = await SafetensorsFile.open(path.join(folder, 'model.safetensors'));
    const names = [...single.entries.keys()];
    const halves = [names.slice(0, 7), names.slice(7)];
    const weightMap: Record<string, string> = {};
    for (const [k, part] of halves.entries()) {
      const shard = `model-0000${k + 1}-of-00002.safetensors`;
      const entries = await Promise.all(
        part.map(async (name) => ({ name, ...(await single.read(name)) })),
      );
      await writeFile(path.join(folder, shard), encodeSafetensors(entries));
      for (const name of part) weightMap[name] = shard;
    }
    await single.close();
    await rm(path.join(folder, 'model.safetensors'));
    await writeFile(
      path.join(folder, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const loaded = await loadDecoderFolder(folder);
    expect(loaded.eosTokenIds).toEqual([2, 7]);
    expect(loaded.bosTokenId).toBe(1);
    loaded.decoder.dispose();
  });

  it('refuses a shard path that leaves the folder, and a missing weights file', async () => {
    const folder = path.join(dir, 'escape');
    await writeHfFolder(folder, { config: tiny.config, tensors: randomDecoderWeights(config, 3) });
    await writeFile(
      path.join(folder, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'model.norm.weight': '../../etc/passwd.safetensors' } }),
    );
    await expect(openHfFolder(folder)).rejects.toThrow(/MALFORMED_HEADER: .*not a shard file/);
    await rm(path.join(folder, 'model.safetensors.index.json'));
    await rm(path.join(folder, 'model.safetensors'));
    await expect(openHfFolder(folder)).rejects.toThrow(
      /MISSING_TENSOR: .* has no model.safetensors/,
    );
  });

  it('refuses a tensor whose shape disagrees with the config, and a missing tensor, by name', async () => {
    const folder = path.join(dir, 'wrong-shape');
    const tensors = randomDecoderWeights(config, 3);
    tensors.set('model.layers.1.mlp.up_proj.weight', {
      shape: [8, 32],
      data: new Float32Array(256),
    });
    await writeHfFolder(folder, { config: tiny.config, tensors });
    await expect(loadDecoderFolder(folder)).rejects.toThrow(
      /SHAPE_MISMATCH: tensor "model.layers.1.mlp.up_proj.weight" is \[8, 32\] but the config implies \[64, 32\]/,
    );
    tensors.delete('model.layers.1.mlp.up_proj.weight');
    await rm(folder, { recursive: true });
    await writeHfFolder(folder, { config: tiny.config, tensors });
    await expect(loadDecoderFolder(folder)).rejects.toThrow(
      /MISSING_TENSOR: .* holds no tensor "model.layers.1.mlp.up_proj.weight"/,
    );
  });

  it('refuses configs it cannot compute, naming the field', async () => {
    const folder = path.join(dir, 'bad-config');
    await writeHfFolder(folder, { config: tiny.config, tensors: randomDecoderWeights(config, 3) });
    const write = (c: object) => writeFile(path.join(folder, 'config.json'), JSON.stringify(c));
    await write({ ...tiny.config, model_type: 'gpt2' });
    await expect(loadDecoderFolder(folder)).rejects.toThrow(/BAD_CONFIG: .*model_type/);
    await write({ ...tiny.config, num_key_value_heads: 3 });
    await expect(loadDecoderFolder(folder)).rejects.toThrow(/BAD_CONFIG: .*not a multiple of 3/);
    await write({ ...tiny.config, rope_scaling: { rope_type: 'yarn', factor: 4 } });
    await expect(loadDecoderFolder(folder)).rejects.toThrow(
      /BAD_CONFIG: .*"yarn" is not supported/,
    );
    await writeFile(path.join(folder, 'config.json'), '{ not json');
    await expect(loadDecoderFolder(folder)).rejects.toThrow(
      /BAD_CONFIG: .*config.json is not JSON/,
    );
    expect((await readFile(path.join(folder, 'model.safetensors'))).length).toBeGreaterThan(0);
  });
});
