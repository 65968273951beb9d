// What to tell the member for each error code: the core's message says what happened; this
// adds what to do about it when the message alone might not.
import { errorMessage } from '@commons/shared/errors';
import { ApiError } from '../api/define.ts';

const ADVICE: Partial<Record<ApiError['code'], string>> = {
  locked: 'Unlock it first, then try again.',
  'wrong-passphrase': 'Check the passphrase and try again.',
  unavailable: 'Check the endpoints in Settings and that the chain and coordinator are running.',
  integrity: 'The file did not match its registered hash; it was not used. Download it again.',
  internal: '',
};

export function describeError(error: unknown): { title: string; advice: string } {
  if (error instanceof ApiError) {
    return { title: error.message, advice: ADVICE[error.code] ?? '' };
  }
  return {
    title: errorMessage(error),
    advice: 'Try again; if it keeps happening, restart Commons.',
  };
}

export function errorCode(error: unknown): ApiError['code'] | null {
  return error instanceof ApiError ? error.code : null;
}
