// Saved DP state (the accountant's, the adaptive clipper's) carries its format and version; a
// state of another format or version is refused before its fields are looked at, and a state
// that fails its schema is refused naming what is wrong. Never silently reset: a reset would
// under-report privacy spent.
import { z } from 'zod';
import { PrivacyError } from './errors.ts';

export function parseVersionedState<T>(
  value: unknown,
  expected: { format: string; version: number },
  schema: z.ZodType<T>,
  /** Whose fault a schema violation is: the caller's config, or a stored state. */
  code: 'INVALID_ARGUMENT' | 'CORRUPT_STATE',
  what: string,
): T {
  const format = (value as { format?: unknown } | null)?.format;
  const version = (value as { version?: unknown } | null)?.version;
  if (format !== expected.format || version !== expected.version) {
    throw new PrivacyError(
      'UNSUPPORTED_VERSION',
      `not a ${expected.format} version ${expected.version} state (format ${String(format)}, version ${String(version)})`,
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new PrivacyError(code, `${what}: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}
