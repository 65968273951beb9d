import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import type { ModelConfig } from '../src/model/config.ts';
import type { TokenSplit } from '../src/model/dataset.ts';
import { flatLayout, packTensors } from '../src/model/parallel/layout.ts';
import { ParallelTrainer } from '../src/model/parallel/parallel-trainer.ts';
import { Rng } from '../src/model/rng.ts';
import type { TrainConfig } from '../src/model/training-loop.ts';
import { Trainer } from '../src/model/trainer.ts';
import { parameterShapes } from '../src/model/config.ts';
import { Transformer } from '../src/model/transformer.ts';

const SMALL: ModelConfig = {
  vocabSize: 24,
  blockSize: 16,
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  dropout: 0,
  bias: true,
  tiedHead: false,
};

/** A learnable stream: mostly a repeating cycle, with some noise. */
function stream(n: number, seed: number): TokenSplit {
  const rng = new Rng(seed);
  const tokens = new Int32Array(n);
  for (let i = 0; i < n; i++) tokens[i] = rng.next() < 0.9 ? i % 12 : 12 + rng.int(12);
  return { tokens, chars: n };
}

const TRAIN: Partial<TrainConfig> = {
  steps: 5,
  batchSize: 8,
  warmupSteps: 1,
  maxLr: 3e-3,
  seed: 7,
};

const flat = (m: Transformer) => packTensors(flatLayout(parameterShapes(m.config)), m.toTensors());

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

beforeAll(async () => {
  await selectBackend({ force: 'wasm' });
});

describe('ParallelTrainer', () => {
  it('keeps the workers bit-identical and matches a single-thread Trainer on the same batch', async () => {
    const data = stream(4000, 1);
    const single = Transformer.create(SMALL, 3);
    const trainer = new Trainer(single, TRAIN);
    const losses: number[] = [];
    await trainer.run(data, { onProgress: (p) => losses.push(p.loss) });
    trainer.dispose();

    const model = Transformer.create(SMALL, 3);
    const parallel = new ParallelTrainer(model, TRAIN, { workers: 2 });
    const parallelLosses: number[] = [];
    try {
      const result = await parallel.run(data, { onProgress: (p) => parallelLosses.push(p.loss) });
      expect(result.steps).toBe(5);
      const [w0, w1] = await parallel.replicaWeights();
      // Bit-identical: same gradients summed in the same order, same JS AdamW.
      expect(Buffer.from(w0!.buffer).equals(Buffer.from(w1!.buffer))).toBe(true);
      // The main model was brought up to date from the workers.
      expect(Buffer.from(flat(model).buffer).equals(Buffer.from(w0!.buffer))).toBe(true);
      // Same batches (same RNG draws) as Trainer; the sums differ only in float order.
      for (let i = 0; i < 5; i++) expect(parallelLosses[i]).toBeCloseTo(losses[i]!, 4);
      const diff = maxAbsDiff(flat(model), flat(single));
      expect(diff).toBeLessThan(1e-4);
    } finally {
      await parallel.dispose();
      model.dispose();
      single.dispose();
    }
  });

  it('lowers the loss, and resumes from a snapshot exactly where it stopped', async () => {
    const data = stream(4000, 2);
    const config = { ...TRAIN, steps: 30 };

    const straight = Transformer.create(SMALL, 4);
    const uninterrupted = new ParallelTrainer(straight, config, { workers: 2 });
    const losses: number[] = [];
    try {
      await uninterrupted.run(data, { onProgress: (p) => losses.push(p.loss) });
    } finally {
      await uninterrupted.dispose();
    }
    const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
    const last = losses.slice(-3).reduce((a, b) => a + b) / 3;
    expect(last).toBeLessThan(first - 0.5);

    // Stop at step 12, snapshot, continue on a fresh trainer (fresh workers).
    const model = Transformer.create(SMALL, 4);
    const stop = new AbortController();
    const before = new ParallelTrainer(model, config, { workers: 2 });
    let snap;
    let at12;
    try {
      const r = await before.run(data, {
        signal: stop.signal,
        onProgress: (p) => p.step === 12 && stop.abort(),
      });
      expect(r).toMatchObject({ steps: 12, cancelled: true });
      snap = before.snapshot();
      at12 = model.toTensors();
    } finally {
      await before.dispose();
    }
    const after = new ParallelTrainer(model, config, { workers: 2 });
    try {
      after.restore(snap);
      expect((await after.run(data)).steps).toBe(30);
    } finally {
      await after.dispose();
    }
    expect(Buffer.from(flat(model).buffer).equals(Buffer.from(flat(straight).buffer))).toBe(true);

    // The snapshot is in Trainer's format: a single-thread Trainer continues from it too.
    const single = Transformer.fromTensors(SMALL, at12!);
    const trainer = new Trainer(single, { ...config, steps: 32 });
    trainer.restore(snap);
    expect(trainer.completedSteps).toBe(12);
    const r = await trainer.run(data);
    expect(r.steps).toBe(32);
    expect(r.finalLoss).toBeLessThan(first);
    trainer.dispose();
    single.dispose();
    model.dispose();
    straight.dispose();
  });

  it('rejects with the worker’s own message when a worker fails, and ends all workers', async () => {
    const model = Transformer.create(SMALL, 5);
    const bad: TokenSplit = { tokens: new Int32Array(200).fill(SMALL.vocabSize + 5), chars: 200 };
    const parallel = new ParallelTrainer(model, TRAIN, { workers: 2 });
    await expect(parallel.run(bad)).rejects.toThrow(/token id 29 is outside the vocabulary/);
    // The trainer is spent: its workers were terminated.
    await expect(parallel.run(stream(500, 1))).rejects.toThrow(/outside the vocabulary/);
    await parallel.dispose();
    model.dispose();
  });

  it('lets the process exit: after dispose, after a worker error, and when never disposed', () => {
    // Run in a separate process: a lingering worker thread would keep it alive past the timeout.
    const dir = mkdtempSync(join(tmpdir(), 'commons-parallel-'));
    const src = (p: string) => pathToFileURL(join(import.meta.dirname, '..', 'src', p)).href;
    const script = join(dir, 'exit.ts');
    writeFileSync(
      script,
      `
import { selectBackend } from '${src('backend/select.ts')}';
import { ParallelTrainer } from '${src('model/parallel/parallel-trainer.ts')}';
import { Transformer } from '${src('model/transformer.ts')}';
await selectBackend({ force: 'wasm' });
const config = ${JSON.stringify(SMALL)};
const tokens = new Int32Array(500).map((_, i) => i % 12);
const cfg = { steps: 2, batchSize: 4, warmupSteps: 1 };
const a = new ParallelTrainer(Transformer.create(config, 1), cfg, { workers: 2 });
await a.run({ tokens, chars: 500 });
await a.dispose();
const b = new ParallelTrainer(Transformer.create(config, 1), cfg, { workers: 2 });
await b.run({ tokens: tokens.map(() => 99), chars: 500 }).catch((e) => console.log('rejected:', e.message));
const c = new ParallelTrainer(Transformer.create(config, 1), cfg, { workers: 2 });
await c.run({ tokens, chars: 500 });
console.log('done');
`,
    );
    try {
      const out = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
      expect(out.error).toBeUndefined();
      expect(out.stdout).toContain('rejected: token id 99 is outside the vocabulary');
      expect(out.stdout).toContain('done');
      expect(out.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
