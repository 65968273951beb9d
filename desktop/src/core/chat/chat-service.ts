// chat.*: the model runtime. The active version's verified weights are loaded into tfjs on the
// backend shared's selection picks (or the one settings force), the personal adapter is layered
// on when it is switched on, and replies stream as chat.token events. Or, chosen with chat.load,
// an open-weights model of the member's library answers through its own chat template
// (library-chat.ts), after the check of its files against any identity it claims on chain
// (LibraryService.openForChat). Replies are generated one at a time (one model, one thread);
// each request can be cancelled, queued or running.
import {
  selectBackend,
  type BackendReport,
  generate,
  LoraAdapter,
  type ChatTokenizer,
  Transformer,
} from '@commons/shared/engine';
import type { z } from 'zod';
import { errorMessage } from '@commons/shared/errors';
import type {
  chatMethods,
  ChatModelChoice,
  generationOptionsSchema,
  Reply,
  RuntimeStatus,
} from '../../api/chat.ts';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { ChatMessage } from '../../api/vault.ts';
import type { CoreEvents } from '../events.ts';
import type { LibraryService } from '../models/library-service.ts';
import { plainHash } from '../models/model-files.ts';
import type { ModelsService } from '../models/models-service.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { Serial } from '../storage/serial.ts';
import type { TrainingService } from '../training/training-service.ts';
import type { VaultService } from '../vault/vault-service.ts';
import { LibraryChat } from './library-chat.ts';

type GenerationOptions = z.output<typeof generationOptionsSchema>;

interface Loaded {
  hash: string;
  model: Transformer;
  tokenizer: ChatTokenizer;
  backend: BackendReport;
  adapter: { hash: string; adapter: LoraAdapter } | null;
}

/** How much of the conversation the prompt carries: the model sees at most blockSize tokens anyway. */
const PROMPT_CHARS = 2000;

export class ChatService {
  readonly #vault: VaultService;
  readonly #models: ModelsService;
  readonly #training: TrainingService;
  readonly #settings: SettingsService;
  readonly #library: LibraryService;
  readonly #events: CoreEvents;
  readonly #serial = new Serial();
  readonly #requests = new Map<string, AbortController>();
  #loaded: Loaded | null = null;
  #adapterStale = false;
  /** What chat.load chose; replies use it. */
  #choice: ChatModelChoice = { kind: 'community' };
  #system: string | null = null;
  #context: number | undefined;
  /** The library model loaded, when the choice is one. */
  #libraryChat: LibraryChat | null = null;

  constructor(
    vault: VaultService,
    models: ModelsService,
    training: TrainingService,
    settings: SettingsService,
    library: LibraryService,
    events: CoreEvents,
  ) {
    this.#vault = vault;
    this.#models = models;
    this.#training = training;
    this.#settings = settings;
    this.#library = library;
    this.#events = events;
    training.onAdapterChanged(() => (this.#adapterStale = true));
    settings.onChange((next, prev) => {
      // Another backend takes effect at the next load.
      // A library model is loaded again (and checked again) at its next reply.
      if (next.backend !== prev.backend) {
        void this.#serial.run(async () => {
          this.unload();
          this.#unloadLibrary();
        });
      }
    });
  }

  status(): RuntimeStatus {
    const lib = this.#libraryChat;
    if (lib) {
      const { entry, model, record } = lib.opened;
      return {
        model: {
          hash: entry.identity,
          source: 'library',
          name: entry.name,
          verifiedOnChain: record !== null,
          context: lib.context,
          system: lib.system,
          parameters: model.estimate.parameters,
          backend: lib.backend.backend,
          adapter: null,
        },
        generating: [...this.#requests.keys()],
        newActive: null,
      };
    }
    const l = this.#loaded;
    return {
      model: l
        ? {
            hash: l.hash,
            source: 'community',
            name: null,
            verifiedOnChain: true,
            context: null,
            system: null,
            parameters: l.model.numParams(),
            backend: l.backend.backend,
            adapter: l.adapter
              ? { hash: l.adapter.hash, enabled: l.adapter.adapter.enabled }
              : null,
          }
        : null,
      generating: [...this.#requests.keys()],
      newActive:
        l && this.#models.activation && plainHash(this.#models.activation.hash) !== l.hash
          ? { ...this.#models.activation }
          : null,
    };
  }

  /** Loads (or keeps) the active model and brings the adapter up to date. Runs inside #serial. */
  async #ensureLoaded(): Promise<Loaded> {
    const active = plainHash(await this.#models.activeHash());
    if (this.#loaded?.hash !== active) {
      this.unload();
      this.#unloadLibrary();
      const preference = this.#settings.current.backend;
      const backend = await selectBackend(preference === 'auto' ? {} : { force: preference });
      const base = await this.#models.load(active);
      const model = Transformer.fromTensors(base.config, base.tensors);
      this.#loaded = { hash: active, model, tokenizer: base.tokenizer, backend, adapter: null };
      this.#models.inUse = active;
      this.#adapterStale = true;
    }
    const loaded = this.#loaded!;
    if (this.#adapterStale && this.#vault.unlocked) {
      loaded.adapter?.adapter.dispose();
      loaded.adapter = null;
      loaded.model.adapter = null;
      const saved = await this.#training.adapterFor(active);
      if (saved) {
        const adapter = LoraAdapter.fromTensors(loaded.model.config, saved.lora, saved.tensors);
        adapter.enabled = saved.enabled;
        loaded.adapter = { hash: saved.info.hash, adapter };
        loaded.model.adapter = adapter;
      }
      this.#adapterStale = false;
    }
    return loaded;
  }

  /**
   * Loads the chosen library model, checking its files against any identity it claims on chain
   * (every chat.load checks again; replies use what was checked). Runs inside #serial.
   */
  async #loadLibrary(
    choice: Exclude<ChatModelChoice, { kind: 'community' }>,
  ): Promise<LibraryChat> {
    this.unload();
    this.#unloadLibrary();
    const preference = this.#settings.current.backend;
    const backend = await selectBackend(preference === 'auto' ? {} : { force: preference });
    const opened = await this.#library.openForChat(choice, this.#context);
    this.#libraryChat = new LibraryChat(opened, backend, this.#system);
    this.#library.inUse = opened.entry.name;
    return this.#libraryChat;
  }

  #unloadLibrary(): void {
    this.#libraryChat?.dispose();
    this.#libraryChat = null;
    this.#library.inUse = null;
  }

  unload(): void {
    if (!this.#loaded) return;
    this.#loaded.adapter?.adapter.dispose();
    this.#loaded.model.dispose();
    this.#loaded = null;
    this.#models.inUse = null;
  }

  /** Generates the reply to `history` into the chat; the caller has stored the user message. */
  async #reply(
    requestId: string,
    chatId: string,
    history: ChatMessage[],
    options: GenerationOptions | undefined,
  ): Promise<Reply> {
    if (this.#requests.has(requestId))
      throw new ApiError('conflict', `request ${requestId} is already running`);
    const control = new AbortController();
    this.#requests.set(requestId, control);
    try {
      return await this.#serial.run(async () => {
        const choice = this.#choice;
        if (choice.kind !== 'community') {
          const chat = this.#libraryChat ?? (await this.#loadLibrary(choice));
          return await this.#libraryReply(chat, requestId, chatId, history, options, control);
        }
        const loaded = await this.#ensureLoaded();
        const prompt = renderPrompt(history);
        const o = { maxTokens: 200, temperature: 0.8, ...options };
        let text = '';
        let finish: Reply['finish'];
        try {
          const stream = generate(loaded.model, loaded.tokenizer, prompt, {
            maxTokens: o.maxTokens,
            temperature: o.temperature,
            ...(o.topK !== undefined ? { topK: o.topK } : {}),
            seed: o.seed ?? Math.floor(Math.random() * 2 ** 31),
            stop: ['\n\n'],
            signal: control.signal,
          });
          for (;;) {
            const next = await stream.next();
            if (next.done) {
              finish = next.value;
              break;
            }
            if (!next.value.text) continue;
            text += next.value.text;
            this.#events.emit('chat.token', {
              requestId,
              chatId,
              index: next.value.index,
              text: next.value.text,
            });
          }
        } catch (err) {
          const message = errorMessage(err);
          this.#events.emit('chat.done', { requestId, chatId, finish: 'error', error: message });
          throw new ApiError('internal', `generating a reply: ${message}`, { cause: err });
        }
        const message: ChatMessage = {
          role: 'assistant',
          text: text.trim(),
          at: new Date().toISOString(),
          model: { hash: loaded.hash, adapter: loaded.adapter?.adapter.enabled ?? false },
        };
        await this.#vault.writeChat(chatId, [...history, message]);
        this.#events.emit('chat.done', { requestId, chatId, finish });
        return { requestId, chatId, finish, message, droppedMessages: 0 };
      });
    } finally {
      this.#requests.delete(requestId);
    }
  }

  /** A reply from a library model, through its chat template. Runs inside #serial. */
  async #libraryReply(
    chat: LibraryChat,
    requestId: string,
    chatId: string,
    history: ChatMessage[],
    options: GenerationOptions | undefined,
    control: AbortController,
  ): Promise<Reply> {
    const o = { maxTokens: 200, temperature: 0.8, ...options };
    let result: Awaited<ReturnType<LibraryChat['reply']>>;
    try {
      result = await chat.reply(history, {
        maxTokens: o.maxTokens,
        temperature: o.temperature,
        topK: o.topK,
        seed: o.seed ?? Math.floor(Math.random() * 2 ** 31),
        signal: control.signal,
        onText: (text, index) =>
          this.#events.emit('chat.token', { requestId, chatId, index, text }),
        onContext: (promptTokens, droppedMessages) =>
          this.#events.emit('chat.context', {
            requestId,
            chatId,
            promptTokens,
            droppedMessages,
            contextTokens: chat.context,
          }),
      });
    } catch (err) {
      const message = errorMessage(err);
      this.#events.emit('chat.done', { requestId, chatId, finish: 'error', error: message });
      throw new ApiError('internal', `generating a reply: ${message}`, { cause: err });
    }
    const message: ChatMessage = {
      role: 'assistant',
      text: result.text.trim(),
      at: new Date().toISOString(),
      model: { hash: chat.opened.entry.identity, adapter: false },
    };
    await this.#vault.writeChat(chatId, [...history, message]);
    const { finish, droppedMessages } = result;
    this.#events.emit('chat.done', { requestId, chatId, finish });
    return { requestId, chatId, finish, message, droppedMessages };
  }

  handlers(): Handlers<typeof chatMethods> {
    return {
      'chat.status': async () => this.status(),
      'chat.load': (input) =>
        this.#serial.run(async () => {
          const choice = input?.model ?? { kind: 'community' };
          this.#choice = choice;
          this.#system = input?.system ?? null;
          this.#context = input?.context;
          if (choice.kind === 'community') {
            this.#unloadLibrary();
            await this.#ensureLoaded();
          } else {
            try {
              await this.#loadLibrary(choice);
            } catch (err) {
              // Refused or failed: chat goes back to the community model rather than keep a
              // choice that cannot load.
              this.#choice = { kind: 'community' };
              throw err;
            }
          }
          return this.status();
        }),
      'chat.send': async ({ requestId, chatId, text, options }) => {
        const chat = await this.#vault.readChat(chatId);
        const history: ChatMessage[] = [
          ...chat.history,
          { role: 'user', text, at: new Date().toISOString() },
        ];
        await this.#vault.writeChat(chatId, history);
        return this.#reply(requestId, chatId, history, options);
      },
      'chat.regenerate': async ({ requestId, chatId, options }) => {
        const { history } = await this.#vault.readChat(chatId);
        const lastUser = history.map((m) => m.role).lastIndexOf('user');
        if (lastUser < 0) throw new ApiError('conflict', 'the chat has no message to reply to');
        return this.#reply(requestId, chatId, history.slice(0, lastUser + 1), options);
      },
      'chat.cancel': async ({ requestId }) => {
        const control = this.#requests.get(requestId);
        control?.abort();
        return { cancelled: control !== undefined };
      },
    };
  }

  async close(): Promise<void> {
    for (const control of this.#requests.values()) control.abort();
    await this.#serial.run(async () => {
      this.unload();
      this.#unloadLibrary();
    });
  }
}

/**
 * The model continues text (it is not instruction-tuned), so the prompt is the recent
 * conversation as paragraphs, the reply to be the next paragraph (generation stops at a blank line).
 */
function renderPrompt(history: ChatMessage[]): string {
  let prompt = '';
  for (let i = history.length - 1; i >= 0 && prompt.length < PROMPT_CHARS; i--) {
    prompt = `${history[i]!.text.trim()}\n\n${prompt}`;
  }
  return prompt.slice(-PROMPT_CHARS);
}
