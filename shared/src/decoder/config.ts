import { z } from 'zod';
import { ModelFormatError } from '../formats/errors.ts';

/**
 * The shape of a Llama-family decoder, read from a Hugging Face `config.json` by its own
 * field names, so every size comes from the model's files and none is written down per
 * model. Two `model_type`s share the one forward pass: `llama` (Llama 2/3, SmolLM2) and
 * `qwen2` (Qwen2/2.5), which differs only in always biasing q, k and v.
 */

/** The "llama3" frequency rule of Llama 3.1/3.2 (transformers' `_compute_llama3_parameters`). */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface DecoderConfig {
  family: 'llama' | 'qwen2';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads; numHeads / numKvHeads query heads share each (grouped-query attention). */
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  /** Per-frequency divisors of the inverse frequencies, as GGUF files carry a rope scaling
   * rule (llama.cpp's rope_freqs tensor); null when there are none. */
  ropeFactors: number[] | null;
  /** The context window. */
  maxPositions: number;
  /** lm_head is the token embedding (no lm_head.weight in the files). */
  tiedEmbeddings: boolean;
  /** Bias on q_proj, k_proj, v_proj (Qwen2 always; Llama when attention_bias). */
  qkvBias: boolean;
  /** Bias on o_proj (Llama's attention_bias; never in Qwen2). */
  outputBias: boolean;
  /** Bias on gate/up/down (Llama's mlp_bias). */
  mlpBias: boolean;
}

const positive = z.number().int().positive();
const ropeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: positive.optional(),
  })
  .passthrough();

const hfConfigSchema = z
  .object({
    model_type: z.enum(['llama', 'qwen2']),
    vocab_size: positive,
    hidden_size: positive,
    intermediate_size: positive,
    num_hidden_layers: positive,
    num_attention_heads: positive,
    num_key_value_heads: positive.optional(),
    head_dim: positive.nullish(),
    rms_norm_eps: z.number().positive(),
    rope_theta: z.number().positive().default(10_000),
    rope_scaling: ropeScalingSchema.nullish(),
    max_position_embeddings: positive,
    tie_word_embeddings: z.boolean().default(false),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    use_sliding_window: z.boolean().default(false),
    hidden_act: z.string().default('silu'),
  })
  .passthrough();

/** Parses a `config.json` object; refuses what this forward pass does not compute, by name. */
export function parseDecoderConfig(json: unknown, source = 'config.json'): DecoderConfig {
  const parsed = hfConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelFormatError(
      'BAD_CONFIG',
      `${source}: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const c = parsed.data;
  const bad = (message: string): never => {
    throw new ModelFormatError('BAD_CONFIG', `${source}: ${message}`);
  };
  if (c.hidden_act !== 'silu') bad(`hidden_act "${c.hidden_act}" is not silu`);
  if (c.use_sliding_window) bad('sliding-window attention is not supported');
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    bad(`num_attention_heads ${c.num_attention_heads} is not a multiple of ${numKvHeads}`);
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    bad(`head dimension ${headDim} is not an even integer`);
  }
  return {
    family: c.model_type,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling: parseRopeScaling(c.rope_scaling ?? null, bad),
    ropeFactors: null,
    maxPositions: c.max_position_embeddings,
    tiedEmbeddings: c.tie_word_embeddings,
    qkvBias: c.model_type === 'qwen2' || c.attention_bias,
    outputBias: c.model_type === 'llama' && c.attention_bias,
    mlpBias: c.model_type === 'llama' && c.mlp_bias,
  };
}

function parseRopeScaling(
  scaling: z.infer<typeof ropeScalingSchema> | null,
  bad: (message: string) => never,
): Llama3RopeScaling | null {
  if (scaling === null) return null;
  const kind = scaling.rope_type ?? scaling.type ?? 'default';
  if (kind === 'default') return null;
  if (kind !== 'llama3') return bad(`rope_scaling type "${kind}" is not supported (llama3 is)`);
  const { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } = scaling;
  if (
    factor === undefined ||
    low_freq_factor === undefined ||
    high_freq_factor === undefined ||
    original_max_position_embeddings === undefined
  ) {
    return bad(
      'llama3 rope_scaling needs factor, low/high_freq_factor and original_max_position_embeddings',
    );
  }
  if (high_freq_factor <= low_freq_factor) bad('rope_scaling high_freq_factor must exceed low');
  return {
    factor,
    lowFreqFactor: low_freq_factor,
    highFreqFactor: high_freq_factor,
    originalMaxPositions: original_max_position_embeddings,
  };
}

/** The tensor names and [out, in] shapes (PyTorch's Linear layout) a config implies, in order. */
export function decoderTensorShapes(c: DecoderConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  shapes.set('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [c.hiddenSize]);
    for (const [name, out] of [
      ['q_proj', q],
      ['k_proj', kv],
      ['v_proj', kv],
    ] as const) {
      shapes.set(`${p}.self_attn.${name}.weight`, [out, c.hiddenSize]);
      if (c.qkvBias) shapes.set(`${p}.self_attn.${name}.bias`, [out]);
    }
    shapes.set(`${p}.self_attn.o_proj.weight`, [c.hiddenSize, q]);
    if (c.outputBias) shapes.set(`${p}.self_attn.o_proj.bias`, [c.hiddenSize]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    shapes.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    shapes.set(`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]);
    if (c.mlpBias) {
      shapes.set(`${p}.mlp.gate_proj.bias`, [c.intermediateSize]);
      shapes.set(`${p}.mlp.up_proj.bias`, [c.intermediateSize]);
      shapes.set(`${p}.mlp.down_proj.bias`, [c.hiddenSize]);
    }
  }
  shapes.set('model.norm.weight', [c.hiddenSize]);
  if (!c.tiedEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return shapes;
}
