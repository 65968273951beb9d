// system.*: what the app runs on: tfjs backend and GPU (the `commons doctor` report), versions,
// data folder, run mode, and whether chain and coordinator answer.
import { z } from 'zod';
import type { BackendReport } from '@commons/shared/engine';
import { method } from './define.ts';
import { noInput } from './schemas.ts';

/** electron: the desktop window; web: the same UI in a browser through the local bridge;
 * headless: no UI (tests, servers). */
export const APP_MODES = ['electron', 'web', 'headless'] as const;
export type AppMode = (typeof APP_MODES)[number];

export interface AppInfo {
  name: string;
  version: string;
  mode: AppMode;
  dataDir: string;
  versions: { node: string; electron: string | null; tfjs: string; chrome: string | null };
  platform: string;
}

export interface BackendView extends BackendReport {
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; platform: string };
}

export interface Connectivity {
  chain: { ok: true; chainId: number; block: number } | { ok: false; error: string };
  coordinator: { ok: true } | { ok: false; error: string };
}

export const systemMethods = {
  'system.info': method<AppInfo>()(noInput, 'App version, mode, data folder and runtime versions.'),
  'system.backend': method<BackendView>()(
    noInput,
    'The tfjs backend in use, GPU, and why faster backends were passed over.',
  ),
  'system.connectivity': method<Connectivity>()(
    noInput,
    'Whether the chain RPC and the coordinator answer now.',
  ),
};

export const systemEvents = {
  /** Something went wrong in the background (a watcher, a listener): shown as a notice. */
  'system.notice': z.object({ level: z.enum(['info', 'warning', 'error']), message: z.string() }),
};
