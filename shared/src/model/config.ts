import { z } from 'zod';

/**
 * The size and shape of a Commons transformer. Everything about the network comes from
 * here, so a contributor with a GPU can train a bigger model by changing numbers only.
 */
/** The block projections, each a matrix that may carry a LoRA adapter (`LoraConfig.targets`). */
export const PROJECTIONS = ['attn.qkv', 'attn.proj', 'mlp.fc', 'mlp.proj'] as const;
export type Projection = (typeof PROJECTIONS)[number];

export const loraConfigSchema = z.object({
  /** Rank r of the low-rank factors A (in×r) and B (r×out). */
  rank: z.number().int().min(1).max(256),
  /** Scaling numerator: the adapter's output is multiplied by alpha / rank. */
  alpha: z.number().positive(),
  /** Which projections carry adapters. */
  targets: z
    .array(z.enum(PROJECTIONS))
    .min(1)
    .refine((t) => new Set(t).size === t.length, 'LoRA targets must be unique'),
});
export type LoraConfig = z.infer<typeof loraConfigSchema>;

export const modelConfigSchema = z
  .object({
    /** Number of token ids (the tokenizer's vocabulary). */
    vocabSize: z.number().int().min(2).max(65_536),
    /** Longest context the model attends over (learned positions). */
    blockSize: z.number().int().min(1).max(8192),
    nLayer: z.number().int().min(1).max(96),
    nHead: z.number().int().min(1).max(128),
    /** Embedding width C; must divide evenly by nHead. */
    nEmbd: z.number().int().min(1).max(16_384),
    dropout: z.number().min(0).max(1),
    /** Biases in linear layers and layer norms (nanoGPT's `bias`). */
    bias: z.boolean(),
    /** Share the token embedding with the output head (weight tying). */
    tiedHead: z.boolean(),
  })
  .refine((c) => c.nEmbd % c.nHead === 0, {
    message: 'nEmbd must be divisible by nHead',
    path: ['nEmbd'],
  });
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/**
 * (in, out) of each projection in a block: a fact of the config that the transformer (its
 * weights) and LoRA (its factors' shapes) both read.
 */
export function projectionShapes(config: ModelConfig): Record<Projection, [number, number]> {
  const C = config.nEmbd;
  return {
    'attn.qkv': [C, 3 * C],
    'attn.proj': [C, C],
    'mlp.fc': [C, 4 * C],
    'mlp.proj': [4 * C, C],
  };
}

/** The benchmark's reference shape (issue 2): context 64, width 128, 4 layers, 4 heads. */
export const REFERENCE_CONFIG: ModelConfig = {
  vocabSize: 65,
  blockSize: 64,
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  dropout: 0,
  bias: true,
  tiedHead: false,
};

export const DEFAULT_LORA: LoraConfig = {
  rank: 8,
  alpha: 16,
  targets: ['attn.qkv', 'attn.proj', 'mlp.fc', 'mlp.proj'],
};
