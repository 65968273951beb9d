import { openHfFolder } from '../formats/hf-folder.ts';
import { parseDecoderConfig, type DecoderConfig } from './config.ts';
import { Decoder } from './model.ts';

/** A decoder loaded from a Hugging Face folder, with the ids that end its replies. */
export interface LoadedDecoder {
  decoder: Decoder;
  config: DecoderConfig;
  eosTokenIds: number[];
  bosTokenId: number | null;
}

/**
 * Loads a Llama or Qwen2 model folder, streaming its tensors one at a time. A tensor the
 * config implies but the files lack, or one of the wrong shape, is refused by name before
 * the rest is read.
 */
export async function loadDecoderFolder(dir: string): Promise<LoadedDecoder> {
  const folder = await openHfFolder(dir);
  try {
    const config = parseDecoderConfig(folder.config, `${dir}/config.json`);
    const decoder = await Decoder.load(config, (name) => folder.read(name));
    return { decoder, config, eosTokenIds: folder.eosTokenIds, bosTokenId: folder.bosTokenId };
  } finally {
    await folder.close();
  }
}
