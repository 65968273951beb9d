// The member's open-weights models (the same library as `commons model`): what each is, what it
// needs to run here, pulling from the hub or importing from disk, removing, and proposing one as
// the community's base model.
import { useState } from 'react';
import type { LibraryModelView } from '../../api/models.ts';
import { useApi, useEvent } from '../api.tsx';
import { ProgressBar } from '../components/progress-bar.tsx';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import { formatBytes, formatNumber, shortHash } from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function ModelLibrarySection() {
  const api = useApi();
  const list = useCall(() => api['models.library']({}), [api]);
  const action = useAction<string>();
  const [done, setDone] = useState<string | null>(null);
  const [progress, setProgress] = useState<{
    target: string;
    bytes: number;
    totalBytes: number;
  } | null>(null);
  const [repo, setRepo] = useState('');
  const [file, setFile] = useState('');
  const [importPath, setImportPath] = useState('');
  const [importLicence, setImportLicence] = useState('');
  useEvent('models.pullProgress', (p) => setProgress(p));
  useEvent('governance.proposal', () => list.reload());

  async function run(key: string, message: string, work: () => Promise<unknown>) {
    setDone(null);
    setProgress(null);
    if (await action.run(work, key)) setDone(message);
    setProgress(null);
    list.reload();
  }

  const data = list.data;
  return (
    <section className="card" aria-labelledby="library-title">
      <h2 id="library-title">Your model library</h2>
      <p className="meta">
        Open-weights models on this machine{data ? <> ({data.root})</> : null}: Llama, Qwen2 and
        SmolLM2, from the Hugging Face hub or a folder or .gguf file you already have. The same
        library as <code>commons model</code>.
        {data?.baseModel ? (
          <>
            {' '}
            The community's base model is <strong>{data.baseModel.name}</strong> (
            <code title={data.baseModel.identity}>{shortHash(data.baseModel.identity)}</code>,{' '}
            {data.baseModel.licence}).
          </>
        ) : data && !data.chainError ? (
          <> The community has not chosen a base model yet.</>
        ) : null}
      </p>
      {data?.chainError ? (
        <p className="meta">The chain could not be asked about base models: {data.chainError}</p>
      ) : null}
      <ErrorNotice error={action.error ?? list.error} retry={list.reload} />
      {done ? (
        <p className="notice info" role="status">
          {done}
        </p>
      ) : null}
      {action.busy && progress ? (
        <ProgressBar
          value={progress.bytes}
          max={progress.totalBytes}
          label={`Adding ${progress.target}`}
        />
      ) : null}
      {list.loading && !data ? <Loading what="your model library" /> : null}
      {data && data.models.length === 0 ? (
        <Empty title="No models in your library">
          <p>Pull one from the hub or import one below.</p>
        </Empty>
      ) : null}
      {data && data.models.length ? (
        <table className="table library">
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Format</th>
              <th scope="col">Size</th>
              <th scope="col">Identity</th>
              <th scope="col">Memory here</th>
              <th scope="col">Licence</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data.models.map((m) => (
              <LibraryRow
                key={m.name}
                model={m}
                busy={action.busy}
                onRemove={() =>
                  void run(m.name, `Removed ${m.name}.`, () =>
                    api['models.delete']({ name: m.name }),
                  )
                }
                onPropose={(licence) =>
                  void run(m.name, '', async () => {
                    const { id } = await api['models.proposeBase']({
                      name: m.name,
                      ...(licence ? { licence } : {}),
                    });
                    setDone(
                      `Proposed (#${id.slice(0, 8)}…): record ${m.publicName} as the community's base model. Vote on it in Governance.`,
                    );
                  })
                }
              />
            ))}
          </tbody>
        </table>
      ) : null}
      <div className="row">
        <form
          aria-label="Pull from the hub"
          onSubmit={(e) => {
            e.preventDefault();
            const target = repo.trim();
            void run(target, `Pulled ${target}.`, () =>
              api['models.pull']({ repo: target, ...(file.trim() ? { file: file.trim() } : {}) }),
            );
          }}
        >
          <label>
            Hub model (org/name)
            <input
              value={repo}
              onChange={(e) => setRepo(e.target.value)}
              placeholder="HuggingFaceTB/SmolLM2-360M-Instruct"
            />
          </label>
          <label>
            GGUF file (for a GGUF repository)
            <input value={file} onChange={(e) => setFile(e.target.value)} placeholder="optional" />
          </label>
          <button type="submit" disabled={action.busy || !repo.trim()}>
            Pull
          </button>
        </form>
        <form
          aria-label="Import from disk"
          onSubmit={(e) => {
            e.preventDefault();
            const source = importPath.trim();
            void run(source, `Imported ${source}.`, () =>
              api['models.import']({
                path: source,
                ...(importLicence.trim() ? { licence: importLicence.trim() } : {}),
              }),
            );
          }}
        >
          <label>
            Folder or .gguf file (full path)
            <input
              value={importPath}
              onChange={(e) => setImportPath(e.target.value)}
              placeholder="/home/you/.lmstudio/models/…/model.gguf"
            />
          </label>
          <label>
            Licence (if the model does not say)
            <input
              value={importLicence}
              onChange={(e) => setImportLicence(e.target.value)}
              placeholder="apache-2.0"
            />
          </label>
          <button type="submit" disabled={action.busy || !importPath.trim()}>
            Import
          </button>
        </form>
      </div>
    </section>
  );
}

function LibraryRow(props: {
  model: LibraryModelView;
  busy: boolean;
  onRemove: () => void;
  onPropose: (licence: string | null) => void;
}) {
  const m = props.model;
  const [licence, setLicence] = useState('');
  const memory = m.memory;
  return (
    <tr data-testid={`library-${m.name}`}>
      <th scope="row">
        {m.name}
        {m.communityBase ? <span className="badge ok">community base model</span> : null}
        {m.recorded && !m.communityBase ? <span className="badge">recorded on chain</span> : null}
        <div className="meta">{m.source.from}</div>
      </th>
      <td>{m.format === 'gguf' ? 'GGUF' : 'Hugging Face folder'}</td>
      <td>{formatBytes(m.bytes)}</td>
      <td>
        <code title={m.identity}>{shortHash(m.identity)}</code>
      </td>
      <td>
        {memory ? (
          memory.fits ? (
            <>
              about {formatBytes(memory.totalBytes)}
              {memory.weights === 'int8' ? ' (as int8, slower)' : ''} ·{' '}
              {parameterCount(memory.parameters)} parameters
            </>
          ) : (
            <span className="badge warn" title={memory.message ?? undefined}>
              won't fit
            </span>
          )
        ) : (
          <span className="badge warn">unreadable</span>
        )}
        {memory?.message ? <div className="meta">{memory.message}</div> : null}
        {m.problem ? <div className="meta">{m.problem}</div> : null}
      </td>
      <td>
        {m.licence ?? (
          <label>
            <span className="sr-only">Licence of {m.name}</span>
            <input
              value={licence}
              onChange={(e) => setLicence(e.target.value)}
              placeholder="unknown: state it"
              size={12}
            />
          </label>
        )}
      </td>
      <td>
        <div className="row">
          {!m.communityBase ? (
            <button
              type="button"
              disabled={props.busy || (!m.licence && !licence.trim())}
              onClick={() => props.onPropose(m.licence ? null : licence.trim())}
            >
              Propose as the community's base model
            </button>
          ) : null}
          <button type="button" disabled={props.busy} onClick={props.onRemove}>
            Remove
          </button>
        </div>
      </td>
    </tr>
  );
}

/** 135M, 1.2B, or the exact count for toy models. */
function parameterCount(n: number): string {
  if (n >= 1e9) return `${formatNumber(n / 1e9, 2)}B`;
  if (n >= 1e6) return `${formatNumber(n / 1e6, 3)}M`;
  return n.toLocaleString('en-US');
}
