/**
 * Trains the genesis model — the first shared model every member starts from — on the
 * public corpus, holding out its last 10% for validation, and writes it into shared/genesis/
 * as a Hugging Face model folder (a Llama-family decoder with its own byte-level BPE
 * tokenizer.json and a ChatML chat_template). Its hash is what the contracts register at
 * deployment.
 *
 *   npm run train:genesis [-- --steps N --out DIR --workers N --init DIR]
 *
 * The shipped model is one run of these defaults (see its commons-checkpoint.json).
 */
import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectBackend } from '../src/backend/select.ts';
import { loadModel, saveHfModel } from '../src/model/checkpoint.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { readCorpus } from '../src/model/corpus.ts';
import { splitText } from '../src/model/dataset.ts';
import { evaluate, evaluationSplit } from '../src/model/evaluate.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import type { TrainConfig } from '../src/model/training-loop.ts';
import { ParallelTrainer } from '../src/model/parallel/parallel-trainer.ts';
import { Transformer } from '../src/model/transformer.ts';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '1100' },
    batch: { type: 'string', default: '16' },
    lr: { type: 'string', default: '3e-3' },
    out: { type: 'string', default: resolve(here, '../genesis') },
    vocab: { type: 'string', default: '512' },
    seed: { type: 'string', default: '1337' },
    // Continue from an earlier checkpoint's weights (same tokenizer and config).
    init: { type: 'string' },
    workers: { type: 'string' },
  },
});

const SEED = Number(values.seed);
const backend = await selectBackend();
const text = readCorpus();
const { train, val } = splitText(text, 0.1);

let t0 = performance.now();
const init = values.init ? await loadModel(values.init) : null;
const tokenizer = init ? init.tokenizer : ChatTokenizer.train(train, Number(values.vocab));
console.log(
  `tokenizer: ${tokenizer.vocabSize} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
const trainSplit = evaluationSplit(tokenizer, train);
const valSplit = evaluationSplit(tokenizer, val);
console.log(
  `train ${trainSplit.tokens.length} tokens, validation ${valSplit.tokens.length} tokens (${valSplit.chars} chars)`,
);

const config: ModelConfig = {
  vocabSize: tokenizer.vocabSize,
  blockSize: 128,
  nLayer: 4,
  nHead: 4,
  nKvHead: 2,
  nEmbd: 128,
  dropout: 0,
  bias: false,
  tiedHead: true,
};
const training: Partial<TrainConfig> = {
  steps: Number(values.steps),
  batchSize: Number(values.batch),
  gradAccum: 1,
  maxLr: Number(values.lr),
  minLr: Number(values.lr) / 10,
  warmupSteps: 30,
  weightDecay: 0.1,
  gradClip: 1,
  evalEvery: 0,
  seed: SEED,
};
const model = init ? init.model : Transformer.create(config, SEED);
console.log(`model: ${model.numParams().toLocaleString()} parameters on ${backend.backend}`);
const trainer = new ParallelTrainer(model, training, {
  ...(values.workers ? { workers: Number(values.workers) } : {}),
});
t0 = performance.now();
const result = await trainer.run(trainSplit, {
  onProgress: (p) => {
    if (p.step % 25 === 0 || p.step === p.totalSteps) {
      console.log(
        `step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(2)} ` +
          `${p.tokensPerSec.toFixed(0)} tok/s eta ${(p.etaSec / 60).toFixed(1)} min`,
      );
    }
  },
});
const seconds = (performance.now() - t0) / 1000;
const final = evaluate(model, valSplit);
console.log(
  `validation: loss ${final.loss.toFixed(4)} nats/token, ${final.bitsPerChar.toFixed(4)} bits/char`,
);

await rm(values.out, { recursive: true, force: true });
const { hash } = await saveHfModel(values.out, model, tokenizer, {
  name: 'genesis',
  parent: init ? init.hash : null,
  data: 'tinyshakespeare.txt, first 90% (last 10% held out for validation)',
  training: { ...training, steps: result.steps },
  seed: SEED,
  backend: backend.backend,
  trainSeconds: Math.round(seconds),
  tokensPerSec: Math.round(result.tokensPerSec),
  validation: final,
  createdAt: new Date().toISOString(),
});
console.log(`genesis checkpoint ${hash} → ${values.out}`);
await trainer.dispose();
model.dispose();
