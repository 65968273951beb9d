import { pino, type DestinationStream, type Level, type Logger } from 'pino';

/**
 * The coordinator's structured JSON logger. The rule: no secret ever reaches a log line.
 * Fields whose names mean a secret are replaced by pino's redaction at any depth up to
 * REDACT_DEPTH, whatever object they sit in; secrets must never be put into message text,
 * which no redaction can see.
 */
export type { Logger };

/** Field names that hold secrets: wallet keys, passphrases, signatures, auth material. */
export const SECRET_FIELDS = [
  'privateKey',
  'private_key',
  'secretKey',
  'secret',
  'mnemonic',
  'seedPhrase',
  'passphrase',
  'password',
  'signature',
  'token',
  'accessToken',
  'authToken',
  'refreshToken',
  'apiKey',
  'authorization',
  'cookie',
] as const;

/** How deep under the logged object a secret field is still found (0 is top level). */
const REDACT_DEPTH = 4;

export const REDACTED = '[redacted]';

export const LOG_LEVEL_ENV = 'COMMONS_LOG_LEVEL';
/**
 * 'stderr' sends every line to standard error: a program whose standard output is data (a
 * bench run with --json) sets it before any coordinator starts, so stdout holds the data alone.
 */
export const LOG_STREAM_ENV = 'COMMONS_LOG_STREAM';

const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LoggerOptions {
  /** Default: $COMMONS_LOG_LEVEL, else 'info'. */
  level?: Level | 'silent';
  name?: string;
  /** Where lines go; default stdout ($COMMONS_LOG_STREAM=stderr: stderr). Tests pass a stream
   * to read them back. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env[LOG_LEVEL_ENV] ?? 'info';
  if (!LEVELS.includes(level)) {
    throw new Error(`log level ${JSON.stringify(level)} is not one of ${LEVELS.join(', ')}`);
  }
  const options = {
    level,
    ...(opts.name === undefined ? {} : { name: opts.name }),
    redact: { paths: redactPaths(), censor: REDACTED },
  };
  const stream = process.env[LOG_STREAM_ENV];
  if (stream !== undefined && stream !== 'stdout' && stream !== 'stderr') {
    throw new Error(`${LOG_STREAM_ENV} must be stdout or stderr, not ${JSON.stringify(stream)}`);
  }
  const destination =
    opts.destination ?? (stream === 'stderr' ? pino.destination({ fd: 2, sync: true }) : undefined);
  return destination === undefined ? pino(options) : pino(options, destination);
}

/** "privateKey", "*.privateKey", "*.*.privateKey"...: pino's wildcards match one level each. */
function redactPaths(): string[] {
  const paths: string[] = [];
  for (let depth = 0; depth <= REDACT_DEPTH; depth++) {
    for (const field of SECRET_FIELDS) paths.push(`${'*.'.repeat(depth)}${field}`);
  }
  return paths;
}
