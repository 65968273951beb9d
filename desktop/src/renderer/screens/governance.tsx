// Governance: proposals (what they would do — a model version with its lineage, metrics and ε,
// or a policy diff), their tallies, voting with a reason, queueing and executing when due, and
// proposing a registered candidate version.
import { useState } from 'react';
import {
  ADAPTER_RULES,
  AGGREGATION_RULES,
  LORA_TARGETS,
  type ActionView,
  type FederationPolicy,
  type GovernanceSettingsView,
  type ProposalView,
} from '../../api/governance.ts';
import { useApi, useEvent } from '../api.tsx';
import { POLICY_FIELDS, policyLabel, policyValue } from '../components/policy-fields.ts';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import {
  formatDate,
  formatDuration,
  formatEpsilon,
  formatNumber,
  formatTokens,
  share,
  shortHash,
} from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';
import { WalletCard } from './wallet-card.tsx';

export function GovernanceScreen() {
  const api = useApi();
  const proposals = useCall(() => api['governance.list']({}), [api]);
  const settings = useCall(() => api['governance.settings']({}), [api]);
  useEvent('governance.proposal', () => {
    proposals.reload();
    settings.reload();
  });
  const reloadAll = () => {
    proposals.reload();
    settings.reload();
  };
  return (
    <>
      <h1>Governance</h1>
      <p className="lead">
        Token holders decide which model version everyone runs and the privacy rules training must
        obey. Votes are counted on chain.
      </p>
      <WalletCard onChange={proposals.reload} />
      {settings.data ? <Rules settings={settings.data} /> : null}
      <Propose onProposed={reloadAll} />
      <ProposePolicy onProposed={reloadAll} />
      <section aria-labelledby="proposals-title">
        <h2 id="proposals-title">Proposals</h2>
        <ErrorNotice error={proposals.error} retry={proposals.reload} />
        {proposals.loading && !proposals.data ? <Loading what="proposals from the chain" /> : null}
        {proposals.data && proposals.data.length === 0 ? (
          <Empty title="No proposals yet">
            <p className="hint">
              When a training round publishes a candidate model, propose it below.
            </p>
          </Empty>
        ) : null}
        {proposals.data?.map((p) => (
          <Proposal
            key={p.id}
            proposal={p}
            clock={settings.data?.clock ?? 0}
            onChange={reloadAll}
          />
        ))}
      </section>
    </>
  );
}

function Rules(props: { settings: GovernanceSettingsView }) {
  const s = props.settings;
  return (
    <details className="card">
      <summary>How voting works here</summary>
      <dl className="facts">
        <div>
          <dt>Voting starts</dt>
          <dd>{formatDuration(s.votingDelay)} after a proposal</dd>
        </div>
        <div>
          <dt>Voting lasts</dt>
          <dd>{formatDuration(s.votingPeriod)}</dd>
        </div>
        <div>
          <dt>Quorum</dt>
          <dd>{s.quorumPercent}% of the supply</dd>
        </div>
        <div>
          <dt>To propose</dt>
          <dd>{formatTokens(s.proposalThreshold)} CMNS of voting power</dd>
        </div>
        <div>
          <dt>Timelock</dt>
          <dd>{formatDuration(s.timelockDelay)} before execution</dd>
        </div>
      </dl>
    </details>
  );
}

function Proposal(props: { proposal: ProposalView; clock: number; onChange: () => void }) {
  const api = useApi();
  const p = props.proposal;
  const [support, setSupport] = useState<'for' | 'against' | 'abstain'>('for');
  const [reason, setReason] = useState('');
  const action = useAction();
  const { busy, error } = action;
  const [done, setDone] = useState<string | null>(null);

  async function run(label: string, send: () => Promise<{ blockNumber: number }>) {
    setDone(null);
    await action.run(async () => {
      const tx = await send();
      setDone(`${label} in block ${tx.blockNumber}.`);
      props.onChange();
    });
  }

  const total = BigInt(p.votes.for) + BigInt(p.votes.against) + BigInt(p.votes.abstain);
  const scale = total > 0n ? total.toString() : '1';
  const due = p.state === 'queued' && p.eta !== null && props.clock >= p.eta;
  const title = p.description.split('\n')[0] || `Proposal ${shortHash(p.id)}`;

  return (
    <article className="card proposal" aria-labelledby={`p-${p.id}`} data-proposal={p.id}>
      <header className="row spread">
        <h3 id={`p-${p.id}`}>{title}</h3>
        <span className={`badge state-${p.state}`}>{p.state}</span>
      </header>
      <p className="meta">
        #{shortHash(p.id)} by <code title={p.proposer}>{shortHash(p.proposer, 4)}</code> · voting
        ends {formatDate(p.deadline)}
        {p.eta ? ` · executable from ${formatDate(p.eta)}` : ''}
      </p>
      {p.actions.map((a, i) => (
        <Action key={i} action={a} />
      ))}
      <div className="tally" data-testid="tally">
        {(['for', 'against', 'abstain'] as const).map((k) => (
          <div key={k} className={`tally-row ${k}`}>
            <span className="tally-label">{k}</span>
            <span className="tally-bar" aria-hidden="true">
              <span style={{ width: `${(share(p.votes[k], scale) * 100).toFixed(1)}%` }} />
            </span>
            <span className="tally-value" data-testid={`votes-${k}`}>
              {formatTokens(p.votes[k])}
            </span>
          </div>
        ))}
        {p.quorum ? <p className="meta">Quorum: {formatTokens(p.quorum)} (for + abstain)</p> : null}
      </div>
      {p.state === 'active' && p.hasVoted === false ? (
        <form
          className="vote"
          onSubmit={(e) => {
            e.preventDefault();
            void run('Vote counted', () =>
              api['governance.vote']({
                id: p.id,
                support,
                ...(reason.trim() ? { reason: reason.trim() } : {}),
              }),
            );
          }}
        >
          <fieldset className="row">
            <legend>Your vote</legend>
            {(['for', 'against', 'abstain'] as const).map((k) => (
              <label key={k} className="inline">
                <input
                  type="radio"
                  name={`support-${p.id}`}
                  checked={support === k}
                  onChange={() => setSupport(k)}
                />
                {k}
              </label>
            ))}
          </fieldset>
          <label>
            Reason (optional, public)
            <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={2000} />
          </label>
          <button type="submit" className="primary" disabled={busy}>
            Cast vote
          </button>
        </form>
      ) : null}
      {p.state === 'active' && p.hasVoted === null ? (
        <p className="hint">Unlock your wallet above to vote.</p>
      ) : null}
      {p.hasVoted ? <p className="hint">You have voted on this proposal.</p> : null}
      {p.state === 'succeeded' ? (
        <button
          type="button"
          className="primary"
          disabled={busy}
          onClick={() => void run('Queued', () => api['governance.queue']({ id: p.id }))}
        >
          Queue for execution
        </button>
      ) : null}
      {p.state === 'queued' ? (
        due ? (
          <button
            type="button"
            className="primary"
            disabled={busy}
            onClick={() => void run('Executed', () => api['governance.execute']({ id: p.id }))}
          >
            Execute
          </button>
        ) : (
          <p className="hint">
            Executable after the timelock{p.eta ? `, ${formatDate(p.eta)}` : ''}.
          </p>
        )
      ) : null}
      {done ? <p role="status">{done}</p> : null}
      <ErrorNotice error={error} />
    </article>
  );
}

function Action(props: { action: ActionView }) {
  const a = props.action;
  if (a.kind === 'activate-model') {
    const v = a.version;
    return (
      <div className="action">
        <p>
          <strong>Make model version</strong>{' '}
          <code title={a.contentHash}>{shortHash(a.contentHash)}</code>{' '}
          <strong>active for everyone</strong>
        </p>
        {v ? (
          <dl className="facts">
            <div>
              <dt>Held-out bits/char</dt>
              <dd>{formatNumber(v.valBpc, 4)}</dd>
            </div>
            <div>
              <dt>Privacy cost</dt>
              <dd>
                {v.epsilon === 'none'
                  ? 'no DP guarantee (trained without noise)'
                  : `ε = ${formatNumber(v.epsilon, 3)}, δ = ${v.delta ? v.delta.toExponential(0) : '0'}`}
              </dd>
            </div>
            <div>
              <dt>Round</dt>
              <dd>{v.roundId}</dd>
            </div>
            <div>
              <dt>Lineage</dt>
              <dd className="lineage">
                {v.lineage.map((h, i) => (
                  <span key={h}>
                    {i > 0 ? ' ← ' : ''}
                    <code title={h}>{shortHash(h)}</code>
                  </span>
                ))}
              </dd>
            </div>
          </dl>
        ) : (
          <p className="hint">
            This version is not in the registry; voting for it cannot activate it.
          </p>
        )}
      </div>
    );
  }
  if (a.kind === 'record-base-model') {
    return (
      <div className="action">
        <p>
          <strong>Record the base model</strong> {a.name}
        </p>
        <dl className="facts">
          <div>
            <dt>Identity</dt>
            <dd>
              <code title={a.identity}>{shortHash(a.identity)}</code>
            </dd>
          </div>
          <div>
            <dt>Format</dt>
            <dd>{a.format}</dd>
          </div>
          <div>
            <dt>Licence</dt>
            <dd>{a.licence}</dd>
          </div>
        </dl>
      </div>
    );
  }
  if (a.kind === 'set-base-model') {
    return (
      <div className="action">
        <p>
          <strong>Make</strong> {a.name ?? 'it'} (
          <code title={a.identity}>{shortHash(a.identity)}</code>){' '}
          <strong>the community's base model</strong>
        </p>
      </div>
    );
  }
  if (a.kind === 'set-policy') {
    return (
      <div className="action">
        <p>
          <strong>Change the federation policy</strong>
        </p>
        <table className="table diff">
          <thead>
            <tr>
              <th scope="col">Rule</th>
              <th scope="col">Now</th>
              <th scope="col">Proposed</th>
            </tr>
          </thead>
          <tbody>
            {a.changes.map((c) => (
              <tr key={c.field}>
                <td title={c.field}>{policyLabel(c.field)}</td>
                <td className="from">{policyValue(c.field, c.from)}</td>
                <td className="to">{policyValue(c.field, c.to)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    );
  }
  return (
    <div className="action">
      <p>
        <strong>Call</strong> {a.contract ?? <code>{a.target}</code>}
        {a.function ? `.${a.function}` : ''}({a.args.join(', ')})
      </p>
    </div>
  );
}

function Propose(props: { onProposed: () => void }) {
  const api = useApi();
  const models = useCall(() => api['models.list']({}), [api]);
  const [hash, setHash] = useState('');
  const [description, setDescription] = useState('');
  const action = useAction();
  const { busy, error } = action;
  const [done, setDone] = useState<string | null>(null);
  const candidates = models.data?.versions.filter((v) => !v.active) ?? [];

  async function propose() {
    setDone(null);
    await action.run(async () => {
      const { id } = await api['governance.proposeActivation']({
        contentHash: hash,
        ...(description.trim() ? { description: description.trim() } : {}),
      });
      setDone(`Proposed (#${shortHash(id)}).`);
      setDescription('');
      props.onProposed();
    });
  }

  return (
    <details className="card">
      <summary>Propose a model version</summary>
      <ErrorNotice error={models.error} retry={models.reload} />
      {models.data && candidates.length === 0 ? (
        <p className="hint">
          Every registered version is already active; a training round publishes new candidates.
        </p>
      ) : null}
      {candidates.length > 0 ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void propose();
          }}
        >
          <label>
            Candidate
            <select value={hash} onChange={(e) => setHash(e.target.value)} required>
              <option value="">Choose a registered version…</option>
              {candidates.map((v) => (
                <option key={v.contentHash} value={v.contentHash}>
                  {shortHash(v.contentHash)} · round {v.roundId} · {formatNumber(v.valBpc, 4)}{' '}
                  bits/char · {formatEpsilon(v.epsilon)}
                </option>
              ))}
            </select>
          </label>
          <label>
            Why (the first line is the title)
            <textarea
              rows={3}
              value={description}
              onChange={(e) => setDescription(e.target.value)}
            />
          </label>
          <button type="submit" className="primary" disabled={busy || !hash}>
            Propose
          </button>
        </form>
      ) : null}
      {done ? <p role="status">{done}</p> : null}
      <ErrorNotice error={error} />
    </details>
  );
}

/** Proposes changing one policy field; the core checks it against the contract's ranges. */
function ProposePolicy(props: { onProposed: () => void }) {
  const api = useApi();
  const policy = useCall(() => api['governance.policy']({}), [api]);
  const [field, setField] = useState<keyof FederationPolicy>('epsilonBudget');
  const [value, setValue] = useState('');
  const [description, setDescription] = useState('');
  const action = useAction();
  const { busy, error } = action;
  const [done, setDone] = useState<string | null>(null);
  const now = policy.data?.policy[field];
  // The adapter is several values: rule (in `value`), rank, α and the target projections.
  const [rank, setRank] = useState('8');
  const [alpha, setAlpha] = useState('16');
  const [targets, setTargets] = useState<string[]>(['q_proj', 'v_proj']);

  function parsed(): FederationPolicy[keyof FederationPolicy] {
    if (field === 'adapter') {
      const rule = value as FederationPolicy['adapter']['rule'];
      if (rule === 'full-delta') return { rule, rank: 0, alpha: 0, targets: [] };
      const r = Number(rank);
      const a = Number(alpha);
      if (!Number.isInteger(r) || r < 1) throw new Error('Enter a whole rank of at least 1.');
      if (!(a > 0)) throw new Error('Enter an α above 0.');
      if (targets.length === 0) throw new Error('Choose at least one projection.');
      return {
        rule,
        rank: r,
        alpha: a,
        targets: LORA_TARGETS.filter((t) => targets.includes(t)),
      };
    }
    if (typeof now === 'boolean') return value === 'on';
    if (field === 'aggregationRule') return value as FederationPolicy['aggregationRule'];
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new Error(`Enter a number for ${policyLabel(field)}.`);
    return n;
  }

  async function propose() {
    setDone(null);
    await action.run(async () => {
      const { id } = await api['governance.proposePolicy']({
        changes: { [field]: parsed() },
        ...(description.trim() ? { description: description.trim() } : {}),
      });
      setDone(`Proposed (#${shortHash(id)}).`);
      setDescription('');
      setValue('');
      props.onProposed();
    });
  }

  return (
    <details className="card">
      <summary>Propose a policy change</summary>
      <ErrorNotice error={policy.error} retry={policy.reload} />
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void propose();
        }}
      >
        <label>
          Rule
          <select
            value={field}
            onChange={(e) => {
              setField(e.target.value as keyof FederationPolicy);
              setValue('');
            }}
          >
            {POLICY_FIELDS.map((f) => (
              <option key={f.key} value={f.key}>
                {f.label}
              </option>
            ))}
          </select>
        </label>
        {now !== undefined ? (
          <p className="hint">
            Now: {policyValue(field, now)}. {POLICY_FIELDS.find((f) => f.key === field)?.explain}
            {field === 'clipTargetQuantile' ? '; 0 turns adaptive clipping off' : ''}
            {field === 'secAggNumShares' ? '; 0 lets the coordinator choose, otherwise odd' : ''}.
          </p>
        ) : null}
        <label>
          Proposed value
          {typeof now === 'boolean' ? (
            <select value={value} onChange={(e) => setValue(e.target.value)} required>
              <option value="">Choose…</option>
              <option value="on">on</option>
              <option value="off">off</option>
            </select>
          ) : field === 'adapter' ? (
            <select value={value} onChange={(e) => setValue(e.target.value)} required>
              <option value="">Choose…</option>
              {ADAPTER_RULES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          ) : field === 'aggregationRule' ? (
            <select value={value} onChange={(e) => setValue(e.target.value)} required>
              <option value="">Choose…</option>
              {AGGREGATION_RULES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          ) : (
            <input
              inputMode="decimal"
              value={value}
              onChange={(e) => setValue(e.target.value)}
              required
            />
          )}
        </label>
        {field === 'adapter' && value !== '' && value !== 'full-delta' ? (
          <fieldset>
            <legend>Adapter shape</legend>
            <label>
              Rank
              <input inputMode="numeric" value={rank} onChange={(e) => setRank(e.target.value)} />
            </label>
            <label>
              α
              <input inputMode="decimal" value={alpha} onChange={(e) => setAlpha(e.target.value)} />
            </label>
            {LORA_TARGETS.map((t) => (
              <label key={t} className="inline">
                <input
                  type="checkbox"
                  checked={targets.includes(t)}
                  onChange={(e) =>
                    setTargets(e.target.checked ? [...targets, t] : targets.filter((x) => x !== t))
                  }
                />
                {t}
              </label>
            ))}
          </fieldset>
        ) : null}
        <label>
          Why (the first line is the title)
          <textarea rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
        <button type="submit" className="primary" disabled={busy || !value}>
          Propose
        </button>
      </form>
      {done ? <p role="status">{done}</p> : null}
      <ErrorNotice error={error} />
    </details>
  );
}
