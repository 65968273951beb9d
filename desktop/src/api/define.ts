// The shape of the one API between the renderer and the core. Every call is a named method with
// a zod schema for its argument and a TypeScript type for its result; every push from the core
// (token streams, training progress, round status) is a named event with a zod schema. The core
// implements handlers; the transports (Electron IPC through the preload, the local WebSocket
// bridge in web mode) validate every argument against the schema before a handler sees it, so a
// handler can trust its input and no transport can forget to check.
//
// Results and event payloads cross a process boundary (structured clone over IPC, JSON over
// WebSocket), so they must be JSON values: no bigint (use decimal strings), no Uint8Array (hex or
// base64), no Date (ISO strings or epoch ms), no class instances.
import { z } from 'zod';

/** One method: the schema of its single argument and, as a phantom type, its result. */
export interface MethodSpec<I extends z.ZodType = z.ZodType, O = unknown> {
  readonly input: I;
  readonly description: string;
  /** Never set; carries the result type for Handlers and the client proxy. */
  readonly output?: O;
}

/** Declares a method: `method<Result>()(schema, 'what it does')`. Curried so O can be given
 * explicitly while I is inferred from the schema. */
export function method<O>() {
  return <I extends z.ZodType>(input: I, description: string): MethodSpec<I, O> => ({
    input,
    description,
  });
}

/** Methods of one domain, keyed `domain.verb` (e.g. `vault.list`, `wallet.create`). */
export type Methods = Record<string, MethodSpec>;

export type InputOf<M extends MethodSpec> = z.input<M['input']>;
export type ParsedInputOf<M extends MethodSpec> = z.output<M['input']>;
export type OutputOf<M extends MethodSpec> =
  NonNullable<M['output']> extends never ? void : NonNullable<M['output']>;

/** What the core implements for a set of methods: the argument arrives already validated. */
export type Handlers<D extends Methods> = {
  [K in keyof D]: (input: ParsedInputOf<D[K]>) => Promise<OutputOf<D[K]>>;
};

/** What the renderer calls: the same names, returning promises of the results. */
export type ApiClient<D extends Methods> = {
  [K in keyof D]: (input: InputOf<D[K]>) => Promise<OutputOf<D[K]>>;
};

/** Events the core pushes, keyed `domain.noun` (e.g. `chat.token`, `training.progress`). */
export type Events = Record<string, z.ZodType>;
export type EventPayload<E extends Events, K extends keyof E> = z.output<E[K]>;

/** Error codes every transport carries unchanged to the renderer, so the UI can say what to do. */
export const API_ERROR_CODES = [
  'invalid-argument', // the argument failed its schema (the transport's check)
  'unknown-method',
  'not-found',
  'conflict', // e.g. a document already imported, a proposal already voted on
  'locked', // the vault or wallet needs unlocking first
  'wrong-passphrase',
  'integrity', // a hash or signature did not verify (model file, keystore, vault record)
  'unavailable', // chain, coordinator or model store unreachable
  'refused', // the chain or coordinator said no (reverted, rejected, over budget)
  'cancelled',
  'internal',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** The one error type handlers throw; transports serialise `{ code, message }` and rebuild it. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  constructor(code: ApiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApiError';
    this.code = code;
  }
}

/** The serialised form of an error on the wire. */
export const apiErrorSchema = z.object({
  code: z.enum(API_ERROR_CODES),
  message: z.string(),
});
export type SerializedApiError = z.infer<typeof apiErrorSchema>;
