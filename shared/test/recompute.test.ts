import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { Trainer } from '../src/model/trainer.ts';
import { Transformer, recomputedBlocks } from '../src/model/transformer.ts';
import { modelConfigFromHf } from '../src/model/config.ts';
import { REAL_SHAPES, type RealShapeName } from '../src/decoder/shapes.ts';

/**
 * Activation checkpointing (ForwardOptions.recompute): each block runs again in the backward
 * instead of keeping its intermediates. The gradients must be the ones the kept-activations
 * pass gives, value for value, with an adapter on a frozen base (the frozen products through
 * the float32 kernel on wasm), with the whole model training, and with dropout on (its masks
 * are seeded, so the second run must draw the same ones).
 */
const SMALL: ModelConfig = {
  vocabSize: 40,
  blockSize: 12,
  nLayer: 3,
  nHead: 4,
  nKvHead: 2,
  nEmbd: 16,
  dropout: 0,
  bias: true,
  tiedHead: false,
};

const B = 2;
const T = 12;
const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % SMALL.vocabSize);
const targets = Int32Array.from({ length: B * T }, (_, i) => (i * 11 + 5) % SMALL.vocabSize);

beforeAll(async () => {
  await selectBackend({ force: 'wasm' });
});

afterAll(async () => {
  await selectBackend({ force: 'cpu' });
});

/** Loss and gradients of `vars`, with or without recomputing the blocks. */
function lossAndGrads(
  model: Transformer,
  vars: tf.Variable[],
  recompute: boolean | number,
): { loss: number; grads: Float32Array[]; keptBytes: number } {
  let keptBytes = 0;
  const { value, grads } = tf.variableGrads(() => {
    const before = tf.memory().numBytes;
    const loss = model.loss({ ids, B, T }, targets, { training: true, dropoutSeed: 9, recompute });
    keptBytes = tf.memory().numBytes - before; // what the forward leaves for the backward
    return loss;
  }, vars);
  const loss = value.dataSync()[0]!;
  value.dispose();
  const out = vars.map((v) => new Float32Array(grads[v.name]!.dataSync()));
  for (const g of Object.values(grads)) g.dispose();
  return { loss, grads: out, keptBytes };
}

function expectSameGradients(
  model: Transformer,
  vars: tf.Variable[],
  recompute: true | number = true,
): void {
  lossAndGrads(model, vars, false); // the first pass builds the model's kept tables (mask)
  const before = tf.memory().numTensors;
  const kept = lossAndGrads(model, vars, false);
  const rerun = lossAndGrads(model, vars, recompute);
  expect(rerun.loss).toBe(kept.loss);
  // The point of it: less is held between the forward and the backward (far less when every
  // block is recomputed).
  expect(rerun.keptBytes).toBeLessThan(recompute === true ? kept.keptBytes / 2 : kept.keptBytes);
  expect(rerun.grads.length).toBe(vars.length);
  let nonZero = 0;
  rerun.grads.forEach((g, i) => {
    const want = kept.grads[i]!;
    let worst = 0;
    for (let j = 0; j < g.length; j++) worst = Math.max(worst, Math.abs(g[j]! - want[j]!));
    expect(worst, vars[i]!.name).toBeLessThan(1e-6);
    if (want.some((x) => x !== 0)) nonZero++;
  });
  // Every weight got a real gradient (none silently zero from a missed input).
  expect(nonZero).toBe(vars.length);
  // Nothing from either pass is left behind.
  expect(tf.memory().numTensors).toBe(before);
}

describe('recomputing blocks in the backward (activation checkpointing)', () => {
  it('gives the same loss and adapter gradients on a frozen base', () => {
    const model = Transformer.create(SMALL, 1);
    const adapter = LoraAdapter.create(
      SMALL,
      { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'] },
      2,
    );
    model.adapter = adapter;
    // Trainer freezes the base; a nonzero B makes A's gradient nonzero too.
    const trainer = new Trainer(model, { steps: 1, batchSize: B }, adapter);
    for (const [name, v] of adapter.params) {
      if (name.endsWith('lora_B.weight')) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 3));
    }
    try {
      expectSameGradients(model, [...adapter.trainable.values()]);
    } finally {
      trainer.dispose();
      model.dispose();
      adapter.dispose();
    }
  });

  it('gives the same gradients for every weight when the whole model trains, dropout on', () => {
    const model = Transformer.create({ ...SMALL, dropout: 0.2 }, 4);
    try {
      expectSameGradients(model, [...model.params.values()]);
    } finally {
      model.dispose();
    }
  });

  it('gives the same gradients when only the first block is recomputed', () => {
    const model = Transformer.create(SMALL, 5);
    try {
      expectSameGradients(model, [...model.params.values()], 1);
    } finally {
      model.dispose();
    }
  });

  it('is chosen for the fewest blocks whose activations would not fit beside the weights', () => {
    const smol = (name: RealShapeName) => modelConfigFromHf(REAL_SHAPES[name]);
    expect(recomputedBlocks(SMALL, B, T)).toBe(0);
    // SmolLM2-135M over 256 positions keeps everything (2.05 GB of wasm heap, measured);
    // SmolLM2-360M over 256 recomputes 11 of 32 blocks (2.86 GB measured), Qwen2.5-0.5B 12 of
    // 24 (3.16 GB; keeping every block ran out of the 4 GB); over 32 they keep them all.
    expect(recomputedBlocks(smol('smollm2-135m'), 1, 256)).toBe(0);
    expect(recomputedBlocks(smol('smollm2-360m'), 1, 256)).toBe(11);
    expect(recomputedBlocks(smol('qwen2.5-0.5b'), 1, 256)).toBe(12);
    expect(recomputedBlocks(smol('smollm2-360m'), 1, 32)).toBe(0);
    // Eight rows of 256 at SmolLM2-135M: most of its 30 blocks; never more than all.
    expect(recomputedBlocks(smol('smollm2-135m'), 8, 256)).toBe(24);
    expect(recomputedBlocks(smol('smollm2-135m'), 64, 256)).toBe(30);
  });
});
