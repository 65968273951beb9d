import type { HostTensor } from '../checkpoint/tensors.ts';
import { ModelFormatError } from '../formats/errors.ts';
import { GgufFile } from '../formats/gguf.ts';
import {
  ggufTokenizerMetadata,
  tokenizerFromGguf,
  type HfTokenizerFiles,
} from '../formats/gguf-tokenizer.ts';
import { writeGguf, type GgufTensorPlan, type GgufValue } from '../formats/gguf-write.ts';
import { decoderTensorShapes, parseDecoderConfig, type DecoderConfig } from './config.ts';
import { Decoder } from './model.ts';
import { withContext, type LoadedDecoder, type LoadOptions } from './load.ts';
import { inverseFrequencies } from './rope.ts';

/**
 * Llama and Qwen2 models in GGUF, both ways: loading the files LM Studio and Ollama keep,
 * and exporting any model so a member can run it in Ollama, LM Studio or llama.cpp. The
 * tensor names, metadata keys and the q/k row permutation follow llama.cpp's
 * convert_hf_to_gguf.py: for the `llama` architecture it interleaves each head's rows
 * (ggml's rope rotates adjacent pairs, transformers' rotate_half rotates halves), which
 * loading undoes; Qwen2 uses the NeoX rope and is stored unpermuted.
 */

/** Hugging Face tensor name → GGUF tensor name. */
export function ggufTensorName(hf: string): string {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[hf] !== undefined) return fixed[hf];
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const parts: Record<string, string> = {
    input_layernorm: 'attn_norm',
    'self_attn.q_proj': 'attn_q',
    'self_attn.k_proj': 'attn_k',
    'self_attn.v_proj': 'attn_v',
    'self_attn.o_proj': 'attn_output',
    post_attention_layernorm: 'ffn_norm',
    'mlp.gate_proj': 'ffn_gate',
    'mlp.up_proj': 'ffn_up',
    'mlp.down_proj': 'ffn_down',
  };
  const part = m === null ? undefined : parts[m[2]!];
  if (m === null || part === undefined) throw new Error(`no GGUF name for tensor "${hf}"`);
  return `blk.${m[1]}.${part}.${m[3]}`;
}

/**
 * llama.cpp's permute(w, n_head): within each head of d rows, row j·d/2 + i moves to 2i + j.
 * `undo` maps back. Works on weights (rows of `width` values) and biases (width 1).
 */
export function permuteHeads(
  data: Float32Array,
  rows: number,
  heads: number,
  undo: boolean,
): Float32Array {
  const width = data.length / rows;
  const d = rows / heads;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < d / 2; i++) {
        const hfRow = h * d + j * (d / 2) + i;
        const ggufRow = h * d + 2 * i + j;
        const [from, to] = undo ? [ggufRow, hfRow] : [hfRow, ggufRow];
        out.set(data.subarray(from * width, (from + 1) * width), to * width);
      }
    }
  }
  return out;
}

/** Which heads count permutes a tensor's rows (llama q and k), or null. */
function permutation(config: DecoderConfig, hf: string): number | null {
  if (config.family !== 'llama') return null;
  if (/self_attn\.q_proj\.(weight|bias)$/.test(hf)) return config.numHeads;
  if (/self_attn\.k_proj\.(weight|bias)$/.test(hf)) return config.numKvHeads;
  return null;
}

/** The Hugging Face config.json a GGUF file's metadata describes. */
export function hfConfigFromGguf(file: GgufFile): Record<string, unknown> {
  const m = file.metadata;
  const arch = m['general.architecture'];
  if (arch !== 'llama' && arch !== 'qwen2') {
    throw new ModelFormatError(
      'BAD_CONFIG',
      `${file.path}: architecture "${String(arch)}" is not one this engine runs (llama, qwen2)`,
    );
  }
  const num = (key: string): number | undefined => {
    const v = m[`${arch}.${key}`];
    return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : undefined;
  };
  const tokens = m['tokenizer.ggml.tokens'];
  const heads = num('attention.head_count');
  const hidden = num('embedding_length');
  const keyLength = num('attention.key_length');
  return {
    model_type: arch,
    vocab_size: num('vocab_size') ?? (Array.isArray(tokens) ? tokens.length : undefined),
    hidden_size: hidden,
    intermediate_size: num('feed_forward_length'),
    num_hidden_layers: num('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: num('attention.head_count_kv') ?? heads,
    ...(keyLength !== undefined &&
    heads !== undefined &&
    hidden !== undefined &&
    keyLength * heads !== hidden
      ? { head_dim: keyLength }
      : {}),
    rms_norm_eps: num('attention.layer_norm_rms_epsilon'),
    rope_theta: num('rope.freq_base') ?? 10_000,
    max_position_embeddings: num('context_length'),
    tie_word_embeddings: !file.tensors.has('output.weight'),
    attention_bias: arch === 'llama' && file.tensors.has('blk.0.attn_q.bias'),
    mlp_bias: arch === 'llama' && file.tensors.has('blk.0.ffn_gate.bias'),
    bos_token_id:
      m['tokenizer.ggml.bos_token_id'] === undefined
        ? undefined
        : Number(m['tokenizer.ggml.bos_token_id']),
    eos_token_id:
      m['tokenizer.ggml.eos_token_id'] === undefined
        ? undefined
        : Number(m['tokenizer.ggml.eos_token_id']),
  };
}

export interface LoadedGguf extends LoadedDecoder {
  tokenizer: HfTokenizerFiles;
}

/** A GGUF model's tensors by Hugging Face name (dequantised, q/k un-permuted), its config and tokenizer. */
export interface GgufTensors {
  config: DecoderConfig;
  tokenizer: HfTokenizerFiles;
  bosTokenId: number | null;
  eosTokenIds: number[];
  read: (hfName: string) => Promise<HostTensor>;
  close: () => Promise<void>;
}

export async function openGgufTensors(
  path: string,
  options: LoadOptions = {},
): Promise<GgufTensors> {
  const file = await GgufFile.open(path);
  try {
    const hfConfig = hfConfigFromGguf(file);
    const config = withContext(parseDecoderConfig(hfConfig, `${path} (GGUF metadata)`), options);
    if (file.tensors.has('rope_freqs.weight')) {
      const factors = await file.read('rope_freqs.weight');
      if (factors.data.length !== config.headDim / 2) {
        throw new ModelFormatError(
          'SHAPE_MISMATCH',
          `${path}: rope_freqs has ${factors.data.length} values, not ${config.headDim / 2}`,
        );
      }
      config.ropeFactors = [...factors.data];
    }
    const tokenizer = tokenizerFromGguf(file.metadata as Record<string, unknown>, path);
    const eos = hfConfig.eos_token_id as number | undefined;
    const bos = hfConfig.bos_token_id as number | undefined;
    return {
      config,
      tokenizer,
      bosTokenId: bos ?? null,
      eosTokenIds: eos === undefined ? [] : [eos],
      read: async (hf) => {
        const name = ggufTensorName(hf);
        if (!file.tensors.has(name)) {
          throw new ModelFormatError('MISSING_TENSOR', `${path} holds no tensor "${name}" (${hf})`);
        }
        const t = await file.read(name);
        const heads = permutation(config, hf);
        return heads === null
          ? t
          : { shape: t.shape, data: permuteHeads(t.data, t.shape[0]!, heads, true) };
      },
      close: () => file.close(),
    };
  } catch (error) {
    await file.close();
    throw error;
  }
}

/** Loads a GGUF file: its config, its weights (dequantised, q/k un-permuted), its tokenizer. */
export async function loadDecoderGguf(
  path: string,
  options: LoadOptions = {},
): Promise<LoadedGguf> {
  const model = await openGgufTensors(path, options);
  try {
    const decoder = await Decoder.load(model.config, model.read, options.weights);
    return {
      decoder,
      config: model.config,
      eosTokenIds: model.eosTokenIds,
      bosTokenId: model.bosTokenId,
      tokenizer: model.tokenizer,
    };
  } finally {
    await model.close();
  }
}

export type GgufExportType = 'f32' | 'f16' | 'q8_0';

/** GGUF general.file_type of each export type (llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0). */
const FILE_TYPE: Record<GgufExportType, number> = { f32: 0, f16: 1, q8_0: 7 };

/**
 * Writes a model as a GGUF file. `read` gives each tensor by its Hugging Face name; 2-D
 * weights take `type` (Q8_0 needs rows in whole blocks of 32, else F16, as llama.cpp
 * falls back), norms and biases stay F32.
 */
export async function exportGguf(options: {
  out: string;
  name: string;
  config: DecoderConfig;
  tokenizer: HfTokenizerFiles;
  bosTokenId: number | null;
  eosTokenId: number | null;
  type: GgufExportType;
  read: (hfName: string) => Promise<HostTensor>;
}): Promise<{ bytes: number }> {
  const c = options.config;
  const arch = c.family;
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const metadata: Record<string, GgufValue> = {
    'general.architecture': { type: 'string', value: arch },
    'general.name': { type: 'string', value: options.name },
    'general.file_type': u32(FILE_TYPE[options.type]),
    [`${arch}.vocab_size`]: u32(c.vocabSize),
    [`${arch}.context_length`]: u32(c.maxPositions),
    [`${arch}.embedding_length`]: u32(c.hiddenSize),
    [`${arch}.block_count`]: u32(c.numLayers),
    [`${arch}.feed_forward_length`]: u32(c.intermediateSize),
    [`${arch}.attention.head_count`]: u32(c.numHeads),
    [`${arch}.attention.head_count_kv`]: u32(c.numKvHeads),
    [`${arch}.attention.layer_norm_rms_epsilon`]: { type: 'f32', value: c.rmsNormEps },
    [`${arch}.rope.freq_base`]: { type: 'f32', value: c.ropeTheta },
    [`${arch}.rope.dimension_count`]: u32(c.headDim),
    [`${arch}.attention.key_length`]: u32(c.headDim),
    [`${arch}.attention.value_length`]: u32(c.headDim),
  };
  for (const [key, value] of Object.entries(
    ggufTokenizerMetadata(
      options.tokenizer,
      { bos: options.bosTokenId, eos: options.eosTokenId },
      c.vocabSize,
    ),
  )) {
    metadata[key] = metadataValue(key, value);
  }
  const tensors: GgufTensorPlan[] = [];
  if (c.ropeScaling !== null || c.ropeFactors !== null) {
    // llama.cpp carries a rope scaling rule as per-frequency divisors (rope_freqs).
    const plain = inverseFrequencies({ ...c, ropeScaling: null, ropeFactors: null });
    const scaled = inverseFrequencies(c);
    const factors = Float32Array.from(plain, (f, i) => f / scaled[i]!);
    tensors.push({
      name: 'rope_freqs.weight',
      shape: [factors.length],
      type: 'F32',
      read: async () => ({ shape: [factors.length], data: factors }),
    });
  }
  for (const [hf, shape] of decoderTensorShapes(c)) {
    const matrix = shape.length === 2;
    const type =
      !matrix || options.type === 'f32'
        ? 'F32'
        : options.type === 'q8_0' && shape[1]! % 32 === 0
          ? 'Q8_0'
          : 'F16';
    const heads = permutation(c, hf);
    tensors.push({
      name: ggufTensorName(hf),
      shape,
      type,
      read: async () => {
        const t = await options.read(hf);
        return heads === null
          ? t
          : { shape: t.shape, data: permuteHeads(t.data, t.shape[0]!, heads, false) };
      },
    });
  }
  return writeGguf(options.out, metadata, tensors);
}

const STRING_ARRAYS = new Set(['tokenizer.ggml.tokens', 'tokenizer.ggml.merges']);

function metadataValue(key: string, value: unknown): GgufValue {
  if (typeof value === 'string') return { type: 'string', value };
  if (typeof value === 'boolean') return { type: 'bool', value };
  if (typeof value === 'number') return { type: 'u32', value };
  if (Array.isArray(value)) {
    // By key, not by the first element: an empty merges list is still an array of strings.
    return STRING_ARRAYS.has(key) || typeof value[0] === 'string'
      ? { type: 'array', of: 'string', value: value as string[] }
      : { type: 'array', of: 'i32', value: value as number[] };
  }
  throw new Error(`cannot write GGUF metadata "${key}"`);
}
