import { resolve } from 'node:path';
import { selectBackend } from '../backend/select.ts';
import { loadModel, saveAdapter, saveModel } from '../model/checkpoint.ts';
import { DEFAULT_LORA } from '../model/config.ts';
import { splitText } from '../model/dataset.ts';
import { evaluate, evaluationSplit } from '../model/evaluate.ts';
import { LoraAdapter } from '../model/lora.ts';
import { Trainer } from '../model/trainer.ts';
import { UsageError } from './errors.ts';
import { GENESIS_DIR, numberFlag, parse } from './options.ts';
import { progressBar } from './progress.ts';
import { readNotes } from './read-notes.ts';

/**
 * Fine-tune on local notes. The last 10% of the notes is held out to show whether the
 * model got better on them; with --lora only a small personal adapter trains and is saved.
 */
export async function train(args: string[]): Promise<number> {
  const { values } = parse(args, {
    data: { type: 'string', multiple: true },
    model: { type: 'string', default: GENESIS_DIR },
    out: { type: 'string' },
    steps: { type: 'string' },
    lora: { type: 'boolean', default: false },
    rank: { type: 'string' },
    lr: { type: 'string' },
    batch: { type: 'string' },
    seed: { type: 'string' },
  });
  if (!values.data || values.data.length === 0)
    throw new UsageError('commons train needs --data PATH');
  const steps = numberFlag('steps', values.steps, 100, (n) => Number.isInteger(n) && n > 0);
  const batchSize = numberFlag('batch', values.batch, 8, (n) => Number.isInteger(n) && n > 0);
  const seed = numberFlag('seed', values.seed, 1, Number.isInteger);
  const maxLr = numberFlag('lr', values.lr, values.lora ? 3e-3 : 5e-4, (n) => n > 0);
  const out = resolve(values.out ?? (values.lora ? 'commons-adapter' : 'commons-model'));

  const { files, text } = await readNotes(values.data);
  const backend = await selectBackend();
  const base = await loadModel(values.model);
  const { model, tokenizer } = base;
  const { train: trainText, val: valText } = splitText(text, 0.1);
  const trainSplit = evaluationSplit(tokenizer, trainText);
  const valSplit = evaluationSplit(tokenizer, valText);
  if (trainSplit.tokens.length <= model.config.blockSize || valSplit.tokens.length < 2) {
    throw new UsageError(
      `the notes are too short to train on (${trainSplit.tokens.length} tokens; need more than ${model.config.blockSize})`,
    );
  }
  const adapter = values.lora
    ? LoraAdapter.create(
        model.config,
        {
          ...DEFAULT_LORA,
          rank: numberFlag('rank', values.rank, DEFAULT_LORA.rank, (n) => n >= 1),
        },
        seed,
      )
    : null;
  model.adapter = adapter;
  const trainable = adapter ? adapter.numParams() : model.numParams();
  const before = evaluate(model, valSplit);
  console.error(
    `${files.length} file(s), ${trainSplit.tokens.length} training tokens; ${adapter ? 'LoRA adapter' : 'full model'}: ` +
      `${trainable.toLocaleString('en-US')} trainable parameters on ${backend.backend}`,
  );
  console.error(`held-out notes before: ${before.bitsPerChar.toFixed(4)} bits/char`);

  const trainer = new Trainer(
    model,
    {
      steps,
      batchSize,
      maxLr,
      minLr: maxLr / 10,
      warmupSteps: Math.min(10, Math.floor(steps / 10)),
      seed,
      weightDecay: adapter ? 0 : 0.1,
    },
    adapter,
  );
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  const bar = progressBar(process.stderr);
  const result = await trainer.run(trainSplit, {
    signal: abort.signal,
    onProgress: (p) => bar.update(p),
  });
  process.off('SIGINT', onSigint);
  bar.done();
  trainer.dispose();
  const after = evaluate(model, valSplit);
  console.error(
    `held-out notes after:  ${after.bitsPerChar.toFixed(4)} bits/char${result.cancelled ? ' (stopped early)' : ''}`,
  );

  const provenance = {
    parent: base.hash,
    data: { files: files.length, chars: text.length },
    training: { steps: result.steps, batchSize, maxLr, seed },
    heldOut: { before, after },
    createdAt: new Date().toISOString(),
  };
  const saved = adapter
    ? await saveAdapter(out, adapter, base, provenance)
    : await saveModel(out, model, tokenizer, provenance);
  console.log(`${saved.hash}  ${saved.dir}`);
  model.dispose();
  adapter?.dispose();
  return 0;
}
