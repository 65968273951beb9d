// chat.*: the model runtime. Loads the community's active, verified model with the best tfjs
// backend (optionally with the personal adapter), or an open-weights model from the member's
// library through its own chat template; streams replies as `chat.token` events and keeps the
// conversation in the vault.
import { z } from 'zod';
import { method } from './define.ts';
import { libraryNameSchema } from './models.ts';
import { noInput, recordIdSchema, requestIdSchema } from './schemas.ts';
import type { ChatMessage } from './vault.ts';

/**
 * Which model chat runs: the community's active version (ModelRegistry), a model of the
 * member's library by name, or the library model whose identity is the community's base model
 * on chain. A library model recorded on chain as a base model is re-hashed before it loads and
 * refused (integrity) when its files are not the ones recorded.
 */
export const chatModelSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('community') }),
  z.strictObject({ kind: z.literal('library'), name: libraryNameSchema }),
  z.strictObject({ kind: z.literal('community-base') }),
]);
export type ChatModelChoice = z.infer<typeof chatModelSchema>;

export interface RuntimeStatus {
  /** Null until chat.load (or the first chat.send) loads a model. */
  model: {
    /** The community version's content hash, or a library model's identity. */
    hash: string;
    /** 'library' for an open-weights model of the member's library. */
    source: 'community' | 'library';
    /** The library name (null for the community version). */
    name: string | null;
    /** Its identity matched a base model recorded on chain when it loaded. */
    verifiedOnChain: boolean;
    /** Tokens of conversation the model sees (older turns are left out, and chat.context says so). */
    context: number | null;
    /** The system prompt library models are given (null: none). */
    system: string | null;
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
  /** Old messages left out of the prompt because they no longer fit the context (library models). */
  droppedMessages: number;
}

export const chatMethods = {
  'chat.status': method<RuntimeStatus>()(
    noInput,
    'The loaded model, its backend and adapter, and requests in progress.',
  ),
  'chat.load': method<RuntimeStatus>()(
    z
      .strictObject({
        model: chatModelSchema.optional(),
        /** For library models: the system prompt every conversation starts with. */
        system: z.string().max(20_000).optional(),
        /** For library models: tokens of context kept (default 4096, at most the model's). */
        context: z.number().int().min(64).max(131_072).optional(),
      })
      .optional(),
    'Loads the chosen model (default: the community’s active version, downloaded and verified if needed, with the personal adapter if enabled); later replies use it. A library model that claims an on-chain base-model identity is re-hashed and refused (integrity) if its files differ.',
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
  /** A library model's prompt: its size, and how many old messages no longer fit and were left out. */
  'chat.context': z.object({
    requestId: z.string(),
    chatId: z.string(),
    promptTokens: z.number(),
    droppedMessages: z.number(),
    contextTokens: z.number(),
  }),
  'chat.done': z.object({
    requestId: z.string(),
    chatId: z.string(),
    finish: z.enum(['length', 'stop', 'cancelled', 'error']),
    error: z.string().optional(),
  }),
};
