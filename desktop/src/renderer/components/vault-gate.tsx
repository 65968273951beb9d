// Screens that read the vault show their content only once it is unlocked; until then they
// offer to create it (first run) or unlock it, whichever applies, and to rebuild its index from
// the records when unlocking found the index missing or damaged.
import { useState, type FormEvent, type ReactNode } from 'react';
import { useApi, useEvent } from '../api.tsx';
import { errorCode } from '../errors.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';
import { ErrorNotice, Loading } from './status.tsx';

export function VaultGate(props: { children: ReactNode }) {
  const api = useApi();
  const status = useCall(() => api['vault.status']({}), [api]);
  useEvent('vault.changed', (e) => e.what === 'status' && status.reload());
  const [passphrase, setPassphrase] = useState('');
  const action = useAction();
  const { busy, error } = action;
  const [choice, setChoice] = useState<'keychain' | 'passphrase'>('keychain');

  if (!status.data) {
    return status.error ? (
      <ErrorNotice error={status.error} retry={status.reload} />
    ) : (
      <Loading what="your vault" />
    );
  }
  if (status.data.unlocked) return <>{props.children}</>;

  const creating = !status.data.initialized;
  const canChoose = creating && status.data.keychainAvailable;
  const needsPassphrase = creating
    ? !status.data.keychainAvailable || choice === 'passphrase'
    : status.data.protection === 'passphrase';

  async function submit(event: FormEvent, protection: 'keychain' | 'passphrase') {
    event.preventDefault();
    const done = await action.run(() =>
      creating
        ? api['vault.setup'](
            protection === 'keychain' ? { protection } : { protection, passphrase },
          )
        : api['vault.unlock'](needsPassphrase ? { passphrase } : {}),
    );
    if (done) {
      setPassphrase('');
      status.reload();
    }
  }

  // The core refuses to unlock over a missing or damaged index rather than lose the records.
  const indexDamaged = !creating && errorCode(error) === 'integrity';

  async function rebuild() {
    if (await action.run(() => api['vault.rebuildIndex'](needsPassphrase ? { passphrase } : {}))) {
      setPassphrase('');
      status.reload();
    }
  }

  return (
    <section className="card gate" aria-labelledby="vault-gate-title">
      <h2 id="vault-gate-title">{creating ? 'Create your vault' : 'Unlock your vault'}</h2>
      <p>
        {creating
          ? 'Your chats and documents are kept encrypted on this machine. Choose how the key is protected.'
          : 'Your chats and documents are encrypted. Unlock the vault to see them.'}
      </p>
      <form onSubmit={(e) => void submit(e, needsPassphrase ? 'passphrase' : 'keychain')}>
        {canChoose ? (
          <fieldset className="choices">
            <legend>Protect the key with</legend>
            <label className="inline">
              <input
                type="radio"
                name="protection"
                checked={choice === 'keychain'}
                onChange={() => setChoice('keychain')}
              />
              the system keychain (nothing to remember)
            </label>
            <label className="inline">
              <input
                type="radio"
                name="protection"
                checked={choice === 'passphrase'}
                onChange={() => setChoice('passphrase')}
              />
              a passphrase
            </label>
          </fieldset>
        ) : null}
        {needsPassphrase ? (
          <label>
            {creating ? 'New passphrase (at least 8 characters)' : 'Passphrase'}
            <input
              type="password"
              autoComplete={creating ? 'new-password' : 'current-password'}
              value={passphrase}
              onChange={(e) => setPassphrase(e.target.value)}
              minLength={creating ? 8 : undefined}
              required
              autoFocus
            />
          </label>
        ) : (
          <p className="hint">
            {creating
              ? "The key will be protected by your system's keychain: nothing to remember."
              : "The key is protected by your system's keychain."}
          </p>
        )}
        <div className="row">
          <button type="submit" className="primary" disabled={busy}>
            {creating ? 'Create vault' : 'Unlock'}
          </button>
        </div>
      </form>
      {creating && needsPassphrase ? (
        <p className="hint">
          There is no way to recover the vault without this passphrase. Write it down somewhere
          safe.
        </p>
      ) : null}
      <ErrorNotice error={error} />
      {indexDamaged ? (
        <div className="row">
          <button type="button" disabled={busy} onClick={() => void rebuild()}>
            Rebuild the index from the records
          </button>
        </div>
      ) : null}
    </section>
  );
}
