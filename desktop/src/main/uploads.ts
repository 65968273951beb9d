// Imports text the page read itself (a browser file picker, drag and drop) through the vault's
// path-based import: each file is written under its own name into a private temporary folder
// (0700, files 0600), imported, and the folder removed whatever happens. The text was already a
// plain file on this machine; the copy lives only for the duration of the import.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApiError } from '../api/define.ts';
import type { ImportResult } from '../api/vault.ts';

export type ImportFiles = (input: { paths: string[] }) => Promise<ImportResult>;

export async function importUploads(
  files: { name: string; text: string }[],
  importFiles: ImportFiles,
): Promise<ImportResult> {
  const names = new Set(files.map((f) => f.name));
  if (names.size !== files.length) {
    throw new ApiError(
      'invalid-argument',
      'Two files have the same name; import them one at a time.',
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'commons-import-'));
  try {
    await chmod(dir, 0o700);
    const paths: string[] = [];
    for (const file of files) {
      const target = path.join(dir, file.name);
      // The schema forbids separators; this is the belt to its braces.
      if (path.dirname(target) !== dir)
        throw new ApiError('invalid-argument', 'files.name: a file name');
      await writeFile(target, file.text, { mode: 0o600, flag: 'wx' });
      paths.push(target);
    }
    const result = await importFiles({ paths });
    // Report skipped files by the name the member knows, not the temporary path.
    return {
      imported: result.imported,
      skipped: result.skipped.map((s) => ({ ...s, path: path.basename(s.path) })),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
