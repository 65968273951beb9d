import type { SafetensorsDtype } from '../src/formats/safetensors.ts';

/**
 * The tiny random Llama-family models checked against the plain-PyTorch reference
 * (llama_reference.py). Between them they cover every branch of the forward pass:
 * Llama with and without llama3 rope_scaling (whose three frequency bands all occur at
 * head_dim 16, θ 10⁴, original context 32), Qwen2's q/k/v biases, Llama's attention and
 * MLP biases, tied and untied embeddings, an explicit head_dim, GQA ratios 1, 2, 3 and 4,
 * and weights stored as F32, F16 and BF16.
 */
export interface TinyDecoder {
  name: string;
  config: Record<string, unknown>;
  dtype: SafetensorsDtype;
  seed: number;
}

const common = {
  vocab_size: 96,
  num_hidden_layers: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 64,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
};

export const TINY_DECODERS: TinyDecoder[] = [
  {
    name: 'llama-mha-untied',
    dtype: 'F32',
    seed: 11,
    config: {
      ...common,
      model_type: 'llama',
      hidden_size: 32,
      intermediate_size: 64,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      rope_theta: 10000,
      tie_word_embeddings: false,
    },
  },
  {
    name: 'llama3-scaled-gqa4-tied-bf16',
    dtype: 'BF16',
    seed: 12,
    config: {
      ...common,
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 96,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      rope_theta: 10000,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 32,
      },
      tie_word_embeddings: true,
    },
  },
  {
    name: 'qwen2-gqa3-bias-tied-f16',
    dtype: 'F16',
    seed: 13,
    config: {
      ...common,
      model_type: 'qwen2',
      hidden_size: 48,
      intermediate_size: 80,
      num_attention_heads: 6,
      num_key_value_heads: 2,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      use_sliding_window: false,
    },
  },
  {
    name: 'llama-gqa2-headdim-biases',
    dtype: 'F32',
    seed: 14,
    config: {
      ...common,
      model_type: 'llama',
      hidden_size: 32,
      intermediate_size: 48,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 12,
      attention_bias: true,
      mlp_bias: true,
      rope_theta: 500000,
      tie_word_embeddings: false,
    },
  },
];

/** The prompt every tiny model is run on, and how many tokens greedy decoding adds. */
export const REFERENCE_PROMPT = [1, 17, 42, 5, 88, 23, 9, 61, 30, 2, 77, 14];
export const REFERENCE_NEW_TOKENS = 32;
