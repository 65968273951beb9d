// training.*: the personal trainer. Documents are read from the vault and tokenised here; the
// training itself runs in a worker thread (worker.ts); the finished adapter goes back into the
// vault (encrypted, see adapter-record.ts). One run at a time.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import {
  splitText,
  evaluationSplit,
  DEFAULT_LORA,
  LoraAdapter,
  parseManifest,
  readIfExists,
  shapeProblem,
  writeFileAtomic,
} from '@commons/shared/engine';
import { ApiError, type Handlers } from '../../api/define.ts';
import type {
  TrainingProgress,
  TrainingState,
  TrainingStatus,
  trainingMethods,
} from '../../api/training.ts';
import type { CoreEvents } from '../events.ts';
import type { ModelsService } from '../models/models-service.ts';
import { plainHash } from '../models/model-files.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { errorMessage } from '@commons/shared/errors';
import type { VaultService } from '../vault/vault-service.ts';
import {
  adapterRecordId,
  decodeAdapterRecord,
  encodeAdapterRecord,
  type AdapterCheckpoint,
} from './adapter-record.ts';
import type { FromWorker, StartMessage, ToWorker } from './protocol.ts';

const ACTIVE_STATES: ReadonlySet<TrainingState> = new Set([
  'preparing',
  'running',
  'paused',
  'saving',
]);

/**
 * Which adapters chat layers on (not secret: which model versions have one switched on), and
 * which version the newest personal adapter was trained on, so that it can follow the member
 * to the next community version.
 */
const prefsSchema = z.object({
  disabled: z.array(z.string()),
  latest: z.string().optional(),
});
type Prefs = z.infer<typeof prefsSchema>;

/** The saved personal adapter chat layers on the active version, and where it came from. */
export type PersonalAdapter = AdapterCheckpoint & {
  enabled: boolean;
  /** The earlier version it was trained on, when it was carried to this one; else null. */
  carriedFrom: string | null;
};

interface Run {
  runId: string;
  worker: Worker;
  baseHash: string;
  state: TrainingState;
  progress: TrainingProgress | null;
  error: string | null;
}

export class TrainingService {
  readonly #prefsFile: string;
  readonly #vault: VaultService;
  readonly #models: ModelsService;
  readonly #settings: SettingsService;
  readonly #events: CoreEvents;
  readonly #adapterListeners = new Set<() => void>();
  #run: Run | null = null;
  #last: Omit<Run, 'worker'> | null = null;

  constructor(
    dataDir: string,
    vault: VaultService,
    models: ModelsService,
    settings: SettingsService,
    events: CoreEvents,
  ) {
    this.#prefsFile = join(dataDir, 'training', 'adapters.json');
    this.#vault = vault;
    this.#models = models;
    this.#settings = settings;
    this.#events = events;
  }

  /** Called when the saved adapter or its on/off switch changes (chat reloads it). */
  onAdapterChanged(listener: () => void): () => void {
    this.#adapterListeners.add(listener);
    return () => this.#adapterListeners.delete(listener);
  }

  async #prefs(): Promise<Prefs> {
    const bytes = await readIfExists(this.#prefsFile);
    return bytes ? prefsSchema.parse(JSON.parse(bytes.toString('utf8'))) : { disabled: [] };
  }

  async #writePrefs(prefs: Prefs): Promise<void> {
    await writeFileAtomic(this.#prefsFile, JSON.stringify(prefs) + '\n');
  }

  /**
   * The personal adapter chat layers on model version `versionHash`, or null; needs the vault
   * unlocked. One trained on this very version comes first. Otherwise the newest one follows
   * the member from the version it was trained on, when its shape still applies to this one
   * (a community version that folded in a round's adapter keeps its parent's shape); when it
   * does not, it is set aside, kept in the vault, and `setAside` says why.
   */
  async adapterFor(versionHash: string): Promise<PersonalAdapter | null> {
    return (await this.#personalAdapter(versionHash)).adapter;
  }

  async #personalAdapter(versionHash: string): Promise<{
    adapter: PersonalAdapter | null;
    setAside: { baseHash: string; reason: string } | null;
  }> {
    const active = plainHash(versionHash);
    const prefs = await this.#prefs();
    const enabled = !prefs.disabled.includes(active);
    const own = adapterRecordId(active);
    if (await this.#vault.hasRecord(own)) {
      const checkpoint = decodeAdapterRecord(await this.#vault.getRecord('adapter', own));
      return { adapter: { ...checkpoint, enabled, carriedFrom: null }, setAside: null };
    }
    const from = prefs.latest;
    if (!from || from === active || !(await this.#vault.hasRecord(adapterRecordId(from)))) {
      return { adapter: null, setAside: null };
    }
    const checkpoint = decodeAdapterRecord(
      await this.#vault.getRecord('adapter', adapterRecordId(from)),
    );
    const reason = await this.#shapeProblem(active, checkpoint);
    if (reason === undefined) return { adapter: null, setAside: null };
    if (reason !== null) return { adapter: null, setAside: { baseHash: from, reason } };
    return { adapter: { ...checkpoint, enabled, carriedFrom: from }, setAside: null };
  }

  /**
   * Why the adapter cannot be layered on version `hash` (null: it can), read from the local
   * copy's manifest; undefined when there is no local copy to tell.
   */
  async #shapeProblem(
    hash: string,
    checkpoint: AdapterCheckpoint,
  ): Promise<string | null | undefined> {
    const bytes = await this.#models.files.get(hash);
    if (!bytes) return undefined;
    const { config } = parseManifest(bytes.manifest);
    const problem = shapeProblem(LoraAdapter.shapes(config, checkpoint.lora), checkpoint.tensors);
    if (problem === null) return null;
    return (
      `your personal adapter was trained on version ${checkpoint.info.baseHash.slice(0, 12)}…, ` +
      `whose shape differs from the active version ${hash.slice(0, 12)}… (${problem}): ` +
      `it is kept in your vault; train a new one on this version`
    );
  }

  async #adapterState(): Promise<Pick<TrainingStatus, 'adapter' | 'adapterSetAside'>> {
    const none = { adapter: null, adapterSetAside: null };
    if (!this.#vault.unlocked) return none;
    let active: string;
    try {
      active = await this.#models.activeHash();
    } catch {
      return none;
    }
    const { adapter, setAside } = await this.#personalAdapter(active);
    return {
      adapter: adapter
        ? { ...adapter.info, enabled: adapter.enabled, carriedFrom: adapter.carriedFrom }
        : null,
      adapterSetAside: setAside,
    };
  }

  async status(): Promise<TrainingStatus> {
    const run = this.#run ?? this.#last;
    return {
      runId: run?.runId ?? null,
      state: run?.state ?? 'idle',
      progress: run?.progress ?? null,
      error: run?.error ?? null,
      ...(await this.#adapterState()),
    };
  }

  #setState(run: Run, state: TrainingState, error?: string): void {
    run.state = state;
    if (error !== undefined) run.error = error;
    this.#events.emit('training.state', { runId: run.runId, state, ...(error ? { error } : {}) });
    if (!ACTIVE_STATES.has(state)) {
      const { worker, ...rest } = run;
      this.#last = rest;
      if (this.#run === run) this.#run = null;
      void worker.terminate();
    }
  }

  #post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.#run?.worker.postMessage(message, transfer);
  }

  #requireRun(): Run {
    if (!this.#run) throw new ApiError('conflict', 'no training run is in progress');
    return this.#run;
  }

  async #start(input: {
    documentIds: string[];
    steps: number;
    rank: number;
    learningRate: number;
    batchSize: number;
    seed: number;
  }): Promise<TrainingStatus> {
    if (this.#run) throw new ApiError('conflict', 'a training run is already in progress');
    const texts = await Promise.all(input.documentIds.map((id) => this.#vault.documentText(id)));
    const baseHash = plainHash(await this.#models.activeHash());
    const base = await this.#models.load(baseHash);
    const { train, val } = splitText(texts.join('\n\n'), 0.1);
    const trainSplit = evaluationSplit(base.tokenizer, train);
    const valSplit = evaluationSplit(base.tokenizer, val);
    const T = base.config.blockSize;
    if (trainSplit.tokens.length <= T || valSplit.tokens.length < 2) {
      throw new ApiError(
        'invalid-argument',
        `the chosen documents are too short to train on (${trainSplit.tokens.length} tokens; the model needs more than ${T})`,
      );
    }
    const lora = { ...DEFAULT_LORA, rank: input.rank, alpha: 2 * input.rank };
    const preference = this.#settings.current.backend;
    const start: StartMessage = {
      type: 'start',
      backend: preference === 'auto' ? undefined : preference,
      model: {
        config: base.config,
        tensors: [...base.tensors].map(([name, t]) => [name, t.shape, t.data]),
      },
      lora,
      loraSeed: input.seed,
      train: {
        steps: input.steps,
        batchSize: input.batchSize,
        maxLr: input.learningRate,
        minLr: input.learningRate / 10,
        warmupSteps: Math.min(10, Math.floor(input.steps / 10)),
        weightDecay: 0,
        seed: input.seed,
      },
      trainSplit,
      valSplit,
    };
    const worker = new Worker(new URL('./worker.ts', import.meta.url));
    const run: Run = {
      runId: randomUUID(),
      worker,
      baseHash,
      state: 'preparing',
      progress: null,
      error: null,
    };
    this.#run = run;
    let heldOutBefore = NaN;
    worker.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'started':
          heldOutBefore = message.heldOutBefore;
          return this.#setState(run, 'running');
        case 'progress': {
          const progress = { runId: run.runId, ...message };
          delete (progress as { type?: string }).type;
          run.progress = progress;
          return this.#events.emit('training.progress', progress);
        }
        case 'paused':
          return this.#setState(run, 'paused');
        case 'resumed':
          return this.#setState(run, 'running');
        case 'cancelled':
          return this.#setState(run, 'cancelled');
        case 'error':
          return this.#setState(run, 'failed', message.message);
        case 'done':
          this.#setState(run, 'saving');
          void this.#save(run, base, lora, input, message, heldOutBefore);
      }
    });
    worker.on('error', (err) => {
      if (ACTIVE_STATES.has(run.state)) this.#setState(run, 'failed', err.message);
    });
    worker.on('exit', (code) => {
      if (ACTIVE_STATES.has(run.state) && run.state !== 'saving') {
        this.#setState(run, 'failed', `the training thread exited (code ${code})`);
      }
    });
    // The base weights are copied for the worker: the copies are transferred, not cloned twice.
    const copies = start.model.tensors.map(
      ([name, shape, data]) => [name, shape, new Float32Array(data)] as const,
    );
    start.model.tensors = copies.map(([n, s, d]) => [n, s, d]);
    worker.postMessage(
      start,
      copies.map(([, , d]) => d.buffer as ArrayBuffer),
    );
    this.#events.emit('training.state', { runId: run.runId, state: 'preparing' });
    return this.status();
  }

  async #save(
    run: Run,
    base: Awaited<ReturnType<ModelsService['load']>>,
    lora: typeof DEFAULT_LORA,
    input: { documentIds: string[]; rank: number },
    done: Extract<FromWorker, { type: 'done' }>,
    heldOutBefore: number,
  ): Promise<void> {
    try {
      const { bytes } = encodeAdapterRecord({
        config: base.config,
        tokenizer: base.tokenizer.toJSON(),
        lora,
        baseHash: run.baseHash,
        tensors: new Map(done.adapter.map(([name, shape, data]) => [name, { shape, data }])),
        info: {
          createdAt: new Date().toISOString(),
          steps: done.steps,
          documents: input.documentIds.length,
          rank: input.rank,
          heldOut: { before: heldOutBefore, after: done.heldOutAfter },
        },
      });
      await this.#vault.putRecord('adapter', adapterRecordId(run.baseHash), bytes);
      // The newest adapter is the one that follows the member to later community versions.
      await this.#writePrefs({ ...(await this.#prefs()), latest: plainHash(run.baseHash) });
      this.#setState(run, 'done');
      for (const listener of this.#adapterListeners) listener();
    } catch (err) {
      this.#setState(run, 'failed', `saving the adapter: ${errorMessage(err)}`);
    }
  }

  async close(): Promise<void> {
    const run = this.#run;
    if (run) this.#setState(run, 'cancelled');
  }

  handlers(): Handlers<typeof trainingMethods> {
    return {
      'training.status': () => this.status(),
      'training.start': (input) => this.#start(input),
      'training.pause': async () => {
        const run = this.#requireRun();
        if (run.state !== 'running')
          throw new ApiError('conflict', `the run is ${run.state}, not running`);
        this.#post({ type: 'pause' });
        return this.status();
      },
      'training.resume': async () => {
        const run = this.#requireRun();
        if (run.state !== 'paused')
          throw new ApiError('conflict', `the run is ${run.state}, not paused`);
        this.#post({ type: 'resume' });
        return this.status();
      },
      'training.cancel': async () => {
        const run = this.#requireRun();
        if (run.state === 'preparing') this.#setState(run, 'cancelled');
        else this.#post({ type: 'cancel' });
        return this.status();
      },
      'training.useAdapter': async ({ enabled }) => {
        const active = plainHash(await this.#models.activeHash());
        if (!(await this.adapterFor(active))) {
          throw new ApiError(
            'not-found',
            'there is no personal adapter for the active model: train one first',
          );
        }
        const prefs = await this.#prefs();
        const disabled = new Set(prefs.disabled);
        if (enabled) disabled.delete(active);
        else disabled.add(active);
        await this.#writePrefs({ ...prefs, disabled: [...disabled] });
        for (const listener of this.#adapterListeners) listener();
        return this.status();
      },
      'training.deleteAdapter': async () => {
        if (this.#run) throw new ApiError('conflict', 'a training run is in progress');
        const active = plainHash(await this.#models.activeHash());
        // The adapter chat layers now: this version's own, or the one carried to it.
        const { adapter } = await this.#personalAdapter(active);
        await this.#vault.deleteRecord(adapterRecordId(adapter?.carriedFrom ?? active));
        for (const listener of this.#adapterListeners) listener();
        return this.status();
      },
    };
  }
}
