// Methods the shell serves beside the core's, because they depend on where the UI runs: native
// dialogs, which only Electron's main process has. (Text a page reads itself goes straight to
// the core's vault.importText.)
import { z } from 'zod';
import { method } from '../api/define.ts';
import type { ImportResult } from '../api/vault.ts';
import { recordIdSchema } from '../api/schemas.ts';

export const shellMethods = {
  'shell.importWithDialog': method<ImportResult>()(
    z.strictObject({ folders: z.boolean().default(false) }).optional(),
    'Electron only: asks for files (or folders) with the system dialog and imports them by path.',
  ),
  'shell.exportWithDialog': method<{ written: string[] }>()(
    z.strictObject({ ids: z.array(recordIdSchema).min(1) }),
    'Electron only: asks for a folder with the system dialog and writes decrypted copies there.',
  ),
};
export type ShellMethods = typeof shellMethods;
