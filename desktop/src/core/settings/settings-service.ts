// settings.*: one JSON file in the data folder, validated on read and on write, written
// atomically. Other services read the current value through `current` and hear of changes.
import { join } from 'node:path';
import { z } from 'zod';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { settingsMethods } from '../../api/settings.ts';
import { settingsSchema, type Settings, type SettingsView } from '../../api/settings.ts';
import type { CoreEvents } from '../events.ts';
import { readIfExists, writeFileAtomic } from '@commons/shared/engine';

export const DEFAULT_SETTINGS: Settings = {
  coordinatorUrl: 'http://127.0.0.1:7070',
  rpcUrl: 'http://127.0.0.1:8545',
  addresses: null,
  backend: 'auto',
};

export class SettingsService {
  readonly #file: string;
  readonly #dataDir: string;
  readonly #events: CoreEvents;
  readonly #listeners = new Set<(next: Settings, prev: Settings) => void>();
  #current: Settings;

  private constructor(dataDir: string, events: CoreEvents, current: Settings) {
    this.#dataDir = dataDir;
    this.#file = join(dataDir, 'settings.json');
    this.#events = events;
    this.#current = current;
  }

  /**
   * Reads the settings file (defaults where there is none). A file that fails validation is
   * refused with its problems rather than silently replaced, so nothing the member set is lost.
   */
  static async open(
    dataDir: string,
    events: CoreEvents,
    initial: Partial<Settings> = {},
  ): Promise<SettingsService> {
    const file = join(dataDir, 'settings.json');
    const bytes = await readIfExists(file);
    let current: Settings;
    if (bytes === undefined) {
      current = settingsSchema.parse({ ...DEFAULT_SETTINGS, ...initial });
    } else {
      let json: unknown;
      try {
        json = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new ApiError('integrity', `${file} is not JSON; fix or remove it`);
      }
      const parsed = settingsSchema.safeParse({ ...DEFAULT_SETTINGS, ...(json as object) });
      if (!parsed.success) {
        throw new ApiError(
          'integrity',
          `${file} is invalid (${z.prettifyError(parsed.error)}); fix or remove it`,
        );
      }
      current = parsed.data;
    }
    return new SettingsService(dataDir, events, current);
  }

  get current(): Settings {
    return this.#current;
  }

  /** Called after every change with the new and the previous settings. */
  onChange(listener: (next: Settings, prev: Settings) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  view(): SettingsView {
    return { ...this.#current, dataDir: this.#dataDir };
  }

  async #save(next: Settings): Promise<SettingsView> {
    const valid = settingsSchema.parse(next);
    await writeFileAtomic(this.#file, JSON.stringify(valid, null, 2) + '\n');
    const prev = this.#current;
    this.#current = valid;
    for (const listener of this.#listeners) listener(valid, prev);
    const view = this.view();
    this.#events.emit('settings.changed', view);
    return view;
  }

  handlers(): Handlers<typeof settingsMethods> {
    return {
      'settings.get': async () => this.view(),
      'settings.update': async (changes) => {
        const defined = Object.fromEntries(
          Object.entries(changes).filter(([, value]) => value !== undefined),
        );
        return this.#save({ ...this.#current, ...defined });
      },
      'settings.reset': async () => this.#save(DEFAULT_SETTINGS),
    };
  }
}
