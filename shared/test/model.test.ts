import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { countChars } from '../src/model/dataset.ts';
import { evaluate } from '../src/model/evaluate.ts';
import { generate } from '../src/model/generate.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { Trainer } from '../src/model/trainer.ts';
import { hfConfig, modelConfigFromHf, parameterShapes } from '../src/model/config.ts';
import { loadModel, saveHfModel } from '../src/model/checkpoint.ts';
import { loadDecoderFolder } from '../src/decoder/load.ts';
import { Transformer } from '../src/model/transformer.ts';

const SMALL: ModelConfig = {
  vocabSize: 300,
  blockSize: 16,
  nLayer: 2,
  nHead: 2,
  nKvHead: 1,
  nEmbd: 16,
  dropout: 0,
  bias: true,
  tiedHead: false,
};

const TEXT = 'the quick brown fox jumps over the lazy dog. '.repeat(40);
let tokenizer: ChatTokenizer;
let tokens: Int32Array;

beforeAll(async () => {
  const report = await selectBackend();
  expect(['wasm', 'cpu', 'tensorflow', 'tensorflow-gpu', 'webgpu']).toContain(report.backend);
  tokenizer = ChatTokenizer.train(TEXT, SMALL.vocabSize);
  tokens = Int32Array.from(tokenizer.encode(TEXT));
});

const split = () => ({ tokens, chars: countChars(TEXT) });
const weights = (m: { toTensors(): Map<string, { data: Float32Array }> }) =>
  [...m.toTensors().values()].map((t) => Array.from(t.data));

function logitsAt(model: Transformer, ids: number[]): Float32Array {
  const out = tf.tidy(() => model.forward({ ids: Int32Array.from(ids), B: 1, T: ids.length }));
  const data = out.dataSync() as Float32Array;
  out.dispose();
  return data;
}

describe('Transformer', () => {
  it('has the parameters its config says, and refuses a wrong checkpoint', () => {
    const m = Transformer.create(SMALL, 1);
    const shapes = parameterShapes(SMALL);
    expect([...m.params.keys()]).toEqual([...shapes.keys()]);
    expect(shapes.get('model.layers.0.self_attn.q_proj.weight')).toEqual([16, 16]);
    expect(shapes.get('model.layers.0.self_attn.k_proj.weight')).toEqual([8, 16]);
    expect(shapes.get('model.layers.0.self_attn.k_proj.bias')).toEqual([8]);
    expect(shapes.get('model.layers.1.mlp.gate_proj.weight')).toEqual([48, 16]);
    const tensors = m.toTensors();
    tensors.set('model.embed_tokens.weight', { shape: [3, 3], data: new Float32Array(9) });
    expect(() => Transformer.fromTensors(SMALL, tensors)).toThrow(
      /"model.embed_tokens.weight" has shape \[3,3\], expected \[300,16\]/,
    );
    tensors.delete('model.embed_tokens.weight');
    expect(() => Transformer.fromTensors(SMALL, tensors)).toThrow(
      /missing tensor "model.embed_tokens.weight"/,
    );
    m.dispose();
  });

  it('refuses token ids outside the vocabulary and sequences longer than blockSize', () => {
    const m = Transformer.create(SMALL, 1);
    expect(() => logitsAt(m, [SMALL.vocabSize])).toThrow(/outside the vocabulary/);
    expect(() => logitsAt(m, new Array(SMALL.blockSize + 1).fill(1))).toThrow(/exceeds blockSize/);
    m.dispose();
  });

  it('gives the same logits with the KV cache as with the full forward pass', () => {
    const m = Transformer.create(SMALL, 2);
    const ids = Array.from(tokens.slice(0, 10));
    const full = logitsAt(m, ids);
    const V = SMALL.vocabSize;
    const cache = m.newCache();
    // Prefill with the first 4, then one token at a time.
    const check = (got: Float32Array, pos: number) => {
      const want = full.subarray(pos * V, (pos + 1) * V);
      for (let i = 0; i < V; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);
    };
    check(m.decode(ids.slice(0, 4), cache), 3);
    for (let p = 4; p < ids.length; p++) check(m.decode([ids[p]!], cache), p);
    // Several tokens onto a non-empty cache use the offset causal mask.
    const cache2 = m.newCache();
    m.decode(ids.slice(0, 3), cache2);
    check(m.decode(ids.slice(3, 7), cache2), 6);
    m.disposeCache(cache);
    m.disposeCache(cache2);
    m.dispose();
  });

  it('saves as a Hugging Face folder that the inference engine runs to the same logits', async () => {
    for (const config of [SMALL, { ...SMALL, bias: false, nKvHead: 2, tiedHead: true }]) {
      const m = Transformer.create(config, 5);
      const dir = join(mkdtempSync(join(tmpdir(), 'commons-hf-')), 'model');
      const { hash } = await saveHfModel(dir, m, tokenizer, { note: 'test' });
      const ids = Array.from(tokens.slice(0, 12));
      const want = logitsAt(m, ids);
      const { decoder, eosTokenIds } = await loadDecoderFolder(dir);
      expect(eosTokenIds).toEqual([
        tokenizer.tokenId('<|im_end|>'),
        tokenizer.tokenId('<|endoftext|>'),
      ]);
      const got = tf.tidy(
        () => decoder.forward(ids, decoder.newCache()).dataSync() as Float32Array,
      );
      expect(got.length).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst).toBeLessThan(1e-4);
      decoder.dispose();
      // And back into a trainable model, with the hash it was saved under.
      const loaded = await loadModel(dir, { expectedHash: hash });
      expect(loaded.model.config).toEqual(modelConfigFromHf(hfConfig(config)));
      expect(weights(loaded.model)).toEqual(weights(m));
      expect(loaded.tokenizer.encode('the lazy dog')).toEqual(tokenizer.encode('the lazy dog'));
      loaded.model.dispose();
      m.dispose();
    }
  });

  it('training lowers the loss, deterministically, without leaking tensors', async () => {
    const run = async () => {
      const m = Transformer.create(SMALL, 3);
      const trainer = new Trainer(m, {
        steps: 12,
        batchSize: 4,
        warmupSteps: 2,
        maxLr: 1e-2,
        seed: 7,
      });
      const counts: number[] = [];
      const losses: number[] = [];
      const before = evaluate(m, split());
      await trainer.run(split(), {
        onProgress: (p) => {
          counts.push(tf.memory().numTensors);
          losses.push(p.loss);
        },
      });
      const after = evaluate(m, split());
      trainer.dispose();
      m.dispose();
      return { counts, losses, before, after };
    };
    const a = await run();
    const b = await run();
    expect(a.after.loss).toBeLessThan(a.before.loss - 0.5);
    expect(a.after.bitsPerChar).toBeLessThan(a.before.bitsPerChar);
    expect(b.losses).toEqual(a.losses);
    // Flat tensor count across steps: nothing allocated per step survives it.
    expect(new Set(a.counts.slice(1)).size).toBe(1);
  });

  it('resumes from a snapshot exactly where it stopped', async () => {
    const cfg = { steps: 6, batchSize: 4, warmupSteps: 2, seed: 11, gradAccum: 2 };
    const straight = Transformer.create(SMALL, 4);
    const t1 = new Trainer(straight, cfg);
    await t1.run(split());

    const first = Transformer.create(SMALL, 4);
    const t2 = new Trainer(first, { ...cfg, steps: 6 });
    const ac = new AbortController();
    await t2.run(split(), { signal: ac.signal, onProgress: (p) => p.step === 3 && ac.abort() });
    expect(t2.completedSteps).toBe(3);
    const snap = t2.snapshot();
    const resumed = Transformer.fromTensors(SMALL, first.toTensors());
    const t3 = new Trainer(resumed, cfg);
    t3.restore(snap);
    const result = await t3.run(split());
    expect(result.steps).toBe(6);
    expect(weights(resumed)).toEqual(weights(straight));
    for (const x of [t1, t2, t3]) x.dispose();
    for (const m of [straight, first, resumed]) m.dispose();
  });
});

describe('LoRA', () => {
  it('starts as a no-op, trains only the adapter, and merges to the same function', async () => {
    const m = Transformer.create(SMALL, 5);
    const base = weights(m);
    const ids = tokenizer.encode('the quick brown').slice(0, 8);
    const plain = logitsAt(m, ids);
    const adapter = LoraAdapter.create(
      SMALL,
      { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'gate_proj'] },
      1,
    );
    m.adapter = adapter;
    expect(Array.from(logitsAt(m, ids))).toEqual(Array.from(plain));

    const trainer = new Trainer(
      m,
      { steps: 8, batchSize: 4, maxLr: 1e-2, warmupSteps: 1 },
      adapter,
    );
    await trainer.run(split());
    trainer.dispose();
    expect(weights(m)).toEqual(base); // base weights untouched
    const adapted = logitsAt(m, ids);
    expect(Array.from(adapted)).not.toEqual(Array.from(plain));

    adapter.merge(m);
    const merged = logitsAt(m, ids);
    adapted.forEach((v, i) => expect(merged[i]).toBeCloseTo(v, 4));
    adapter.unmerge(m);
    weights(m).forEach((w, i) => w.forEach((v, j) => expect(v).toBeCloseTo(base[i]![j]!, 5)));

    adapter.enabled = false;
    expect(Array.from(logitsAt(m, ids)).map((v) => v.toFixed(4))).toEqual(
      Array.from(plain).map((v) => v.toFixed(4)),
    );
    adapter.dispose();
    m.dispose();
  });

  it('refuses adapter tensors that do not fit the model', () => {
    const lora = { rank: 2, alpha: 2, targets: ['o_proj' as const] };
    const a = LoraAdapter.create(SMALL, lora, 1);
    const t = a.toTensors();
    expect(t.get('model.layers.0.self_attn.o_proj.lora_A.weight')?.shape).toEqual([2, 16]);
    expect(t.get('model.layers.0.self_attn.o_proj.lora_B.weight')?.shape).toEqual([16, 2]);
    t.set('model.layers.0.self_attn.o_proj.lora_A.weight', {
      shape: [16, 3],
      data: new Float32Array(48),
    });
    expect(() => LoraAdapter.fromTensors(SMALL, lora, t)).toThrow(
      /lora_A.weight" has shape \[16,3\]/,
    );
    a.dispose();
  });
});

describe('generate', () => {
  it('streams reproducibly with a seed, stops on stop sequences and max tokens, and cancels', async () => {
    const m = Transformer.create(SMALL, 6);
    const trainer = new Trainer(m, { steps: 30, batchSize: 8, maxLr: 1e-2, warmupSteps: 2 });
    await trainer.run(split());
    trainer.dispose();
    const tensorsBefore = tf.memory().numTensors;
    const collect = async (opts: Parameters<typeof generate>[3], prompt = 'the quick') => {
      const it = generate(m, tokenizer, prompt, opts);
      const chunks: string[] = [];
      let r = await it.next();
      while (!r.done) {
        chunks.push(r.value.text);
        r = await it.next();
      }
      return { text: chunks.join(''), chunks: chunks.length, reason: r.value };
    };
    const a = await collect({ maxTokens: 20, seed: 3 });
    const b = await collect({ maxTokens: 20, seed: 3 });
    expect(a.text).toBe(b.text);
    expect(a.reason).toBe('length');
    expect(a.chunks).toBeGreaterThanOrEqual(20);

    // Cached and uncached decoding produce the same greedy text, past the blockSize refill.
    const cached = await collect({ maxTokens: 40, temperature: 0, useCache: true });
    const uncached = await collect({ maxTokens: 40, temperature: 0, useCache: false });
    expect(cached.text.length).toBeGreaterThan(0);
    // After the first refill the windows differ (half vs full), so compare up to it.
    expect(cached.text.slice(0, 10)).toBe(uncached.text.slice(0, 10));

    const stop = await collect({ maxTokens: 200, temperature: 0, stop: ['dog'] });
    expect(stop.reason).toBe('stop');
    expect(stop.text).not.toContain('dog');

    const ac = new AbortController();
    const it = generate(m, tokenizer, 'the', { maxTokens: 100, signal: ac.signal });
    await it.next();
    ac.abort();
    let r = await it.next();
    while (!r.done) r = await it.next();
    expect(r.value).toBe('cancelled');

    await expect(collect({ temperature: -1 })).rejects.toThrow(/temperature must be ≥ 0/);
    // Caches are released whichever way generation ends; only causal masks (one per
    // prefill length, at most blockSize) are kept for reuse.
    expect(tf.memory().numTensors - tensorsBefore).toBeLessThanOrEqual(SMALL.blockSize);
    m.dispose();
  });
});

describe('training state on disk', () => {
  it('resumes bit-identically from a saved state and refuses a tampered optimizer file', async () => {
    const { loadTrainingState, saveTrainingState } = await import('../src/model/training-state.ts');
    const dir = join(mkdtempSync(join(tmpdir(), 'commons-state-')), 'run');
    const cfg = { steps: 4, batchSize: 4, warmupSteps: 1, seed: 5 };

    const config = { ...SMALL, vocabSize: tokenizer.vocabSize };
    const straight = Transformer.create(config, 9);
    const t1 = new Trainer(straight, cfg);
    await t1.run(split());

    const first = Transformer.create(config, 9);
    const t2 = new Trainer(first, { ...cfg, steps: 2 });
    await t2.run(split());
    await saveTrainingState(dir, first, tokenizer, t2);
    await saveTrainingState(dir, first, tokenizer, t2); // overwriting a state is fine

    const { loaded, snapshot } = await loadTrainingState(dir);
    expect(snapshot.step).toBe(2);
    const t3 = new Trainer(loaded.model, cfg);
    t3.restore(snapshot);
    await t3.run(split());
    expect(weights(loaded.model)).toEqual(weights(straight));

    const opt = join(dir, 'optimizer.bin');
    const bytes = readFileSync(opt);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    writeFileSync(opt, bytes);
    await expect(loadTrainingState(dir)).rejects.toThrow(/HASH_MISMATCH: optimizer.bin/);
    for (const x of [t1, t2, t3]) x.dispose();
    for (const m of [straight, first, loaded.model]) m.dispose();
  });
});
