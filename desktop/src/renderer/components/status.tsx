// The three states every screen shows besides its content: loading, empty, and an error that
// says what to do next.
import type { ReactNode } from 'react';
import { describeError } from '../errors.ts';

export function Loading(props: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {props.what}…
    </p>
  );
}

export function Empty(props: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{props.title}</p>
      {props.children}
    </div>
  );
}

export function ErrorNotice(props: { error: unknown; retry?: () => void }) {
  if (!props.error) return null;
  const { title, advice } = describeError(props.error);
  return (
    <div className="notice error" role="alert">
      <p>
        <strong>{title}</strong>
        {advice ? <> {advice}</> : null}
      </p>
      {props.retry ? (
        <button type="button" onClick={props.retry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}
