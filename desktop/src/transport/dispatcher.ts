// The one place arguments are checked and errors are shaped, whatever the transport. Every call
// is parsed with its method's zod schema before the handler runs, so a handler never sees input
// it did not declare; every failure leaves as `{ code, message }`, and a failure that is not an
// ApiError leaves as a generic `internal` so stacks, paths and secrets stay in the process.
import type { z } from 'zod';
import { ApiError, type Handlers, type Methods } from '../api/define.ts';
import { findNonJson } from './json-check.ts';
import type { CallOutcome } from './wire.ts';

export interface Dispatcher {
  /** Runs `method` with `arg`; never throws. */
  call(method: string, arg: unknown): Promise<CallOutcome>;
  readonly methodNames: readonly string[];
}

export interface DispatcherOptions {
  /**
   * Told of every failure the caller only sees as `internal`, so someone can find out what went
   * wrong. Receives the method name and the error, never the argument (it may hold a passphrase).
   */
  onInternalError?: (method: string, error: unknown) => void;
}

export function createDispatcher<D extends Methods>(
  methods: D,
  handlers: Handlers<D>,
  options: DispatcherOptions = {},
): Dispatcher {
  const report =
    options.onInternalError ??
    ((method: string, error: unknown) => {
      console.error(`commons: ${method} failed unexpectedly:`, error);
    });
  const table = handlers as unknown as Record<string, (input: unknown) => Promise<unknown>>;

  async function call(method: string, arg: unknown): Promise<CallOutcome> {
    // Own properties only: `toString` or `__proto__` must not reach the prototype chain.
    if (typeof method !== 'string' || !Object.hasOwn(methods, method)) {
      return refuse('unknown-method', `There is no method called "${String(method)}".`);
    }
    const spec = methods[method]!;
    const handler = Object.hasOwn(table, method) ? table[method] : undefined;
    if (typeof handler !== 'function') {
      report(method, new Error(`no handler registered for ${method}`));
      return refuse('internal', `"${method}" is not available in this build of Commons.`);
    }
    const parsed = spec.input.safeParse(arg);
    if (!parsed.success) {
      return refuse('invalid-argument', `${method}: ${describeIssues(parsed.error)}`);
    }
    try {
      const value = await handler(parsed.data);
      const bad = findNonJson(value);
      if (bad) {
        report(method, new Error(`result is not a JSON value at ${bad}`));
        return refuse('internal', internalMessage(method));
      }
      return value === undefined ? { ok: true } : { ok: true, value };
    } catch (error) {
      if (error instanceof ApiError) return refuse(error.code, error.message);
      report(method, error);
      return refuse('internal', internalMessage(method));
    }
  }

  return { call, methodNames: Object.keys(methods) };
}

function refuse(code: ApiError['code'], message: string): CallOutcome {
  return { ok: false, error: { code, message } };
}

function internalMessage(method: string): string {
  return `Commons hit an unexpected problem while running "${method}". Try again; if it keeps happening, restart the app and report it with the log.`;
}

/** "field.path: what is wrong" for each issue, so the caller can tell which field to fix. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const where = issue.path.length ? issue.path.map(String).join('.') : 'argument';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}
