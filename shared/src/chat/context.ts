import type { ChatMessage } from './tokenizer.ts';

/**
 * Fitting a conversation into the model's context window. When it outgrows the window the
 * oldest turns go first, whole (a user message with the replies after it), the system
 * prompt and the newest user message always stay, and the caller is told how many turns
 * went, so the member can be told (Ollama truncates silently, a standing complaint).
 */
export interface FittedConversation {
  /** The prompt's token ids. */
  tokens: number[];
  /** The messages that were kept, in order. */
  messages: ChatMessage[];
  /** How many messages (not counting the system prompt) were dropped from the start. */
  droppedMessages: number;
}

export class ContextOverflowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContextOverflowError';
  }
}

/**
 * The longest suffix of `messages` (after any leading system messages, which are kept)
 * whose prompt, as `encode` writes it, leaves `reserve` positions free in `window`.
 */
export function fitConversation(
  messages: readonly ChatMessage[],
  encode: (messages: readonly ChatMessage[]) => number[],
  window: number,
  reserve: number,
): FittedConversation {
  const budget = window - reserve;
  let system = 0;
  while (system < messages.length && messages[system]!.role === 'system') system++;
  const head = messages.slice(0, system);
  const turns = messages.slice(system);
  // Candidate starts are user messages, so a kept history never opens with a reply.
  const starts = turns.flatMap((m, i) => (m.role === 'user' ? [i] : []));
  if (starts.length === 0) starts.push(0);
  for (const start of starts) {
    const kept = [...head, ...turns.slice(start)];
    const tokens = encode(kept);
    if (tokens.length <= budget) return { tokens, messages: kept, droppedMessages: start };
  }
  const last = [...head, ...turns.slice(starts.at(-1))];
  throw new ContextOverflowError(
    `the newest message and the system prompt take ${encode(last).length} tokens; the model's context is ${window} with ${reserve} kept for the reply`,
  );
}
