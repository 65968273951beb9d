// The renderer's side of the API: a typed proxy whose every method sends `(name, argument)` over
// whatever bridge it was given and turns a refusal back into the ApiError the core threw. It
// needs no list of methods, so the renderer bundle does not carry the core's schemas; the
// transport on the other side validates every argument anyway.
import {
  API_ERROR_CODES,
  ApiError,
  type ApiClient,
  type ApiErrorCode,
  type Methods,
} from '../api/define.ts';
import { callOutcomeSchema, type CallOutcome } from './wire.ts';

export type Send = (method: string, arg: unknown) => Promise<CallOutcome>;

export function createApiClient<D extends Methods>(send: Send): ApiClient<D> {
  const cache = new Map<string, (arg: unknown) => Promise<unknown>>();
  return new Proxy({} as ApiClient<D>, {
    get(_target, name) {
      // Not a thenable: `await client` must not call a method named "then".
      if (typeof name !== 'string' || name === 'then') return undefined;
      let fn = cache.get(name);
      if (!fn) {
        fn = (arg: unknown) => invoke(send, name, arg);
        cache.set(name, fn);
      }
      return fn;
    },
  });
}

async function invoke(send: Send, method: string, arg: unknown): Promise<unknown> {
  let raw: unknown;
  try {
    raw = await send(method, arg);
  } catch (error) {
    throw new ApiError(
      'unavailable',
      `Lost contact with the Commons core while calling "${method}". Restart the app if this persists.`,
      { cause: error },
    );
  }
  const outcome = callOutcomeSchema.safeParse(raw);
  if (!outcome.success) {
    throw new ApiError('internal', `The reply to "${method}" was malformed.`);
  }
  if (outcome.data.ok) return outcome.data.value;
  throw toApiError(outcome.data.error.code, outcome.data.error.message);
}

function toApiError(code: string, message: string): ApiError {
  const known = (API_ERROR_CODES as readonly string[]).includes(code);
  return new ApiError(known ? (code as ApiErrorCode) : 'internal', message);
}
