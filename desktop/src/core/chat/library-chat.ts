// A conversation with an open-weights model of the member's library: the vault's chat history
// goes through the model's own chat template (ChatSession), after the system prompt; the reply
// streams, and when the conversation outgrows the context the oldest turns are left out and the
// caller is told how many.
import {
  ChatSession,
  type BackendReport,
  type ChatMessage as TemplateMessage,
} from '@commons/shared/engine';
import type { Reply } from '../../api/chat.ts';
import type { ChatMessage } from '../../api/vault.ts';
import type { OpenedLibraryModel } from '../models/library-service.ts';

export interface LibraryReplyOptions {
  maxTokens: number;
  temperature: number;
  topK: number | undefined;
  seed: number;
  signal: AbortSignal;
  onText: (text: string, index: number) => void;
  onContext: (promptTokens: number, droppedMessages: number) => void;
}

export class LibraryChat {
  readonly opened: OpenedLibraryModel;
  readonly backend: BackendReport;
  readonly system: string | null;
  readonly #session: ChatSession;

  constructor(opened: OpenedLibraryModel, backend: BackendReport, system: string | null) {
    this.opened = opened;
    this.backend = backend;
    this.system = system;
    const { decoder, tokenizer, eosTokenIds } = opened.model;
    this.#session = new ChatSession(decoder, tokenizer, eosTokenIds);
  }

  get context(): number {
    return this.opened.model.config.maxPositions;
  }

  async reply(
    history: readonly ChatMessage[],
    o: LibraryReplyOptions,
  ): Promise<{ text: string; finish: Reply['finish']; droppedMessages: number }> {
    const messages: TemplateMessage[] = [
      ...(this.system ? [{ role: 'system' as const, content: this.system }] : []),
      ...history.map((m) => ({ role: m.role, content: m.text })),
    ];
    let text = '';
    let index = 0;
    let droppedMessages = 0;
    let finish: Reply['finish'] = 'length';
    for await (const event of this.#session.reply(messages, {
      // A gentle nucleus: what chat front-ends default to for instruction-tuned models.
      sampling: { temperature: o.temperature, topK: o.topK ?? 40, topP: 0.9, repetitionPenalty: 1 },
      maxTokens: o.maxTokens,
      seed: o.seed,
      signal: o.signal,
    })) {
      if (event.type === 'context') {
        droppedMessages = event.droppedMessages;
        o.onContext(event.promptTokens, event.droppedMessages);
      } else if (event.type === 'text') {
        text += event.text;
        o.onText(event.text, index++);
      } else {
        finish =
          event.reason === 'eos' ? 'stop' : event.reason === 'aborted' ? 'cancelled' : 'length';
      }
    }
    return { text, finish, droppedMessages };
  }

  dispose(): void {
    this.#session.dispose();
    this.opened.model.decoder.dispose();
  }
}
