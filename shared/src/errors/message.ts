// What a caught error says, for a log line or a sentence to a person. TypeScript types a caught
// value as `unknown` and JavaScript lets anything be thrown, so the message is read only from an
// Error and anything else is turned into text.

export interface ErrorMessageOptions {
  /**
   * Append the cause's message in parentheses when the cause is an Error: fetch and undici put
   * the network failure that says what went wrong ("connect ECONNREFUSED") there, not in their
   * own "fetch failed".
   */
  withCause?: boolean;
}

/** The message of `error` (an Error's `message`, any other thrown value as text). */
export function errorMessage(error: unknown, options: ErrorMessageOptions = {}): string {
  if (!(error instanceof Error)) return String(error);
  if (options.withCause && error.cause instanceof Error) {
    return `${error.message} (${error.cause.message})`;
  }
  return error.message;
}
