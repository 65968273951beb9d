// The security-relevant constants of the Electron shell, free of any electron import so a unit
// test can check them without the Electron binary. main.ts uses exactly these.
import type { BrowserWindowConstructorOptions } from 'electron';

/** Our own scheme: the renderer is served from commons://app/, never from file:// or http. */
export const APP_SCHEME = 'commons';
export const APP_HOST = 'app';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

export function windowOptions(preloadPath: string): BrowserWindowConstructorOptions {
  return {
    width: 1280,
    height: 860,
    minWidth: 760,
    minHeight: 560,
    title: 'Commons',
    show: false,
    backgroundColor: '#14171b',
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
      safeDialogs: true,
    },
  };
}

/**
 * Whether an IPC message comes from our page: the main frame of our window, showing a page of
 * our own origin. A frame from anywhere else (an injected iframe, a page navigated elsewhere
 * despite the guards) gets nothing.
 */
export function isTrustedSender(frameUrl: string | undefined, isMainFrame: boolean): boolean {
  if (!frameUrl || !isMainFrame) return false;
  try {
    const url = new URL(frameUrl);
    return url.protocol === `${APP_SCHEME}:` && url.host === APP_HOST;
  } catch {
    return false;
  }
}
