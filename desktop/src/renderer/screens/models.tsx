// Models: every registered version, the lineage tree, which one is active, and whether this
// machine holds a copy that matches the hash on chain; and the member's own open-weights library
// (model-library.tsx).
import { useState } from 'react';
import type { ModelVersionView } from '../../api/models.ts';
import { useApi, useEvent } from '../api.tsx';
import { ProgressBar } from '../components/progress-bar.tsx';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import { formatBytes, formatDate, formatEpsilon, formatNumber, shortHash } from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';
import { ModelLibrarySection } from './model-library.tsx';

export function ModelsScreen() {
  const api = useApi();
  const list = useCall(() => api['models.list']({}), [api]);
  const [progress, setProgress] = useState<Record<string, { done: number; total: number }>>({});
  const action = useAction<string>();
  const { pending: busy, error } = action;
  useEvent('models.activated', () => list.reload());
  useEvent('models.progress', (p) => setProgress((all) => ({ ...all, [p.hash]: p })));

  async function run(hash: string, work: () => Promise<unknown>) {
    await action.run(work, hash);
    list.reload();
  }

  const versions = list.data?.versions ?? [];
  const byHash = new Map(versions.map((v) => [v.contentHash, v]));
  const roots = versions.filter((v) => !v.parentHash || !byHash.has(v.parentHash));

  function node(v: ModelVersionView) {
    const p = progress[v.contentHash];
    return (
      <li key={v.contentHash}>
        <div className={`version${v.active ? ' active' : ''}`}>
          <div className="row spread">
            <span>
              <code title={v.contentHash}>{shortHash(v.contentHash)}</code>
              {v.active ? <span className="badge state-active">active</span> : null}
              <span
                className={`badge ${v.local.verified ? 'ok' : v.local.downloaded ? 'warn' : ''}`}
              >
                {v.local.downloaded
                  ? v.local.verified
                    ? 'verified copy'
                    : 'copy not verified'
                  : 'not downloaded'}
              </span>
            </span>
            <span className="row">
              {v.local.downloaded ? (
                <>
                  <button
                    type="button"
                    disabled={busy !== null}
                    onClick={() =>
                      void run(v.contentHash, () => api['models.verify']({ hash: v.contentHash }))
                    }
                  >
                    Verify
                  </button>
                  {!v.active ? (
                    <button
                      type="button"
                      disabled={busy !== null}
                      onClick={() =>
                        void run(v.contentHash, () => api['models.remove']({ hash: v.contentHash }))
                      }
                    >
                      Remove copy
                    </button>
                  ) : null}
                </>
              ) : (
                <button
                  type="button"
                  disabled={busy !== null}
                  onClick={() =>
                    void run(v.contentHash, () => api['models.download']({ hash: v.contentHash }))
                  }
                >
                  Download
                </button>
              )}
            </span>
          </div>
          <p className="meta">
            round {v.roundId} ·{' '}
            {v.valBpc > 0
              ? `${formatNumber(v.valBpc, 4)} bits/char held out`
              : 'no held-out score on chain'}{' '}
            · {formatEpsilon(v.epsilon)} · registered {formatDate(v.registeredAt)} by{' '}
            <code title={v.registrant}>{shortHash(v.registrant, 4)}</code>
            {v.local.bytes ? ` · ${formatBytes(v.local.bytes)} on disk` : ''}
          </p>
          <p className="meta" data-testid="version-composition">
            {v.adapterHash ? (
              <>
                base <code title={v.baseHash}>{shortHash(v.baseHash)}</code> + adapter{' '}
                <code title={v.adapterHash}>{shortHash(v.adapterHash)}</code>
                {v.local.downloaded || !v.parentHash || !byHash.get(v.parentHash)?.local.downloaded
                  ? ''
                  : ' · activating downloads only the adapter'}
              </>
            ) : (
              'full model (its own base)'
            )}
          </p>
          {busy === v.contentHash && p ? (
            <ProgressBar
              value={p.done}
              max={p.total}
              label={`Downloading ${shortHash(v.contentHash)}`}
            />
          ) : null}
        </div>
        {v.children.length ? (
          <ul className="tree">
            {v.children
              .map((c) => byHash.get(c))
              .filter((c) => c !== undefined)
              .map(node)}
          </ul>
        ) : null}
      </li>
    );
  }

  return (
    <>
      <h1>Models</h1>
      <p className="lead">
        Every version the community registered on chain, from genesis down. A copy is only used when
        its sha256 matches the registered hash.
      </p>
      <ErrorNotice error={error ?? list.error} retry={list.reload} />
      {list.loading && !list.data ? <Loading what="model versions from the chain" /> : null}
      {list.data && versions.length === 0 ? <Empty title="No versions registered" /> : null}
      {versions.length ? (
        <section className="card" aria-labelledby="lineage-title">
          <h2 id="lineage-title">Lineage</h2>
          <ul className="tree root">{roots.map(node)}</ul>
        </section>
      ) : null}
      <ModelLibrarySection />
    </>
  );
}
