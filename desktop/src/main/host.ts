// Starts the core and puts the one dispatcher in front of it: the core's methods plus the
// shell's (native dialogs, where there are any). Electron's main
// process and web mode both serve exactly this, so the two cannot drift apart.
import { apiMethods } from '../api/contract.ts';
import { ApiError, type Handlers } from '../api/define.ts';
import type { AppMode } from '../api/system.ts';
import { createCore, type CoreOptions } from '../core/core.ts';
import type { KeyProvider } from '../core/vault/key-provider.ts';
import { createDispatcher, type Dispatcher } from '../transport/dispatcher.ts';
import type { EventTap } from '../transport/events.ts';
import { shellMethods, type ShellMethods } from '../transport/shell-methods.ts';
import type { LaunchOptions } from './launch-options.ts';

/** Native dialogs (Electron); absent in web mode, where the page picks files itself. */
export interface ShellDialogs {
  /** Paths chosen, or [] when the member cancelled. */
  pickForImport(folders: boolean): Promise<string[]>;
  /** A folder chosen, or null when cancelled. */
  pickExportFolder(): Promise<string | null>;
}

export interface Host {
  dispatcher: Dispatcher;
  events: EventTap;
  close(): Promise<void>;
}

export async function startHost(options: {
  launch: LaunchOptions;
  mode: AppMode;
  keyProvider?: KeyProvider;
  dialogs?: ShellDialogs;
  /** Passed to the core as is (tests lower the scrypt cost to its floor). */
  core?: Pick<
    CoreOptions,
    'scrypt' | 'initialSettings' | 'app' | 'activeModelPollMs' | 'modelLibraryDir' | 'hubUrl'
  >;
}): Promise<Host> {
  const { launch, dialogs } = options;
  const core = await createCore({
    ...options.core,
    dataDir: launch.dataDir,
    mode: options.mode,
    ...(options.keyProvider ? { keyProvider: options.keyProvider } : {}),
  });
  try {
    const overrides = {
      ...(launch.coordinatorUrl ? { coordinatorUrl: launch.coordinatorUrl } : {}),
      ...(launch.rpcUrl ? { rpcUrl: launch.rpcUrl } : {}),
      ...(launch.addresses ? { addresses: launch.addresses } : {}),
    };
    if (Object.keys(overrides).length) {
      const parsed = apiMethods['settings.update'].input.safeParse(overrides);
      if (!parsed.success) {
        throw new Error(
          `The endpoints given at start-up are not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        );
      }
      await core.handlers['settings.update'](parsed.data);
    }
  } catch (error) {
    await core.close();
    throw error;
  }

  const noDialogs = () =>
    new ApiError(
      'unavailable',
      'The system file dialog is only in the desktop app; use "Import files…" on this page instead.',
    );
  const shellHandlers: Handlers<ShellMethods> = {
    'shell.importWithDialog': async (input) => {
      if (!dialogs) throw noDialogs();
      const paths = await dialogs.pickForImport(input?.folders ?? false);
      if (paths.length === 0) return { imported: [], skipped: [] };
      return core.handlers['vault.importFiles']({ paths });
    },
    'shell.exportWithDialog': async ({ ids }) => {
      if (!dialogs) throw noDialogs();
      const folder = await dialogs.pickExportFolder();
      if (!folder) return { written: [] };
      return core.handlers['vault.exportDocuments']({ ids, folder });
    },
  };

  const dispatcher = createDispatcher(
    { ...apiMethods, ...shellMethods },
    { ...core.handlers, ...shellHandlers },
    {
      onInternalError: (method, error) => {
        // The argument is never logged: it may hold a passphrase or a private key.
        console.error(
          `commons: ${method} failed:`,
          error instanceof Error ? (error.stack ?? error.message) : error,
        );
      },
    },
  );
  return {
    dispatcher,
    events: (listener) => core.events.onAny(listener),
    close: () => core.close(),
  };
}
