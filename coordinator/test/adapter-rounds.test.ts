import * as tf from '@tensorflow/tfjs';
import {
  ChatTokenizer,
  encodeCheckpoint,
  LoraAdapter,
  type LoraConfig,
  type Manifest,
  type ModelConfig,
  type NamedTensors,
  readCorpus,
  selectBackend,
  splitText,
  Transformer,
} from '@commons/shared/engine';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAdapterRounds, type AdapterRule } from '../lab/simulation/adapter-rounds.ts';
import { assignRoles, parseRoles } from '../lab/simulation/roles.ts';
import { CandidateEvaluator } from '../src/rounds/evaluator.ts';

// Adapter rounds in the lab, on a tiny random Llama-family base and three clients that each
// hold different Shakespeare roles (non-IID), as the convergence bench runs them at size.
const LORA: LoraConfig = {
  rank: 4,
  alpha: 8,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};
let manifest: Manifest;
let tensors: NamedTensors;
let data: Int32Array[];
let evaluator: CandidateEvaluator;

beforeAll(async () => {
  await selectBackend({ force: 'cpu' });
  const { train, val } = splitText(readCorpus());
  const tokenizer = ChatTokenizer.train(train.slice(0, 60_000), 300);
  const config: ModelConfig = {
    vocabSize: tokenizer.vocabSize,
    blockSize: 16,
    nLayer: 1,
    nHead: 2,
    nKvHead: 1,
    nEmbd: 16,
    dropout: 0,
    bias: false,
    tiedHead: true,
  };
  const model = Transformer.create(config, 7);
  tensors = model.toTensors();
  model.dispose();
  manifest = encodeCheckpoint({
    kind: 'model',
    config,
    tokenizer: tokenizer.toJSON(),
    tensors,
  }).manifest;
  data = assignRoles(parseRoles(train.slice(0, 200_000)), 3, 1).map((shard) =>
    Int32Array.from(tokenizer.encodeText(shard.text).slice(0, 4000)),
  );
  evaluator = new CandidateEvaluator({ text: val, maxChars: 1500 });
});

const run = (
  rule: AdapterRule,
  rounds: number,
  onUpdates?: Parameters<typeof runAdapterRounds>[0]['onUpdates'],
) =>
  runAdapterRounds({
    rule,
    manifest,
    tensors,
    data,
    lora: LORA,
    localSteps: 4,
    batchSize: 4,
    learningRate: 3e-2,
    rounds,
    seed: 11,
    evaluator,
    ...(onUpdates ? { onUpdates } : {}),
  });

/** (α/r)·B·A for one projection, on the host. */
function product(
  b: { shape: number[]; data: Float32Array },
  a: { shape: number[]; data: Float32Array },
): Float32Array {
  return tf.tidy(
    () =>
      tf
        .mul(
          tf.matMul(
            tf.tensor2d(b.data, b.shape as [number, number]),
            tf.tensor2d(a.data, a.shape as [number, number]),
          ),
          LORA.alpha / LORA.rank,
        )
        .dataSync() as Float32Array,
  );
}

const Q = 'model.layers.0.self_attn.q_proj';

describe('adapter rounds (lab/simulation/adapter-rounds.ts)', () => {
  it("FFA-LoRA: clients send B alone, and the average B moves the merged weights exactly by the clients' average", async () => {
    let updates: readonly NamedTensors[] = [];
    let aggregate: NamedTensors = new Map();
    // The frozen A every client holds: drawn from the round's seed, the same for all.
    const a = LoraAdapter.create(manifest.config, LORA, 11, { freezeA: true });
    const frozenA = a.toTensors().get(`${Q}.lora_A.weight`)!;
    a.dispose();
    await run('ffa-lora', 1, (_round, u, mean) => {
      updates = u;
      aggregate = mean;
    });
    expect(updates).toHaveLength(3);
    for (const u of updates)
      expect([...u.keys()].every((name) => name.endsWith('lora_B.weight'))).toBe(true);
    const n = data.map((d) => d.length);
    const total = n.reduce((x, y) => x + y, 0);
    // Σₖ wₖ·(α/r)·ΔBₖ·A against (α/r)·(Σₖ wₖ·ΔBₖ)·A.
    const perClient = updates.map((u) => product(u.get(`${Q}.lora_B.weight`)!, frozenA));
    const average = perClient[0]!.map((_, i) =>
      perClient.reduce((s, p, k) => s + (n[k]! / total) * p[i]!, 0),
    );
    const fromAggregate = product(aggregate.get(`${Q}.lora_B.weight`)!, frozenA);
    let worst = 0;
    let size = 0;
    for (let i = 0; i < average.length; i++) {
      worst = Math.max(worst, Math.abs(average[i]! - fromAggregate[i]!));
      size = Math.max(size, Math.abs(average[i]!));
    }
    expect(size).toBeGreaterThan(0);
    expect(worst).toBeLessThan(1e-6 * Math.max(1, size));
  });

  it('LoRA-FedAvg: clients send A and B, and averaging them apart is not the average adapter', async () => {
    let updates: readonly NamedTensors[] = [];
    let aggregate: NamedTensors = new Map();
    await run('lora-fedavg', 2, (round, u, mean) => {
      if (round === 2) {
        updates = u;
        aggregate = mean;
      }
    });
    expect([...updates[0]!.keys()].some((name) => name.endsWith('lora_A.weight'))).toBe(true);
    // With B ≠ 0 (round 2), mean(B)·mean(A) differs from mean(B·A) by the clients' covariance.
    const n = data.map((d) => d.length);
    const total = n.reduce((x, y) => x + y, 0);
    const perClient = updates.map((u) =>
      product(u.get(`${Q}.lora_B.weight`)!, u.get(`${Q}.lora_A.weight`)!),
    );
    const average = perClient[0]!.map((_, i) =>
      perClient.reduce((s, p, k) => s + (n[k]! / total) * p[i]!, 0),
    );
    const fromAggregate = product(
      aggregate.get(`${Q}.lora_B.weight`)!,
      aggregate.get(`${Q}.lora_A.weight`)!,
    );
    let gap = 0;
    for (let i = 0; i < average.length; i++)
      gap = Math.max(gap, Math.abs(average[i]! - fromAggregate[i]!));
    expect(gap).toBeGreaterThan(1e-7);
  });

  it('every rule lowers the held-out loss; FFA-LoRA sends least, full FedAvg most', async () => {
    const initial = evaluator.evaluate(manifest, tensors).loss;
    const results = [];
    for (const rule of ['ffa-lora', 'lora-fedavg', 'full-fedavg'] as const) {
      const result = await run(rule, 2);
      expect(result.losses).toHaveLength(2);
      expect(result.losses.at(-1)!).toBeLessThan(initial);
      results.push(result);
    }
    const [ffa, fedit, full] = results;
    expect(ffa!.trainedParameters).toBeLessThan(fedit!.trainedParameters);
    expect(fedit!.trainedParameters).toBeLessThan(full!.trainedParameters);
    expect(ffa!.bytesPerClient).toBeLessThan(fedit!.bytesPerClient);
    expect(fedit!.bytesPerClient).toBeLessThan(full!.bytesPerClient);
  });
});
