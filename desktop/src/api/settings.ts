// settings.*: where the app connects and how it runs. Persisted by the core in the data folder.
import { z } from 'zod';
import { BACKEND_PREFERENCES } from '@commons/shared/engine';
import { method } from './define.ts';
import { noInput } from './schemas.ts';

const httpUrl = z.url({ protocol: /^https?$/, error: 'an http(s) URL' });

/** `auto` (the best that starts), then the backends best first, as the engine names them. */
export { BACKEND_PREFERENCES, type BackendPreference } from '@commons/shared/engine';

/**
 * The deployment: the path of an addresses file (as `npm run deploy -w contracts` writes it) or
 * the addresses object itself; null until the member chooses one. The core validates the
 * object fully against the deployment schema when it connects.
 */
export const addressesSettingSchema = z.union([
  z.string().min(1, 'the path of an addresses file'),
  z.looseObject({
    chainId: z.number().int().positive(),
    contracts: z.record(z.string(), z.string()),
  }),
]);

export const settingsSchema = z.strictObject({
  /** The federation coordinator (Socket.IO and its model store), e.g. http://127.0.0.1:7070. */
  coordinatorUrl: httpUrl,
  /** JSON-RPC endpoint of the chain Commons is deployed on. */
  rpcUrl: httpUrl,
  addresses: addressesSettingSchema.nullable(),
  backend: z.enum(BACKEND_PREFERENCES),
});
export type Settings = z.infer<typeof settingsSchema>;

/**
 * What settings.get answers: the stored settings and `dataDir`, where vault, wallet, models and
 * settings are kept. The data folder is fixed for the life of the core (the shell chooses it at
 * start-up), so it is reported here but cannot be updated through settings.update.
 */
export const settingsViewSchema = settingsSchema.extend({ dataDir: z.string() });
export type SettingsView = z.infer<typeof settingsViewSchema>;

export const settingsMethods = {
  'settings.get': method<SettingsView>()(noInput, 'The current settings and the data folder.'),
  'settings.update': method<SettingsView>()(
    settingsSchema.partial(),
    'Changes the given fields (validated, saved atomically); reconnects chain and coordinator clients as needed.',
  ),
  'settings.reset': method<SettingsView>()(noInput, 'Restores the defaults.'),
};

export const settingsEvents = {
  /** The settings changed (by this window or another). */
  'settings.changed': settingsViewSchema,
};
