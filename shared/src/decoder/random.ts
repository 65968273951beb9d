import type { HostTensor, NamedTensors } from '../checkpoint/tensors.ts';
import { elementCount } from '../checkpoint/tensors.ts';
import { Rng } from '../model/rng.ts';
import { decoderTensorShapes, type DecoderConfig } from './config.ts';

/**
 * Random weights for a config, from a seed: the tiny models the tests check against the
 * PyTorch reference, and the real-shape models the benches load (no real weights can be
 * downloaded where they run). Linear weights are N(0, 4/fan_in) and the embedding N(0, 1/16),
 * so each block changes the residual stream more than the token's own embedding does: with
 * smaller blocks a tied model just repeats its last token, and greedy decoding would test
 * nothing. Norm gains sit near 1, biases near 0.
 */
export function randomDecoderWeights(config: DecoderConfig, seed: number): NamedTensors {
  return new Map(randomDecoderTensors(config, seed));
}

/** The same weights one tensor at a time, in decoderTensorShapes order: a model larger than
 * memory can be written without holding it (writeHfFolder's `shapes`). */
export function* randomDecoderTensors(
  config: DecoderConfig,
  seed: number,
): Generator<[string, HostTensor]> {
  const rng = new Rng(seed);
  for (const [name, shape] of decoderTensorShapes(config)) {
    const data = new Float32Array(elementCount(shape));
    if (name.endsWith('norm.weight')) {
      for (let i = 0; i < data.length; i++) data[i] = 1 + 0.1 * rng.normal();
    } else if (name.endsWith('.bias')) {
      for (let i = 0; i < data.length; i++) data[i] = 0.1 * rng.normal();
    } else {
      const scale = name === 'model.embed_tokens.weight' ? 0.25 : 2 / Math.sqrt(shape[1]!);
      for (let i = 0; i < data.length; i++) data[i] = scale * rng.normal();
    }
    yield [name, { shape, data }];
  }
}
