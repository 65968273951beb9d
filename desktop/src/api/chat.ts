// chat.*: the model runtime. Loads the active, verified model with the best tfjs backend,
// optionally layers the personal adapter, streams replies as `chat.token` events and keeps
// the conversation in the vault.
import { z } from 'zod';
import { method } from './define.ts';
import { noInput, recordIdSchema, requestIdSchema } from './schemas.ts';
import type { ChatMessage } from './vault.ts';

export interface RuntimeStatus {
  /** Null until chat.load (or the first chat.send) loads a model. */
  model: {
    hash: string;
    parameters: number;
    /** What shared's backend selection chose, e.g. `wasm` (see system.backend for why). */
    backend: string;
    /** The personal adapter, when one exists for this model. */
    adapter: { hash: string; enabled: boolean } | null;
  } | null;
  /** Requests being generated now. */
  generating: string[];
  /**
   * A version governance made active since the loaded one was loaded: being fetched and
   * verified (ready false), ready to switch to (chat.load, or the next reply does it), or
   * failed (error). Null when the loaded model is the active one, or none is loaded.
   */
  newActive: { hash: string; ready: boolean; error: string | null } | null;
}

export const generationOptionsSchema = z.strictObject({
  maxTokens: z.number().int().min(1).max(2048).default(200),
  temperature: z.number().min(0).max(5).default(0.8),
  topK: z.number().int().min(0).max(65_536).optional(),
  seed: z.number().int().nonnegative().optional(),
});

export interface Reply {
  requestId: string;
  chatId: string;
  /** Why generation ended: length (maxTokens), stop (end of the reply), cancelled (chat.cancel). */
  finish: 'length' | 'stop' | 'cancelled';
  /** The assistant message as stored in the vault (with what was generated before a cancel). */
  message: ChatMessage;
}

export const chatMethods = {
  'chat.status': method<RuntimeStatus>()(
    noInput,
    'The loaded model, its backend and adapter, and requests in progress.',
  ),
  'chat.load': method<RuntimeStatus>()(
    noInput,
    'Loads the active model (downloading and verifying it if needed) and the personal adapter if enabled.',
  ),
  'chat.send': method<Reply>()(
    z.strictObject({
      requestId: requestIdSchema,
      chatId: recordIdSchema,
      text: z.string().min(1).max(100_000),
      options: generationOptionsSchema.optional(),
    }),
    'Appends the user message to the chat and generates a reply, streamed as chat.token events for requestId; resolves when the reply ends.',
  ),
  'chat.regenerate': method<Reply>()(
    z.strictObject({
      requestId: requestIdSchema,
      chatId: recordIdSchema,
      options: generationOptionsSchema.optional(),
    }),
    'Replaces the last assistant reply of the chat with a new one (streamed the same way).',
  ),
  'chat.cancel': method<{ cancelled: boolean }>()(
    z.strictObject({ requestId: requestIdSchema }),
    'Stops a reply in progress; it resolves with finish "cancelled". False when no such request runs.',
  ),
};

export const chatEvents = {
  'chat.token': z.object({
    requestId: z.string(),
    chatId: z.string(),
    index: z.number(),
    text: z.string(),
  }),
  'chat.done': z.object({
    requestId: z.string(),
    chatId: z.string(),
    finish: z.enum(['length', 'stop', 'cancelled', 'error']),
    error: z.string().optional(),
  }),
};
