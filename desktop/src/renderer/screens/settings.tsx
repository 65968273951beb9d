// Settings: endpoints and deployment, the compute backend (and why faster ones were passed
// over), the data folder, connectivity, and resetting to defaults.
import { useEffect, useState, type FormEvent } from 'react';
import {
  BACKEND_PREFERENCES,
  type BackendPreference,
  type SettingsView,
} from '../../api/settings.ts';
import { useApi, useEvent } from '../api.tsx';
import { ErrorNotice, Loading } from '../components/status.tsx';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function SettingsScreen() {
  const api = useApi();
  const settings = useCall(() => api['settings.get']({}), [api]);
  const info = useCall(() => api['system.info']({}), [api]);
  const backend = useCall(() => api['system.backend']({}), [api]);
  const connectivity = useCall(() => api['system.connectivity']({}), [api]);
  useEvent('settings.changed', () => {
    settings.reload();
    connectivity.reload();
  });

  return (
    <>
      <h1>Settings</h1>
      {settings.data ? (
        <Endpoints
          value={settings.data}
          onSaved={() => {
            settings.reload();
            connectivity.reload();
          }}
        />
      ) : settings.error ? (
        <ErrorNotice error={settings.error} retry={settings.reload} />
      ) : (
        <Loading what="settings" />
      )}
      <section className="card" aria-labelledby="conn-title">
        <div className="row spread">
          <h2 id="conn-title">Connections</h2>
          <button type="button" onClick={connectivity.reload} disabled={connectivity.loading}>
            Check again
          </button>
        </div>
        <ErrorNotice error={connectivity.error} />
        {connectivity.data ? (
          <dl className="facts">
            <div>
              <dt>Chain</dt>
              <dd>
                {connectivity.data.chain.ok ? (
                  <span className="badge ok">
                    chain {connectivity.data.chain.chainId}, block {connectivity.data.chain.block}
                  </span>
                ) : (
                  <span className="badge warn">{connectivity.data.chain.error}</span>
                )}
              </dd>
            </div>
            <div>
              <dt>Coordinator</dt>
              <dd>
                {connectivity.data.coordinator.ok ? (
                  <span className="badge ok">answering</span>
                ) : (
                  <span className="badge warn">{connectivity.data.coordinator.error}</span>
                )}
              </dd>
            </div>
          </dl>
        ) : connectivity.loading ? (
          <Loading what="connections" />
        ) : null}
      </section>
      <section className="card" aria-labelledby="backend-title">
        <h2 id="backend-title">Compute</h2>
        <ErrorNotice error={backend.error} retry={backend.reload} />
        {backend.data ? (
          <>
            <dl className="facts">
              <div>
                <dt>Backend</dt>
                <dd>
                  <span className="badge">{backend.data.backend}</span> (tfjs{' '}
                  {backend.data.tfjsVersion}
                  {backend.data.simd !== null
                    ? `, SIMD ${backend.data.simd ? 'on' : 'off'}`
                    : ''}, {backend.data.threads}{' '}
                  {backend.data.threads === 1 ? 'thread' : 'threads'})
                </dd>
              </div>
              <div>
                <dt>GPU</dt>
                <dd>{backend.data.gpu ? JSON.stringify(backend.data.gpu) : 'none in use'}</dd>
              </div>
              <div>
                <dt>Machine</dt>
                <dd>
                  {backend.data.machine.cpu} · {backend.data.machine.cores} cores ·{' '}
                  {backend.data.machine.memoryGiB} GiB · {backend.data.machine.platform}
                </dd>
              </div>
            </dl>
            {backend.data.skipped.length ? (
              <>
                <h3>Faster backends passed over</h3>
                <ul>
                  {backend.data.skipped.map((s) => (
                    <li key={s.backend}>
                      <strong>{s.backend}</strong>: {s.reason}
                    </li>
                  ))}
                </ul>
              </>
            ) : null}
          </>
        ) : !backend.error ? (
          <Loading what="the backend report" />
        ) : null}
      </section>
      <section className="card" aria-labelledby="about-title">
        <h2 id="about-title">This installation</h2>
        <ErrorNotice error={info.error} retry={info.reload} />
        {info.data ? (
          <dl className="facts">
            <div>
              <dt>Data folder</dt>
              <dd>
                <code>{info.data.dataDir}</code>
              </dd>
            </div>
            <div>
              <dt>Running as</dt>
              <dd>
                {info.data.mode === 'electron'
                  ? 'desktop app'
                  : info.data.mode === 'web'
                    ? 'web page served by commons-desktop'
                    : info.data.mode}
              </dd>
            </div>
            <div>
              <dt>Versions</dt>
              <dd>
                {info.data.name} {info.data.version} · Node {info.data.versions.node} · tfjs{' '}
                {info.data.versions.tfjs}
                {info.data.versions.electron ? ` · Electron ${info.data.versions.electron}` : ''}
              </dd>
            </div>
          </dl>
        ) : null}
      </section>
    </>
  );
}

function Endpoints(props: { value: SettingsView; onSaved: () => void }) {
  const api = useApi();
  const [coordinatorUrl, setCoordinatorUrl] = useState(props.value.coordinatorUrl);
  const [rpcUrl, setRpcUrl] = useState(props.value.rpcUrl);
  const [addresses, setAddresses] = useState(addressesText(props.value.addresses));
  const [backend, setBackend] = useState(props.value.backend);
  const action = useAction();
  const { error } = action;
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    setCoordinatorUrl(props.value.coordinatorUrl);
    setRpcUrl(props.value.rpcUrl);
    setAddresses(addressesText(props.value.addresses));
    setBackend(props.value.backend);
  }, [props.value]);

  async function save(event: FormEvent) {
    event.preventDefault();
    setSaved(false);
    const updated = await action.run(async () => {
      const text = addresses.trim();
      await api['settings.update']({
        coordinatorUrl,
        rpcUrl,
        backend,
        addresses: text === '' ? null : text.startsWith('{') ? parseAddresses(text) : text,
      });
    });
    if (updated) {
      setSaved(true);
      props.onSaved();
    }
  }

  async function reset() {
    if (
      !window.confirm('Restore the default endpoints and backend? Your vault and wallet are kept.')
    )
      return;
    if (await action.run(() => api['settings.reset']({}))) props.onSaved();
  }

  return (
    <section className="card" aria-labelledby="endpoints-title">
      <h2 id="endpoints-title">Endpoints</h2>
      <form onSubmit={save} className="stack">
        <label>
          Coordinator URL
          <input
            type="url"
            value={coordinatorUrl}
            onChange={(e) => setCoordinatorUrl(e.target.value)}
            required
          />
        </label>
        <label>
          Chain RPC URL
          <input type="url" value={rpcUrl} onChange={(e) => setRpcUrl(e.target.value)} required />
        </label>
        <label>
          Deployment addresses (path of an addresses file, or its JSON)
          <textarea
            rows={2}
            value={addresses}
            onChange={(e) => setAddresses(e.target.value)}
            spellCheck={false}
          />
        </label>
        <label>
          Compute backend
          <select value={backend} onChange={(e) => setBackend(e.target.value as BackendPreference)}>
            {BACKEND_PREFERENCES.map((b) => (
              <option key={b} value={b}>
                {b === 'auto' ? 'best available (auto)' : b}
              </option>
            ))}
          </select>
        </label>
        <div className="row">
          <button type="submit" className="primary">
            Save
          </button>
          <button type="button" className="danger" onClick={() => void reset()}>
            Reset to defaults
          </button>
          {saved ? <span role="status">Saved.</span> : null}
        </div>
      </form>
      <ErrorNotice error={error} />
    </section>
  );
}

function addressesText(value: SettingsView['addresses']): string {
  if (value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Pasted addresses JSON; the core checks its fields, this only says when it is not JSON. */
function parseAddresses(text: string): never {
  try {
    return JSON.parse(text) as never;
  } catch {
    throw new Error('The addresses are not valid JSON; paste the file path instead.');
  }
}
