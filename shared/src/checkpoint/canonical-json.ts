import { CheckpointError } from './errors.ts';

/**
 * The one canonical JSON text of a value, for hashing: object keys sorted recursively by
 * UTF-16 code units (JavaScript's default sort), no whitespace, strings and numbers written
 * as ECMAScript JSON.stringify writes them. For plain JSON data this is RFC 8785 (JCS), so a
 * JCS library in any other language produces the same bytes.
 *
 * Only JSON data is accepted: null, booleans, finite numbers, strings, arrays and plain
 * objects. Object properties whose value is undefined are left out, as JSON.stringify (and
 * therefore the manifest file) leaves them out; anything else that JSON cannot carry
 * (NaN, Infinity, bigint, functions, class instances, undefined in an array) throws
 * MALFORMED_MANIFEST rather than being silently changed.
 */
export function canonicalJson(value: unknown): string {
  return write(value, '$');
}

function write(value: unknown, path: string): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) notJson(path, String(value));
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item, i) => write(item, `${path}[${i}]`)).join(',')}]`;
  }
  if (typeof value === 'object' && isPlainObject(value)) {
    const record = value as Record<string, unknown>;
    const members: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = record[key];
      if (member === undefined) continue;
      members.push(`${JSON.stringify(key)}:${write(member, `${path}.${key}`)}`);
    }
    return `{${members.join(',')}}`;
  }
  return notJson(path, typeof value === 'object' ? 'a non-plain object' : typeof value);
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function notJson(path: string, what: string): never {
  throw new CheckpointError('MALFORMED_MANIFEST', `${path} is ${what}, which JSON cannot hold`);
}
