// Web mode: the same API as Electron's IPC, over a WebSocket on 127.0.0.1, next to an HTTP
// server that serves the built renderer. A client must come from our page's origin and present
// this launch's token (as a WebSocket subprotocol, so it is checked before the upgrade
// completes and never appears in a URL the server could log).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { securityHeaders } from '../main/csp.ts';
import { describeIssues, type Dispatcher } from '../transport/dispatcher.ts';
import type { EventTap } from '../transport/events.ts';
import {
  WS_PATH,
  WS_PROTOCOL,
  wsRequestSchema,
  type WsRequest,
  type WsServerFrame,
} from '../transport/wire.ts';
import { allowedHosts, allowedOrigins } from './origin.ts';
import { requestPathname } from './request-target.ts';
import { createStaticHandler } from './static-files.ts';
import { newLaunchToken, tokensMatch } from './token.ts';

/** The prefix of the subprotocol that carries the token: `bearer.<token>`. */
export const TOKEN_PROTOCOL_PREFIX = 'bearer.';

export interface BridgeOptions {
  dispatcher: Dispatcher;
  events: EventTap;
  /** The vite build output to serve. */
  rendererDir: string;
  /** 0 picks a free port. */
  port?: number;
  /** Fixed token (tests); a fresh random one otherwise. */
  token?: string;
}

export interface Bridge {
  port: number;
  /** The page to open, token in the fragment (fragments are never sent to a server). */
  url: string;
  token: string;
  close(): Promise<void>;
}

// A whole document's text may arrive in one call; anything bigger than this is not ours.
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const token = options.token ?? newLaunchToken();
  const http: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const hosts = allowedHosts(port);
  const origins = allowedOrigins(port);
  const headers = securityHeaders([`ws://127.0.0.1:${port}`, `ws://localhost:${port}`]);
  const serveFile = createStaticHandler(options.rendererDir, headers);

  http.on('request', (req, res) => {
    if (!hosts.has(req.headers.host ?? '')) {
      res.writeHead(421, { 'Content-Type': 'text/plain' }).end('Open Commons at 127.0.0.1.');
      return;
    }
    void serveFile(req, res);
  });

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    handleProtocols: (protocols) => (protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : false),
  });
  const clients = new Set<WebSocket>();

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refusal = checkUpgrade(req, hosts, origins, token);
    if (refusal) {
      socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      clients.add(ws);
      ws.on('close', () => clients.delete(ws));
      ws.on('message', (data, isBinary) => void onMessage(ws, data, isBinary));
    });
  });

  async function onMessage(ws: WebSocket, data: unknown, isBinary: boolean): Promise<void> {
    const frame = readRequestFrame(data, isBinary);
    if (frame.kind === 'unreadable') {
      // Not even JSON with a request id: whoever sent it is not speaking the protocol.
      ws.close(1008, 'malformed request');
      return;
    }
    if (frame.kind === 'malformed') {
      // It has an id, so it can be answered like any other refused call.
      const error = { code: 'invalid-argument' as const, message: frame.problem };
      send(ws, { type: 'result', id: frame.id, outcome: { ok: false, error } });
      return;
    }
    const { request } = frame;
    const outcome = await options.dispatcher.call(request.method, request.arg);
    send(ws, { type: 'result', id: request.id, outcome });
  }

  const untap = options.events((event, payload) => {
    const frame = JSON.stringify({ type: 'event', event, payload } satisfies WsServerFrame);
    for (const ws of clients) if (ws.readyState === ws.OPEN) ws.send(frame);
  });

  return {
    port,
    token,
    url: `http://127.0.0.1:${port}/#token=${token}`,
    async close() {
      untap();
      for (const ws of clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

type RequestFrame =
  | { kind: 'request'; request: WsRequest }
  | { kind: 'malformed'; id: number; problem: string }
  | { kind: 'unreadable' };

function readRequestFrame(data: unknown, isBinary: boolean): RequestFrame {
  if (isBinary) return { kind: 'unreadable' };
  let json: unknown;
  try {
    json = JSON.parse(String(data));
  } catch {
    return { kind: 'unreadable' };
  }
  const parsed = wsRequestSchema.safeParse(json);
  if (parsed.success) return { kind: 'request', request: parsed.data };
  const id = wsRequestSchema.shape.id.safeParse((json as { id?: unknown } | null)?.id);
  if (!id.success) return { kind: 'unreadable' };
  return {
    kind: 'malformed',
    id: id.data,
    problem: `Request ${id.data} is not a call: ${describeIssues(parsed.error)}.`,
  };
}

function send(ws: WebSocket, frame: WsServerFrame): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
}

/** Why an upgrade is refused (an HTTP status line), or null to accept it. */
export function checkUpgrade(
  req: IncomingMessage,
  hosts: Set<string>,
  origins: Set<string>,
  token: string,
): string | null {
  const pathname = requestPathname(req.url);
  if (pathname === null) return '400 Bad Request';
  if (pathname !== WS_PATH) return '404 Not Found';
  if (!hosts.has(req.headers.host ?? '')) return '403 Forbidden';
  if (!origins.has(req.headers.origin ?? '')) return '403 Forbidden';
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  if (!offered.includes(WS_PROTOCOL)) return '400 Bad Request';
  const presented = offered.find((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
  if (!presented || !tokensMatch(token, presented.slice(TOKEN_PROTOCOL_PREFIX.length))) {
    return '401 Unauthorized';
  }
  return null;
}
