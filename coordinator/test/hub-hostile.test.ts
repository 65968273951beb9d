// The federation hub under hostile input: what a client that does not follow the protocol can
// send at sign-in, against a real coordinator on a devnet over real Socket.IO on loopback. A
// second coordinator on the same chain runs with short sessions, so expiry can be watched.
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederatedClient } from '@commons/shared/federation/index';
import { PROTOCOL_VERSION, type Challenge } from '@commons/shared/protocol/messages';
import type { Rejection } from '@commons/shared/protocol/errors';
import { formatSiweMessage, siweMessageFor } from '@commons/shared/protocol/siwe';
import type { Coordinator } from '../src/coordinator.ts';
import { coordinatorOn, startFederation, type Federation } from './fixtures/federation.ts';
import { connectRaw, type RawClient, type RawSocket } from './fixtures/protocol-client.ts';

/** Short sessions on the second coordinator: 3 s, renewed 1 s before the end. */
const SHORT_SESSION = { sessionTtlMs: 3_000, signInTimeoutMs: 1_000 };

let federation: Federation | undefined;
let main: Coordinator;
let short: Coordinator | undefined;
let wallets: Wallet[];
const open: RawClient[] = [];

beforeAll(async () => {
  // Rounds need more clients than any test signs in: nothing here is invited.
  federation = await startFederation('hub-hostile', { minClients: 20, maxClients: 20 });
  main = federation.coordinator;
  short = await coordinatorOn(federation.devnet, path.join(federation.dir, 'short'), SHORT_SESSION);
  wallets = federation.devnet.keys.slice(1, 6).map((key) => new Wallet(key));
});

afterAll(async () => {
  for (const client of open) client.close();
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
    expect(offered - new Date(client.challenge.issuedAt).getTime()).toBe(3_000);
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
      // Three sign-ins: the first, then two renewals across two 3-second sessions.
      await renewedTwice;
      expect(states).toEqual(['connecting', 'authenticating', 'online']);
      expect(await healthClients(short!.url)).toBe(1);
    } finally {
      await client.close();
    }
  });
});
