// Federated fine-tuning with LoRA adapters against full-model FedAvg, in this process (as fedsgd.ts
// runs FedSGD): the same clients' data, the same base model, the same held-out scoring, so the
// three rules can be set side by side in one run.
//
//   full-fedavg   every client trains every weight; the server averages the deltas (McMahan 2017)
//   lora-fedavg   every client trains an adapter's A and B from the community's; the server
//                 averages A and B separately (FedIT; Flower's FlowerTune template). Inexact:
//                 mean(B)·mean(A) ≠ mean(B·A), so the aggregate is not the clients' average.
//   ffa-lora      A is drawn once from the round's seed and frozen; clients train B only and the
//                 server averages B (Sun et al., ICLR 2024). Exact: mean(B)·A = mean(B·A), and half
//                 the bytes of lora-fedavg go over the wire.
//
// Each client's local run is the production one (local-update.ts): constant learning rate, no
// weight decay, a fresh optimiser per round. What a client would upload is encoded with the real
// update codec, so bytes per round are measured, not estimated, and folded by the coordinator's
// own streaming weighted mean.
import {
  applyDelta,
  computeDelta,
  constantRateConfig,
  encodeTensors,
  LoraAdapter,
  type LoraConfig,
  type Manifest,
  type NamedTensors,
  Trainer,
  Transformer,
} from '@commons/shared/engine';
import { layoutOf, unflatten } from '../../src/aggregation/layout.ts';
import { WeightedMeanAggregator } from '../../src/aggregation/weighted-mean.ts';
import type { CandidateEvaluator } from '../../src/rounds/evaluator.ts';

export const ADAPTER_RULES = ['ffa-lora', 'lora-fedavg', 'full-fedavg'] as const;
export type AdapterRule = (typeof ADAPTER_RULES)[number];

export interface AdapterRoundsOptions {
  rule: AdapterRule;
  /** The base model (its manifest carries the config and tokenizer for scoring). */
  manifest: Manifest;
  tensors: NamedTensors;
  /** Each client's token stream. */
  data: readonly Int32Array[];
  /** The adapter's shape (ignored by full-fedavg). */
  lora: LoraConfig;
  localSteps: number;
  batchSize: number;
  learningRate: number;
  rounds: number;
  /** Seeds A (the round's announced seed), the clients' batches and nothing else. */
  seed: number;
  evaluator: CandidateEvaluator;
  /** Stop once a round's validation loss is at or below this. */
  targetLoss?: number;
  onRound?: (round: number, valLoss: number) => void;
  /** Every client's update in every round, as uploaded (for tests of the aggregation rule). */
  onUpdates?: (round: number, updates: readonly NamedTensors[], aggregate: NamedTensors) => void;
}

export interface AdapterRoundsResult {
  rule: AdapterRule;
  /** Validation loss after each round (round 1 first); stops early at the target. */
  losses: number[];
  /** The first round at or below the target; null when none was. */
  reachedAt: number | null;
  /** Bytes one client uploads per round (fp32 update frame, the codec's own size). */
  bytesPerClient: number;
  /** Numbers a client trains and sends. */
  trainedParameters: number;
}

/** Runs up to `rounds` rounds of `rule`, scoring base + community adapter after each. */
export async function runAdapterRounds(
  options: AdapterRoundsOptions,
): Promise<AdapterRoundsResult> {
  const { rule, manifest, data, evaluator } = options;
  if (data.length === 0) throw new Error('adapter rounds need at least one client');
  const model = Transformer.fromTensors(manifest.config, options.tensors);
  const freezeA = rule === 'ffa-lora';
  // The community adapter starts as a fresh one: A from the seed, B = 0 (the base model exactly).
  const adapter =
    rule === 'full-fedavg'
      ? null
      : LoraAdapter.create(manifest.config, options.lora, options.seed, { freezeA });
  let global: NamedTensors = adapter ? adapter.toTensors() : options.tensors;
  const examples = data.map((tokens) => tokens.length);
  const losses: number[] = [];
  let bytesPerClient = 0;
  let trainedParameters = 0;
  try {
    if (adapter) model.adapter = adapter;
    for (let round = 1; round <= options.rounds; round++) {
      const updates: NamedTensors[] = [];
      let aggregator: WeightedMeanAggregator | null = null;
      for (let k = 0; k < data.length; k++) {
        if (adapter) adapter.assign(global);
        else model.assign(global);
        const trainer = new Trainer(
          model,
          constantRateConfig({
            steps: options.localSteps,
            batchSize: options.batchSize,
            learningRate: options.learningRate,
            seed: options.seed * 7919 + round * 131 + k,
          }),
          adapter,
        );
        await trainer.run({ tokens: data[k]!, chars: data[k]!.length });
        trainer.dispose();
        // What the client sends: the change of what it trained (B alone under FFA-LoRA).
        const trained = adapter ? only(adapter.toTensors(), adapter.trainable) : model.toTensors();
        const update = computeDelta(only(global, trained), trained);
        updates.push(update);
        const frame = encodeTensors(update, 'fp32');
        bytesPerClient = frame.byteLength;
        trainedParameters = [...update.values()].reduce((n, t) => n + t.data.length, 0);
        // The coordinator's own streaming FedAvg fold, weighted by the client's tokens.
        aggregator ??= new WeightedMeanAggregator(layoutOf(update));
        aggregator.add(frame, examples[k]!);
      }
      const mean = unflatten(aggregator!.result()!, layoutOf(updates[0]!));
      // The averaged factors replace theirs; what nobody trained (a frozen A) stays.
      global = new Map([...global, ...applyDelta(only(global, mean), mean)]);
      options.onUpdates?.(round, updates, mean);
      const loss = evaluator.evaluate(manifest, mergedWeights(model, adapter, global)).loss;
      losses.push(loss);
      options.onRound?.(round, loss);
      if (options.targetLoss !== undefined && loss <= options.targetLoss) {
        return { rule, losses, reachedAt: round, bytesPerClient, trainedParameters };
      }
    }
    return { rule, losses, reachedAt: null, bytesPerClient, trainedParameters };
  } finally {
    model.dispose();
    adapter?.dispose();
  }
}

/** `tensors` restricted to the names `names` holds, in `names`' order. */
function only(tensors: NamedTensors, names: ReadonlyMap<string, unknown>): NamedTensors {
  return new Map([...names.keys()].map((name) => [name, tensors.get(name)!]));
}

/**
 * The weights a member runs: the base with the community adapter folded in (W + (α/r)·B·A),
 * or the averaged full model.
 */
function mergedWeights(
  model: Transformer,
  adapter: LoraAdapter | null,
  global: NamedTensors,
): NamedTensors {
  if (!adapter) return global;
  adapter.assign(global);
  adapter.merge(model);
  const merged = model.toTensors();
  adapter.unmerge(model);
  return merged;
}
