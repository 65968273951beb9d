import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CheckpointInput } from '@commons/shared/engine';

import { createHttpHandler, parseRange } from '../src/http/routes.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { ModelStore } from '../src/store/models.ts';

let dir: string;
let server: Server;
let base: string;
let hash: string;
let weights: Uint8Array;
let size: number;

const metrics = createMetrics({ defaultMetrics: false });

/** Big enough that the weights stream in several chunks. */
function checkpoint(): CheckpointInput {
  return {
    config: {
      vocabSize: 4,
      blockSize: 2,
      nLayer: 1,
      nHead: 1,
      nEmbd: 2,
      dropout: 0,
      bias: false,
      tiedHead: true,
    },
    tokenizer: { kind: 'test' },
    tensors: new Map([
      ['big', { shape: [300, 1000], data: Float32Array.from({ length: 300_000 }, (_, i) => i) }],
      ['small', { shape: [3], data: new Float32Array([1, 2, 3]) }],
    ]),
  };
}

let healthBody: object = { ok: true, round: 3 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'commons-http-'));
  const models = await ModelStore.open(join(dir, 'models'));
  hash = await models.publish(checkpoint());
  weights = new Uint8Array(await readFile(join(models.dir(hash), 'weights.bin')));
  size = weights.length;
  const handle = createHttpHandler({
    models,
    health: () => healthBody,
    metrics: metrics.registry,
  });
  server = createServer((req, res) => {
    if (!handle(req, res)) {
      res.writeHead(418);
      res.end('not mine');
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

const weightsUrl = () => `${base}/models/${hash}/weights.bin`;

async function bytesOf(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}

/** A request sent exactly as written (fetch would normalise "..", which is the point here). */
async function raw(method: string, path: string): Promise<{ status: number; body: string }> {
  const { port } = server.address() as AddressInfo;
  const req = request({ host: '127.0.0.1', port, method, path });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, body };
}

describe('model files', () => {
  it('serves the weights whole, immutable, with a strong ETag', async () => {
    const res = await fetch(weightsUrl());
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${hash}-weights.bin"`);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-length')).toBe(String(size));
    expect(await bytesOf(res)).toEqual(weights);
  });

  it('serves the manifest as JSON', async () => {
    const res = await fetch(`${base}/models/${hash}/manifest.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('etag')).toBe(`"${hash}-manifest.json"`);
    expect(((await res.json()) as { hash: string }).hash).toBe(hash);
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const etag = `"${hash}-weights.bin"`;
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const res = await fetch(weightsUrl(), { headers: { 'If-None-Match': header } });
      expect(res.status).toBe(304);
      expect(res.headers.get('etag')).toBe(etag);
      expect((await bytesOf(res)).length).toBe(0);
    }
    const stale = await fetch(weightsUrl(), { headers: { 'If-None-Match': '"other"' } });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
  });

  it('serves single byte ranges: a-b, a- and the suffix -n', async () => {
    const cases: [string, number, number][] = [
      ['bytes=100-199', 100, 199],
      ['bytes=70000-', 70000, size - 1],
      ['bytes=-16', size - 16, size - 1],
      [`bytes=-${size + 50}`, 0, size - 1],
      [`bytes=5-${size + 1000}`, 5, size - 1],
    ];
    for (const [header, start, end] of cases) {
      const res = await fetch(weightsUrl(), { headers: { Range: header } });
      expect(res.status, header).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${size}`);
      expect(res.headers.get('content-length')).toBe(String(end - start + 1));
      expect(await bytesOf(res)).toEqual(weights.subarray(start, end + 1));
    }
  });

  it('answers 416 to a range outside the file', async () => {
    for (const header of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
      const res = await fetch(weightsUrl(), { headers: { Range: header } });
      expect(res.status, header).toBe(416);
      expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
      await res.arrayBuffer();
    }
  });

  it('sends the whole file for ranges it does not serve or a stale If-Range', async () => {
    const cases: Record<string, string>[] = [
      { Range: 'bytes=0-1, 5-9' },
      { Range: 'items=0-1' },
      { Range: 'bytes=0-9', 'If-Range': '"another-version"' },
    ];
    for (const headers of cases) {
      const res = await fetch(weightsUrl(), { headers });
      expect(res.status).toBe(200);
      expect((await bytesOf(res)).length).toBe(size);
    }
    const fresh = await fetch(weightsUrl(), {
      headers: { Range: 'bytes=0-9', 'If-Range': `"${hash}-weights.bin"` },
    });
    expect(fresh.status).toBe(206);
    expect(await bytesOf(fresh)).toEqual(weights.subarray(0, 10));
  });

  it('answers HEAD with the headers only', async () => {
    const res = await fetch(weightsUrl(), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(size));
    expect(res.headers.get('etag')).toBe(`"${hash}-weights.bin"`);
    expect((await bytesOf(res)).length).toBe(0);
    const part = await fetch(weightsUrl(), { method: 'HEAD', headers: { Range: 'bytes=-10' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes ${size - 10}-${size - 1}/${size}`);
  });

  it('answers 404 with a JSON error for an unknown model or file', async () => {
    const unknown = await fetch(`${base}/models/${'0'.repeat(64)}/weights.bin`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: expect.stringContaining('0'.repeat(64)) });
    const otherFile = await fetch(`${base}/models/${hash}/trainer.json`);
    expect(otherFile.status).toBe(404);
    expect(await otherFile.json()).toHaveProperty('error');
  });

  it('refuses anything that is not a lowercase hex hash, so no path escapes the store', async () => {
    for (const path of [
      '/models/../x',
      '/models/../../../etc/passwd',
      `/models/${hash.toUpperCase()}/weights.bin`,
      `/models/${hash.slice(1)}/weights.bin`,
      '/models/%2e%2e/%2e%2e/etc/passwd',
      `/models/..%2F..%2F${hash.slice(6)}/weights.bin`,
    ]) {
      const res = await raw('GET', path);
      expect(res.status, path).toBe(400);
      expect(JSON.parse(res.body)).toHaveProperty('error');
    }
    const deeper = await raw('GET', `/models/${hash}/../../coordinator.db`);
    expect(deeper.status).toBe(404);
  });

  it('survives a client that hangs up mid-download', async () => {
    const { port } = server.address() as AddressInfo;
    const req = request({ host: '127.0.0.1', port, path: `/models/${hash}/weights.bin` });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    await once(res, 'data');
    req.destroy();
    const after = await fetch(weightsUrl(), { headers: { Range: 'bytes=0-3' } });
    expect(await bytesOf(after)).toEqual(weights.subarray(0, 4));
  });

  it('answers 405 to other methods', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(weightsUrl(), { method });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
      await res.arrayBuffer();
    }
  });
});

describe('health, metrics and other paths', () => {
  it('serves health as JSON', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, round: 3 });
  });

  it('answers 503 when the health says the round loop is dead', async () => {
    const dead = { status: 'dead', roundLoop: { state: 'dead', error: 'ECONNREFUSED' } };
    healthBody = dead;
    try {
      const res = await fetch(`${base}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual(dead);
    } finally {
      healthBody = { ok: true, round: 3 };
    }
  });

  it('serves Prometheus text', async () => {
    metrics.updatesAccepted.inc();
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await res.text()).toContain('commons_updates_accepted_total 1');
  });

  it('leaves every other path to the caller', async () => {
    for (const path of ['/', '/socket.io/?EIO=4&transport=polling', '/models', '/healthz/x']) {
      const res = await raw('GET', path);
      expect(res.status, path).toBe(418);
    }
  });
});

describe('parseRange', () => {
  it('reads the three single-range forms and rejects what lies outside', () => {
    expect(parseRange(undefined, 10)).toEqual({ kind: 'whole' });
    expect(parseRange('bytes=2-4', 10)).toEqual({ kind: 'part', start: 2, end: 4 });
    expect(parseRange('bytes=2-', 10)).toEqual({ kind: 'part', start: 2, end: 9 });
    expect(parseRange('bytes=-3', 10)).toEqual({ kind: 'part', start: 7, end: 9 });
    expect(parseRange('bytes=5-2', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-0', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-', 10)).toEqual({ kind: 'whole' });
  });
});
