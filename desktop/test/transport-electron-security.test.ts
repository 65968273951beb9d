// The Electron shell's security settings, checked without the Electron binary: the window
// options and sender check (a pure module main.ts uses as is), the CSP in both places it is
// set, and what the preload hands the page.
import { readFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { contentSecurityPolicy } from '../src/main/csp.ts';
import { APP_ORIGIN, isTrustedSender, windowOptions } from '../src/main/window-options.ts';

function directives(policy: string): Map<string, string[]> {
  return new Map(
    policy
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...values]) => [name!, values]),
  );
}

describe('BrowserWindow options', () => {
  const prefs = windowOptions('/app/preload.cjs').webPreferences!;

  it('isolates and sandboxes the renderer with no Node', () => {
    expect(prefs.contextIsolation).toBe(true);
    expect(prefs.sandbox).toBe(true);
    expect(prefs.nodeIntegration).toBe(false);
    expect(prefs.nodeIntegrationInWorker).toBe(false);
    expect(prefs.nodeIntegrationInSubFrames).toBe(false);
    expect(prefs.webSecurity).toBe(true);
    expect(prefs.allowRunningInsecureContent).toBe(false);
    expect(prefs.webviewTag).toBe(false);
    expect(prefs.navigateOnDragDrop).toBe(false);
    expect(prefs.preload).toBe('/app/preload.cjs');
  });
});

describe('IPC sender check', () => {
  it('accepts only the main frame of our own origin', () => {
    expect(isTrustedSender(`${APP_ORIGIN}/index.html`, true)).toBe(true);
    expect(isTrustedSender(`${APP_ORIGIN}/index.html#governance`, true)).toBe(true);
    expect(isTrustedSender(`${APP_ORIGIN}/index.html`, false)).toBe(false);
    expect(isTrustedSender('https://evil.example/', true)).toBe(false);
    expect(isTrustedSender('commons://evil/index.html', true)).toBe(false);
    expect(isTrustedSender('file:///app/index.html', true)).toBe(false);
    expect(isTrustedSender('http://127.0.0.1:5173/', true)).toBe(false);
    expect(isTrustedSender(undefined, true)).toBe(false);
    expect(isTrustedSender('not a url', true)).toBe(false);
  });
});

describe('Content-Security-Policy', () => {
  it('allows only our own code: no remote sources, no eval, no inline script', () => {
    const csp = directives(contentSecurityPolicy());
    expect(csp.get('default-src')).toEqual(["'self'"]);
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('object-src')).toEqual(["'none'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    for (const [name, values] of csp) {
      for (const value of values) {
        expect(value, `${name} ${value}`).not.toMatch(/unsafe-eval|unsafe-inline|^https?:|^\*$/);
      }
    }
  });

  it('is repeated in index.html, allowing nothing more than the header', async () => {
    const html = await readFile(new URL('../src/renderer/index.html', import.meta.url), 'utf8');
    const meta = /http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html)?.[1];
    expect(meta).toBeDefined();
    const fromMeta = directives(meta!);
    const fromHeader = directives(contentSecurityPolicy(['ws://127.0.0.1:*', 'ws://localhost:*']));
    for (const [name, values] of fromMeta) expect(fromHeader.get(name), name).toEqual(values);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });
});

describe('preload', () => {
  it('exposes exactly window.commons = { call, on } and never ipcRenderer', async () => {
    const exposed: Record<string, unknown> = {};
    const ipcRenderer = {
      invoke: vi.fn(async () => ({ ok: true })),
      on: vi.fn(),
      removeListener: vi.fn(),
    };
    vi.doMock('electron', () => ({
      contextBridge: {
        exposeInMainWorld: (key: string, api: unknown) => {
          exposed[key] = api;
        },
      },
      ipcRenderer,
    }));
    await import('../src/preload/preload.ts');
    expect(Object.keys(exposed)).toEqual(['commons']);
    const api = exposed.commons as Record<string, unknown>;
    expect(Object.keys(api).sort()).toEqual(['call', 'on']);
    expect(Object.values(api).every((v) => typeof v === 'function')).toBe(true);
    expect(Object.values(api)).not.toContain(ipcRenderer);

    await (api.call as (m: string, a: unknown) => Promise<unknown>)('vault.status', {});
    expect(ipcRenderer.invoke).toHaveBeenCalledWith('commons:call', 'vault.status', {});
    // Listeners see only the payload of their own event, never the IPC event object.
    const seen: unknown[] = [];
    const off = (api.on as (e: string, l: (p: unknown) => void) => () => void)('chat.token', (p) =>
      seen.push(p),
    );
    const wrapped = ipcRenderer.on.mock.calls[0]![1] as (...args: unknown[]) => void;
    wrapped({ sender: 'ipc internals' }, 'chat.token', { text: 'hi' });
    wrapped({ sender: 'ipc internals' }, 'training.progress', { step: 1 });
    expect(seen).toEqual([{ text: 'hi' }]);
    off();
    expect(ipcRenderer.removeListener).toHaveBeenCalledWith('commons:event', wrapped);
  });
});
