/**
 * LoRA training speed at a real shape, in a fresh process: the trainable Transformer built
 * from a Hugging Face folder's weights (float32), a rank-r adapter on q_proj and v_proj
 * (α = 2r), AdamW on the adapter alone, batch 1 of `seq` tokens. One warm-up step (wasm
 * compiles each shape once), then `steps` timed. Prints one JSON line. Run by real-models.ts:
 *   node bench/real-model-lora-child.ts <folder> <seq> <steps> <rank>
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { selectBackend } from '../src/backend/select.ts';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import { openHfFolder } from '../src/formats/hf-folder.ts';
import { modelConfigFromHf, parameterShapes } from '../src/model/config.ts';
import { LoraAdapter } from '../src/model/lora.ts';
import { Trainer } from '../src/model/trainer.ts';
import { Transformer } from '../src/model/transformer.ts';

const [folder, seqArg, stepsArg, rankArg] = process.argv.slice(2);
const seq = Number(seqArg);
const steps = Number(stepsArg);
const rank = Number(rankArg);
const { backend } = await selectBackend();
// The context is the training window: rotary positions need no table sized to the model's 8k+.
const config = {
  ...modelConfigFromHf(JSON.parse(await readFile(path.join(folder!, 'config.json'), 'utf8'))),
  blockSize: seq,
};
const files = await openHfFolder(folder!);
const tensors: NamedTensors = new Map();
for (const name of parameterShapes(config).keys()) tensors.set(name, await files.read(name));
await files.close();
const model = Transformer.fromTensors(config, tensors);
tensors.clear();
const adapter = LoraAdapter.create(
  config,
  { rank, alpha: 2 * rank, targets: ['q_proj', 'v_proj'] },
  1,
);
model.adapter = adapter;
const tokens = Int32Array.from({ length: 4 * seq + 1 }, (_, i) => (i * 7919) % config.vocabSize);
const train = (n: number) =>
  new Trainer(
    model,
    { steps: n, batchSize: 1, gradAccum: 1, warmupSteps: 0, weightDecay: 0, evalEvery: 0, seed: 1 },
    adapter,
  );
const warm = train(1);
await warm.run({ tokens, chars: tokens.length });
warm.dispose();
const timed = train(steps);
const t0 = performance.now();
await timed.run({ tokens, chars: tokens.length });
const seconds = (performance.now() - t0) / 1000;
timed.dispose();
console.log(
  JSON.stringify({
    backend,
    loraTrainTokensPerSec: (steps * seq) / seconds,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  }),
);
model.dispose();
adapter.dispose();
