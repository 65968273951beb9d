// Chat: conversations on the left; the open conversation with a streamed reply, stop and
// regenerate; which model version, backend and adapter answer.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { ChatMessage } from '../../api/vault.ts';
import { useApi, useEvent } from '../api.tsx';
import { Empty, ErrorNotice, Loading } from '../components/status.tsx';
import { VaultGate } from '../components/vault-gate.tsx';
import { formatDate, formatNumber, shortHash } from '../format.ts';
import { Markdown } from '../markdown.tsx';
import { useAction } from '../use-action.ts';
import { useCall } from '../use-call.ts';

export function ChatScreen() {
  return (
    <VaultGate>
      <Chat />
    </VaultGate>
  );
}

interface Streaming {
  requestId: string;
  chatId: string;
  /** The message being answered (shown until the stored chat is reloaded); null on regenerate. */
  prompt: string | null;
  text: string;
}

function Chat() {
  const api = useApi();
  const chats = useCall(() => api['vault.listChats']({}), [api]);
  const [selected, setSelected] = useState<string | null>(null);
  // Bumped when a reply ends: the chat to re-read may be one created after this render began.
  const [replies, setReplies] = useState(0);
  const chatId = selected ?? chats.data?.[0]?.id ?? null;
  const chat = useCall(
    () => (chatId ? api['vault.readChat']({ id: chatId }) : Promise.resolve(null)),
    [api, chatId, replies],
  );
  const runtime = useCall(() => api['chat.status']({}), [api]);
  // The saved adapter, which may be newer than what the loaded model reports.
  const training = useCall(() => api['training.status']({}), [api]);
  const [streaming, setStreaming] = useState<Streaming | null>(null);
  const [draft, setDraft] = useState('');
  const action = useAction();
  // Loading the model has its own busy state: the buttons that start it say so.
  const modelLoad = useAction();
  const loadingModel = modelLoad.busy;
  const error = action.error ?? modelLoad.error;
  const log = useRef<HTMLOListElement>(null);

  useEvent('vault.changed', (e) => {
    if (e.what === 'chats') chats.reload();
  });
  // Governance activated another version: offered here once the core has it verified.
  useEvent('models.activated', () => runtime.reload());
  useEvent('chat.token', (t) => {
    setStreaming((s) => (s && s.requestId === t.requestId ? { ...s, text: s.text + t.text } : s));
  });

  useEffect(() => {
    log.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [chat.data, streaming?.text]);

  async function generate(kind: 'send' | 'regenerate', text: string) {
    modelLoad.setError(null); // one error shows at a time: the newest action's
    let id = chatId;
    const answered = await action.run(async () => {
      if (!id) {
        const created = await api['vault.createChat']({ title: text.slice(0, 60) || undefined });
        id = created.id;
        setSelected(id);
      }
      const requestId = crypto.randomUUID();
      setStreaming({ requestId, chatId: id, prompt: kind === 'send' ? text : null, text: '' });
      if (kind === 'send') {
        setDraft('');
        await api['chat.send']({ requestId, chatId: id, text });
      } else {
        await api['chat.regenerate']({ requestId, chatId: id });
      }
    });
    if (!answered && kind === 'send') setDraft(text);
    setStreaming(null);
    setReplies((n) => n + 1);
    chats.reload();
    runtime.reload();
  }

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    const text = draft.trim();
    if (text && !streaming) void generate('send', text);
  }

  function onComposerKey(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      onSubmit(event);
    }
  }

  async function newChat() {
    await action.run(async () => {
      const created = await api['vault.createChat']({});
      setSelected(created.id);
      chats.reload();
    });
  }

  async function loadModel() {
    action.setError(null);
    await modelLoad.run(() => api['chat.load']({}));
    runtime.reload();
  }

  async function toggleAdapter(enabled: boolean) {
    await action.run(() => api['training.useAdapter']({ enabled }));
    runtime.reload();
    training.reload();
  }

  const history = chat.data?.history ?? [];
  const regenerating = streaming && streaming.prompt === null;
  const shown: ChatMessage[] =
    regenerating && history.at(-1)?.role === 'assistant' ? history.slice(0, -1) : history;
  const model = runtime.data?.model ?? null;
  const activated = runtime.data?.newActive ?? null;
  const saved = training.data?.adapter ?? null;
  const adapter =
    saved && model && plain(saved.baseHash) === plain(model.hash)
      ? { enabled: saved.enabled }
      : (model?.adapter ?? null);

  return (
    <div className="chat-layout">
      <aside className="chat-list" aria-label="Conversations">
        <button type="button" className="primary" onClick={() => void newChat()}>
          New chat
        </button>
        {chats.loading && !chats.data ? <Loading what="conversations" /> : null}
        <ErrorNotice error={chats.error} retry={chats.reload} />
        {chats.data && chats.data.length === 0 ? (
          <p className="hint">No conversations yet. Type below to start one.</p>
        ) : null}
        <ul>
          {chats.data?.map((c) => (
            <li key={c.id}>
              <button
                type="button"
                className="chat-item"
                aria-current={c.id === chatId ? 'true' : undefined}
                onClick={() => setSelected(c.id)}
              >
                <span className="chat-title">{c.title || 'Untitled'}</span>
                <span className="meta">
                  {c.messages} messages · {formatDate(c.updatedAt)}
                </span>
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section className="chat-main" aria-label="Conversation">
        <header className="model-bar">
          {model ? (
            <>
              <span title={model.hash}>
                Model <code>{shortHash(model.hash)}</code>
              </span>
              <span className="badge">{model.backend}</span>
              <span>{formatNumber(model.parameters / 1000, 3)}k parameters</span>
              {adapter ? (
                <label className="inline">
                  <input
                    type="checkbox"
                    checked={adapter.enabled}
                    onChange={(e) => void toggleAdapter(e.target.checked)}
                  />
                  Personal adapter
                </label>
              ) : (
                <span className="hint">No personal adapter (see Personalise)</span>
              )}
            </>
          ) : (
            <>
              <span>The model loads with your first message.</span>
              <button type="button" onClick={() => void loadModel()} disabled={loadingModel}>
                {loadingModel ? 'Loading model…' : 'Load now'}
              </button>
            </>
          )}
        </header>
        {activated ? (
          <div className="notice info" role="status" data-testid="model-switch">
            <p>
              The community made model{' '}
              <code title={activated.hash}>{shortHash(activated.hash)}</code> active.{' '}
              {activated.error
                ? `It could not be fetched and verified: ${activated.error}`
                : activated.ready
                  ? 'It is downloaded and its hash matches the chain; your next message uses it.'
                  : 'Downloading and verifying it…'}
            </p>
            {activated.ready ? (
              <button
                type="button"
                className="primary"
                disabled={loadingModel || streaming !== null}
                onClick={() => void loadModel()}
              >
                {loadingModel ? 'Switching…' : 'Switch now'}
              </button>
            ) : null}
          </div>
        ) : null}
        <ol className="messages" ref={log} aria-live="polite">
          {shown.length === 0 && !streaming ? (
            <li className="empty-chat">
              <Empty title="Ask anything">
                <p className="hint">
                  Replies are generated on this machine. Nothing you type leaves it.
                </p>
              </Empty>
            </li>
          ) : null}
          {shown.map((m, i) => (
            <Message
              key={i}
              message={m}
              canRegenerate={!streaming && i === shown.length - 1 && m.role === 'assistant'}
              onRegenerate={() => void generate('regenerate', '')}
            />
          ))}
          {streaming?.prompt ? (
            <Message message={{ role: 'user', text: streaming.prompt, at: '' }} />
          ) : null}
          {streaming ? (
            <li className="message assistant streaming" aria-busy="true">
              <div className="role">Commons</div>
              {streaming.text ? (
                <Markdown source={streaming.text} />
              ) : (
                <p className="hint">Thinking…</p>
              )}
            </li>
          ) : null}
        </ol>
        <ErrorNotice error={error ?? chat.error} />
        <form className="composer" onSubmit={onSubmit}>
          <label className="sr-only" htmlFor="composer">
            Message
          </label>
          <textarea
            id="composer"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={onComposerKey}
            placeholder="Write a message (Enter to send, Shift+Enter for a new line)"
            rows={3}
            autoFocus
          />
          {streaming ? (
            <button
              type="button"
              className="danger"
              onClick={() => void api['chat.cancel']({ requestId: streaming.requestId })}
            >
              Stop
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </form>
      </section>
    </div>
  );
}

function plain(hash: string): string {
  return hash.toLowerCase().replace(/^0x/, '');
}

function Message(props: {
  message: ChatMessage;
  canRegenerate?: boolean;
  onRegenerate?: () => void;
}) {
  const { message } = props;
  return (
    <li className={`message ${message.role}`}>
      <div className="role">
        {message.role === 'user' ? 'You' : 'Commons'}
        {message.model ? (
          <span className="meta" title={message.model.hash}>
            {' '}
            · {shortHash(message.model.hash)}
            {message.model.adapter ? ' + adapter' : ''}
          </span>
        ) : null}
      </div>
      {message.role === 'assistant' ? (
        <Markdown source={message.text} />
      ) : (
        <p className="user-text">{message.text}</p>
      )}
      {props.canRegenerate ? (
        <button type="button" className="link" onClick={props.onRegenerate}>
          Regenerate
        </button>
      ) : null}
    </li>
  );
}
