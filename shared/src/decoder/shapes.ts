/**
 * The shapes of the open-weights models members run, as each model's config.json on the hub
 * gives them: the benches build random-weight models of these shapes (no real weights can be
 * downloaded where they run) and the tests size memory estimates by them.
 */
export const REAL_SHAPES = {
  'smollm2-135m': {
    model_type: 'llama',
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    max_position_embeddings: 8192,
    tie_word_embeddings: true,
  },
  'smollm2-360m': {
    model_type: 'llama',
    vocab_size: 49152,
    hidden_size: 960,
    intermediate_size: 2560,
    num_hidden_layers: 32,
    num_attention_heads: 15,
    num_key_value_heads: 5,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    max_position_embeddings: 8192,
    tie_word_embeddings: true,
  },
  'qwen2.5-0.5b': {
    model_type: 'qwen2',
    vocab_size: 151936,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    max_position_embeddings: 32768,
    tie_word_embeddings: true,
  },
  'llama-3.2-1b': {
    model_type: 'llama',
    vocab_size: 128256,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
    max_position_embeddings: 131072,
    tie_word_embeddings: true,
  },
} as const satisfies Record<string, Record<string, unknown>>;

export type RealShapeName = keyof typeof REAL_SHAPES;
