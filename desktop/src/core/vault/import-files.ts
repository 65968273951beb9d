// Which files the vault takes in: UTF-8 text in .txt or .md files, found by walking folders
// recursively. Everything else is reported with the reason it was passed over, so the member
// knows what did not come in.
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative } from 'node:path';

export const IMPORTABLE_EXTENSIONS = ['.txt', '.md'] as const;
/** Larger files are refused: the vault holds notes, and each record is decrypted whole. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

export interface FoundText {
  /** Absolute path it was read from (the name, for text the page read). */
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
  const refused = refusedName(source);
  if (refused) {
    scan.skipped.push({ path: source, reason: refused });
    return;
  }
  let bytes: Buffer;
  try {
    const info = await stat(source);
    if (info.size > MAX_DOCUMENT_BYTES) {
      scan.skipped.push({ path: source, reason: TOO_LARGE });
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
  accept(source, basename(source), path, text, scan);
}

/**
 * Text the page read itself (a browser's file picker, drag and drop), under the names it gave:
 * the same rules as files read from disk, reported by name.
 */
export function scanTexts(files: readonly { name: string; text: string }[]): Scan {
  const scan: Scan = { texts: [], skipped: [] };
  for (const { name, text } of files) {
    const refused = refusedName(name);
    if (refused) scan.skipped.push({ path: name, reason: refused });
    else if (Buffer.byteLength(text) > MAX_DOCUMENT_BYTES)
      scan.skipped.push({ path: name, reason: TOO_LARGE });
    else accept(name, name, name, text, scan);
  }
  return scan;
}

const TOO_LARGE = `larger than ${MAX_DOCUMENT_BYTES / 2 ** 20} MiB`;

/** Why a file of this name is not imported, or null when its extension is one the vault takes. */
function refusedName(name: string): string | null {
  const ext = extname(name).toLowerCase();
  return (IMPORTABLE_EXTENSIONS as readonly string[]).includes(ext)
    ? null
    : `not a text file (${ext || 'no extension'}; .txt and .md are imported)`;
}

/** The checks on decoded text, shared by both ways in. */
function accept(source: string, name: string, path: string, text: string, scan: Scan): void {
  if (text.includes('\u0000')) {
    scan.skipped.push({ path: source, reason: 'binary content (NUL bytes)' });
    return;
  }
  // A byte-order mark is an encoding marker, not part of the text.
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  scan.texts.push({ source, name, path, text, size: Buffer.byteLength(text) });
}
