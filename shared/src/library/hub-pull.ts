import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { listFiles } from '@huggingface/hub';
import { sha256Stream } from '../checkpoint/hash.ts';
import type { ModelFile } from './identity.ts';
import { libraryName, readmeLicence, type LibraryEntry, type ModelLibrary } from './library.ts';

/**
 * `commons model pull <org/name>`: the files of a Hugging Face hub repository into the
 * library. The file list comes from the hub's tree API through @huggingface/hub; each file
 * is fetched from its resolve URL (following the redirect to the CDN for LFS files), into a
 * `.part` file that a later attempt resumes with an HTTP Range request, and is checked
 * against the hub's own hash: the LFS sha256, or the git blob sha1 of small files.
 */
export type PullErrorCode =
  'OFFLINE' | 'NOT_FOUND' | 'UNAUTHORIZED' | 'CHECKSUM' | 'HTTP' | 'NO_MODEL_FILES';

export class PullError extends Error {
  readonly code: PullErrorCode;

  constructor(code: PullErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'PullError';
    this.code = code;
  }
}

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface PullProgress {
  file: string;
  /** Bytes of all chosen files on disk so far, and in all. */
  bytes: number;
  totalBytes: number;
  bytesPerSec: number;
  etaSec: number;
}

export interface PullOptions {
  repo: string;
  revision?: string;
  hubUrl?: string;
  /** HF_TOKEN, for gated models (Llama). */
  token?: string;
  library: ModelLibrary;
  /** The library name; by default from the repository's name. */
  name?: string;
  /** Which .gguf file of a GGUF repository (each quantisation is its own file). */
  file?: string;
  onProgress?: (p: PullProgress) => void;
  /** Network attempts per file before giving up (each resumes where the last stopped). */
  attempts?: number;
  fetch?: typeof fetch;
}

/** The bytes a file holds: its LFS object's size where it is one (not its pointer's). */
function contentSize(file: HubFile): number {
  return file.lfs?.size ?? file.size;
}

interface HubFile {
  path: string;
  size: number;
  /** git blob sha1 of the file (small files) or of its LFS pointer. */
  oid: string;
  lfs?: { oid: string; size: number };
}

/** The files a chat model needs from a repository that ships safetensors. */
const HF_FILES = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'model.safetensors.index.json',
  'README.md',
  'LICENSE',
]);

export async function pullModel(options: PullOptions): Promise<LibraryEntry> {
  const hubUrl = (options.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  const revision = options.revision ?? 'main';
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = options.token
    ? { authorization: `Bearer ${options.token}` }
    : {};
  const listing = await listRepository(options, hubUrl, revision, doFetch);
  const { format, chosen } = chooseFiles(listing, options);
  const name = options.name ?? libraryName(format === 'gguf' ? chosen[0]!.path : options.repo);
  const folder = options.library.folder(name);
  await mkdir(folder, { recursive: true });

  const totalBytes = chosen.reduce((n, f) => n + contentSize(f), 0);
  const started = Date.now();
  let doneBytes = 0;
  const known = new Map<string, ModelFile>();
  let commit: string | null = null;
  for (const file of chosen) {
    const target = path.join(folder, file.path);
    const result = await downloadFile({
      url: `${hubUrl}/${options.repo}/resolve/${encodeURIComponent(revision)}/${file.path.split('/').map(encodeURIComponent).join('/')}`,
      target,
      file,
      headers,
      attempts: options.attempts ?? 5,
      doFetch,
      onBytes: (fileBytes) => {
        const bytes = doneBytes + fileBytes;
        const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
        const rate = bytes / seconds;
        options.onProgress?.({
          file: file.path,
          bytes,
          totalBytes,
          bytesPerSec: rate,
          etaSec: rate > 0 ? (totalBytes - bytes) / rate : Infinity,
        });
      },
    });
    commit ??= result.commit;
    doneBytes += contentSize(file);
    known.set(file.path, { name: file.path, size: contentSize(file), sha256: result.sha256 });
  }
  const readme = chosen.some((f) => f.path === 'README.md')
    ? await readFile(path.join(folder, 'README.md'), 'utf8')
    : '';
  return options.library.add({
    name,
    format,
    location: folder,
    // The identity covers the model, not its README or licence text.
    files: chosen.map((f) => f.path).filter((p) => p !== 'README.md' && p !== 'LICENSE'),
    source: { kind: 'hub', repo: options.repo, revision, commit, hubUrl },
    licence: readmeLicence(readme),
    known,
  });
}

async function listRepository(
  options: PullOptions,
  hubUrl: string,
  revision: string,
  doFetch: typeof fetch,
): Promise<HubFile[]> {
  const files: HubFile[] = [];
  try {
    for await (const entry of listFiles({
      repo: { type: 'model', name: options.repo },
      revision,
      hubUrl,
      recursive: true,
      ...(options.token ? { accessToken: options.token } : {}),
      fetch: doFetch,
    })) {
      if (entry.type === 'file') files.push(entry as unknown as HubFile);
    }
  } catch (error) {
    throw describeHubError(error, `${hubUrl}/${options.repo}`);
  }
  return files;
}

function describeHubError(error: unknown, where: string): PullError {
  const status = (error as { statusCode?: number }).statusCode;
  if (status === 401 || status === 403) {
    return new PullError(
      'UNAUTHORIZED',
      `${where} needs an access token: accept the model's licence on the hub and set HF_TOKEN`,
      { cause: error },
    );
  }
  if (status === 404)
    return new PullError('NOT_FOUND', `${where} does not exist (or is private)`, { cause: error });
  if (status !== undefined)
    return new PullError('HTTP', `${where} answered ${status}`, { cause: error });
  return new PullError(
    'OFFLINE',
    `cannot reach ${where} (${(error as Error).message}); offline, a model already on disk can be added with: commons model import <folder | file.gguf>`,
    { cause: error },
  );
}

function chooseFiles(
  listing: HubFile[],
  options: PullOptions,
): { format: 'hf' | 'gguf'; chosen: HubFile[] } {
  const safetensors = listing.filter(
    (f) => f.path.endsWith('.safetensors') && !f.path.includes('/'),
  );
  if (options.file === undefined && safetensors.length > 0) {
    const chosen = listing.filter((f) => HF_FILES.has(f.path) || safetensors.includes(f));
    if (!chosen.some((f) => f.path === 'config.json')) {
      throw new PullError('NO_MODEL_FILES', `${options.repo} has safetensors but no config.json`);
    }
    return { format: 'hf', chosen };
  }
  const ggufs = listing.filter((f) => f.path.toLowerCase().endsWith('.gguf'));
  if (options.file !== undefined) {
    const file = ggufs.find((f) => f.path === options.file);
    if (file === undefined) {
      throw new PullError(
        'NO_MODEL_FILES',
        `${options.repo} has no ${options.file}; its GGUF files are: ${ggufs.map((f) => f.path).join(', ') || 'none'}`,
      );
    }
    return { format: 'gguf', chosen: [file] };
  }
  if (ggufs.length === 1) return { format: 'gguf', chosen: ggufs };
  if (ggufs.length > 1) {
    throw new PullError(
      'NO_MODEL_FILES',
      `${options.repo} has several GGUF files; choose one with --file: ${ggufs.map((f) => f.path).join(', ')}`,
    );
  }
  throw new PullError('NO_MODEL_FILES', `${options.repo} has neither safetensors nor GGUF files`);
}

async function downloadFile(o: {
  url: string;
  target: string;
  file: HubFile;
  headers: Record<string, string>;
  attempts: number;
  doFetch: typeof fetch;
  onBytes: (bytes: number) => void;
}): Promise<{ sha256: string; commit: string | null }> {
  const part = `${o.target}.part`;
  await mkdir(path.dirname(o.target), { recursive: true });
  const size = o.file.lfs?.size ?? o.file.size;
  let lastError: unknown = null;
  let commit: string | null = null;
  for (let attempt = 1; attempt <= o.attempts; attempt++) {
    let have = await stat(part)
      .then((s) => s.size)
      .catch(() => 0);
    if (have > size) {
      await unlink(part);
      have = 0;
    }
    try {
      if (have < size) {
        const response = await o.doFetch(o.url, {
          headers: { ...o.headers, ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
          redirect: 'follow',
        });
        commit = response.headers.get('x-repo-commit') ?? commit;
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          throw describeHubError({ statusCode: response.status }, o.url);
        }
        if (!(response.status === 200 || response.status === 206) || response.body === null) {
          throw new PullError('HTTP', `${o.url} answered ${response.status}`);
        }
        // A server that ignores Range sends the whole file again: start over.
        const append = response.status === 206 && have > 0;
        const handle = await open(part, append ? 'a' : 'w');
        let written = append ? have : 0;
        try {
          for await (const chunk of response.body) {
            await handle.write(chunk);
            written += chunk.length;
            o.onBytes(written);
          }
        } finally {
          await handle.close();
        }
      }
      const got = await stat(part).then((s) => s.size);
      if (got !== size) throw new Error(`${o.file.path}: got ${got} of ${size} bytes`);
      const sha256 = await checkHash(part, o.file);
      await rename(part, o.target);
      return { sha256, commit };
    } catch (error) {
      if (error instanceof PullError) {
        if (error.code === 'CHECKSUM') await unlink(part).catch(() => {});
        throw error;
      }
      lastError = error;
      // Back off a little, then resume from what is on disk.
      await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 5000)));
    }
  }
  throw describeHubError(lastError, o.url);
}

/** Checks a downloaded file against the hub's hash; returns its sha256 either way. */
async function checkHash(file: string, meta: HubFile): Promise<string> {
  const sha256 = sha256Stream();
  const { createHash } = await import('node:crypto');
  const sha1 = createHash('sha1');
  // git's blob id: sha1 over "blob <size>\0" and the content.
  sha1.update(`blob ${meta.lfs?.size ?? meta.size}\0`);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) {
    sha256.update(chunk as Buffer);
    if (!meta.lfs) sha1.update(chunk as Buffer);
  }
  const digest = sha256.hex();
  const ok = meta.lfs ? digest === meta.lfs.oid : sha1.digest('hex') === meta.oid;
  if (!ok) {
    throw new PullError(
      'CHECKSUM',
      `${meta.path} does not match the hub's ${meta.lfs ? 'sha256' : 'git hash'}; the download was damaged and has been discarded`,
    );
  }
  return digest;
}
