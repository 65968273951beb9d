import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, cpSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.ts';
import {
  CheckpointError,
  decodeTensors,
  encodeCheckpoint,
  encodeTensors,
  l2Norm,
  sha256Hex,
  type NamedTensors,
  type UpdateEncoding,
} from '../src/checkpoint/index.ts';
import {
  clipToNorm,
  encodeWithinNorm,
  fetchBaseModel,
  FederatedClient,
  localTrainConfig,
  MemoryModelCache,
  tokenize,
  trainLocalUpdate,
  verifyBaseModel,
  type BaseModel,
  type ClientState,
} from '../src/federation/index.ts';
import { saveModel } from '../src/model/checkpoint.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { Rng } from '../src/model/rng.ts';
import { ChatTokenizer } from '../src/chat/tokenizer.ts';
import { Trainer } from '../src/model/trainer.ts';
import { Transformer } from '../src/model/transformer.ts';
import type { TrainingTask } from '../src/protocol/messages.ts';

// The parts of the federated client that stand alone, against real parts: the model engine,
// the checkpoint codec and a real HTTP server. The socket conversation is tested end to end
// against the real coordinator (coordinator/test).

const TEXT =
  'Dear diary, today the garden gnome moved again. The gnome is watching the roses.\n'.repeat(20);
let tokenizer: ChatTokenizer;
let config: ModelConfig;
let base: BaseModel;

const TASK: TrainingTask = {
  localEpochs: 1,
  learningRate: 1e-2,
  batchSize: 2,
  maxSteps: 3,
  proxMu: 0,
  seed: 7,
};

beforeAll(async () => {
  await selectBackend();
  tokenizer = ChatTokenizer.train(TEXT, 280);
  config = {
    vocabSize: tokenizer.vocabSize,
    blockSize: 16,
    nLayer: 1,
    nHead: 2,
    nEmbd: 16,
    dropout: 0,
    bias: true,
    tiedHead: true,
  };
  const model = Transformer.create(config, 3);
  const encoded = encodeCheckpoint({
    config,
    tokenizer: tokenizer.toJSON(),
    tensors: model.toTensors(),
  });
  model.dispose();
  base = verifyBaseModel(
    {
      manifest: new TextEncoder().encode(JSON.stringify(encoded.manifest)),
      weights: encoded.weights,
    },
    encoded.hash,
  );
});

function randomDelta(seed: number, scale = 1): NamedTensors {
  const rng = new Rng(seed);
  const delta: NamedTensors = new Map();
  for (const [name, shape] of [
    ['a', [7, 5]],
    ['b', [11]],
    ['c', [3, 2, 4]],
  ] as const) {
    const data = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * scale * (name === 'b' ? 10 : 1);
    delta.set(name, { shape: [...shape], data });
  }
  return delta;
}

function distance(a: NamedTensors, b: NamedTensors): number {
  let sum = 0;
  for (const [name, { data }] of a) {
    const other = b.get(name)!.data;
    for (let i = 0; i < data.length; i++) sum += (data[i]! - other[i]!) ** 2;
  }
  return Math.sqrt(sum);
}

describe('local update', () => {
  it('plans local epochs in steps of batchSize windows, capped by maxSteps', () => {
    // 1000 tokens, 2 windows of 16 per step: 32 steps an epoch.
    expect(localTrainConfig({ ...TASK, maxSteps: 1000 }, 1000, 16).steps).toBe(32);
    expect(localTrainConfig({ ...TASK, localEpochs: 3, maxSteps: 1000 }, 1000, 16).steps).toBe(96);
    expect(localTrainConfig({ ...TASK, maxSteps: 5 }, 1000, 16).steps).toBe(5);
    expect(localTrainConfig({ ...TASK, maxSteps: 5 }, 10, 16).steps).toBe(1);
  });

  it('tokenizes text with the base model tokenizer and range-checks token ids', () => {
    expect(Array.from(tokenize(['ab', 'cd'], base))).toEqual(tokenizer.encode('ab\n\ncd'));
    expect(tokenize(Int32Array.of(1, 2, 3), base)).toEqual(Int32Array.of(1, 2, 3));
    expect(() => tokenize(Int32Array.of(1, tokenizer.vocabSize), base)).toThrow(/vocabulary/);
  });

  for (const encoding of ['fp32', 'fp16', 'int8'] as const) {
    it(`trains a few steps and clips the delta to C (${encoding})`, async () => {
      const tokens = tokenize(TEXT, base);
      const clipNorm = 0.05;
      const steps: number[] = [];
      const update = await trainLocalUpdate({
        base,
        tokens,
        task: TASK,
        clipNorm,
        encoding,
        onProgress: (p) => steps.push(p.step),
      });
      expect(update).not.toBeNull();
      const u = update!;
      expect(steps).toEqual([1, 2, 3]);
      expect(u.steps).toBe(3);
      expect(u.stoppedEarly).toBe(false);
      expect(u.numExamples).toBe(tokens.length);
      // Three steps at lr 1e-2 move the weights much further than 0.05: clipping happened.
      expect(u.rawNorm).toBeGreaterThan(clipNorm);
      expect(u.norm).toBeLessThanOrEqual(clipNorm);
      expect(u.norm).toBeGreaterThan(clipNorm * 0.99);
      expect(u.sha256).toBe(sha256Hex(u.frame));
      const decoded = decodeTensors(u.frame);
      expect(l2Norm(decoded)).toBeLessThanOrEqual(clipNorm);
      expect([...decoded.keys()]).toEqual([...base.tensors.keys()]);
    });
  }

  it('returns null when stopped before the first step', async () => {
    const update = await trainLocalUpdate({
      base,
      tokens: tokenize(TEXT, base),
      task: TASK,
      clipNorm: 1,
      encoding: 'fp32',
      signal: AbortSignal.abort(),
    });
    expect(update).toBeNull();
  });

  it('refuses data shorter than one context window', async () => {
    await expect(
      trainLocalUpdate({
        base,
        tokens: Int32Array.of(1, 2, 3),
        task: TASK,
        clipNorm: 1,
        encoding: 'fp32',
      }),
    ).rejects.toThrow(/too short/);
  });
});

describe('clipping and encoding', () => {
  it('leaves a short delta alone and scales a long one to exactly C', () => {
    const delta = randomDelta(1);
    const norm = l2Norm(delta);
    expect(clipToNorm(delta, norm * 2).delta).toBe(delta);
    const clipped = clipToNorm(delta, 1.5);
    expect(clipped.norm).toBeCloseTo(norm, 4);
    expect(l2Norm(clipped.delta)).toBeCloseTo(1.5, 5);
  });

  for (const encoding of ['fp32', 'fp16', 'int8'] as const) {
    it(`decodes within C and within the codec's error bound (${encoding})`, () => {
      for (let seed = 1; seed <= 10; seed++) {
        const C = 0.5;
        const { delta } = clipToNorm(randomDelta(seed), C);
        const { frame, norm } = encodeWithinNorm(delta, encoding, C);
        const decoded = decodeTensors(frame);
        expect(norm).toBe(l2Norm(decoded));
        expect(norm).toBeLessThanOrEqual(C);
        for (const [name, { data }] of delta) {
          const out = decoded.get(name)!.data;
          const maxAbs = data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          for (let i = 0; i < data.length; i++) {
            const x = data[i]!;
            // Any rescale to fit C is at most a few parts in 10^4 (fp16's rounding).
            const bound = boundFor(encoding, x, maxAbs) + Math.abs(x) * 2e-3;
            expect(Math.abs(out[i]! - x)).toBeLessThanOrEqual(bound);
          }
        }
      }
    });
  }

  it('rescales when rounding would push the decoded norm over C', () => {
    // fp16 has steps of 2^-10 near 1: 1.0007 rounds up to 1.000977, over C = 1.0007.
    const C = Math.fround(1.0007);
    const delta: NamedTensors = new Map([['w', { shape: [1], data: Float32Array.of(C) }]]);
    expect(l2Norm(decodeTensors(encodeTensors(delta, 'fp16')))).toBeGreaterThan(C);
    const { norm } = encodeWithinNorm(delta, 'fp16', C);
    expect(norm).toBeLessThanOrEqual(C);
    expect(norm).toBeGreaterThan(0.999);
  });
});

function boundFor(encoding: UpdateEncoding, x: number, maxAbs: number): number {
  if (encoding === 'fp32') return 1e-7 * Math.abs(x);
  if (encoding === 'fp16') return Math.abs(x) * 2 ** -11 + 2 ** -24;
  return maxAbs / 127 / 2 + 1e-7 * maxAbs; // half an int8 step
}

describe('FedProx proximal term', () => {
  async function trainedDistance(mu: number | null): Promise<number> {
    const model = Transformer.fromTensors(config, base.tensors);
    const trainer = new Trainer(
      model,
      { steps: 8, batchSize: 2, maxLr: 1e-2, minLr: 1e-2, warmupSteps: 0, weightDecay: 0, seed: 5 },
      null,
      mu === null ? {} : { proximal: { mu, anchor: base.tensors } },
    );
    await trainer.run({ tokens: tokenize(TEXT, base), chars: 0 });
    const d = distance(model.toTensors(), base.tensors);
    trainer.dispose();
    model.dispose();
    return d;
  }

  it('keeps the weights closer to the anchor with a huge μ than with μ = 0', async () => {
    const free = await trainedDistance(0);
    const held = await trainedDistance(1e4);
    expect(free).toBeGreaterThan(0);
    expect(held).toBeLessThan(free / 2);
  });

  it('changes nothing when μ = 0', async () => {
    expect(await trainedDistance(0)).toBe(await trainedDistance(null));
  });

  it('refuses an anchor that does not match the parameters', () => {
    const model = Transformer.fromTensors(config, base.tensors);
    const anchor = new Map(base.tensors);
    anchor.delete([...anchor.keys()][0]!);
    expect(() => new Trainer(model, {}, null, { proximal: { mu: 1, anchor } })).toThrow(
      /anchor is missing/,
    );
    model.dispose();
  });
});

describe('base model download', () => {
  let server: Server;
  let url: string;
  let hash: string;
  const requests: string[] = [];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'commons-federation-'));
    const model = Transformer.create(config, 4);
    ({ hash } = await saveModel(join(dir, 'good'), model, tokenizer, { name: 'test' }));
    model.dispose();
    cpSync(join(dir, 'good'), join(dir, 'tampered'), { recursive: true });
    const weights = readFileSync(join(dir, 'tampered', 'weights.bin'));
    weights[40] = weights[40]! ^ 0x01;
    writeFileSync(join(dir, 'tampered', 'weights.bin'), weights);

    // A content-addressed store as the coordinator serves it: /models/<hash>/<file>, and a
    // /bad/ folder that serves the tampered copy under the same hash.
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const match = /^\/(models|bad)\/([0-9a-f]{64})\/(manifest\.json|weights\.bin)$/.exec(
        req.url ?? '',
      );
      if (!match || match[2] !== hash) {
        res.writeHead(404).end();
        return;
      }
      const folder = match[1] === 'models' ? 'good' : 'tampered';
      const body = readFileSync(join(dir, folder, match[3]!));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    url = `http://127.0.0.1:${address.port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('downloads, verifies and caches a checkpoint by hash', async () => {
    const cache = new MemoryModelCache();
    const progress: [number, number][] = [];
    const got = await fetchBaseModel(
      url,
      { hash, path: `/models/${hash}/` },
      { cache, onProgress: (done, total) => progress.push([done, total]) },
    );
    expect(got.hash).toBe(hash);
    expect(got.config).toEqual(config);
    expect(got.tokenizer.encode('the gnome')).toEqual(tokenizer.encode('the gnome'));
    const total = got.manifest.weightsByteLength;
    expect(progress[0]).toEqual([0, total]);
    expect(progress.at(-1)).toEqual([total, total]);

    const before = requests.length;
    const again = await fetchBaseModel(url, { hash, path: `/models/${hash}/` }, { cache });
    expect(requests.length).toBe(before); // from the cache
    expect(distance(again.tensors, got.tensors)).toBe(0);
  });

  it('refuses a tampered weights file with the checkpoint error, and does not cache it', async () => {
    const cache = new MemoryModelCache();
    const err = await fetchBaseModel(url, { hash, path: `/bad/${hash}` }, { cache }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as CheckpointError).code).toBe('HASH_MISMATCH');
    expect(cache.get(hash)).toBeUndefined();
  });

  it('refuses a checkpoint that is not the one the round names', async () => {
    const other = 'ab'.repeat(32);
    // The store answers 404 for an unknown hash...
    await expect(fetchBaseModel(url, { hash: other, path: `/models/${other}/` })).rejects.toThrow(
      /HTTP 404/,
    );
    // ...and a store that serves another model under the name is caught by its manifest.
    const err = await fetchBaseModel(url, { hash: other, path: `/models/${hash}/` }).catch(
      (e: unknown) => e,
    );
    expect((err as CheckpointError).code).toBe('UNEXPECTED_HASH');
  });
});

describe('FederatedClient', () => {
  it('reports a coordinator it cannot reach, keeps retrying, and closes cleanly', async () => {
    // A port nothing listens on: bind one, then free it.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const client = new FederatedClient({
      coordinator: `http://127.0.0.1:${port}`,
      signer: Wallet.createRandom(),
      data: TEXT,
      consent: true,
      socket: { reconnectionDelay: 10, reconnectionDelayMax: 20 },
    });
    const states: ClientState[] = [];
    client.on('state', (s) => states.push(s));
    const offline = client.once('state', (s) => s.connection === 'offline');
    const retried = client.once('state', (s) => s.connection === 'connecting');
    client.connect();
    expect((await offline).detail).toBeTruthy();
    await retried;
    await client.close();
    expect(client.state.connection).toBe('closed');
    expect(states.at(-1)?.connection).toBe('closed');
    expect(() => client.connect()).toThrow(/closed/);
  });

  it('closes when its signal aborts', async () => {
    const abort = new AbortController();
    const client = new FederatedClient({
      coordinator: 'http://127.0.0.1:9',
      signer: Wallet.createRandom(),
      data: TEXT,
      consent: false,
      signal: abort.signal,
    });
    const closed = client.once('state', (s) => s.connection === 'closed');
    client.connect();
    abort.abort();
    await closed;
    expect(client.state.connection).toBe('closed');
  });
});
