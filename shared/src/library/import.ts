import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseDecoderConfig } from '../decoder/config.ts';
import { hfConfigFromGguf } from '../decoder/gguf.ts';
import { ModelFormatError } from '../formats/errors.ts';
import { GgufFile } from '../formats/gguf.ts';
import { openHfFolder } from '../formats/hf-folder.ts';
import {
  libraryName,
  LibraryError,
  readmeLicence,
  type LibraryEntry,
  type ModelLibrary,
} from './library.ts';

/**
 * `commons model import <folder | file.gguf>`: adds a model already on disk, such as the
 * GGUF files LM Studio and Ollama have downloaded. It is checked first (headers, tensor
 * extents, a config this engine runs), then recorded where it lies, so gigabytes are not
 * copied; `copy` puts the files inside the library instead. The licence is the one given,
 * else the one the folder's README.md front matter or the GGUF's `general.license` states.
 */
export async function importModel(
  library: ModelLibrary,
  source: string,
  options: { name?: string; copy?: boolean; licence?: string } = {},
): Promise<LibraryEntry> {
  const resolved = path.resolve(source);
  const info = await stat(resolved).catch(() => {
    throw new LibraryError('NOT_FOUND', `${source} does not exist`);
  });
  const name = options.name ?? libraryName(path.basename(resolved));
  if (
    await library.get(name).then(
      () => true,
      () => false,
    )
  ) {
    throw new LibraryError(
      'EXISTS',
      `the library already has "${name}" (choose another with --name, or commons model rm ${name})`,
    );
  }
  let format: LibraryEntry['format'];
  let location: string;
  let files: string[];
  let licence: string | null = null;
  if (info.isFile()) {
    if (!resolved.toLowerCase().endsWith('.gguf')) {
      throw new ModelFormatError(
        'BAD_CONFIG',
        `${source} is a file but not a .gguf file; a Hugging Face model is a folder`,
      );
    }
    const file = await GgufFile.open(resolved);
    try {
      parseDecoderConfig(hfConfigFromGguf(file), `${source} (GGUF metadata)`);
      const stated = file.metadata['general.license'];
      if (typeof stated === 'string' && stated !== '') licence = stated;
    } finally {
      await file.close();
    }
    format = 'gguf';
    location = path.dirname(resolved);
    files = [path.basename(resolved)];
  } else {
    const folder = await openHfFolder(resolved);
    try {
      parseDecoderConfig(folder.config, `${source}/config.json`);
    } finally {
      await folder.close();
    }
    const present = new Set(await readdir(resolved));
    for (const needed of ['tokenizer.json', 'tokenizer_config.json']) {
      if (!present.has(needed))
        throw new ModelFormatError('MISSING_TENSOR', `${source} has no ${needed}`);
    }
    format = 'hf';
    location = resolved;
    if (present.has('README.md')) {
      licence = readmeLicence(await readFile(path.join(resolved, 'README.md'), 'utf8'));
    }
    files = [...present].filter(
      (f) =>
        f.endsWith('.safetensors') ||
        [
          'config.json',
          'generation_config.json',
          'tokenizer.json',
          'tokenizer_config.json',
          'special_tokens_map.json',
          'model.safetensors.index.json',
        ].includes(f),
    );
  }
  if (options.copy) {
    const target = library.folder(name);
    await mkdir(target, { recursive: true });
    for (const f of files) await copyFile(path.join(location, f), path.join(target, f));
    location = target;
  }
  return library.add({
    name,
    format,
    location,
    files,
    source: { kind: 'import', path: resolved },
    licence: options.licence ?? licence,
  });
}
