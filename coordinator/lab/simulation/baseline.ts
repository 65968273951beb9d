// The centralised baseline of the same compute: the same initial model trained in one place on
// the union of every client's data, taking after each round-equivalent as many optimiser steps
// (of the same batch size) as all clients together took in that round, and scored after each by
// the coordinator's own evaluator on the same held-out text. Same optimiser as the clients
// (AdamW, constant learning rate, no weight decay, gradient clip 1); its moments carry over
// from one round-equivalent to the next, as a single training run's would.
import {
  constantRateConfig,
  type Manifest,
  type NamedTensors,
  Trainer,
  Transformer,
} from '@commons/shared/engine';
import type { CandidateEvaluator } from '../../src/rounds/evaluator.ts';

export interface BaselineOptions {
  manifest: Manifest;
  tensors: NamedTensors;
  /** The union of the clients' token streams. */
  tokens: Int32Array;
  /** Optimiser steps per round-equivalent (the sum of the clients' steps that round). */
  stepsPerRound: readonly number[];
  batchSize: number;
  learningRate: number;
  seed: number;
  evaluator: CandidateEvaluator;
  onRound?: (point: BaselinePoint) => void;
}

export interface BaselinePoint {
  round: number;
  /** Cumulative optimiser steps. */
  steps: number;
  valLoss: number;
  valBpc: number;
  seconds: number;
}

/** Trains and evaluates; the first point is the initial model (round 0). */
export async function runBaseline(options: BaselineOptions): Promise<BaselinePoint[]> {
  const { manifest, evaluator } = options;
  const model = Transformer.fromTensors(manifest.config, options.tensors);
  const boundaries: number[] = [];
  let total = 0;
  for (const steps of options.stepsPerRound) boundaries.push((total += steps));
  const started = performance.now();
  const points: BaselinePoint[] = [];
  const score = (round: number, steps: number) => {
    const e = evaluator.evaluate(manifest, model.toTensors());
    const point = {
      round,
      steps,
      valLoss: e.loss,
      valBpc: e.bitsPerChar,
      seconds: (performance.now() - started) / 1000,
    };
    points.push(point);
    options.onRound?.(point);
  };
  score(0, 0);
  // Round-equivalents that took no steps (every update dropped) score the same model again.
  const pending = [...boundaries.entries()];
  const flush = (done: number) => {
    while (pending.length > 0 && pending[0]![1] <= done) {
      const [index] = pending.shift()!;
      score(index + 1, done);
    }
  };
  flush(0);
  if (total > 0) {
    const trainer = new Trainer(
      model,
      constantRateConfig({
        steps: total,
        batchSize: options.batchSize,
        learningRate: options.learningRate,
        seed: options.seed,
      }),
    );
    try {
      await trainer.run({ tokens: options.tokens, chars: 0 }, { onProgress: (p) => flush(p.step) });
    } finally {
      trainer.dispose();
    }
  }
  model.dispose();
  return points;
}
