import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the shared public corpus lives: `COMMONS_DATA`, else `../shared/data/` beside the
 * repository (where CI and the workspace put it).
 */
export function corpusPath(name = 'tinyshakespeare.txt'): string {
  const fromEnv = process.env.COMMONS_DATA;
  if (fromEnv)
    return existsSync(resolve(fromEnv, name)) ? resolve(fromEnv, name) : resolve(fromEnv);
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  return resolve(repoRoot, '../shared/data', name);
}

export function readCorpus(name?: string): string {
  const path = corpusPath(name);
  if (!existsSync(path)) {
    throw new Error(
      `corpus not found at ${path}; set COMMONS_DATA to the folder that holds ${name ?? 'tinyshakespeare.txt'}`,
    );
  }
  return readFileSync(path, 'utf8');
}
