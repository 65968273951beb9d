// Adapter rounds: what changes when a round trains a LoRA adapter on its base model rather
// than the whole model (the policy's adapter rule). The update vector every existing stage works
// on (clipping, SecAgg+, DP noise, robust rules, codecs, commitments) becomes the adapter's
// trainable factors, laid end to end; nothing downstream of the layout needs to know. The
// round's candidate is the base with (α/r)·B·A of the averaged adapter folded in, and the
// adapter is published beside it so a member who holds the parent downloads only the adapter.
import type { FederationPolicy } from '@commons/chain';
import {
  factorTrains,
  LoraAdapter,
  mergeLora,
  type Manifest,
  type NamedTensors,
} from '@commons/shared/engine';
import type { AdapterTask } from '@commons/shared/protocol';
import type { Strategy } from '../strategy/strategy.ts';

/** A round's adapter: what the clients were told, and the factors as every one of them drew them. */
export interface RoundAdapter {
  task: AdapterTask;
  /** Every factor as drawn from the round's seed: A (frozen under FFA-LoRA) and B = 0. */
  initial: NamedTensors;
  /** The factors that train, as drawn: what the updates are changes of, in layout order. */
  trainable: NamedTensors;
}

/**
 * The adapter a round trains under `policy`, or null when the policy's rule is full-delta
 * (the update is the whole model's). The seed is the round's: each round draws a fresh A,
 * so successive adapters explore different subspaces and fold into the base one after another.
 */
export function adapterTaskFor(policy: FederationPolicy, seed: number): AdapterTask | null {
  const { rule, rank, alpha, targets } = policy.adapter;
  if (rule === 'full-delta') return null;
  return { rule, lora: { rank, alpha, targets: [...targets] }, seed };
}

/**
 * Why `strategy` cannot run an adapter round, or null when it can. A server optimiser (FedAdam,
 * FedYogi, FedAdagrad) keeps moments per coordinate across rounds, but each adapter round's
 * coordinates are a fresh adapter's: yesterday's momentum would push today's unrelated factors.
 */
export function adapterRoundRefusal(strategy: Strategy): string | null {
  if (!strategy.serverOptimiser) return null;
  return (
    `${strategy.name} keeps server-optimiser state across rounds, and an adapter round trains a ` +
    `fresh adapter each time; run adapter rounds with fedavg, fedprox, fedmedian, trimmed-mean, ` +
    `krum or multi-krum, or set the policy's adapter rule to full-delta`
  );
}

/** The round's adapter as drawn from its seed on the base model's shape. */
export function roundAdapter(manifest: Manifest, task: AdapterTask): RoundAdapter {
  const initial = LoraAdapter.initialTensors(manifest.config, task.lora, task.seed);
  const trainable: NamedTensors = new Map(
    [...initial].filter(([name]) => factorTrains(name, task.rule === 'ffa-lora')),
  );
  return { task, initial, trainable };
}

/**
 * The round's averaged adapter and the candidate it makes: `trained` holds the new values of
 * the trainable factors; the frozen ones stay as drawn.
 */
export function foldAdapter(
  base: NamedTensors,
  adapter: RoundAdapter,
  trained: NamedTensors,
): { adapter: NamedTensors; merged: NamedTensors } {
  const factors: NamedTensors = new Map(
    [...adapter.initial].map(([name, t]) => [name, trained.get(name) ?? t]),
  );
  return { adapter: factors, merged: mergeLora(base, factors, adapter.task.lora) };
}
