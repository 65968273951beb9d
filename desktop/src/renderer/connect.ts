// Finds the bridge to the core: `window.commons` from the Electron preload, or, in a browser,
// the local WebSocket bridge with the launch token from the URL fragment. The token is moved
// into sessionStorage and removed from the address bar so it is not bookmarked or shared by
// accident; a reload of this tab still finds it.
import { connectWsBridge } from '../transport/ws-client.ts';
import type { CommonsBridge } from '../transport/wire.ts';

declare global {
  interface Window {
    commons?: CommonsBridge;
  }
}

const TOKEN_KEY = 'commons.token';

export type Connection =
  { ok: true; bridge: CommonsBridge; mode: 'electron' | 'web' } | { ok: false; reason: string };

export function connect(): Connection {
  if (window.commons) return { ok: true, bridge: window.commons, mode: 'electron' };
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  const token = fromHash ?? sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    return {
      ok: false,
      reason:
        'This page needs the link that commons-desktop printed when it started (it ends in #token=…). Open that link, or restart commons-desktop to get a new one.',
    };
  }
  return { ok: true, bridge: connectWsBridge(window.location.origin, token), mode: 'web' };
}
