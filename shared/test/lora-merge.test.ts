import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import { CheckpointError } from '../src/checkpoint/errors.ts';
import { encodeCheckpoint } from '../src/checkpoint/codec.ts';
import { factorTrains, mergeLora } from '../src/checkpoint/lora-merge.ts';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import type { LoraConfig, ModelConfig } from '../src/model/config.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { Rng } from '../src/model/rng.ts';
import { Transformer } from '../src/model/transformer.ts';

// A tiny Llama-family model (GQA, SwiGLU, untied head) and an adapter on four projections.
const CONFIG: ModelConfig = {
  vocabSize: 64,
  blockSize: 16,
  nLayer: 2,
  nHead: 4,
  nKvHead: 2,
  nEmbd: 32,
  dropout: 0,
  bias: true,
  tiedHead: false,
};
const LORA: LoraConfig = {
  rank: 4,
  alpha: 8,
  targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'],
};

beforeAll(async () => {
  await selectBackend();
});

/** An adapter with a random (non-zero) B, as one that has trained. */
function trainedAdapter(seed: number, lora: LoraConfig = LORA): NamedTensors {
  const tensors = LoraAdapter.initialTensors(CONFIG, lora, seed);
  const rng = new Rng(seed + 1);
  for (const [name, t] of tensors) {
    if (name.endsWith('.lora_B.weight')) {
      for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * 0.05;
    }
  }
  return tensors;
}

function logits(model: Transformer, ids: number[]): Float32Array {
  return tf.tidy(
    () =>
      model.forward({ ids: Int32Array.from(ids), B: 1, T: ids.length }).dataSync() as Float32Array,
  );
}

function expectAdapterMismatch(run: () => unknown, text: RegExp): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as CheckpointError).code).toBe('ADAPTER_MISMATCH');
    expect((error as Error).message).toMatch(text);
    return;
  }
  throw new Error('expected ADAPTER_MISMATCH');
}

describe('mergeLora', () => {
  it('gives the function of the base with the adapter attached', () => {
    const model = Transformer.create(CONFIG, 3);
    const base = model.toTensors();
    const factors = trainedAdapter(7);
    const ids = [1, 5, 9, 2, 40, 33, 7, 8];

    const adapter = LoraAdapter.fromTensors(CONFIG, LORA, factors);
    model.adapter = adapter;
    const attached = logits(model, ids);
    model.adapter = null;
    adapter.dispose();
    model.dispose();

    const merged = Transformer.fromTensors(CONFIG, mergeLora(base, factors, LORA));
    const folded = logits(merged, ids);
    merged.dispose();
    let worst = 0;
    for (let i = 0; i < attached.length; i++) {
      worst = Math.max(worst, Math.abs(attached[i]! - folded[i]!));
    }
    expect(worst).toBeLessThan(1e-4);
    // The adapter did change the model: the comparison above is not between two copies of the base.
    const plain = Transformer.fromTensors(CONFIG, base);
    const before = logits(plain, ids);
    plain.dispose();
    expect(Math.max(...before.map((v, i) => Math.abs(v - folded[i]!)))).toBeGreaterThan(1e-3);
  });

  it('agrees with the tfjs merge, touches only adapted projections, and is bit-reproducible', () => {
    const model = Transformer.create(CONFIG, 4);
    const base = model.toTensors();
    const factors = trainedAdapter(11);
    const adapter = LoraAdapter.fromTensors(CONFIG, LORA, factors);
    adapter.merge(model);
    const viaTf = model.toTensors();
    adapter.dispose();
    model.dispose();

    const merged = mergeLora(base, factors, LORA);
    for (const [name, t] of merged) {
      const adapted = /\.(q_proj|v_proj|o_proj|down_proj)\.weight$/.test(name);
      if (!adapted) expect(t).toBe(base.get(name)); // the base's own tensor, not a copy
      const reference = viaTf.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) {
        expect(Math.abs(t.data[i]! - reference[i]!)).toBeLessThan(1e-6);
      }
    }
    // A member folding the same adapter into the same parent gets the same checkpoint hash.
    const tokenizer = { model: { type: 'test' } };
    const hash = (tensors: NamedTensors) =>
      encodeCheckpoint({ config: CONFIG, tokenizer, tensors }).hash;
    expect(hash(mergeLora(base, trainedAdapter(11), LORA))).toBe(hash(merged));
    expect(hash(mergeLora(base, trainedAdapter(12), LORA))).not.toBe(hash(merged));
  });

  it('draws the same initial adapter as LoraAdapter.create', () => {
    const created = LoraAdapter.create(CONFIG, LORA, 21, { freezeA: true });
    const drawn = LoraAdapter.initialTensors(CONFIG, LORA, 21);
    expect([...created.params.keys()]).toEqual([...drawn.keys()]);
    for (const [name, t] of created.toTensors()) {
      expect(Array.from(t.data)).toEqual(Array.from(drawn.get(name)!.data));
    }
    // Only B trains when A is frozen; every B starts at zero.
    expect([...created.trainable.keys()].every((n) => n.endsWith('.lora_B.weight'))).toBe(true);
    // The same rule the coordinator's round adapter applies to the drawn factors.
    expect([...created.trainable.keys()]).toEqual(
      [...drawn.keys()].filter((name) => factorTrains(name, true)),
    );
    expect([...drawn.keys()].filter((name) => factorTrains(name, false))).toHaveLength(drawn.size);
    created.dispose();
  });

  it('refuses, naming the tensor, an adapter that does not fit its base', () => {
    const model = Transformer.create(CONFIG, 5);
    const base = model.toTensors();
    model.dispose();
    const q = 'model.layers.0.self_attn.q_proj';

    // Trained at another rank than it says.
    expectAdapterMismatch(
      () => mergeLora(base, trainedAdapter(1, { ...LORA, rank: 2 }), LORA),
      /q_proj\.lora_A\.weight" is \[2, 32\].*must be \[4, 32\]/,
    );
    // For a wider model: the base's projection has other dimensions.
    const wide = LoraAdapter.initialTensors(
      { ...CONFIG, nEmbd: 64, nHead: 8, nKvHead: 4 },
      LORA,
      1,
    );
    expectAdapterMismatch(() => mergeLora(base, wide, LORA), /q_proj\.lora_A\.weight"/);
    // A factor without its pair.
    const unpaired = trainedAdapter(1);
    unpaired.delete(`${q}.lora_B.weight`);
    expectAdapterMismatch(
      () => mergeLora(base, unpaired, LORA),
      /has no ".*q_proj\.lora_B\.weight"/,
    );
    // A projection the model does not have (a third layer).
    const extra = trainedAdapter(1);
    extra.set('model.layers.2.self_attn.q_proj.lora_A.weight', extra.get(`${q}.lora_A.weight`)!);
    extra.set('model.layers.2.self_attn.q_proj.lora_B.weight', extra.get(`${q}.lora_B.weight`)!);
    expectAdapterMismatch(
      () => mergeLora(base, extra, LORA),
      /layers\.2\.self_attn\.q_proj\.weight/,
    );
    // Something that is not a LoRA factor at all.
    const stray = trainedAdapter(1);
    stray.set('model.norm.weight', base.get('model.norm.weight')!);
    expectAdapterMismatch(() => mergeLora(base, stray, LORA), /neither a lora_A nor a lora_B/);
    expectAdapterMismatch(() => mergeLora(base, new Map(), LORA), /empty/);
  });
});
