// Which files the vault takes in: UTF-8 text in .txt or .md files, found by walking folders
// recursively. Everything else is reported with the reason it was passed over, so the member
// knows what did not come in.
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative } from 'node:path';

export const IMPORTABLE_EXTENSIONS = ['.txt', '.md'] as const;
/** Larger files are refused: the vault holds notes, and each record is decrypted whole. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

export interface FoundText {
  /** Absolute path it was read from. */
  source: string;
  name: string;
  /** Relative to the folder being imported, or the name for a single file. */
  path: string;
  text: string;
  size: number;
}

export interface Scan {
  texts: FoundText[];
  skipped: { path: string; reason: string }[];
}

export async function scanPaths(paths: readonly string[]): Promise<Scan> {
  const scan: Scan = { texts: [], skipped: [] };
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      scan.skipped.push({
        path,
        reason: `cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      });
      continue;
    }
    if (info.isDirectory()) await walk(path, path, scan);
    else await take(path, basename(path), scan);
  }
  return scan;
}

async function walk(root: string, dir: string, scan: Scan): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    scan.skipped.push({
      path: dir,
      reason: `cannot list it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    });
    return;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    const full = join(dir, entry.name);
    // Symbolic links are not followed: a link could lead out of the chosen folder or loop.
    if (entry.isSymbolicLink())
      scan.skipped.push({ path: full, reason: 'a symbolic link (not followed)' });
    else if (entry.isDirectory()) await walk(root, full, scan);
    else if (entry.isFile()) await take(full, relative(root, full), scan);
    else scan.skipped.push({ path: full, reason: 'not a regular file' });
  }
}

async function take(source: string, path: string, scan: Scan): Promise<void> {
  const ext = extname(source).toLowerCase();
  if (!(IMPORTABLE_EXTENSIONS as readonly string[]).includes(ext)) {
    scan.skipped.push({
      path: source,
      reason: `not a text file (${ext || 'no extension'}; .txt and .md are imported)`,
    });
    return;
  }
  let bytes: Buffer;
  try {
    const info = await stat(source);
    if (info.size > MAX_DOCUMENT_BYTES) {
      scan.skipped.push({
        path: source,
        reason: `larger than ${MAX_DOCUMENT_BYTES / 2 ** 20} MiB`,
      });
      return;
    }
    bytes = await readFile(source);
  } catch (err) {
    scan.skipped.push({
      path: source,
      reason: `cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    });
    return;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    scan.skipped.push({ path: source, reason: 'not UTF-8 text' });
    return;
  }
  if (text.includes('\u0000')) {
    scan.skipped.push({ path: source, reason: 'binary content (NUL bytes)' });
    return;
  }
  // A byte-order mark is an encoding marker, not part of the text.
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  scan.texts.push({ source, name: basename(source), path, text, size: Buffer.byteLength(text) });
}
