import { z } from 'zod';
import type { DecoderConfig } from '../decoder/config.ts';
import { parseDecoderConfig } from '../decoder/config.ts';
import { ModelFormatError } from '../formats/errors.ts';

/**
 * The size and shape of a trainable Commons model: a decoder of the Hugging Face Llama
 * family (RMSNorm, rotary positions, grouped-query attention, SwiGLU), with Qwen2's q/k/v
 * bias as an option. Everything about the network comes from here, so a contributor with a
 * GPU can train a bigger model by changing numbers only, and every config maps one-to-one
 * onto a `config.json` that transformers, llama.cpp's converter and our own loader read.
 */

/** The block projections, by their Hugging Face names; each may carry a LoRA adapter. */
export const PROJECTIONS = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type Projection = (typeof PROJECTIONS)[number];

/** Which submodule of a layer holds each projection (`model.layers.N.<module>.<proj>`). */
export const PROJECTION_MODULE: Record<Projection, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

export const loraConfigSchema = z.object({
  /** Rank r of the low-rank factors A (r×in) and B (out×r). */
  rank: z.number().int().min(1).max(256),
  /** Scaling numerator: the adapter's output is multiplied by alpha / rank. */
  alpha: z.number().positive(),
  /** Which projections carry adapters (PEFT's target_modules). */
  targets: z
    .array(z.enum(PROJECTIONS))
    .min(1)
    .refine((t) => new Set(t).size === t.length, 'LoRA targets must be unique'),
});
export type LoraConfig = z.infer<typeof loraConfigSchema>;

export const modelConfigSchema = z
  .object({
    /** Number of token ids (the tokenizer's vocabulary). */
    vocabSize: z.number().int().min(2).max(262_144),
    /** The context window (max_position_embeddings). */
    blockSize: z.number().int().min(1).max(131_072),
    nLayer: z.number().int().min(1).max(128),
    /** Query heads. */
    nHead: z.number().int().min(1).max(128),
    /** Key/value heads (grouped-query attention); nHead when absent. */
    nKvHead: z.number().int().min(1).max(128).optional(),
    /** Hidden width C; must divide evenly by nHead. */
    nEmbd: z.number().int().min(1).max(16_384),
    /** SwiGLU width; ⌈8C/3⌉ rounded up to a multiple of 8 when absent. */
    intermediateSize: z.number().int().min(1).max(65_536).optional(),
    /** Rotary base θ; 10 000 when absent. */
    ropeTheta: z.number().positive().optional(),
    /** RMSNorm epsilon; 1e-5 when absent. */
    rmsNormEps: z.number().positive().optional(),
    dropout: z.number().min(0).max(1),
    /** Biases on q, k and v (Qwen2's layout); Llama has none. */
    bias: z.boolean(),
    /** Share the token embedding with the output head (tie_word_embeddings). */
    tiedHead: z.boolean(),
  })
  .refine((c) => c.nEmbd % c.nHead === 0 && (c.nEmbd / c.nHead) % 2 === 0, {
    message: 'nEmbd must be divisible by nHead into an even head size (rotary pairs)',
    path: ['nEmbd'],
  })
  .refine((c) => c.nHead % (c.nKvHead ?? c.nHead) === 0, {
    message: 'nHead must be a multiple of nKvHead',
    path: ['nKvHead'],
  });
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** Every size of a config with the defaults filled in. */
export interface ModelDims {
  vocabSize: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  ropeTheta: number;
  rmsNormEps: number;
}

export function modelDims(config: ModelConfig): ModelDims {
  const C = config.nEmbd;
  return {
    vocabSize: config.vocabSize,
    hidden: C,
    heads: config.nHead,
    kvHeads: config.nKvHead ?? config.nHead,
    headDim: C / config.nHead,
    intermediate: config.intermediateSize ?? Math.ceil((8 * C) / 3 / 8) * 8,
    ropeTheta: config.ropeTheta ?? 10_000,
    rmsNormEps: config.rmsNormEps ?? 1e-5,
  };
}

/**
 * (in, out) of each projection in a block: a fact of the config that the transformer (its
 * weights, stored (out, in) as PyTorch's nn.Linear) and LoRA (its factors) both read.
 */
export function projectionShapes(config: ModelConfig): Record<Projection, [number, number]> {
  const d = modelDims(config);
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  return {
    q_proj: [d.hidden, q],
    k_proj: [d.hidden, kv],
    v_proj: [d.hidden, kv],
    o_proj: [q, d.hidden],
    gate_proj: [d.hidden, d.intermediate],
    up_proj: [d.hidden, d.intermediate],
    down_proj: [d.intermediate, d.hidden],
  };
}

/** `model.layers.N.self_attn.q_proj` and the like: a projection's Hugging Face name. */
export function layerName(layer: number, proj: Projection): string {
  return `model.layers.${layer}.${PROJECTION_MODULE[proj]}.${proj}`;
}

/** Names and shapes of every parameter for a config, in checkpoint order. */
export function parameterShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, hidden: C } = modelDims(config);
  const shapes = new Map<string, number[]>();
  shapes.set('model.embed_tokens.weight', [V, C]);
  for (let i = 0; i < config.nLayer; i++) {
    const h = `model.layers.${i}`;
    shapes.set(`${h}.input_layernorm.weight`, [C]);
    for (const [proj, [fanIn, fanOut]] of Object.entries(projectionShapes(config))) {
      const name = layerName(i, proj as Projection);
      shapes.set(`${name}.weight`, [fanOut, fanIn]);
      if (config.bias && (proj === 'q_proj' || proj === 'k_proj' || proj === 'v_proj')) {
        shapes.set(`${name}.bias`, [fanOut]);
      }
    }
    shapes.set(`${h}.post_attention_layernorm.weight`, [C]);
  }
  shapes.set('model.norm.weight', [C]);
  if (!config.tiedHead) shapes.set('lm_head.weight', [V, C]);
  return shapes;
}

/** The same model as the inference engine's DecoderConfig (rotary tables, GGUF export). */
export function decoderConfig(config: ModelConfig): DecoderConfig {
  const d = modelDims(config);
  return {
    family: config.bias ? 'qwen2' : 'llama',
    vocabSize: d.vocabSize,
    hiddenSize: d.hidden,
    intermediateSize: d.intermediate,
    numLayers: config.nLayer,
    numHeads: d.heads,
    numKvHeads: d.kvHeads,
    headDim: d.headDim,
    rmsNormEps: d.rmsNormEps,
    ropeTheta: d.ropeTheta,
    ropeScaling: null,
    ropeFactors: null,
    maxPositions: config.blockSize,
    tiedEmbeddings: config.tiedHead,
    qkvBias: config.bias,
    outputBias: false,
    mlpBias: false,
  };
}

/** The Hugging Face `config.json` of a model of this config. */
export function hfConfig(
  config: ModelConfig,
  tokens: { bosTokenId?: number; eosTokenId?: number | number[] } = {},
): Record<string, unknown> {
  const d = modelDims(config);
  const qwen = config.bias;
  return {
    architectures: [qwen ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: qwen ? 'qwen2' : 'llama',
    vocab_size: d.vocabSize,
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: config.nLayer,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    head_dim: d.headDim,
    hidden_act: 'silu',
    max_position_embeddings: config.blockSize,
    rms_norm_eps: d.rmsNormEps,
    rope_theta: d.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: config.tiedHead,
    attention_bias: false,
    mlp_bias: false,
    attention_dropout: config.dropout,
    ...(tokens.bosTokenId !== undefined ? { bos_token_id: tokens.bosTokenId } : {}),
    ...(tokens.eosTokenId !== undefined ? { eos_token_id: tokens.eosTokenId } : {}),
    torch_dtype: 'float32',
  };
}

/**
 * A trainable config from a `config.json`. Refuses, by name, what the trainable model does
 * not compute (rope scaling, o/mlp biases, a head size other than hidden / heads); such a
 * model still chats through the inference engine.
 */
export function modelConfigFromHf(json: unknown, source = 'config.json'): ModelConfig {
  const d = parseDecoderConfig(json, source);
  const refuse = (what: string): never => {
    throw new ModelFormatError('BAD_CONFIG', `${source}: ${what} is not supported for training`);
  };
  if (d.ropeScaling !== null) refuse('rope_scaling');
  if (d.outputBias || d.mlpBias) refuse('a bias on o_proj or the MLP');
  if (d.headDim * d.numHeads !== d.hiddenSize) refuse('head_dim × heads ≠ hidden_size');
  if (d.qkvBias !== (d.family === 'qwen2')) refuse('attention_bias on a llama model');
  const dropout = (json as { attention_dropout?: unknown }).attention_dropout;
  return modelConfigSchema.parse({
    vocabSize: d.vocabSize,
    blockSize: d.maxPositions,
    nLayer: d.numLayers,
    nHead: d.numHeads,
    nKvHead: d.numKvHeads,
    nEmbd: d.hiddenSize,
    intermediateSize: d.intermediateSize,
    ropeTheta: d.ropeTheta,
    rmsNormEps: d.rmsNormEps,
    dropout: typeof dropout === 'number' ? dropout : 0,
    bias: d.qkvBias,
    tiedHead: d.tiedEmbeddings,
  });
}

/** The benchmark's reference shape (issue 2): context 64, width 128, 4 layers, 4 heads. */
export const REFERENCE_CONFIG: ModelConfig = {
  vocabSize: 65,
  blockSize: 64,
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  dropout: 0,
  bias: false,
  tiedHead: false,
};

/** PEFT's default targets for Llama-family models: the query and value projections. */
export const DEFAULT_LORA: LoraConfig = {
  rank: 8,
  alpha: 16,
  targets: ['q_proj', 'v_proj'],
};
