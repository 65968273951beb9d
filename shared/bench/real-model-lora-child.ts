/**
 * LoRA training speed at a real shape, in a fresh process: the trainable Transformer built
 * from a Hugging Face folder's weights (float32), a rank-r adapter on q_proj and v_proj
 * (α = 2r), AdamW on the adapter alone, batch 1 of `seq` tokens. One warm-up step (wasm
 * compiles each shape once), then `steps` timed. Prints one JSON line. Run by real-models.ts:
 *   node bench/real-model-lora-child.ts <folder> <seq> <steps> <rank>
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { selectBackend } from '../src/backend/select.ts';
import type { NamedTensors } from '../src/checkpoint/tensors.ts';
import { openHfFolder } from '../src/formats/hf-folder.ts';
import { modelConfigFromHf, parameterShapes } from '../src/model/config.ts';
import { loraTrainSpeed } from './generation-speed.ts';

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
const loraTrainTokensPerSec = await loraTrainSpeed(config, tensors, steps, rank);
console.log(
  JSON.stringify({
    backend,
    loraTrainTokensPerSec,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  }),
);
