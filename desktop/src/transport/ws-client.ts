// The renderer's bridge in web mode: the CommonsBridge surface over a browser WebSocket. The
// launch token goes in the subprotocol list, checked by the server before it accepts us.
import {
  WS_PATH,
  WS_PROTOCOL,
  wsServerFrameSchema,
  type CallOutcome,
  type CommonsBridge,
} from './wire.ts';

export interface WsBridge extends CommonsBridge {
  close(): void;
}

/** `origin` is the page's own origin (http://127.0.0.1:port); `token` came in its fragment. */
export function connectWsBridge(origin: string, token: string): WsBridge {
  const url = origin.replace(/^http/, 'ws') + WS_PATH;
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  const pending = new Map<number, (outcome: CallOutcome) => void>();
  let nextId = 1;
  let socket: WebSocket | null = null;
  let opened: Promise<WebSocket> | null = null;
  let closed = false;

  function open(): Promise<WebSocket> {
    if (opened) return opened;
    opened = new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, [WS_PROTOCOL, `bearer.${token}`]);
      ws.onopen = () => {
        socket = ws;
        resolve(ws);
      };
      ws.onmessage = (message) => onFrame(message.data);
      ws.onclose = () => {
        socket = null;
        opened = null;
        // Calls in flight will never be answered; let them fail now with something to do.
        for (const settle of pending.values()) settle(lost());
        pending.clear();
        reject(new Error('closed'));
      };
    });
    // The rejection is observed by `call`; this keeps an unused one from being reported.
    opened.catch(() => undefined);
    return opened;
  }

  function onFrame(data: unknown): void {
    if (typeof data !== 'string') return;
    const parsed = wsServerFrameSchema.safeParse(JSON.parse(data));
    if (!parsed.success) return;
    const frame = parsed.data;
    if (frame.type === 'result') {
      pending.get(frame.id)?.(frame.outcome as CallOutcome);
      pending.delete(frame.id);
    } else {
      for (const listener of listeners.get(frame.event) ?? []) listener(frame.payload);
    }
  }

  if (typeof WebSocket !== 'undefined') void open().catch(() => undefined);

  return {
    async call(method, arg) {
      if (closed) return lost();
      let ws: WebSocket;
      try {
        ws = socket ?? (await open());
      } catch {
        return lost();
      }
      const id = nextId++;
      return new Promise<CallOutcome>((resolve) => {
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, arg }));
      });
    },
    on(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener);
      // Events only flow while a socket is open; subscribing is a reason to open one.
      if (!socket && !closed) void open().catch(() => undefined);
      return () => set.delete(listener);
    },
    close() {
      closed = true;
      socket?.close();
    },
  };
}

function lost(): CallOutcome {
  return {
    ok: false,
    error: {
      code: 'unavailable',
      message:
        'The connection to Commons was lost. Check that commons-desktop is still running, then reload this page.',
    },
  };
}
