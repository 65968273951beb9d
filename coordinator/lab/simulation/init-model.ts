// The starting point of a simulation or bench: a freshly initialised model of a chosen size with
// the genesis tokenizer (its byte-level BPE-512 tokenizer.json), written as a checkpoint folder so the devnet can register it
// as its genesis and the coordinator can serve it. Federated and centralised runs start from it.
import {
  readCheckpoint,
  type ModelConfig,
  saveModel,
  ChatTokenizer,
  Transformer,
} from '@commons/shared/engine';
import { GENESIS_DIR } from '../../src/config.ts';

/** ~200k parameters: small enough that 10 clients train a round in seconds on 2 cores. */
export const SIMULATION_MODEL: Omit<ModelConfig, 'vocabSize'> = {
  blockSize: 64,
  nLayer: 2,
  nHead: 4,
  nEmbd: 64,
  dropout: 0,
  bias: false,
  tiedHead: true,
};

/** A few thousand parameters: for tests where a round's cost is the protocol's, not the model's. */
export const TINY_MODEL: Omit<ModelConfig, 'vocabSize'> = {
  blockSize: 16,
  nLayer: 1,
  nHead: 2,
  nEmbd: 16,
  dropout: 0,
  bias: false,
  tiedHead: true,
};

/** ≈1.0M parameters with the 512-token vocabulary (the round1000Seconds bench). */
export const ONE_MILLION_MODEL: Omit<ModelConfig, 'vocabSize'> = {
  blockSize: 128,
  nLayer: 5,
  nHead: 4,
  nEmbd: 128,
  dropout: 0,
  bias: false,
  tiedHead: true,
};

export async function genesisTokenizer(): Promise<ChatTokenizer> {
  const { manifest } = await readCheckpoint(GENESIS_DIR);
  return ChatTokenizer.fromJSON(manifest.tokenizer);
}

/** Writes a fresh model into `dir` (which must not exist); its hash and parameter count. */
export async function writeInitialModel(
  dir: string,
  shape: Omit<ModelConfig, 'vocabSize'>,
  seed: number,
): Promise<{ hash: string; dir: string; params: number; config: ModelConfig }> {
  const tokenizer = await genesisTokenizer();
  const config: ModelConfig = { ...shape, vocabSize: tokenizer.vocabSize };
  const model = Transformer.create(config, seed);
  try {
    const params = model.numParams();
    const saved = await saveModel(dir, model, tokenizer, { init: 'llama', seed });
    return { ...saved, params, config };
  } finally {
    model.dispose();
  }
}
