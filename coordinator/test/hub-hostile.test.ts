// The federation hub under hostile input: what a client that does not follow the protocol can
// send, against real coordinators on a devnet over real Socket.IO on loopback. The main one
// checks eligibility on chain (a balance of at least 0), so a sign-in awaits the chain; a second
// one on the same chain runs with short sessions and sign-in deadlines, so expiry can be
// watched; a third takes only two unauthenticated connections per address.
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint, encodeTensors } from '@commons/shared/engine';
import { FederatedClient } from '@commons/shared/contributor';
import {
  MAX_MESSAGE_DEPTH,
  PROTOCOL_VERSION,
  type Challenge,
  type Rejection,
  formatSiweMessage,
  signChallenge,
  siweMessageFor,
} from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { coordinatorOn, startFederation, type Federation } from './fixtures/federation.ts';
import { connectRaw, type RawClient, type RawSocket } from './fixtures/protocol-client.ts';
import { randomUpdate, uploadFrame } from './fixtures/updates.ts';

/**
 * Short sessions on the second coordinator: 6 s, renewed 2 s before the end (room for a loaded
 * two-core machine to sign in time), and 2 s to sign in after connecting.
 */
const SHORT_SESSION = { sessionTtlMs: 6_000, signInTimeoutMs: 2_000 };

let federation: Federation | undefined;
let main: Coordinator;
let short: Coordinator | undefined;
let capped: Coordinator | undefined;
let wallets: Wallet[];
const open: RawClient[] = [];

beforeAll(async () => {
  // Plain fp32 FedAvg rounds of 2+ clients: the upload test needs one to be open.
  federation = await startFederation('hub-hostile', {}, { encoding: 'fp32', eligibility: 0 });
  main = federation.coordinator;
  short = await coordinatorOn(federation.devnet, path.join(federation.dir, 'short'), SHORT_SESSION);
  capped = await coordinatorOn(federation.devnet, path.join(federation.dir, 'capped'), {
    maxUnauthenticatedPerAddress: 2,
  });
  wallets = federation.devnet.keys.slice(1, 9).map((key) => new Wallet(key));
});

afterAll(async () => {
  for (const client of open) client.close();
  await capped?.close();
  await short?.close();
  await federation?.stop();
});

async function unsigned(url: string): Promise<RawClient> {
  const client = await connectRaw(url, wallets[0]!, { signIn: false });
  open.push(client);
  return client;
}

/** The next event `event` on `socket`, or an error naming it if none comes within `ms`. */
function next<T>(socket: RawSocket, event: 'auth:challenge' | 'connection:closing', ms = 15_000) {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (value: unknown) => {
      clearTimeout(timer);
      resolve(value as T);
    });
  });
}

function disconnected(socket: RawSocket): Promise<string> {
  return new Promise((resolve) => {
    if (socket.disconnected) resolve('already');
    else socket.once('disconnect', resolve);
  });
}

async function login(socket: RawSocket, wallet: Wallet, message: string) {
  return socket.emitWithAck('auth:login', {
    protocolVersion: PROTOCOL_VERSION,
    message,
    signature: await wallet.signMessage(message),
  });
}

async function healthClients(url: string): Promise<number> {
  return ((await (await fetch(`${url}/healthz`)).json()) as { clients: number }).clients;
}

describe('sign-in window', () => {
  it('refuses a validity window the client chose (issued 2001, expiring 2099)', async () => {
    const { socket, challenge } = await unsigned(main.url);
    const wallet = wallets[0]!;
    const fields = {
      ...challenge,
      address: wallet.address,
      version: '1' as const,
      issuedAt: '2001-01-01T00:00:00.000Z',
      expirationTime: '2099-01-01T00:00:00.000Z',
    };
    // Listening first: the fresh challenge follows the refusal at once.
    const fresh = next<Challenge>(socket, 'auth:challenge');
    const ack = await login(socket, wallet, formatSiweMessage(fields));
    expect(ack).toMatchObject({ ok: false, error: { code: 'BAD_LOGIN' } });
    expect(ack.ok ? '' : ack.error.message).toMatch(/issued at 2001.*before its nonce/);

    // Issued now, but for longer than the server's session: refused too.
    const { nonce, issuedAt } = await fresh;
    const long = formatSiweMessage({ ...fields, nonce, issuedAt });
    const second = await login(socket, wallet, long);
    expect(second.ok ? '' : second.error.message).toMatch(/expires at 2099.*after the/);
    socket.close();
  });

  it('answers a malformed login with a fresh challenge, and the honest retry signs in', async () => {
    const { socket, challenge } = await unsigned(main.url);
    const wallet = wallets[1]!;
    const fresh = next<Challenge>(socket, 'auth:challenge');
    const refused = await login(socket, wallet, 'not a sign-in message');
    expect(refused).toMatchObject({ ok: false, error: { code: 'BAD_LOGIN' } });
    const retry = await fresh;
    expect(retry.nonce).not.toBe(challenge.nonce);
    // The spent nonce stays spent.
    const third = next<Challenge>(socket, 'auth:challenge');
    expect(await login(socket, wallet, siweMessageFor(challenge, wallet.address))).toMatchObject({
      ok: false,
      error: { code: 'BAD_LOGIN' },
    });
    const ack = await login(socket, wallet, siweMessageFor(await third, wallet.address));
    expect(ack).toEqual({ ok: true, address: wallet.address });
    expect(retry.nonce).toMatch(/^[A-Za-z0-9]{16}$/);
    socket.close();
  });

  it('closes a connection after five refused sign-ins, saying why', async () => {
    const { socket } = await unsigned(main.url);
    const closing = next<Rejection>(socket, 'connection:closing');
    const gone = disconnected(socket);
    for (let i = 0; i < 5; i++) await login(socket, wallets[0]!, 'garbage');
    expect(await closing).toMatchObject({ code: 'BAD_LOGIN', message: /5 refused sign-ins/ });
    expect(await gone).toBe('io server disconnect');
  });
});

describe('session expiry', () => {
  it('ends a session its client does not renew, and says why', async () => {
    const wallet = wallets[2]!;
    const client = await connectRaw(short!.url, wallet);
    open.push(client);
    const offered = new Date(client.challenge.expirationTime).getTime();
    expect(offered - new Date(client.challenge.issuedAt).getTime()).toBe(6_000);
    const closing = next<Rejection>(client.socket, 'connection:closing');
    const gone = disconnected(client.socket);
    // The renewal challenge comes first; this client ignores it.
    await next<Challenge>(client.socket, 'auth:challenge');
    expect(await closing).toMatchObject({ code: 'UNAUTHENTICATED', message: /session expired/ });
    expect(await gone).toBe('io server disconnect');
    expect(await healthClients(short!.url)).toBe(0);
  });

  it('keeps the honest client signed in on the same connection by renewing', async () => {
    const client = new FederatedClient({
      coordinator: short!.url,
      signer: wallets[3]!,
      data: 'no rounds run here',
      consent: false,
    });
    const states: string[] = [];
    client.on('state', (s) => states.push(s.connection));
    let logins = 0;
    const renewedTwice = new Promise<void>((resolve) =>
      client.on('login', () => {
        if (++logins === 3) resolve();
      }),
    );
    try {
      client.connect();
      // Three sign-ins: the first, then two renewals, the second after the first session ended.
      await renewedTwice;
      expect(states).toEqual(['connecting', 'authenticating', 'online']);
      expect(await healthClients(short!.url)).toBe(1);
    } finally {
      await client.close();
    }
  });
});

describe('connections that never sign in', () => {
  it('are closed at the sign-in deadline, saying why', async () => {
    const { socket } = await unsigned(short!.url);
    const closing = next<Rejection>(socket, 'connection:closing');
    const gone = disconnected(socket);
    expect(await closing).toEqual({
      code: 'UNAUTHENTICATED',
      message: 'no sign-in within 2 s of connecting',
    });
    expect(await gone).toBe('io server disconnect');
  });

  it('are capped per remote address; signing in makes room', async () => {
    const first = await unsigned(capped!.url);
    await unsigned(capped!.url);
    const refused = await connectRaw(capped!.url, wallets[0]!, { signIn: false }).then(
      () => null,
      (error: Error & { data?: unknown }) => error,
    );
    expect(refused?.message).toMatch(/^2 connections from \S+ are already waiting to sign in/);
    expect(refused?.data).toMatchObject({ code: 'TOO_MANY_CONNECTIONS' });

    const signed = await signChallenge(first.challenge, wallets[5]!);
    const ack = await first.socket.emitWithAck('auth:login', {
      protocolVersion: PROTOCOL_VERSION,
      ...signed,
    });
    expect(ack.ok).toBe(true);
    await unsigned(capped!.url);
    const metrics = await (await fetch(`${capped!.url}/metrics`)).text();
    expect(metrics).toContain('commons_rejections_total{code="TOO_MANY_CONNECTIONS"} 1');
  });
});

describe('hostile messages', () => {
  /** A bare Socket.IO connection over a WebSocket: socket.io-client cannot even encode these. */
  async function rawWebSocket(url: string) {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    const acks = new Map<number, (value: unknown) => void>();
    let joined!: () => void;
    const connected = new Promise<void>((resolve) => (joined = resolve));
    ws.addEventListener('message', ({ data }) => {
      const text = String(data);
      if (text === '2') return ws.send('3'); // engine.io ping
      if (text.startsWith('40')) return joined(); // the namespace answered our connect
      const ack = /^43(\d+)(.*)$/s.exec(text);
      if (ack) acks.get(Number(ack[1]))?.((JSON.parse(ack[2]!) as unknown[])[0]);
    });
    await new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve, { once: true });
      ws.addEventListener('error', reject, { once: true });
    });
    ws.send('40'); // connect to the main namespace; events before its answer would be refused
    await connected;
    let id = 0;
    return {
      /** Sends `event` with `json` (raw JSON text) as its argument and waits for the answer. */
      emitWithAck(event: string, json: string): Promise<unknown> {
        const ackId = ++id;
        const answered = new Promise((resolve) => acks.set(ackId, resolve));
        ws.send(`42${ackId}${JSON.stringify([event]).slice(0, -1)},${json}]`);
        return answered;
      },
      close: () => ws.close(),
    };
  }

  it('answers a message nested 5,000 levels deep with MALFORMED_MESSAGE', async () => {
    const socket = await rawWebSocket(main.url);
    try {
      const objects = '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000);
      const arrays = '['.repeat(5_000) + '1' + ']'.repeat(5_000);
      for (const [event, json] of [
        ['auth:login', objects],
        ['auth:login', `{"protocolVersion":1,"message":${arrays}}`],
        ['upload:begin', arrays],
      ] as const) {
        expect(await socket.emitWithAck(event, json)).toEqual({
          ok: false,
          error: {
            code: 'MALFORMED_MESSAGE',
            message: `${event} is nested deeper than ${MAX_MESSAGE_DEPTH} levels`,
          },
        });
      }
      // A flat message on the same connection is still read.
      expect(await socket.emitWithAck('auth:login', '{}')).toMatchObject({
        ok: false,
        error: { code: 'MALFORMED_MESSAGE', message: /^protocolVersion/ },
      });
    } finally {
      socket.close();
    }
  });

  it('refuses a frame whose encoding byte disagrees with the declared encoding, by name', async () => {
    const [aliceWallet, bobWallet] = [wallets[3]!, wallets[4]!];
    const alice = await connectRaw(main.url, aliceWallet);
    const bob = await connectRaw(main.url, bobWallet);
    open.push(alice, bob);
    const task = await alice.nextInvite();
    expect(task.encoding).toBe('fp32');
    const base = (await readCheckpoint(GENESIS_DIR)).tensors;
    const frame = encodeTensors(randomUpdate(base, 1, 0.5), 'fp32');
    const relabelled = frame.slice();
    relabelled[5] = 1; // the header's encoding byte: fp16; declared and sized as fp32
    const chainId = federation!.devnet.addresses.chainId;
    const ack = await uploadFrame(alice, aliceWallet, task, chainId, relabelled);
    expect(ack).toMatchObject({
      ok: false,
      error: {
        code: 'ENCODING_MISMATCH',
        message: "the frame's header says fp16, the upload declared fp32",
      },
    });
    // Nothing was recorded: the honest frame is still taken.
    expect(await uploadFrame(alice, aliceWallet, task, chainId, frame)).toMatchObject({ ok: true });
    alice.close();
    bob.close();
  });
});

describe('commons_connected_clients', () => {
  /** The two gauges once every socket the server still holds has gone, and /healthz clients. */
  async function settled(url: string) {
    const read = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      return {
        connected: gauge('commons_connected_clients'),
        authenticated: gauge('commons_authenticated_clients'),
        clients: await healthClients(url),
      };
    };
    // The server sees a close a moment after the client makes it: wait for the sockets to go.
    for (let i = 0; i < 100; i++) {
      const now = await read();
      if (now.connected === 0) return now;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return read();
  }

  it('returns to 0 after clients connect, sign in, fail sign-in and leave in any order', async () => {
    const [a, b, c] = [wallets[5]!, wallets[6]!, wallets[7]!];
    const login = async (client: RawClient, wallet: Wallet, challenge: Challenge) =>
      client.socket.emitWithAck('auth:login', {
        protocolVersion: PROTOCOL_VERSION,
        ...(await signChallenge(challenge, wallet)),
      });

    // Signs in, leaves.
    (await connectRaw(main.url, a)).close();
    // Fails to sign in, leaves; and leaves without trying.
    const failing = await connectRaw(main.url, a, { signIn: false });
    await failing.socket.emitWithAck('auth:login', {
      protocolVersion: PROTOCOL_VERSION,
      message: 'no',
      signature: `0x${'1'.repeat(130)}`,
    });
    failing.close();
    (await connectRaw(main.url, a, { signIn: false })).close();
    // Signs in as one address, then as another on the same connection, then leaves.
    const twice = await connectRaw(main.url, a);
    const renewed = next<Challenge>(twice.socket, 'auth:challenge');
    await login(twice, a, twice.challenge).catch(() => undefined); // spent nonce: refused
    expect(await login(twice, b, await renewed)).toMatchObject({ ok: true, address: b.address });
    twice.close();
    // Two connections for one address: the second replaces the first; they leave in turn.
    const older = await connectRaw(main.url, c);
    const newer = await connectRaw(main.url, c);
    newer.close();
    older.close();
    // Leaves while its sign-in waits for the chain's eligibility answer.
    const hasty = await connectRaw(main.url, a, { signIn: false });
    hasty.socket.emit(
      'auth:login',
      { protocolVersion: PROTOCOL_VERSION, ...(await signChallenge(hasty.challenge, a)) },
      () => undefined,
    );
    hasty.close();

    expect(await settled(main.url)).toEqual({ connected: 0, authenticated: 0, clients: 0 });
  });
});
