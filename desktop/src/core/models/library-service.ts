// models.library / pull / import / delete / proposeBase: the member's open-weights models (the
// same library `commons model` uses), what each needs to run here, and which the chain records
// as base models. Before a library model that claims an on-chain identity is chatted with, or
// proposed, its files are hashed again: the identity in its entry is only what was true once.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { getAddress } from 'ethers';
import { hashToBytes32, type BaseModelRecord, type CommonsClient } from '@commons/chain';
import {
  availableMemory,
  baseModelDescription,
  DEFAULT_CONTEXT,
  DEFAULT_HUB_URL,
  estimateMemory,
  importModel,
  ModelLibrary,
  ModelTooLargeError,
  openChatModel,
  pullModel,
  readConfig,
  resolveModel,
  type LibraryEntry,
  type OpenedModel,
} from '@commons/shared/engine';
import { errorMessage } from '@commons/shared/errors';
import { ApiError, type Handlers } from '../../api/define.ts';
import type {
  BaseModelView,
  libraryMethods,
  LibraryMemory,
  LibraryModelView,
} from '../../api/models.ts';
import type { ChatModelChoice } from '../../api/chat.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import { chainError, libraryError } from '../errors.ts';
import type { CoreEvents } from '../events.ts';
import type { GovernanceService } from '../governance/governance-service.ts';
import { plainHash } from './model-files.ts';

export interface LibraryOptions {
  /** The library folder (default: COMMONS_MODELS, else ~/.commons/models). */
  root?: string;
  /** The hub pulls come from (default: HF_ENDPOINT, else https://huggingface.co). */
  hubUrl?: string;
}

/** A library model opened for chat, and whether its identity was checked against the chain. */
export interface OpenedLibraryModel {
  entry: LibraryEntry;
  model: OpenedModel;
  /** The on-chain base-model record its files were checked against, if it claims one. */
  record: BaseModelRecord | null;
}

export class LibraryService {
  readonly library: ModelLibrary;
  readonly #hubUrl: string;
  readonly #chain: ChainConnection;
  readonly #governance: GovernanceService;
  readonly #events: CoreEvents;
  /** The library model chat has loaded: it is not deleted from under it. */
  inUse: string | null = null;

  constructor(
    chain: ChainConnection,
    governance: GovernanceService,
    events: CoreEvents,
    options: LibraryOptions = {},
  ) {
    this.library = new ModelLibrary(options.root);
    this.#hubUrl = options.hubUrl ?? process.env.HF_ENDPOINT ?? DEFAULT_HUB_URL;
    this.#chain = chain;
    this.#governance = governance;
    this.#events = events;
  }

  async #entry(name: string): Promise<LibraryEntry> {
    try {
      return await this.library.get(name);
    } catch (err) {
      throw libraryError(err, `reading ${name} from the library`);
    }
  }

  /** The chain's records, or why it could not be asked (the library is useful offline too). */
  async #records(): Promise<
    { base: BaseModelRecord | null; recorded: Set<string>; error: null } | { error: string }
  > {
    try {
      const chain = await this.#chain.reader();
      const [base, all] = await Promise.all([chain.baseModel(), chain.listBaseModels()]);
      return { base, recorded: new Set(all.map((r) => plainHash(r.identity))), error: null };
    } catch (err) {
      return { error: errorMessage(err) };
    }
  }

  async #memory(entry: LibraryEntry): Promise<LibraryMemory> {
    const config = await readConfig(await resolveModel(entry.name, this.library));
    const context = Math.min(config.maxPositions, DEFAULT_CONTEXT);
    const available = await availableMemory();
    const f32 = estimateMemory(config, context, available);
    const estimate = f32.fits ? f32 : estimateMemory(config, context, available, 'int8');
    return {
      parameters: estimate.parameters,
      totalBytes: estimate.totalBytes,
      availableBytes: estimate.availableBytes,
      weights: estimate.weights,
      fits: estimate.fits,
      message: estimate.fits ? null : new ModelTooLargeError(entry.name, estimate).message,
    };
  }

  async #view(
    entry: LibraryEntry,
    chain: { base: BaseModelRecord | null; recorded: Set<string> } | null,
  ): Promise<LibraryModelView> {
    let memory: LibraryMemory | null = null;
    let problem: string | null = null;
    try {
      memory = await this.#memory(entry);
    } catch (err) {
      problem = errorMessage(err);
    }
    const source = entry.source;
    return {
      name: entry.name,
      format: entry.format,
      bytes: entry.files.reduce((n, f) => n + f.size, 0),
      files: entry.files.length,
      identity: entry.identity,
      licence: entry.licence,
      source: {
        kind: source.kind,
        from:
          source.kind === 'hub'
            ? source.repo
            : source.kind === 'import'
              ? source.path
              : source.from,
      },
      publicName: baseModelDescription(entry).name,
      addedAt: entry.addedAt,
      memory,
      problem,
      recorded: chain ? chain.recorded.has(entry.identity) : null,
      communityBase: chain?.base ? plainHash(chain.base.identity) === entry.identity : false,
    };
  }

  async #viewOf(entry: LibraryEntry): Promise<LibraryModelView> {
    const records = await this.#records();
    return this.#view(entry, records.error === null ? records : null);
  }

  /**
   * Opens a library model for chat. When it claims an identity the chain records as a base
   * model (or is asked for as the community's base model), its files are hashed again and it is
   * refused, as an integrity error, unless they are exactly the recorded ones.
   */
  async openForChat(
    choice: Exclude<ChatModelChoice, { kind: 'community' }>,
    context: number | undefined,
  ): Promise<OpenedLibraryModel> {
    let entry: LibraryEntry;
    let record: BaseModelRecord | null;
    if (choice.kind === 'community-base') {
      const chain = await this.#chain.reader();
      record = await chain.baseModel().catch((err: unknown) => {
        throw chainError(err, 'reading the community base model');
      });
      if (!record) {
        throw new ApiError('not-found', 'the community has not chosen a base model yet');
      }
      const identity = plainHash(record.identity);
      const found = (await this.library.list()).find((e) => e.identity === identity);
      if (!found) {
        throw new ApiError(
          'not-found',
          `the community base model ${record.name} (${record.identity}) is not in your library: pull or import it on the Models screen`,
        );
      }
      entry = found;
    } else {
      entry = await this.#entry(choice.name);
      record = await this.#claimedRecord(entry);
    }
    if (record) await this.#verifyAgainst(entry, record);
    try {
      const model = await openChatModel(await resolveModel(entry.name, this.library), {
        ...(context !== undefined ? { context } : {}),
      });
      return { entry, model, record };
    } catch (err) {
      throw libraryError(err, `loading ${entry.name}`);
    }
  }

  /** The base-model record a library entry's identity names on chain (null: none, or no chain). */
  async #claimedRecord(entry: LibraryEntry): Promise<BaseModelRecord | null> {
    let chain: CommonsClient;
    try {
      chain = await this.#chain.reader();
      if (!(await chain.isBaseModelRecorded(entry.identity))) return null;
    } catch {
      // No chain to ask: nothing on chain is claimed, and the member's own model still runs.
      return null;
    }
    return chain.baseModelRecord(entry.identity).catch((err: unknown) => {
      throw chainError(err, `reading the base model record of ${entry.name}`);
    });
  }

  async #verifyAgainst(entry: LibraryEntry, record: BaseModelRecord): Promise<void> {
    try {
      await this.library.verify(entry.name, plainHash(record.identity));
    } catch (err) {
      throw new ApiError(
        'integrity',
        `${entry.name} is not the base model recorded on chain as ${record.name} (${record.identity}): ${errorMessage(err)}. Its files were changed or damaged; remove it and pull or import it again.`,
        { cause: err },
      );
    }
  }

  handlers(): Handlers<typeof libraryMethods> {
    return {
      'models.library': async () => {
        let entries: LibraryEntry[];
        try {
          entries = await this.library.list();
        } catch (err) {
          throw libraryError(err, `listing ${this.library.root}`);
        }
        const records = await this.#records();
        const chain = records.error === null ? records : null;
        return {
          root: this.library.root,
          models: await Promise.all(entries.map((e) => this.#view(e, chain))),
          baseModel: chain?.base ? baseView(chain.base) : null,
          chainError: records.error,
        };
      },
      'models.pull': async ({ repo, file, revision, name }) => {
        try {
          const entry = await pullModel({
            repo,
            library: this.library,
            hubUrl: this.#hubUrl,
            ...(file ? { file } : {}),
            ...(revision ? { revision } : {}),
            ...(name ? { name } : {}),
            ...(process.env.HF_TOKEN ? { token: process.env.HF_TOKEN } : {}),
            onProgress: (p) =>
              this.#events.emit('models.pullProgress', {
                target: repo,
                file: p.file,
                bytes: p.bytes,
                totalBytes: p.totalBytes,
              }),
          });
          return await this.#viewOf(entry);
        } catch (err) {
          throw libraryError(err, `pulling ${repo}`);
        }
      },
      'models.import': async ({ path: source, name, licence, copy }) => {
        if (!path.isAbsolute(source)) {
          throw new ApiError('invalid-argument', `give the full path of the model, not ${source}`);
        }
        try {
          const size = await totalSize(source);
          const progress = (bytes: number) =>
            this.#events.emit('models.pullProgress', {
              target: source,
              file: path.basename(source),
              bytes,
              totalBytes: size,
            });
          progress(0);
          const entry = await importModel(this.library, source, {
            ...(name ? { name } : {}),
            ...(licence ? { licence } : {}),
            copy,
          });
          progress(size);
          return await this.#viewOf(entry);
        } catch (err) {
          throw libraryError(err, `importing ${source}`);
        }
      },
      'models.delete': async ({ name }) => {
        if (this.inUse === name) throw new ApiError('conflict', `${name} is loaded for chat`);
        try {
          const entry = await this.library.remove(name);
          const kept = entry.location !== this.library.folder(entry.name);
          return { name, keptFilesAt: kept ? entry.location : null };
        } catch (err) {
          throw libraryError(err, `removing ${name}`);
        }
      },
      'models.proposeBase': async ({ name, licence, description }) => {
        let entry: LibraryEntry;
        try {
          // What is proposed is what this machine holds.
          entry = await this.library.verify(name);
        } catch (err) {
          throw libraryError(err, `checking the files of ${name}`);
        }
        const stated = licence ?? entry.licence;
        if (!stated) {
          throw new ApiError(
            'invalid-argument',
            `the licence of ${name} is not known: state it (e.g. apache-2.0, llama3.2)`,
          );
        }
        if (stated !== entry.licence) entry = await this.library.setLicence(name, stated);
        const model = { ...baseModelDescription(entry), licence: stated };
        const id = await this.#governance.proposeBaseModel(model, description);
        return { id: id.toString(), identity: hashToBytes32(entry.identity) };
      },
    };
  }
}

function baseView(record: BaseModelRecord): BaseModelView {
  return { ...record, registrant: getAddress(record.registrant) };
}

/** Bytes under a file or folder (one level: a model folder is flat, sharded or not). */
async function totalSize(source: string): Promise<number> {
  const info = await stat(source);
  if (info.isFile()) return info.size;
  let bytes = 0;
  for (const name of await readdir(source)) {
    const child = await stat(path.join(source, name));
    if (child.isFile()) bytes += child.size;
  }
  return bytes;
}
