// My data: the documents in the vault (sizes, dates), import by picker or drag and drop,
// delete, export, and a plain statement of what ever leaves this machine.
import { useRef, useState, type DragEvent } from 'react';
import { MAX_IMPORT_CHARS, type ImportResult } from '../../api/vault.ts';
import { useApi, useEvent, useMode } from '../api.tsx';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import { VaultGate } from '../components/vault-gate.tsx';
import { formatBytes, formatDate } from '../format.ts';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function DataScreen() {
  return (
    <>
      <h1>My data</h1>
      <WhatLeaves />
      <VaultGate>
        <Documents />
      </VaultGate>
    </>
  );
}

function WhatLeaves() {
  const api = useApi();
  const consent = useCall(() => api['federation.consent']({}), [api]);
  return (
    <section className="card statement" aria-labelledby="leaves-title">
      <h2 id="leaves-title">What leaves this device</h2>
      <p>
        Your documents and chats never leave this machine. They are stored encrypted in your data
        folder and read only by the model running here.
      </p>
      {consent.data?.granted ? (
        <>
          <p>You have agreed to federated training. When you join a round, only this is sent:</p>
          <ul>
            {consent.data.shares.map((s) => (
              <li key={s}>{s}</li>
            ))}
          </ul>
        </>
      ) : (
        <p>
          Federated training is off: nothing about your data is sent anywhere. You can opt in on the
          Federation screen.
        </p>
      )}
    </section>
  );
}

function Documents() {
  const api = useApi();
  const mode = useMode();
  const docs = useCall(() => api['vault.listDocuments']({}), [api]);
  const action = useAction();
  const { busy, error } = action;
  const [result, setResult] = useState<ImportResult | null>(null);
  const [dragging, setDragging] = useState(false);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const picker = useRef<HTMLInputElement>(null);
  useEvent('vault.changed', (e) => e.what === 'documents' && docs.reload());

  async function run(work: () => Promise<void>) {
    await action.run(work);
    docs.reload();
  }

  /**
   * Reads the chosen or dropped files here and hands their text to the vault (no copy on disk).
   * Bytes that are not UTF-8 are caught here, where the bytes are, and reported like the
   * vault's own refusals; the vault applies the rest (name, size, NUL bytes, duplicates).
   */
  async function importFiles(list: FileList | File[]) {
    const files = [...list];
    if (!files.length) return;
    await run(async () => {
      const skipped: ImportResult['skipped'] = [];
      const readable: { name: string; text: string }[] = [];
      for (const f of files) {
        if (f.size > MAX_IMPORT_CHARS * 4) {
          skipped.push({ path: f.name, reason: 'too large to import from here' });
          continue;
        }
        try {
          const text = new TextDecoder('utf-8', { fatal: true }).decode(await f.arrayBuffer());
          readable.push({ name: f.name, text });
        } catch {
          skipped.push({ path: f.name, reason: 'not UTF-8 text' });
        }
      }
      const imported: ImportResult['imported'] = [];
      // Batches that fit one call; a file too long for any batch is reported, not split.
      let batch: typeof readable = [];
      let chars = 0;
      const flush = async () => {
        if (!batch.length) return;
        const outcome = await api['vault.importText']({ files: batch });
        imported.push(...outcome.imported);
        skipped.push(...outcome.skipped);
        batch = [];
        chars = 0;
      };
      for (const file of readable) {
        if (file.text.length > MAX_IMPORT_CHARS) {
          skipped.push({ path: file.name, reason: 'too large to import from here' });
          continue;
        }
        if (chars + file.text.length > MAX_IMPORT_CHARS || batch.length === 100) await flush();
        batch.push(file);
        chars += file.text.length;
      }
      await flush();
      setResult({ imported, skipped });
    });
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    setDragging(false);
    void importFiles(event.dataTransfer.files);
  }

  async function remove(id: string, name: string) {
    if (!window.confirm(`Delete "${name}" from your vault? This cannot be undone.`)) return;
    await run(async () => {
      await api['vault.deleteDocument']({ id });
      setSelected((s) => new Set([...s].filter((x) => x !== id)));
    });
  }

  async function exportSelected(ids: string[]) {
    await run(async () => {
      if (mode === 'electron') {
        const { written } = await api['shell.exportWithDialog']({ ids });
        if (written.length) setResult(null);
        return;
      }
      // In a browser the page saves the files itself (the browser asks where).
      for (const id of ids) {
        const doc = await api['vault.readDocument']({ id });
        const url = URL.createObjectURL(new Blob([doc.text], { type: 'text/plain' }));
        const a = document.createElement('a');
        a.href = url;
        a.download = doc.name;
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      }
    });
  }

  const list = docs.data ?? [];
  const allSelected = list.length > 0 && list.every((d) => selected.has(d.id));
  return (
    <section
      className={`card dropzone${dragging ? ' dragging' : ''}`}
      aria-labelledby="docs-title"
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <div className="row spread">
        <h2 id="docs-title">Documents</h2>
        <div className="row">
          {mode === 'electron' ? (
            <button
              type="button"
              className="primary"
              disabled={busy}
              onClick={() =>
                void run(async () => setResult(await api['shell.importWithDialog']({})))
              }
            >
              Import files…
            </button>
          ) : (
            <button
              type="button"
              className="primary"
              disabled={busy}
              onClick={() => picker.current?.click()}
            >
              Import files…
            </button>
          )}
          <button
            type="button"
            disabled={busy || selected.size === 0}
            onClick={() => void exportSelected([...selected])}
          >
            Export selected ({selected.size})
          </button>
        </div>
      </div>
      <input
        ref={picker}
        type="file"
        accept=".txt,.md,text/plain,text/markdown"
        multiple
        hidden
        aria-label="Choose text files to import"
        data-testid="file-input"
        onChange={(e) => {
          if (e.target.files) void importFiles(e.target.files);
          e.target.value = '';
        }}
      />
      <p className="hint">Drop .txt or .md files anywhere on this card to import them.</p>
      {result ? <ImportSummary result={result} onClose={() => setResult(null)} /> : null}
      <ErrorNotice error={error ?? docs.error} />
      {docs.loading && !docs.data ? <Loading what="documents" /> : null}
      {docs.data && list.length === 0 ? (
        <Empty title="No documents yet">
          <p className="hint">
            Import notes or writing of your own to chat about them and to personalise the model.
          </p>
        </Empty>
      ) : null}
      {list.length > 0 ? (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select all documents"
                  checked={allSelected}
                  onChange={() =>
                    setSelected(allSelected ? new Set() : new Set(list.map((d) => d.id)))
                  }
                />
              </th>
              <th scope="col">Name</th>
              <th scope="col" className="num">
                Size
              </th>
              <th scope="col" className="num">
                Characters
              </th>
              <th scope="col">Imported</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map((d) => (
              <tr key={d.id}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`Select ${d.name}`}
                    checked={selected.has(d.id)}
                    onChange={() =>
                      setSelected((s) => {
                        const next = new Set(s);
                        if (!next.delete(d.id)) next.add(d.id);
                        return next;
                      })
                    }
                  />
                </td>
                <td title={d.path}>{d.name}</td>
                <td className="num">{formatBytes(d.size)}</td>
                <td className="num">{d.chars.toLocaleString('en-US')}</td>
                <td>{formatDate(d.importedAt)}</td>
                <td className="actions">
                  <button type="button" onClick={() => void exportSelected([d.id])} disabled={busy}>
                    Export
                  </button>
                  <button
                    type="button"
                    className="danger"
                    onClick={() => void remove(d.id, d.name)}
                    disabled={busy}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

function ImportSummary(props: { result: ImportResult; onClose: () => void }) {
  const { imported, skipped } = props.result;
  return (
    <div className={`notice ${skipped.length ? 'warning' : 'info'}`} role="status">
      <div>
        <p>
          Imported {imported.length} {imported.length === 1 ? 'file' : 'files'}
          {skipped.length ? `; passed over ${skipped.length}:` : '.'}
        </p>
        {skipped.length ? (
          <ul>
            {skipped.map((s) => (
              <li key={s.path}>
                {s.path}: {s.reason}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
      <button type="button" aria-label="Dismiss" onClick={props.onClose}>
        ×
      </button>
    </div>
  );
}
