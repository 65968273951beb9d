import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../storage/atomic-file.ts';
import { hashFile, modelIdentity, type ModelFile } from './identity.ts';

/**
 * The member's model library: one folder per model under a root (by default
 * ~/.commons/models, or COMMONS_MODELS), each with a `commons-model.json` that records
 * where the model came from, its format, its files and its identity. Models pulled from
 * the hub live in their folder; a GGUF file imported from LM Studio or Ollama may stay
 * where it is (the entry points at it), so no gigabytes are copied twice.
 */
export const ENTRY_FILE = 'commons-model.json';

const fileSchema = z.object({
  name: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const entrySchema = z.object({
  version: z.literal(1),
  /** The library's name for it: [a-z0-9._-], e.g. "smollm2-135m-instruct". */
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/),
  format: z.enum(['hf', 'gguf']),
  /** Files relative to `location`, with their hashes. */
  files: z.array(fileSchema).min(1),
  identity: z.string().regex(/^[0-9a-f]{64}$/),
  /** Folder holding the files: the entry's own folder, or where an imported file lies. */
  location: z.string().min(1),
  source: z.union([
    z.object({
      kind: z.literal('hub'),
      repo: z.string(),
      revision: z.string(),
      commit: z.string().nullable(),
      hubUrl: z.string(),
    }),
    z.object({ kind: z.literal('import'), path: z.string() }),
    z.object({ kind: z.literal('export'), from: z.string() }),
  ]),
  licence: z.string().nullable(),
  addedAt: z.string(),
});
export type LibraryEntry = z.infer<typeof entrySchema>;

export class LibraryError extends Error {
  readonly code: 'NOT_FOUND' | 'EXISTS' | 'CORRUPT_ENTRY' | 'MISMATCH';

  constructor(code: LibraryError['code'], message: string) {
    super(`${code}: ${message}`);
    this.name = 'LibraryError';
    this.code = code;
  }
}

export function defaultLibraryRoot(): string {
  return process.env.COMMONS_MODELS ?? path.join(homedir(), '.commons', 'models');
}

/** A library name from anything a user or the hub calls a model ("HuggingFaceTB/SmolLM2-135M"). */
export function libraryName(from: string): string {
  const base = from.includes('/') ? from.split('/').filter(Boolean).at(-1)! : from;
  const name = base
    .replace(/\.gguf$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 128);
  if (name === '') throw new LibraryError('NOT_FOUND', `"${from}" gives no usable model name`);
  return name;
}

/**
 * The licence a Hugging Face model card states in its YAML front matter (`license: apache-2.0`;
 * `license: other` with a `license_name: llama3.2` names its own), or null.
 */
export function readmeLicence(readme: string): string | null {
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(readme)?.[1];
  if (front === undefined) return null;
  const field = (key: string) =>
    new RegExp(`^${key}:[ \\t]*["']?([^\\s"']+)`, 'm').exec(front)?.[1] ?? null;
  const licence = field('license');
  return licence === 'other' ? (field('license_name') ?? licence) : licence;
}

/**
 * How a library model is described when the community records it as a base model on chain
 * (ModelRegistry): its identity, its format as the registry names it, its licence (null when
 * unknown: the proposer must state it) and its public name (the hub repository it came from,
 * else its library name).
 */
export interface BaseModelDescription {
  identity: string;
  format: 'hf-folder' | 'gguf';
  licence: string | null;
  name: string;
}

export function baseModelDescription(entry: LibraryEntry): BaseModelDescription {
  return {
    identity: entry.identity,
    format: entry.format === 'hf' ? 'hf-folder' : 'gguf',
    licence: entry.licence,
    name: entry.source.kind === 'hub' ? entry.source.repo : entry.name,
  };
}

export class ModelLibrary {
  readonly root: string;

  constructor(root: string = defaultLibraryRoot()) {
    this.root = path.resolve(root);
  }

  /** The folder an entry of this name lives in. */
  folder(name: string): string {
    return path.join(this.root, name);
  }

  async list(): Promise<LibraryEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const entries: LibraryEntry[] = [];
    for (const name of names.sort()) {
      // Half-written pulls and other folders without an entry are not models yet.
      const entry = await this.get(name).catch((error: unknown) => {
        if (error instanceof LibraryError && error.code === 'NOT_FOUND') return null;
        throw error;
      });
      if (entry) entries.push(entry);
    }
    return entries;
  }

  async get(name: string): Promise<LibraryEntry> {
    const file = path.join(this.folder(name), ENTRY_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new LibraryError(
        'NOT_FOUND',
        `no model "${name}" in ${this.root} (see: commons model list)`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new LibraryError('CORRUPT_ENTRY', `${file} is not JSON`);
    }
    const entry = entrySchema.safeParse(parsed);
    if (!entry.success) {
      const issue = entry.error.issues[0]!;
      throw new LibraryError('CORRUPT_ENTRY', `${file}: ${issue.path.join('.')}: ${issue.message}`);
    }
    return entry.data;
  }

  /**
   * Records a model whose files are complete in `location`: hashes every file, computes the
   * identity and writes the entry last, so a model is listed only once it is whole.
   */
  async add(options: {
    name: string;
    format: LibraryEntry['format'];
    location: string;
    files: readonly string[];
    source: LibraryEntry['source'];
    licence?: string | null;
    /** Hashes already checked while downloading, by file name. */
    known?: ReadonlyMap<string, ModelFile>;
  }): Promise<LibraryEntry> {
    const files: ModelFile[] = [];
    for (const name of options.files) {
      const known = options.known?.get(name);
      if (known) {
        const { size } = await stat(path.join(options.location, name));
        if (size === known.size) {
          files.push(known);
          continue;
        }
      }
      const hashed = await hashFile(path.join(options.location, name));
      files.push({ name, size: hashed.size, sha256: hashed.sha256 });
    }
    const entry: LibraryEntry = {
      version: 1,
      name: options.name,
      format: options.format,
      files,
      identity: modelIdentity(files),
      location: path.resolve(options.location),
      source: options.source,
      licence: options.licence ?? null,
      addedAt: new Date().toISOString(),
    };
    await mkdir(this.folder(options.name), { recursive: true });
    await writeFileAtomic(
      path.join(this.folder(options.name), ENTRY_FILE),
      `${JSON.stringify(entry, null, 2)}\n`,
    );
    return entry;
  }

  /** Records the licence a model is published under (one the member stated, where none was known). */
  async setLicence(name: string, licence: string): Promise<LibraryEntry> {
    const entry = await this.get(name);
    const next: LibraryEntry = { ...entry, licence };
    await writeFileAtomic(
      path.join(this.folder(name), ENTRY_FILE),
      `${JSON.stringify(next, null, 2)}\n`,
    );
    return next;
  }

  async remove(name: string): Promise<LibraryEntry> {
    const entry = await this.get(name);
    // Move aside first so a crash never leaves a listed model with missing files.
    const trash = path.join(this.root, `.removing-${name}-${process.pid}`);
    await rename(this.folder(name), trash);
    await rm(trash, { recursive: true, force: true });
    return entry;
  }

  /** Re-hashes every file; the entry's identity, and `expected` when given, must match. */
  async verify(name: string, expected?: string): Promise<LibraryEntry> {
    const entry = await this.get(name);
    const files: ModelFile[] = [];
    for (const f of entry.files) {
      const hashed = await hashFile(path.join(entry.location, f.name)).catch(() => {
        throw new LibraryError('MISMATCH', `${name}: ${f.name} is missing from ${entry.location}`);
      });
      if (hashed.sha256 !== f.sha256 || hashed.size !== f.size) {
        throw new LibraryError(
          'MISMATCH',
          `${name}: ${f.name} does not match its recorded sha256 (changed or damaged)`,
        );
      }
      files.push({ name: f.name, size: hashed.size, sha256: hashed.sha256 });
    }
    const identity = modelIdentity(files);
    if (identity !== entry.identity) {
      throw new LibraryError(
        'MISMATCH',
        `${name}: the files hash to ${identity}, the entry says ${entry.identity}`,
      );
    }
    if (expected !== undefined && expected.toLowerCase() !== identity) {
      throw new LibraryError('MISMATCH', `${name} is ${identity}, not the expected ${expected}`);
    }
    return entry;
  }
}
