// The whole API: every domain's methods and events in one map, which the transports serve and
// the renderer calls through `CommonsApi`.
import type { ApiClient, Handlers } from './define.ts';
import { chatEvents, chatMethods } from './chat.ts';
import { federationEvents, federationMethods } from './federation.ts';
import { governanceEvents, governanceMethods } from './governance.ts';
import { libraryMethods, modelsEvents, modelsMethods } from './models.ts';
import { settingsEvents, settingsMethods } from './settings.ts';
import { systemEvents, systemMethods } from './system.ts';
import { trainingEvents, trainingMethods } from './training.ts';
import { vaultEvents, vaultMethods } from './vault.ts';
import { walletEvents, walletMethods } from './wallet.ts';

export const apiMethods = {
  ...settingsMethods,
  ...vaultMethods,
  ...walletMethods,
  ...governanceMethods,
  ...modelsMethods,
  ...libraryMethods,
  ...chatMethods,
  ...trainingMethods,
  ...federationMethods,
  ...systemMethods,
};

export const apiEvents = {
  ...settingsEvents,
  ...vaultEvents,
  ...walletEvents,
  ...governanceEvents,
  ...modelsEvents,
  ...chatEvents,
  ...trainingEvents,
  ...federationEvents,
  ...systemEvents,
};

export type ApiMethods = typeof apiMethods;
export type ApiEvents = typeof apiEvents;
export type MethodName = keyof ApiMethods;
export type EventName = keyof ApiEvents;

/** What the renderer calls. */
export type CommonsApi = ApiClient<ApiMethods>;
/** What the core implements. */
export type CommonsHandlers = Handlers<ApiMethods>;
