// Methods the shell serves beside the core's, because they depend on where the UI runs:
// the core's vault imports and exports by file-system path, which a browser page never has and
// which an Electron renderer only gets from a native dialog in the main process.
import { z } from 'zod';
import { method } from '../api/define.ts';
import type { ImportResult } from '../api/vault.ts';
import { recordIdSchema } from '../api/schemas.ts';

/** A bare file name as a browser reports it: no folders, nothing that could climb out. */
const fileNameSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\\\0]+$/, 'a file name without folders')
  .refine((name) => name !== '.' && name !== '..', 'a file name');

/** The vault takes text files; larger ones are better imported by path (Electron). */
export const MAX_UPLOAD_CHARS = 8 * 1024 * 1024;

export const shellMethods = {
  'shell.importUploads': method<ImportResult>()(
    z.strictObject({
      files: z
        .array(z.strictObject({ name: fileNameSchema, text: z.string().max(MAX_UPLOAD_CHARS) }))
        .min(1)
        .max(100),
    }),
    'Imports files whose contents the page read (file picker in a browser, drag and drop), keeping their names.',
  ),
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
