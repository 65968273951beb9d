// Results must be JSON values because the WebSocket bridge sends JSON while Electron IPC would
// quietly clone a bigint or a Uint8Array; checking here makes both transports behave alike and
// names the offending path instead of failing deep inside a serialiser.

/** The path of the first part of `value` that is not a plain JSON value, or null. */
export function findNonJson(
  value: unknown,
  path = 'result',
  seen = new Set<object>(),
): string | null {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null;
    case 'number':
      return Number.isFinite(value) ? null : `${path} (${value})`;
    case 'object':
      break;
    default:
      return `${path} (${typeof value})`;
  }
  if (seen.has(value)) return `${path} (circular)`;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = findNonJson(value[i], `${path}[${i}]`, seen);
      if (bad) return bad;
    }
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      return `${path} (${(value as object).constructor?.name ?? 'object'})`;
    }
    for (const [key, item] of Object.entries(value)) {
      const bad = findNonJson(item, `${path}.${key}`, seen);
      if (bad) return bad;
    }
  }
  seen.delete(value);
  return null;
}
