// Entry point: find the bridge to the core, then render the app (or say how to get one).
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiProvider } from './api.tsx';
import { App } from './app.tsx';
import { connect } from './connect.ts';

const root = createRoot(document.getElementById('root')!);
const connection = connect();
root.render(
  <StrictMode>
    {connection.ok ? (
      <ApiProvider bridge={connection.bridge} mode={connection.mode}>
        <App />
      </ApiProvider>
    ) : (
      <main className="standalone">
        <h1>Commons</h1>
        <div className="notice error" role="alert">
          <p>{connection.reason}</p>
        </div>
      </main>
    )}
  </StrictMode>,
);
