import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { CheckpointError, decodeTensors, encodeTensors, sha256Hex } from '../checkpoint/index.ts';
import type { LoadedModel } from './checkpoint.ts';
import { loadModel, saveModel } from './checkpoint.ts';
import type { ChatTokenizer } from '../chat/tokenizer.ts';
import type { Trainer, TrainerSnapshot } from './trainer.ts';
import type { Transformer } from './transformer.ts';

/**
 * A training run on disk, to resume exactly where it stopped: the model as a verified
 * checkpoint (`model/`), the optimiser moments as an fp32 update frame (`optimizer.bin`),
 * and `trainer.json` with the step, the RNG state and the frame's sha256. Written into a
 * temporary sibling folder and renamed, so a kill mid-write leaves the previous state.
 */
const STATE_FILE = 'trainer.json';
const OPTIMIZER_FILE = 'optimizer.bin';

const stateSchema = z.strictObject({
  format: z.literal('commons-trainer-state'),
  formatVersion: z.literal(1),
  step: z.number().int().nonnegative(),
  optimizerStep: z.number().int().nonnegative(),
  rngState: z.array(z.number().int().nonnegative()).length(4),
  optimizerSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export async function saveTrainingState(
  dir: string,
  model: Transformer,
  tokenizer: ChatTokenizer,
  trainer: Trainer,
): Promise<void> {
  const target = resolve(dir);
  const temp = join(dirname(target), `.${basename(target)}.partial-${randomUUID()}`);
  const snap = trainer.snapshot();
  const frame = encodeTensors(snap.optimizer, 'fp32');
  await mkdir(temp, { recursive: true });
  try {
    await saveModel(join(temp, 'model'), model, tokenizer, { resumableAtStep: snap.step });
    await writeFile(join(temp, OPTIMIZER_FILE), frame);
    const state: z.infer<typeof stateSchema> = {
      format: 'commons-trainer-state',
      formatVersion: 1,
      step: snap.step,
      optimizerStep: snap.optimizerStep,
      rngState: snap.rngState,
      optimizerSha256: sha256Hex(frame),
    };
    await writeFile(join(temp, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    // Replace the previous state only once the new one is complete.
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/** The model and the trainer snapshot saved by `saveTrainingState`, verified. */
export async function loadTrainingState(
  dir: string,
): Promise<{ loaded: LoadedModel; snapshot: TrainerSnapshot }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8'));
  } catch (err) {
    throw new CheckpointError('MISSING_FILE', `${join(dir, STATE_FILE)} is missing or not JSON`, {
      cause: err,
    });
  }
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CheckpointError(
      'MALFORMED_MANIFEST',
      `${STATE_FILE}: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const state = parsed.data;
  const frame = new Uint8Array(await readFile(join(dir, OPTIMIZER_FILE)));
  const actual = sha256Hex(frame);
  if (actual !== state.optimizerSha256) {
    throw new CheckpointError(
      'HASH_MISMATCH',
      `${OPTIMIZER_FILE} hashes to ${actual}, trainer.json expects ${state.optimizerSha256}`,
    );
  }
  const loaded = await loadModel(join(dir, 'model'));
  return {
    loaded,
    snapshot: {
      step: state.step,
      optimizerStep: state.optimizerStep,
      rngState: state.rngState,
      optimizer: decodeTensors(frame),
    },
  };
}
