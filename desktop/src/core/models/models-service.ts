// models.*: the registry's versions and verified local copies. The hash a copy must have always
// comes from the chain (ModelRegistry), never from the store that serves the files.
import { getAddress } from 'ethers';
import type { ModelVersion } from '@commons/chain';
import {
  fetchAdapterVersion,
  fetchBaseModel,
  verifyBaseModel,
  type BaseModel,
} from '@commons/shared/contributor';
import { errorMessage } from '@commons/shared/errors';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { modelsMethods, ModelVersionView } from '../../api/models.ts';
import { epsilonOf } from '../../api/schemas.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import { chainError, checkpointError } from '../errors.ts';
import type { CoreEvents } from '../events.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { ModelFiles, plainHash } from './model-files.ts';

export class ModelsService {
  readonly files: ModelFiles;
  readonly #chain: ChainConnection;
  readonly #settings: SettingsService;
  readonly #events: CoreEvents;
  /** Hashes whose copy verified in this session (a copy is re-verified on every load anyway). */
  readonly #verified = new Set<string>();
  /** One download per hash at a time; a second caller waits for the first. */
  readonly #downloads = new Map<string, Promise<BaseModel>>();
  /** What chat has loaded: its copy is not removed from under it. */
  inUse: string | null = null;
  /** The active version last seen on chain by the watcher (null until its first read). */
  #lastActive: string | null = null;
  #watch: ReturnType<typeof setInterval> | null = null;
  /** The latest activation the watcher saw, and whether its copy is verified. */
  activation: { hash: string; ready: boolean; error: string | null } | null = null;

  constructor(
    dataDir: string,
    chain: ChainConnection,
    settings: SettingsService,
    events: CoreEvents,
  ) {
    this.files = new ModelFiles(dataDir);
    this.#chain = chain;
    this.#settings = settings;
    this.#events = events;
    // Another chain or deployment: its active version is a new baseline, not an activation.
    settings.onChange((next, prev) => {
      if (
        next.rpcUrl !== prev.rpcUrl ||
        JSON.stringify(next.addresses) !== JSON.stringify(prev.addresses)
      ) {
        this.#lastActive = null;
      }
    });
  }

  async #version(hash: string): Promise<ModelVersion> {
    const chain = await this.#chain.reader();
    try {
      if (!(await chain.isRegistered(hash))) {
        throw new ApiError('not-found', `model ${hash} is not registered in ModelRegistry`);
      }
      return await chain.modelVersion(hash);
    } catch (err) {
      throw chainError(err, `reading model ${hash}`);
    }
  }

  async activeHash(): Promise<string> {
    const chain = await this.#chain.reader();
    try {
      return (await chain.activeModel()).contentHash;
    } catch (err) {
      throw chainError(err, 'reading the active model');
    }
  }

  async #view(v: ModelVersion, active: string, all: ModelVersion[]): Promise<ModelVersionView> {
    const bytes = await this.files.size(v.contentHash);
    return {
      ...v,
      epsilon: epsilonOf(v.epsilon),
      registrant: getAddress(v.registrant),
      children: all.filter((c) => c.parentHash === v.contentHash).map((c) => c.contentHash),
      active: v.contentHash === active,
      local: {
        downloaded: bytes > 0,
        verified: bytes > 0 && this.#verified.has(plainHash(v.contentHash)),
        bytes,
      },
    };
  }

  async #viewOf(hash: string): Promise<ModelVersionView> {
    const chain = await this.#chain.reader();
    const [all, active] = await Promise.all([
      chain.listModels().catch((err: unknown) => Promise.reject(chainError(err, 'listing models'))),
      this.activeHash(),
    ]);
    const v = all.find((m) => plainHash(m.contentHash) === plainHash(hash));
    if (!v) throw new ApiError('not-found', `model ${hash} is not registered in ModelRegistry`);
    return this.#view(v, active, all);
  }

  /**
   * The verified model `hash` (registered on chain), from the local copy or downloaded from the
   * coordinator. Integrity error if the bytes do not hash to the registered value; a local copy
   * that fails is removed so the next attempt downloads a good one.
   */
  async load(hash: string): Promise<BaseModel> {
    const version = await this.#version(hash);
    const key = plainHash(version.contentHash);
    const running = this.#downloads.get(key);
    if (running) return running;
    const task = this.#load(key, version).finally(() => this.#downloads.delete(key));
    this.#downloads.set(key, task);
    return task;
  }

  async #load(hash: string, version: ModelVersion): Promise<BaseModel> {
    const local = await this.files.get(hash);
    if (local) {
      try {
        const model = verifyBaseModel(local, hash);
        this.#verified.add(hash);
        return model;
      } catch (err) {
        this.#verified.delete(hash);
        await this.files.remove(hash);
        throw checkpointError(err, `the local copy of model ${hash} (removed)`);
      }
    }
    let last = 0;
    const options = {
      cache: this.files,
      onProgress: (done: number, total: number) => {
        // Every whole percent, not every network chunk.
        const percent = Math.floor((100 * done) / Math.max(total, 1));
        if (done === 0 || done === total || percent > last) {
          last = percent;
          this.#events.emit('models.progress', { hash, done, total });
        }
      },
    };
    const coordinator = this.#settings.current.coordinatorUrl;
    try {
      // A version from an adapter round whose parent is here: fetch only the adapter and fold it
      // in (the result must hash to the registered version, or nothing is kept).
      const parent = await this.#localParent(version);
      const model =
        parent && version.adapterHash
          ? await fetchAdapterVersion(
              coordinator,
              { hash, adapterHash: plainHash(version.adapterHash), parent },
              options,
            )
          : await fetchBaseModel(coordinator, { hash, path: `/models/${hash}/` }, options);
      this.#verified.add(hash);
      return model;
    } catch (err) {
      throw checkpointError(err, `downloading model ${hash}`);
    }
  }

  /** The verified local copy of the version's parent, when it is an adapter version and one is here. */
  async #localParent(version: ModelVersion): Promise<BaseModel | null> {
    if (!version.adapterHash || !version.parentHash) return null;
    const parentHash = plainHash(version.parentHash);
    const bytes = await this.files.get(parentHash);
    if (!bytes) return null;
    try {
      return verifyBaseModel(bytes, parentHash);
    } catch {
      // A damaged parent copy is no shortcut: download the version whole.
      return null;
    }
  }

  /**
   * Reads ModelRegistry.activeModel() every `intervalMs` and, when governance has changed it,
   * announces the new version, fetches and verifies it, and announces it ready. Polling rather
   * than a log subscription: it survives RPC restarts and settings changes with no re-wiring,
   * and a change is at most one interval late (executions are minutes apart at best).
   */
  watchActive(intervalMs: number): void {
    this.stopWatching();
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        await this.checkActive();
      } finally {
        busy = false;
      }
    };
    void tick();
    this.#watch = setInterval(() => void tick(), intervalMs);
    this.#watch.unref?.();
  }

  stopWatching(): void {
    if (this.#watch) clearInterval(this.#watch);
    this.#watch = null;
  }

  /** One look at the chain: emits models.activated when the active version changed. */
  async checkActive(): Promise<void> {
    let active: string;
    try {
      active = plainHash(await this.activeHash());
    } catch {
      return; // Chain unreachable or not configured: the settings screen says so; try later.
    }
    const before = this.#lastActive;
    this.#lastActive = active;
    if (before === null || before === active) return;
    const announce = (ready: boolean, error: string | null) => {
      this.activation = { hash: active, ready, error };
      this.#events.emit('models.activated', this.activation);
    };
    announce(false, null);
    try {
      await this.load(active);
      if (this.#lastActive === active) announce(true, null);
    } catch (err) {
      if (this.#lastActive === active) announce(false, errorMessage(err));
    }
  }

  handlers(): Handlers<typeof modelsMethods> {
    return {
      'models.list': async () => {
        const chain = await this.#chain.reader();
        let all: ModelVersion[];
        try {
          all = await chain.listModels();
        } catch (err) {
          throw chainError(err, 'listing models');
        }
        const active = await this.activeHash();
        return {
          active,
          versions: await Promise.all(all.map((v) => this.#view(v, active, all))),
        };
      },
      'models.lineage': async ({ hash }) => {
        await this.#version(hash);
        const chain = await this.#chain.reader();
        return chain.lineage(hash);
      },
      'models.download': async ({ hash }) => {
        await this.load(hash);
        return this.#viewOf(hash);
      },
      'models.verify': async ({ hash }) => {
        if ((await this.files.size(hash)) === 0) {
          throw new ApiError('not-found', `there is no local copy of model ${hash}`);
        }
        await this.load(hash);
        return this.#viewOf(hash);
      },
      'models.remove': async ({ hash }) => {
        if (this.inUse === plainHash(hash)) {
          throw new ApiError('conflict', `model ${hash} is loaded for chat`);
        }
        await this.files.remove(hash);
        this.#verified.delete(plainHash(hash));
        return this.#viewOf(hash);
      },
    };
  }
}
