import { openHfFolder } from '../formats/hf-folder.ts';
import { parseDecoderConfig, type DecoderConfig } from './config.ts';
import { Decoder, type WeightsMode } from './model.ts';

/** A decoder loaded from a Hugging Face folder, with the ids that end its replies. */
export interface LoadedDecoder {
  decoder: Decoder;
  config: DecoderConfig;
  eosTokenIds: number[];
  bosTokenId: number | null;
}

export interface LoadOptions {
  /** Positions to allow, at most the model's own context (models advertise up to 128k
   * tokens; a chat keeps a few thousand, as Ollama's num_ctx does). */
  context?: number;
  /** How the large matrices are held (model.ts); float32 unless memory calls for int8. */
  weights?: WeightsMode;
}

/** The config with its context window capped at `options.context`. */
export function withContext(config: DecoderConfig, options: LoadOptions): DecoderConfig {
  if (options.context === undefined) return config;
  if (!(Number.isInteger(options.context) && options.context > 0)) {
    throw new RangeError(
      `context must be a positive whole number of tokens, got ${options.context}`,
    );
  }
  return { ...config, maxPositions: Math.min(config.maxPositions, options.context) };
}

/**
 * Loads a Llama or Qwen2 model folder, streaming its tensors one at a time. A tensor the
 * config implies but the files lack, or one of the wrong shape, is refused by name before
 * the rest is read.
 */
export async function loadDecoderFolder(
  dir: string,
  options: LoadOptions = {},
): Promise<LoadedDecoder> {
  const folder = await openHfFolder(dir);
  try {
    const config = withContext(parseDecoderConfig(folder.config, `${dir}/config.json`), options);
    const decoder = await Decoder.load(config, (name) => folder.read(name), options.weights);
    return { decoder, config, eosTokenIds: folder.eosTokenIds, bosTokenId: folder.bosTokenId };
  } finally {
    await folder.close();
  }
}
