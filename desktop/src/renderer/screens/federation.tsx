// Federation: the consent screen (the on-chain policy, the ε budget, exactly what is shared),
// then the contributor client's live status, rounds joined, ε spent against the budget and
// rewards to claim.
import { useState } from 'react';
import type { FederationPolicy } from '../../api/governance.ts';
import { useApi, useEvent } from '../api.tsx';
import { LineChart } from '../components/line-chart.tsx';
import { ProgressBar } from '../components/progress-bar.tsx';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import { POLICY_FIELDS, policyValue } from '../components/policy-fields.ts';
import { formatDate, formatNumber, formatTokens, shortHash } from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function FederationScreen() {
  const api = useApi();
  const consent = useCall(() => api['federation.consent']({}), [api]);
  const policy = useCall(() => api['governance.policy']({}), [api]);
  return (
    <>
      <h1>Federation</h1>
      <p className="lead">
        Help improve the shared model without sharing your data: your machine trains on your
        documents and sends only a clipped, noised update.
      </p>
      <PolicyCard
        policy={policy.data?.policy}
        version={policy.data?.version}
        error={policy.error}
        retry={policy.reload}
      />
      {consent.data ? (
        <ConsentCard consent={consent.data} onChange={consent.reload} />
      ) : consent.error ? (
        <ErrorNotice error={consent.error} retry={consent.reload} />
      ) : (
        <Loading what="your consent" />
      )}
      {consent.data?.granted ? <Contributor /> : null}
      <Privacy />
      <Rewards />
    </>
  );
}

function PolicyCard(props: {
  policy: FederationPolicy | undefined;
  version: number | undefined;
  error: unknown;
  retry: () => void;
}) {
  return (
    <section className="card" aria-labelledby="policy-title">
      <h2 id="policy-title">
        The policy in force{' '}
        {props.version !== undefined ? (
          <span className="meta">version {props.version}, on chain</span>
        ) : null}
      </h2>
      <ErrorNotice error={props.error} retry={props.retry} />
      {props.policy ? (
        <dl className="facts policy">
          {POLICY_FIELDS.map((f) => (
            <div key={f.key}>
              <dt>{f.label}</dt>
              <dd>
                {policyValue(f.key, props.policy![f.key])} <span className="meta">{f.explain}</span>
              </dd>
            </div>
          ))}
        </dl>
      ) : !props.error ? (
        <Loading what="the policy from the chain" />
      ) : null}
    </section>
  );
}

function ConsentCard(props: {
  consent: { granted: boolean; changedAt: string | null; documentIds: string[]; shares: string[] };
  onChange: () => void;
}) {
  const api = useApi();
  const docs = useCall(() => api['vault.listDocuments']({}).catch(() => null), [api]);
  const [chosen, setChosen] = useState<Set<string>>(new Set(props.consent.documentIds));
  const action = useAction();
  const { error } = action;

  async function set(granted: boolean) {
    const documentIds = granted ? [...chosen] : [];
    if (await action.run(() => api['federation.setConsent']({ granted, documentIds }))) {
      props.onChange();
    }
  }

  return (
    <section className="card consent" aria-labelledby="consent-title">
      <h2 id="consent-title">Your consent</h2>
      <p>If you join, this is everything that leaves your machine:</p>
      <ul>
        {props.consent.shares.map((s) => (
          <li key={s}>{s}</li>
        ))}
      </ul>
      <p>
        Your documents and chats are never sent. You can withdraw at any time; that stops at once.
      </p>
      {props.consent.granted ? (
        <>
          <p>
            <strong>You agreed</strong>
            {props.consent.changedAt ? ` on ${formatDate(props.consent.changedAt)}` : ''}, training
            on {props.consent.documentIds.length}{' '}
            {props.consent.documentIds.length === 1 ? 'document' : 'documents'}.
          </p>
          <button type="button" className="danger" onClick={() => void set(false)}>
            Withdraw consent
          </button>
        </>
      ) : (
        <>
          {docs.data === null ? (
            <p className="hint">Unlock your vault (My data) to choose documents to train on.</p>
          ) : docs.data && docs.data.length === 0 ? (
            <p className="hint">
              Import documents on My data first; training uses only those you pick.
            </p>
          ) : (
            <fieldset className="choices">
              <legend>Documents training may use</legend>
              {docs.data?.map((d) => (
                <label key={d.id} className="inline">
                  <input
                    type="checkbox"
                    checked={chosen.has(d.id)}
                    onChange={() =>
                      setChosen((s) => {
                        const next = new Set(s);
                        if (!next.delete(d.id)) next.add(d.id);
                        return next;
                      })
                    }
                  />
                  {d.name}
                </label>
              ))}
            </fieldset>
          )}
          <button
            type="button"
            className="primary"
            disabled={chosen.size === 0}
            onClick={() => void set(true)}
          >
            I agree: join federated training
          </button>
        </>
      )}
      <ErrorNotice error={error} />
    </section>
  );
}

function Contributor() {
  const api = useApi();
  const status = useCall(() => api['federation.status']({}), [api]);
  const rounds = useCall(() => api['federation.rounds']({}), [api]);
  const [phase, setPhase] = useState<{ phase: string; done: number; total: number } | null>(null);
  const action = useAction();
  const { error } = action;
  useEvent('federation.status', () => status.reload());
  useEvent('federation.progress', (p) => setPhase(p));
  useEvent('federation.round', () => {
    setPhase(null);
    rounds.reload();
    status.reload();
  });

  async function toggle(start: boolean) {
    await action.run(() => (start ? api['federation.start']({}) : api['federation.stop']({})));
    status.reload();
  }

  const s = status.data;
  return (
    <section className="card" aria-labelledby="contrib-title">
      <h2 id="contrib-title">Contributing</h2>
      <ErrorNotice error={error ?? status.error} retry={status.reload} />
      {s ? (
        <>
          <dl className="facts">
            <div>
              <dt>Connection</dt>
              <dd>
                <span className={`badge conn-${s.connection}`}>{s.connection}</span>
              </dd>
            </div>
            <div>
              <dt>Now</dt>
              <dd>
                {s.activity}
                {s.roundId !== null ? ` (round ${s.roundId})` : ''}
              </dd>
            </div>
            <div>
              <dt>Rounds joined</dt>
              <dd>{s.roundsJoined}</dd>
            </div>
            <div>
              <dt>Signed in as</dt>
              <dd>{s.address ? <code title={s.address}>{shortHash(s.address, 4)}</code> : '—'}</dd>
            </div>
          </dl>
          {s.detail ? <p className="hint">{s.detail}</p> : null}
          {s.declined ? (
            <div className="notice warning" role="status" data-testid="declined">
              <p>
                Round {s.declined.roundId} declined ({formatDate(s.declined.at)}):{' '}
                {s.declined.reason}.
              </p>
            </div>
          ) : null}
          {phase ? (
            <ProgressBar value={phase.done} max={phase.total} label={`Round ${phase.phase}`} />
          ) : null}
          <button
            type="button"
            className={s.running ? 'danger' : 'primary'}
            onClick={() => void toggle(!s.running)}
          >
            {s.running ? 'Stop contributing' : 'Start contributing'}
          </button>
        </>
      ) : !status.error ? (
        <Loading what="the contributor status" />
      ) : null}
      <h3>Rounds joined</h3>
      {rounds.data && rounds.data.length === 0 ? <p className="hint">None yet.</p> : null}
      {rounds.data && rounds.data.length > 0 ? (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Round</th>
              <th scope="col">Outcome</th>
              <th scope="col">Your ε after</th>
              <th scope="col">When</th>
            </tr>
          </thead>
          <tbody>
            {rounds.data.map((r) => (
              <tr key={`${r.roundId}-${r.at}`}>
                <td>{r.roundId}</td>
                <td title={r.detail}>{r.outcome}</td>
                <td>
                  {r.epsilon === null
                    ? '—'
                    : r.epsilon === 'none'
                      ? 'no DP guarantee'
                      : formatNumber(r.epsilon, 3)}
                </td>
                <td>{formatDate(r.at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

function Privacy() {
  const api = useApi();
  const ledger = useCall(() => api['federation.privacy']({}), [api]);
  useEvent('federation.round', () => ledger.reload());
  const l = ledger.data;
  // Rounds without noise have no finite ε: the chart stops before the first of them.
  const finite: { x: number; y: number }[] = [];
  for (const [i, e] of (l?.entries ?? []).entries()) {
    if (e.epsilon === 'none') break;
    finite.push({ x: i + 1, y: e.epsilon });
  }
  return (
    <section className="card" aria-labelledby="privacy-title">
      <h2 id="privacy-title">Your privacy budget</h2>
      <ErrorNotice error={ledger.error} retry={ledger.reload} />
      {l ? (
        <>
          {l.spent === 'none' ? (
            <p data-testid="privacy-spent">
              <strong>No DP guarantee</strong>: a round you joined added no noise, so your
              contributions have no ε bound (budget {formatNumber(l.budget, 3)}).
            </p>
          ) : (
            <p data-testid="privacy-spent">
              Spent <strong>ε = {formatNumber(l.spent, 3)}</strong> of {formatNumber(l.budget, 3)}{' '}
              (δ = {l.delta.toExponential(0)}); {formatNumber(l.remaining, 3)} left.
            </p>
          )}
          <ProgressBar
            value={l.spent === 'none' ? l.budget : Math.min(l.spent, l.budget)}
            max={l.budget}
            label="ε spent of budget"
          />
          <p className="hint">{l.accounting}</p>
          {l.entries.length ? (
            <LineChart
              title="ε spent against the budget"
              xLabel="rounds joined"
              yLabel="ε"
              series={[
                { name: 'spent', className: 'epsilon', points: [{ x: 0, y: 0 }, ...finite] },
              ]}
              limit={{ y: l.budget, label: `budget ${formatNumber(l.budget, 3)}` }}
            />
          ) : (
            <p className="hint">Nothing spent yet: you have not contributed to a round.</p>
          )}
        </>
      ) : !ledger.error ? (
        <Loading what="the privacy ledger" />
      ) : null}
    </section>
  );
}

function Rewards() {
  const api = useApi();
  const rewards = useCall(() => api['federation.rewards']({}), [api]);
  useEvent('federation.round', () => rewards.reload());
  useEvent('wallet.changed', () => rewards.reload());
  const action = useAction<number>();
  const { pending: busy, error } = action;
  const [done, setDone] = useState<string | null>(null);

  async function claim(roundId: number) {
    setDone(null);
    await action.run(async () => {
      const tx = await api['federation.claim']({ roundId });
      setDone(`Round ${roundId}'s reward claimed in block ${tx.blockNumber}.`);
    }, roundId);
    rewards.reload();
  }

  return (
    <section className="card" aria-labelledby="rewards-title">
      <h2 id="rewards-title">Rewards</h2>
      <ErrorNotice error={rewards.error} retry={rewards.reload} />
      {rewards.data && rewards.data.length === 0 ? (
        <Empty title="No rewards yet">
          <p className="hint">
            Each accepted round earns governance tokens, so contributors gain a voice.
          </p>
        </Empty>
      ) : null}
      {rewards.data && rewards.data.length > 0 ? (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Round</th>
              <th scope="col">Amount</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rewards.data.map((r) => (
              <tr key={r.roundId} data-testid={`reward-${r.roundId}`}>
                <td>{r.roundId}</td>
                <td>{r.amount ? `${formatTokens(r.amount)} CMNS` : '—'}</td>
                <td>{r.claimed ? 'claimed' : r.claimable ? 'ready to claim' : r.detail}</td>
                <td className="actions">
                  {r.claimable ? (
                    <button
                      type="button"
                      className="primary"
                      disabled={busy !== null}
                      onClick={() => void claim(r.roundId)}
                    >
                      Claim
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {done ? <p role="status">{done}</p> : null}
      <ErrorNotice error={error} />
    </section>
  );
}
