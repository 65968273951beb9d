// training.*: the personal trainer. Fine-tunes a LoRA adapter for the active model on chosen
// vault documents in a worker thread; the adapter stays on this machine and can be layered on
// the shared model in chat.
import { z } from 'zod';
import { method } from './define.ts';
import { noInput, recordIdSchema } from './schemas.ts';

export const TRAINING_STATES = [
  'idle',
  'preparing',
  'running',
  'paused',
  'saving',
  'done',
  'cancelled',
  'failed',
] as const;
export type TrainingState = (typeof TRAINING_STATES)[number];

export const trainingProgressSchema = z.object({
  runId: z.string(),
  step: z.number(),
  totalSteps: z.number(),
  loss: z.number(),
  tokensPerSec: z.number(),
  /** Seconds left at the current pace (not counting pauses). */
  etaSec: z.number(),
});
export type TrainingProgress = z.infer<typeof trainingProgressSchema>;

export interface AdapterInfo {
  /** Content hash of the adapter checkpoint. */
  hash: string;
  /**
   * The model version it was trained on. It is layered on that version, and carried to later
   * community versions while its shape still applies to them (see carriedFrom).
   */
  baseHash: string;
  /**
   * Set when the active version is not the one it was trained on: the adapter was carried over
   * from `baseHash` because its shape still fits (a community version from an adapter round
   * keeps its parent's shape). Null when it was trained on the active version.
   */
  carriedFrom: string | null;
  createdAt: string;
  steps: number;
  documents: number;
  rank: number;
  /** Bits per character on the held-out tenth of the documents, before and after training. */
  heldOut: { before: number; after: number } | null;
  /** Whether chat layers it on the model. */
  enabled: boolean;
}

export interface TrainingStatus {
  runId: string | null;
  state: TrainingState;
  progress: TrainingProgress | null;
  error: string | null;
  /** The saved adapter for the active model, if any. */
  adapter: AdapterInfo | null;
  /**
   * The member's newest adapter, when it could not follow them to the active version: which
   * version it was trained on and why it does not apply (it stays in the vault).
   */
  adapterSetAside: { baseHash: string; reason: string } | null;
}

export const trainingMethods = {
  'training.status': method<TrainingStatus>()(
    noInput,
    'The current or last run and the saved adapter.',
  ),
  'training.start': method<TrainingStatus>()(
    z.strictObject({
      documentIds: z.array(recordIdSchema).min(1).max(10_000),
      steps: z.number().int().min(1).max(100_000).default(100),
      rank: z.number().int().min(1).max(64).default(8),
      learningRate: z.number().positive().max(1).default(3e-3),
      batchSize: z.number().int().min(1).max(256).default(8),
      seed: z.number().int().nonnegative().default(1),
    }),
    'Starts fine-tuning an adapter for the active model on these documents (in a worker thread); conflict if a run is in progress.',
  ),
  'training.pause': method<TrainingStatus>()(noInput, 'Pauses between steps.'),
  'training.resume': method<TrainingStatus>()(noInput, 'Continues a paused run.'),
  'training.cancel': method<TrainingStatus>()(
    noInput,
    'Stops the run; the previous adapter (if any) is kept.',
  ),
  'training.useAdapter': method<TrainingStatus>()(
    z.strictObject({ enabled: z.boolean() }),
    'Switches the personal adapter on or off for chat.',
  ),
  'training.deleteAdapter': method<TrainingStatus>()(noInput, 'Deletes the saved adapter.'),
};

export const trainingEvents = {
  'training.progress': trainingProgressSchema,
  'training.state': z.object({
    runId: z.string(),
    state: z.enum(TRAINING_STATES),
    error: z.string().optional(),
  }),
};
