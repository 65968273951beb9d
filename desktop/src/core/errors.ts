// Turning what the libraries throw into the API's error codes, so the renderer can say what to
// do. Messages stay those of the cause (never a key or passphrase: no caller puts one in).
import { isError } from 'ethers';
import {
  CheckpointError,
  LibraryError,
  ModelFormatError,
  ModelTooLargeError,
  PullError,
} from '@commons/shared/engine';
import { errorMessage } from '@commons/shared/errors';
import { ApiError } from '../api/define.ts';

/** An error from the chain (RPC unreachable, reverted, rejected) as an ApiError. */
export function chainError(err: unknown, doing: string): ApiError {
  if (err instanceof ApiError) return err;
  if (isError(err, 'CALL_EXCEPTION')) {
    const reason = err.revert
      ? `${err.revert.name}(${err.revert.args.map(String).join(', ')})`
      : (err.reason ?? err.shortMessage);
    return new ApiError('refused', `${doing}: the chain refused it: ${reason}`, { cause: err });
  }
  if (isError(err, 'INSUFFICIENT_FUNDS')) {
    return new ApiError('refused', `${doing}: the account has too little ETH for gas`, {
      cause: err,
    });
  }
  if (isError(err, 'NETWORK_ERROR') || isError(err, 'TIMEOUT') || isError(err, 'SERVER_ERROR')) {
    return new ApiError('unavailable', `${doing}: the chain did not answer (${err.shortMessage})`, {
      cause: err,
    });
  }
  const code = (err as { code?: string }).code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') {
    return new ApiError('unavailable', `${doing}: the chain did not answer (${code})`, {
      cause: err,
    });
  }
  return new ApiError('internal', `${doing}: ${errorMessage(err)}`, { cause: err });
}

/** A checkpoint that failed verification is an integrity error; anything else is passed on. */
export function checkpointError(err: unknown, doing: string): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof CheckpointError) {
    const code = err.code === 'MISSING_FILE' ? 'not-found' : 'integrity';
    return new ApiError(code, `${doing}: ${err.message}`, { cause: err });
  }
  if (err instanceof TypeError && /fetch failed/.test(err.message)) {
    return new ApiError('unavailable', `${doing}: the model store did not answer`, { cause: err });
  }
  if (err instanceof Error && /answered HTTP (\d+)/.test(err.message)) {
    const status = Number(/HTTP (\d+)/.exec(err.message)?.[1]);
    return new ApiError(status === 404 ? 'not-found' : 'unavailable', `${doing}: ${err.message}`, {
      cause: err,
    });
  }
  return new ApiError('internal', `${doing}: ${errorMessage(err)}`, { cause: err });
}

/** What the model library, the hub pull and the model loaders throw, as an ApiError. */
export function libraryError(err: unknown, doing: string): ApiError {
  if (err instanceof ApiError) return err;
  const say = (code: ApiError['code']) =>
    new ApiError(code, `${doing}: ${errorMessage(err)}`, { cause: err });
  if (err instanceof LibraryError) {
    return say(
      err.code === 'NOT_FOUND' ? 'not-found' : err.code === 'EXISTS' ? 'conflict' : 'integrity',
    );
  }
  if (err instanceof PullError) {
    const codes = {
      OFFLINE: 'unavailable',
      HTTP: 'unavailable',
      NOT_FOUND: 'not-found',
      UNAUTHORIZED: 'refused',
      CHECKSUM: 'integrity',
      NO_MODEL_FILES: 'not-found',
    } as const;
    return say(codes[err.code]);
  }
  // Too large for this machine: the estimate's own message says what it needs and what there is.
  if (err instanceof ModelTooLargeError)
    return new ApiError('refused', err.message, { cause: err });
  if (err instanceof ModelFormatError) return say('invalid-argument');
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return say('not-found');
  return say('internal');
}
