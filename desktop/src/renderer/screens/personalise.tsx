// Personalise: train a personal adapter on chosen documents, watching progress, loss and the
// time left; then switch it on or off for chat. The adapter never leaves this machine.
import { useState, type FormEvent } from 'react';
import type { TrainingProgress, TrainingStatus } from '../../api/training.ts';
import { useApi, useEvent } from '../api.tsx';
import { LineChart } from '../components/line-chart.tsx';
import { ProgressBar } from '../components/progress-bar.tsx';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import { VaultGate } from '../components/vault-gate.tsx';
import { formatDate, formatDuration, formatNumber, shortHash } from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function PersonaliseScreen() {
  return (
    <>
      <h1>Personalise</h1>
      <p className="lead">
        Teach the model your own style with a small personal adapter, trained here on documents you
        choose. It stays on this machine and is never shared.
      </p>
      <VaultGate>
        <Trainer />
      </VaultGate>
    </>
  );
}

const RUNNING: TrainingStatus['state'][] = ['preparing', 'running', 'paused', 'saving'];

function Trainer() {
  const api = useApi();
  const docs = useCall(() => api['vault.listDocuments']({}), [api]);
  const status = useCall(() => api['training.status']({}), [api]);
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const [steps, setSteps] = useState(100);
  const [losses, setLosses] = useState<{ runId: string; points: TrainingProgress[] }>({
    runId: '',
    points: [],
  });
  const [live, setLive] = useState<{ state: TrainingStatus['state']; error?: string } | null>(null);
  const action = useAction();
  const { error } = action;

  useEvent('training.progress', (p) => {
    setLosses((l) =>
      l.runId === p.runId
        ? { runId: p.runId, points: [...l.points, p] }
        : { runId: p.runId, points: [p] },
    );
  });
  useEvent('training.state', (s) => {
    setLive({ state: s.state, ...(s.error ? { error: s.error } : {}) });
    if (!RUNNING.includes(s.state)) status.reload();
  });
  useEvent('vault.changed', (e) => e.what === 'documents' && docs.reload());

  async function act(call: () => Promise<TrainingStatus>) {
    await action.run(call);
    status.reload();
  }

  function start(event: FormEvent) {
    event.preventDefault();
    setLosses({ runId: '', points: [] });
    setLive(null);
    void act(() => api['training.start']({ documentIds: [...chosen], steps }));
  }

  if (!status.data) {
    return status.error ? (
      <ErrorNotice error={status.error} retry={status.reload} />
    ) : (
      <Loading what="training status" />
    );
  }
  const state = live?.state ?? status.data.state;
  const running = RUNNING.includes(state);
  const progress = losses.points.at(-1) ?? status.data.progress;
  const adapter = status.data.adapter;
  const failure = live?.error ?? status.data.error;

  return (
    <>
      <section className="card" aria-labelledby="train-title">
        <h2 id="train-title">Train an adapter</h2>
        {docs.data && docs.data.length === 0 ? (
          <Empty title="No documents to train on">
            <p className="hint">Import some of your writing on the My data screen first.</p>
          </Empty>
        ) : null}
        {docs.data && docs.data.length > 0 ? (
          <form onSubmit={start}>
            <fieldset className="choices" disabled={running}>
              <legend>Documents to learn from</legend>
              {docs.data.map((d) => (
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
                  {d.name}{' '}
                  <span className="meta">({d.chars.toLocaleString('en-US')} characters)</span>
                </label>
              ))}
            </fieldset>
            <div className="row">
              <label className="narrow">
                Steps
                <input
                  type="number"
                  min={1}
                  max={100000}
                  value={steps}
                  onChange={(e) => setSteps(Math.max(1, Math.floor(Number(e.target.value) || 1)))}
                  disabled={running}
                />
              </label>
              <button type="submit" className="primary" disabled={running || chosen.size === 0}>
                Start training
              </button>
              {state === 'running' ? (
                <button type="button" onClick={() => void act(() => api['training.pause']({}))}>
                  Pause
                </button>
              ) : null}
              {state === 'paused' ? (
                <button type="button" onClick={() => void act(() => api['training.resume']({}))}>
                  Resume
                </button>
              ) : null}
              {running ? (
                <button
                  type="button"
                  className="danger"
                  onClick={() => void act(() => api['training.cancel']({}))}
                >
                  Cancel
                </button>
              ) : null}
            </div>
          </form>
        ) : null}
        {!docs.data && docs.loading ? <Loading what="documents" /> : null}
        <ErrorNotice error={error ?? docs.error} />
        {failure && state === 'failed' ? (
          <div className="notice error" role="alert">
            <p>Training failed: {failure}. Try fewer steps or other documents.</p>
          </div>
        ) : null}
      </section>

      {progress ? (
        <section className="card" aria-labelledby="progress-title">
          <h2 id="progress-title">
            Progress <span className={`badge state-${state}`}>{state}</span>
          </h2>
          <ProgressBar value={progress.step} max={progress.totalSteps} label="Training progress" />
          <dl className="facts">
            <div>
              <dt>Step</dt>
              <dd data-testid="training-step">
                {progress.step} / {progress.totalSteps}
              </dd>
            </div>
            <div>
              <dt>Loss</dt>
              <dd>{formatNumber(progress.loss, 4)}</dd>
            </div>
            <div>
              <dt>Speed</dt>
              <dd>{formatNumber(progress.tokensPerSec, 3)} tokens/s</dd>
            </div>
            <div>
              <dt>Time left</dt>
              <dd>{running ? formatDuration(progress.etaSec) : '—'}</dd>
            </div>
          </dl>
          {losses.points.length > 1 ? (
            <LineChart
              title="Training loss"
              xLabel="step"
              yLabel="loss"
              series={[
                {
                  name: 'loss',
                  className: 'loss',
                  points: losses.points.map((p) => ({ x: p.step, y: p.loss })),
                },
              ]}
            />
          ) : null}
        </section>
      ) : null}

      <section className="card" aria-labelledby="adapter-title">
        <h2 id="adapter-title">Your adapter</h2>
        {adapter ? (
          <>
            <dl className="facts">
              <div>
                <dt>Adapter</dt>
                <dd title={adapter.hash}>
                  <code>{shortHash(adapter.hash)}</code>
                </dd>
              </div>
              <div>
                <dt>Trained on</dt>
                <dd title={adapter.baseHash}>
                  <code>{shortHash(adapter.baseHash)}</code>
                  {adapter.carriedFrom ? (
                    <span className="hint" data-testid="adapter-carried">
                      {' '}
                      · carried over to the active version, on top of the community adapter
                    </span>
                  ) : null}
                </dd>
              </div>
              <div>
                <dt>Trained</dt>
                <dd>
                  {formatDate(adapter.createdAt)} · {adapter.steps} steps on {adapter.documents}{' '}
                  documents, rank {adapter.rank}
                </dd>
              </div>
              {adapter.heldOut ? (
                <div>
                  <dt>Held-out bits/char</dt>
                  <dd>
                    {formatNumber(adapter.heldOut.before, 3)} →{' '}
                    {formatNumber(adapter.heldOut.after, 3)}
                  </dd>
                </div>
              ) : null}
            </dl>
            <div className="row">
              <label className="inline">
                <input
                  type="checkbox"
                  checked={adapter.enabled}
                  onChange={(e) =>
                    void act(() => api['training.useAdapter']({ enabled: e.target.checked }))
                  }
                />
                Use in chat
              </label>
              <button
                type="button"
                className="danger"
                disabled={running}
                onClick={() => {
                  if (window.confirm('Delete your personal adapter?'))
                    void act(() => api['training.deleteAdapter']({}));
                }}
              >
                Delete adapter
              </button>
            </div>
          </>
        ) : status.data.adapterSetAside ? (
          <Empty title="Your adapter was set aside">
            <p className="hint" role="status">
              {status.data.adapterSetAside.reason}
            </p>
          </Empty>
        ) : (
          <Empty title="No adapter yet">
            <p className="hint">Train one above; it is layered on the active model version.</p>
          </Empty>
        )}
      </section>
    </>
  );
}
