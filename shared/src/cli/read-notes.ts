import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { UsageError } from './errors.ts';

const TEXT_EXTENSIONS = new Set(['.txt', '.md', '.markdown']);

/** The text of every .txt/.md file under the given paths (folders walked, sorted for determinism). */
export async function readNotes(paths: string[]): Promise<{ files: string[]; text: string }> {
  const files: string[] = [];
  for (const p of paths) await collect(p, files, true);
  if (files.length === 0) throw new UsageError(`no .txt or .md files found in ${paths.join(', ')}`);
  const parts = await Promise.all(files.map((f) => readFile(f, 'utf8')));
  return { files, text: parts.join('\n\n') };
}

async function collect(path: string, out: string[], explicit: boolean): Promise<void> {
  const s = await stat(path).catch(() => {
    throw new UsageError(`no such file or folder: ${path}`);
  });
  if (s.isDirectory()) {
    const entries = (await readdir(path)).filter((e) => !e.startsWith('.')).sort();
    for (const e of entries) await collect(join(path, e), out, false);
  } else if (explicit || TEXT_EXTENSIONS.has(extname(path).toLowerCase())) {
    out.push(path);
  }
}
