// The member's account on the Governance screen: create, import or unlock it; balance, voting
// power and delegation. The recovery phrase is shown once, at creation.
import { useState, type FormEvent } from 'react';
import { useApi, useEvent } from '../api.tsx';
import { ErrorNotice, Loading } from '../components/status.tsx';
import { formatTokens, shortHash } from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function WalletCard(props: { onChange: () => void }) {
  const api = useApi();
  const status = useCall(() => api['wallet.status']({}), [api]);
  const account = useCall(
    () => (status.data?.unlocked ? api['wallet.account']({}) : Promise.resolve(null)),
    [api, status.data?.unlocked],
  );
  const [passphrase, setPassphrase] = useState('');
  const [importing, setImporting] = useState(false);
  const [secret, setSecret] = useState('');
  const [mnemonic, setMnemonic] = useState<string | null>(null);
  const [delegateTo, setDelegateTo] = useState('');
  const action = useAction();
  const { busy, error } = action;
  useEvent('wallet.changed', () => {
    status.reload();
    props.onChange();
  });

  async function run(work: () => Promise<void>) {
    if (await action.run(work)) {
      status.reload();
      account.reload();
      props.onChange();
    }
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const s = status.data!;
    void run(async () => {
      if (s.exists) {
        await api['wallet.unlock']({ passphrase });
      } else if (importing) {
        const words = secret.trim().split(/\s+/).length;
        await api['wallet.import'](
          words > 1
            ? { kind: 'mnemonic', mnemonic: secret, passphrase }
            : { kind: 'privateKey', privateKey: secret, passphrase },
        );
        setSecret('');
      } else {
        const created = await api['wallet.create']({ passphrase });
        setMnemonic(created.mnemonic);
      }
      setPassphrase('');
    });
  }

  if (!status.data) {
    return (
      <section className="card">
        {status.error ? (
          <ErrorNotice error={status.error} retry={status.reload} />
        ) : (
          <Loading what="your wallet" />
        )}
      </section>
    );
  }
  const s = status.data;
  const a = account.data;
  const delegatedToSelf = a && a.delegate?.toLowerCase() === a.address.toLowerCase();

  return (
    <section className="card" aria-labelledby="wallet-title">
      <h2 id="wallet-title">Your wallet</h2>
      {mnemonic ? (
        <div className="notice warning" role="alert">
          <div>
            <p>
              <strong>Write down your recovery phrase now.</strong> It is shown only this once and
              is the only way to recover the account.
            </p>
            <p className="mnemonic">{mnemonic}</p>
          </div>
          <button type="button" onClick={() => setMnemonic(null)}>
            I wrote it down
          </button>
        </div>
      ) : null}
      {s.unlocked ? (
        <>
          <dl className="facts">
            <div>
              <dt>Address</dt>
              <dd>
                <code title={s.address ?? ''}>{s.address}</code>
              </dd>
            </div>
            {a ? (
              <>
                <div>
                  <dt>Balance</dt>
                  <dd data-testid="wallet-balance">{formatTokens(a.balance)} CMNS</dd>
                </div>
                <div>
                  <dt>Voting power</dt>
                  <dd data-testid="wallet-votes">{formatTokens(a.votes)} votes</dd>
                </div>
                <div>
                  <dt>Delegating to</dt>
                  <dd>
                    {a.delegate ? (
                      delegatedToSelf ? (
                        'yourself'
                      ) : (
                        <code title={a.delegate}>{shortHash(a.delegate, 4)}</code>
                      )
                    ) : (
                      'nobody — your tokens do not vote yet'
                    )}
                  </dd>
                </div>
                <div>
                  <dt>Gas</dt>
                  <dd>{formatTokens(a.gasBalance)} ETH</dd>
                </div>
              </>
            ) : null}
          </dl>
          <ErrorNotice error={account.error} retry={account.reload} />
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              void run(async () => {
                await api['wallet.delegate'](delegateTo.trim() ? { to: delegateTo.trim() } : {});
                setDelegateTo('');
              });
            }}
          >
            <label>
              Delegate votes to (empty: yourself)
              <input
                value={delegateTo}
                onChange={(e) => setDelegateTo(e.target.value)}
                placeholder="0x…"
                spellCheck={false}
              />
            </label>
            <button type="submit" disabled={busy}>
              {delegateTo.trim() ? 'Delegate' : 'Delegate to myself'}
            </button>
            <button
              type="button"
              onClick={() => void run(async () => void (await api['wallet.lock']({})))}
            >
              Lock wallet
            </button>
          </form>
        </>
      ) : (
        <form onSubmit={submit}>
          {s.exists ? (
            <p>
              Unlock <code>{s.address}</code> to vote.
            </p>
          ) : (
            <>
              <p>You need an account to vote. Create a new one, or import one you already have.</p>
              <div className="row" role="radiogroup" aria-label="New or existing account">
                <label className="inline">
                  <input type="radio" checked={!importing} onChange={() => setImporting(false)} />
                  Create a new account
                </label>
                <label className="inline">
                  <input type="radio" checked={importing} onChange={() => setImporting(true)} />
                  Import an account
                </label>
              </div>
              {importing ? (
                <label>
                  Recovery phrase or private key
                  <textarea
                    rows={2}
                    value={secret}
                    onChange={(e) => setSecret(e.target.value)}
                    spellCheck={false}
                    autoComplete="off"
                    required
                  />
                </label>
              ) : null}
            </>
          )}
          <label>
            {s.exists
              ? 'Passphrase'
              : 'Passphrase to encrypt it on this machine (at least 8 characters)'}
            <input
              type="password"
              value={passphrase}
              onChange={(e) => setPassphrase(e.target.value)}
              autoComplete={s.exists ? 'current-password' : 'new-password'}
              minLength={s.exists ? undefined : 8}
              required
            />
          </label>
          <button type="submit" className="primary" disabled={busy}>
            {s.exists ? 'Unlock wallet' : importing ? 'Import account' : 'Create account'}
          </button>
        </form>
      )}
      <ErrorNotice error={error} />
    </section>
  );
}
