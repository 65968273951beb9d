// system.*: the `commons doctor` report (shared's backend selection and the machine), versions,
// mode and data folder, and whether chain and coordinator answer.
import { availableParallelism, cpus, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { currentBackend, selectBackend } from '@commons/shared/engine';
import { errorMessage } from '@commons/shared/errors';
import type { Handlers } from '../../api/define.ts';
import type { AppMode, systemMethods } from '../../api/system.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import type { SettingsService } from '../settings/settings-service.ts';

export interface AppIdentity {
  name: string;
  version: string;
  mode: AppMode;
}

export class SystemService {
  readonly #dataDir: string;
  readonly #app: AppIdentity;
  readonly #settings: SettingsService;
  readonly #chain: ChainConnection;

  constructor(
    dataDir: string,
    app: AppIdentity,
    settings: SettingsService,
    chain: ChainConnection,
  ) {
    this.#dataDir = dataDir;
    this.#app = app;
    this.#settings = settings;
    this.#chain = chain;
  }

  handlers(): Handlers<typeof systemMethods> {
    return {
      'system.info': async () => ({
        ...this.#app,
        dataDir: this.#dataDir,
        versions: {
          node: process.version,
          electron: process.versions['electron'] ?? null,
          chrome: process.versions['chrome'] ?? null,
          tfjs: tf.version.tfjs,
        },
        platform: `${process.platform}-${process.arch}`,
      }),
      'system.backend': async () => {
        // The backend chat or training already chose, else a fresh selection (as doctor does).
        const preference = this.#settings.current.backend;
        const report =
          currentBackend() ??
          (await selectBackend(preference === 'auto' ? {} : { force: preference }));
        return {
          ...report,
          machine: {
            cpu: cpus()[0]?.model ?? 'unknown',
            cores: availableParallelism(),
            memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
            node: process.version,
            platform: `${process.platform}-${process.arch}`,
          },
        };
      },
      'system.connectivity': async () => {
        const chain = await this.#chain
          .reader()
          .then(async (c) => ({
            ok: true as const,
            chainId: c.addresses.chainId,
            block: await c.provider.getBlockNumber(),
          }))
          .catch((err: unknown) => ({ ok: false as const, error: errorMessage(err) }));
        const url = new URL('/healthz', this.#settings.current.coordinatorUrl);
        const coordinator = await fetch(url, { signal: AbortSignal.timeout(3000) })
          .then((r) =>
            r.ok ? { ok: true as const } : { ok: false as const, error: `HTTP ${r.status}` },
          )
          .catch((err: unknown) => ({ ok: false as const, error: errorMessage(err) }));
        return { chain, coordinator };
      },
    };
  }
}
