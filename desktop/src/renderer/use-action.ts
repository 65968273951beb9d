// Running something the member asked for (a button, a form): while it runs the control is busy,
// and if it fails the error is kept for the screen to show. `run` never throws, so what must
// happen however the action ended (reloading a list) simply follows the `await`.
import { useCallback, useState } from 'react';

export interface Action<K> {
  /** The key of the run in flight (which row's button), or null when idle. */
  pending: K | null;
  busy: boolean;
  /** What the last run threw, until the next run starts. */
  error: unknown;
  setError: (error: unknown) => void;
  /** Runs `work`, marked by `key`; resolves to whether it succeeded. */
  run: (work: () => Promise<unknown>, key?: K) => Promise<boolean>;
}

export function useAction<K = true>(): Action<K> {
  const [pending, setPending] = useState<K | null>(null);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async (work: () => Promise<unknown>, key?: K): Promise<boolean> => {
    setPending(key ?? (true as K));
    setError(null);
    try {
      await work();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setPending(null);
    }
  }, []);
  return { pending, busy: pending !== null, error, setError, run };
}
