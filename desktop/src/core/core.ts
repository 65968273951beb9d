// The desktop core: every service behind the one typed API, plain TypeScript with no Electron
// import, so the Electron main process, the local web bridge and headless tests run the same
// thing. The shell supplies the data folder and, where it has one, the OS keychain.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  apiMethods,
  type ApiMethods,
  type CommonsHandlers,
  type MethodName,
} from '../api/contract.ts';
import { ApiError, type InputOf, type OutputOf } from '../api/define.ts';
import type { Settings } from '../api/settings.ts';
import type { AppMode } from '../api/system.ts';
import { ChainConnection } from './chain/chain-connection.ts';
import { ChatService } from './chat/chat-service.ts';
import { CoreEvents } from './events.ts';
import { FederationService } from './federation/federation-service.ts';
import { GovernanceService } from './governance/governance-service.ts';
import { LibraryService } from './models/library-service.ts';
import { ModelsService } from './models/models-service.ts';
import { SettingsService } from './settings/settings-service.ts';
import { SystemService } from './system/system-service.ts';
import { TrainingService } from './training/training-service.ts';
import type { KeyProvider } from './vault/key-provider.ts';
import { VaultService } from './vault/vault-service.ts';
import { WalletService } from './wallet/wallet-service.ts';

export type { KeyProvider } from './vault/key-provider.ts';
export { CoreEvents } from './events.ts';

export interface CoreOptions {
  /** Where settings, vault, wallet, models and adapters live (created if absent). */
  dataDir: string;
  /** The OS keychain (Electron: over safeStorage); without it the vault uses a passphrase. */
  keyProvider?: KeyProvider;
  mode?: AppMode;
  /** App identity for system.info. */
  app?: { name?: string; version?: string };
  /** Settings used where the data folder has none yet (e.g. the devnet's RPC and addresses). */
  initialSettings?: Partial<Settings>;
  /**
   * scrypt costs (log2 N) of new vault and wallet keys. Defaults: vault 15 (the floor), wallet 17
   * (ethers' default). Neither can go below 15; tests use the floor to stay fast.
   */
  scrypt?: { vaultLogN?: number; walletLogN?: number };
  /** How often to look for a newly activated model version on chain; default 15 s. */
  activeModelPollMs?: number;
  /** The open-weights model library (default: COMMONS_MODELS, else ~/.commons/models, as the CLI). */
  modelLibraryDir?: string;
  /** Where library pulls come from (default: HF_ENDPOINT, else https://huggingface.co). */
  hubUrl?: string;
}

export interface Core {
  /** The handlers; each expects its argument already validated (transports use `invoke`). */
  handlers: CommonsHandlers;
  /**
   * Validates the argument against the method's schema (applying its defaults), then calls the
   * handler: what every transport does, and what headless callers and tests use.
   */
  invoke<K extends MethodName>(
    method: K,
    input?: InputOf<ApiMethods[K]>,
  ): Promise<OutputOf<ApiMethods[K]>>;
  events: CoreEvents;
  /** Stops federation and training, unloads the model and drops chain connections. */
  close(): Promise<void>;
}

export async function createCore(options: CoreOptions): Promise<Core> {
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const events = new CoreEvents();
  const settings = await SettingsService.open(dataDir, events, options.initialSettings);
  const chain = new ChainConnection(settings);
  const vault = new VaultService(dataDir, events, {
    keyProvider: options.keyProvider,
    scryptLogN: options.scrypt?.vaultLogN,
  });
  const wallet = new WalletService(dataDir, chain, events, {
    scryptLogN: options.scrypt?.walletLogN,
  });
  const governance = new GovernanceService(chain, wallet, events);
  const models = new ModelsService(dataDir, chain, settings, events);
  models.watchActive(options.activeModelPollMs ?? 15_000);
  const training = new TrainingService(dataDir, vault, models, settings, events);
  const library = new LibraryService(chain, governance, events, {
    ...(options.modelLibraryDir ? { root: options.modelLibraryDir } : {}),
    ...(options.hubUrl ? { hubUrl: options.hubUrl } : {}),
  });
  const chat = new ChatService(vault, models, training, settings, library, events);
  const federation = new FederationService(dataDir, settings, chain, wallet, vault, events);
  const system = new SystemService(
    dataDir,
    {
      name: options.app?.name ?? 'Commons',
      version: options.app?.version ?? '0.1.0',
      mode: options.mode ?? 'headless',
    },
    settings,
    chain,
  );

  const handlers: CommonsHandlers = {
    ...settings.handlers(),
    ...vault.handlers(),
    ...wallet.handlers(),
    ...governance.handlers(),
    ...models.handlers(),
    ...library.handlers(),
    ...chat.handlers(),
    ...training.handlers(),
    ...federation.handlers(),
    ...system.handlers(),
  };

  let closing: Promise<void> | null = null;
  return {
    handlers,
    events,
    invoke: async (method, input) => {
      const spec = (apiMethods as Record<string, (typeof apiMethods)[MethodName]>)[method];
      if (!spec) throw new ApiError('unknown-method', `no method ${String(method)}`);
      const parsed = spec.input.safeParse(input);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
        throw new ApiError('invalid-argument', `${method}: ${issue?.message ?? 'invalid'}${where}`);
      }
      const handler = handlers[method] as (
        input: unknown,
      ) => Promise<OutputOf<ApiMethods[typeof method]>>;
      return handler(parsed.data);
    },
    close: () =>
      (closing ??= (async () => {
        models.stopWatching();
        await federation.stop();
        await training.close();
        await chat.close();
        chain.close();
        vault.lock();
      })()),
  };
}
