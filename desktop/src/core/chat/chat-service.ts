// chat.*: the model runtime. The active version's verified weights are loaded into tfjs on the
// backend shared's selection picks (or the one settings force), the personal adapter is layered
// on when it is switched on, and replies stream as chat.token events. Replies are generated one
// at a time (one model, one thread); each request can be cancelled, queued or running.
import {
  selectBackend,
  type BackendReport,
  generate,
  LoraAdapter,
  type BpeTokenizer,
  GPT,
} from '@commons/shared/engine';
import type { z } from 'zod';
import { errorMessage } from '@commons/shared/errors';
import type { chatMethods, generationOptionsSchema, Reply, RuntimeStatus } from '../../api/chat.ts';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { ChatMessage } from '../../api/vault.ts';
import type { CoreEvents } from '../events.ts';
import { plainHash } from '../models/model-files.ts';
import type { ModelsService } from '../models/models-service.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { Serial } from '../storage/serial.ts';
import type { TrainingService } from '../training/training-service.ts';
import type { VaultService } from '../vault/vault-service.ts';

type GenerationOptions = z.output<typeof generationOptionsSchema>;

interface Loaded {
  hash: string;
  model: GPT;
  tokenizer: BpeTokenizer;
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
  readonly #events: CoreEvents;
  readonly #serial = new Serial();
  readonly #requests = new Map<string, AbortController>();
  #loaded: Loaded | null = null;
  #adapterStale = false;

  constructor(
    vault: VaultService,
    models: ModelsService,
    training: TrainingService,
    settings: SettingsService,
    events: CoreEvents,
  ) {
    this.#vault = vault;
    this.#models = models;
    this.#training = training;
    this.#settings = settings;
    this.#events = events;
    training.onAdapterChanged(() => (this.#adapterStale = true));
    settings.onChange((next, prev) => {
      // Another backend takes effect at the next load.
      if (next.backend !== prev.backend) void this.#serial.run(async () => this.unload());
    });
  }

  status(): RuntimeStatus {
    const l = this.#loaded;
    return {
      model: l
        ? {
            hash: l.hash,
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
      const preference = this.#settings.current.backend;
      const backend = await selectBackend(preference === 'auto' ? {} : { force: preference });
      const base = await this.#models.load(active);
      const model = GPT.fromTensors(base.config, base.tensors);
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
        return { requestId, chatId, finish, message };
      });
    } finally {
      this.#requests.delete(requestId);
    }
  }

  handlers(): Handlers<typeof chatMethods> {
    return {
      'chat.status': async () => this.status(),
      'chat.load': () =>
        this.#serial.run(async () => {
          await this.#ensureLoaded();
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
    await this.#serial.run(async () => this.unload());
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
