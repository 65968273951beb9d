import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.ts';

/** The genesis checkpoint shipped with the repository: the default model everywhere. */
export const GENESIS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../genesis');

/** node:util parseArgs (strict), with its errors turned into usage errors. */
export function parse<const O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true as const });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A finite number from a flag, with the flag's name in the error. */
export function numberFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  check: (n: number) => boolean = Number.isFinite,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} ${value} is not valid`);
  return n;
}
