// The web-mode bridge over real sockets: who it lets in, what it serves, and that calls and
// events cross it intact.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect as connectTcp } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startBridge, type Bridge } from '../src/bridge/server.ts';
import { createDispatcher } from '../src/transport/dispatcher.ts';
import { WS_PATH, WS_PROTOCOL, wsServerFrameSchema } from '../src/transport/wire.ts';
import { echoHandlers, echoMethods } from './fixtures/echo-api.ts';

let bridge: Bridge;
let dir: string;
let emit: (event: string, payload: unknown) => void = () => undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'commons-bridge-'));
  await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>Commons</title>');
  // A file next to the served folder, which no request path may reach.
  await writeFile(`${dir}-outside.txt`, 'outside');
  bridge = await startBridge({
    dispatcher: createDispatcher(echoMethods, echoHandlers([]), { onInternalError: () => {} }),
    events: (listener) => {
      emit = listener;
      return () => {
        emit = () => undefined;
      };
    },
    rendererDir: dir,
  });
});

afterAll(async () => {
  await bridge?.close();
  await rm(dir, { recursive: true, force: true });
  await rm(`${dir}-outside.txt`, { force: true });
});

function rawGet(pathname: string, host = `127.0.0.1:${bridge.port}`): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port: bridge.port, path: pathname, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}

/**
 * Sends `head` (a request line and headers) over a plain TCP socket, for request targets no HTTP
 * client would send, and resolves to the status line of the answer ('' if the socket closed first).
 */
function rawRequest(head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(bridge.port, '127.0.0.1', () => socket.write(`${head}\r\n\r\n`));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      answer += chunk;
      if (answer.includes('\r\n')) socket.destroy();
    });
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
  });
}

/** Opens a socket with chosen credentials; resolves to the socket or the HTTP status refusing it. */
function connect(options: {
  token?: string | null;
  origin?: string | null;
  protocols?: string[];
}): Promise<WebSocket | number> {
  const origin = options.origin === undefined ? `http://127.0.0.1:${bridge.port}` : options.origin;
  const protocols = options.protocols ?? [
    WS_PROTOCOL,
    ...(options.token === null ? [] : [`bearer.${options.token ?? bridge.token}`]),
  ];
  const ws = new WebSocket(`ws://127.0.0.1:${bridge.port}${WS_PATH}`, protocols, {
    ...(origin === null ? {} : { origin }),
  });
  return new Promise((resolve) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(-1));
  });
}

function nextFrame(ws: WebSocket) {
  return new Promise<ReturnType<typeof wsServerFrameSchema.parse>>((resolve) =>
    ws.once('message', (data) => resolve(wsServerFrameSchema.parse(JSON.parse(String(data))))),
  );
}

describe('bridge', () => {
  it('listens on loopback only and prints the token in the fragment', () => {
    expect(bridge.url).toBe(`http://127.0.0.1:${bridge.port}/#token=${bridge.token}`);
    expect(bridge.token.length).toBeGreaterThanOrEqual(43);
  });

  it('refuses a connection without the token', async () => {
    expect(await connect({ token: null })).toBe(401);
  });

  it('refuses a wrong token, including one that is a prefix of the right one', async () => {
    expect(await connect({ token: 'x'.repeat(43) })).toBe(401);
    expect(await connect({ token: bridge.token.slice(0, -1) })).toBe(401);
    expect(await connect({ token: '' })).toBe(401);
  });

  it('refuses a foreign or missing Origin even with the right token', async () => {
    expect(await connect({ origin: 'http://evil.example' })).toBe(403);
    expect(await connect({ origin: `http://127.0.0.1:${bridge.port + 1}` })).toBe(403);
    expect(await connect({ origin: null })).toBe(403);
  });

  it('refuses a client that does not speak the protocol', async () => {
    expect(await connect({ protocols: [`bearer.${bridge.token}`] })).toBe(400);
  });

  it('carries calls, refusals and events for an authorised client', async () => {
    const ws = await connect({});
    if (typeof ws === 'number') throw new Error(`refused with ${ws}`);
    expect(ws.protocol).toBe(WS_PROTOCOL);
    ws.send(JSON.stringify({ id: 7, method: 'notes.add', arg: { title: 'over the wire' } }));
    expect(await nextFrame(ws)).toEqual({
      type: 'result',
      id: 7,
      outcome: { ok: true, value: { id: 1, title: 'over the wire' } },
    });
    ws.send(JSON.stringify({ id: 8, method: 'notes.add', arg: { title: 3 } }));
    expect(await nextFrame(ws)).toMatchObject({
      id: 8,
      outcome: { ok: false, error: { code: 'invalid-argument' } },
    });
    const event = nextFrame(ws);
    emit('notes.changed', { count: 1 });
    expect(await event).toEqual({ type: 'event', event: 'notes.changed', payload: { count: 1 } });
    ws.close();
  });

  it('closes a socket that sends something other than a request', async () => {
    const ws = await connect({});
    if (typeof ws === 'number') throw new Error(`refused with ${ws}`);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('not json');
    expect(await closed).toBe(1008);
  });

  it('refuses a frame without an argument by name and keeps the socket', async () => {
    const ws = await connect({});
    if (typeof ws === 'number') throw new Error(`refused with ${ws}`);
    ws.send(JSON.stringify({ id: 3, method: 'notes.clear' }));
    const refused = await nextFrame(ws);
    expect(refused).toMatchObject({
      id: 3,
      outcome: { ok: false, error: { code: 'invalid-argument' } },
    });
    expect(JSON.stringify(refused)).toContain('arg');
    ws.send(JSON.stringify({ id: 4, method: 'notes.clear', arg: {} }));
    expect(await nextFrame(ws)).toEqual({ type: 'result', id: 4, outcome: { ok: true } });
    ws.close();
  });

  it('answers 400 to request targets that are not paths and keeps serving', async () => {
    const host = `Host: 127.0.0.1:${bridge.port}`;
    // "//x:99999" parses as a host with an impossible port; so does "/\\x:99999" (a backslash
    // counts as a slash in http URLs).
    for (const target of ['//x:99999', '/\\x:99999', 'http://x:99999/', '*']) {
      expect(await rawRequest(`GET ${target} HTTP/1.1\r\n${host}`)).toBe(
        'HTTP/1.1 400 Bad Request',
      );
    }
    expect(await rawGet('/index.html')).toBe(200);
  });

  it('answers 400 to a WebSocket upgrade whose target is not a path and keeps serving', async () => {
    const upgrade = [
      `Host: 127.0.0.1:${bridge.port}`,
      `Origin: http://127.0.0.1:${bridge.port}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      `Sec-WebSocket-Protocol: ${WS_PROTOCOL}, bearer.${bridge.token}`,
    ].join('\r\n');
    expect(await rawRequest(`GET //[ HTTP/1.1\r\n${upgrade}`)).toBe('HTTP/1.1 400 Bad Request');
    expect(await rawGet('/index.html')).toBe(200);
    const ws = await connect({});
    expect(ws).toBeInstanceOf(WebSocket);
    if (typeof ws !== 'number') ws.close();
  });

  it('serves the renderer with the CSP and nothing outside its folder', async () => {
    const base = `http://127.0.0.1:${bridge.port}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self';");
    expect(csp).not.toMatch(/unsafe-eval|unsafe-inline|https?:/);
    expect(csp).toContain(`ws://127.0.0.1:${bridge.port}`);
    expect(await page.text()).toContain('<title>Commons</title>');
    // Raw paths: fetch would normalise the dot segments away before sending them.
    const outside = path.basename(dir) + '-outside.txt';
    for (const escape of [`/../${outside}`, `/%2e%2e/${outside}`, `/..%2f${outside}`]) {
      expect(await rawGet(escape)).toBe(404);
    }
    expect(await rawGet('/index.html')).toBe(200);
  });

  it('refuses HTTP requests addressed to another host name (DNS rebinding)', async () => {
    expect(await rawGet('/', 'evil.example')).toBe(421);
  });
});
