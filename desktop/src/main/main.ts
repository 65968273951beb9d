// The Electron main process: owns the window and the operating system, runs the core (whose
// heavy work, personal training, is already in a worker thread; safeStorage, the vault's
// keychain, exists only here), and answers the renderer through one IPC handler and the
// dispatcher. Every item of Electron's security checklist is set here or in window-options.ts.
//
// Started by bin/commons-desktop.ts as `electron src/main/main.ts -- <flags>`; Electron's Node
// strips TypeScript types like Node 24 does, so the core's worker files keep working.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFile, stat } from 'node:fs/promises';
import { app, BrowserWindow, dialog, ipcMain, protocol, session } from 'electron';
import { errorMessage } from '@commons/shared/errors';
import { IPC_CALL_CHANNEL, IPC_EVENT_CHANNEL } from '../transport/ipc-channels.ts';
import type { CallOutcome } from '../transport/wire.ts';
import { securityHeaders } from './csp.ts';
import { startHost, type Host, type ShellDialogs } from './host.ts';
import { safeStorageKeyProvider } from './key-provider.ts';
import { parseLaunchOptions, USAGE } from './launch-options.ts';
import { cacheControlFor, contentTypeOf, RENDERER_DIR, resolveInside } from './renderer-files.ts';
import {
  APP_ENTRY_URL,
  APP_HOST,
  APP_SCHEME,
  isTrustedSender,
  windowOptions,
} from './window-options.ts';

const PRELOAD = fileURLToPath(new URL('../../dist/electron/preload.cjs', import.meta.url));
const HEADERS = securityHeaders();

// Flags come after `--` (Electron's own come before).
const dashDash = process.argv.indexOf('--');
const launch = parseLaunchOptions(dashDash >= 0 ? process.argv.slice(dashDash + 1) : []);
if (launch.help) {
  console.log(USAGE);
  process.exit(0);
}

// Must precede app 'ready': a standard, secure scheme gets a real origin (commons://app) for
// 'self' in the CSP and for checking IPC senders.
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
]);
app.enableSandbox();
app.setPath('userData', path.join(launch.dataDir, 'electron'));

let host: Host | null = null;
let window: BrowserWindow | null = null;

app.on('web-contents-created', (_event, contents) => {
  // The page never leaves commons://app and never opens windows, whatever it (or a link in a
  // model's reply) asks for.
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
});

async function serveRendererFile(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const file = url.host === APP_HOST ? resolveInside(RENDERER_DIR, url.pathname) : null;
  try {
    if (!file || !(await stat(file)).isFile()) throw new Error('not found');
    return new Response(await readFile(file), {
      headers: {
        ...HEADERS,
        'Content-Type': contentTypeOf(file),
        'Cache-Control': cacheControlFor(RENDERER_DIR, file),
      },
    });
  } catch {
    return new Response('Not found', { status: 404, headers: HEADERS });
  }
}

const dialogs: ShellDialogs = {
  async pickForImport(folders) {
    const result = await dialog.showOpenDialog(window!, {
      title: 'Import into your vault',
      properties: folders ? ['openDirectory', 'multiSelections'] : ['openFile', 'multiSelections'],
      filters: folders ? [] : [{ name: 'Text', extensions: ['txt', 'md'] }],
    });
    return result.canceled ? [] : result.filePaths;
  },
  async pickExportFolder() {
    const result = await dialog.showOpenDialog(window!, {
      title: 'Export decrypted copies to…',
      properties: ['openDirectory', 'createDirectory'],
    });
    return result.canceled ? null : (result.filePaths[0] ?? null);
  },
};

async function start(): Promise<void> {
  await app.whenReady();
  const ses = session.defaultSession;
  // No camera, microphone, notifications, geolocation, clipboard reads...: Commons needs none.
  ses.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  ses.setPermissionCheckHandler(() => false);
  // The protocol handler sets these too; this covers any response that does not pass through it.
  ses.webRequest.onHeadersReceived((details, callback) => {
    callback({
      responseHeaders: {
        ...details.responseHeaders,
        'Content-Security-Policy': [HEADERS['Content-Security-Policy']!],
      },
    });
  });
  protocol.handle(APP_SCHEME, serveRendererFile);

  host = await startHost({
    launch,
    mode: 'electron',
    keyProvider: safeStorageKeyProvider(),
    dialogs,
  });
  const dispatcher = host.dispatcher;

  ipcMain.handle(IPC_CALL_CHANNEL, async (event, method: unknown, arg: unknown) => {
    const frame = event.senderFrame;
    if (
      !window ||
      event.sender !== window.webContents ||
      !isTrustedSender(frame?.url, frame === event.sender.mainFrame)
    ) {
      return {
        ok: false,
        error: { code: 'refused', message: 'Calls are accepted only from the Commons window.' },
      } satisfies CallOutcome;
    }
    return dispatcher.call(typeof method === 'string' ? method : '', arg);
  });
  host.events((name, payload) => {
    if (window && !window.isDestroyed()) window.webContents.send(IPC_EVENT_CHANNEL, name, payload);
  });

  window = new BrowserWindow(windowOptions(PRELOAD));
  window.once('ready-to-show', () => window?.show());
  window.on('closed', () => {
    window = null;
  });
  await window.loadURL(APP_ENTRY_URL);
}

app.on('window-all-closed', () => app.quit());
let closing = false;
app.on('before-quit', (event) => {
  if (closing || !host) return;
  // Let the core finish writing (vault, settings, a training checkpoint) before exiting.
  event.preventDefault();
  closing = true;
  void host.close().finally(() => app.quit());
});

start().catch((error: unknown) => {
  console.error(
    'commons: the desktop app could not start:',
    error instanceof Error ? error.message : error,
  );
  dialog.showErrorBox(
    'Commons could not start',
    `${errorMessage(error)}\n\nRun commons-desktop --web to use Commons in your browser instead.`,
  );
  app.exit(1);
});
