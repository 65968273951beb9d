// Adapter rounds through the real coordinator: a Hardhat devnet whose policy says FFA-LoRA (rank 4
// on q_proj and v_proj), the coordinator in-process, and real FederatedClients training the
// genesis model's adapter under SecAgg+. What is checked:
//   - the task announces the adapter, and SecAgg+ sums only the B factors (A is frozen);
//   - the published adapter holds exactly the A every client drew from the round's seed and the
//     weighted mean of the B factors the clients masked;
//   - the candidate is the parent with that adapter folded in: a member who folds the adapter
//     fetched from the store into the parent it holds gets the candidate's hash bit for bit;
//   - the chain records the version as (base, adapter, parent);
//   - LoRA-FedAvg with DP noise trains and sends A and B, and publishes with a finite ε;
//   - a server-optimiser strategy is refused on an adapter round, before anyone is invited.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Devnet } from '@commons/contracts';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  LoraAdapter,
  mergeLora,
  readCheckpoint,
  readCorpus,
  splitText,
  type DecodedCheckpoint,
} from '@commons/shared/engine';
import {
  fetchAdapterVersion,
  fetchBaseModel,
  FederatedClient,
  MemoryModelCache,
  type MaskedReceipt,
} from '@commons/shared/contributor';
import { quantizationErrorBound, SECAGG_DEFAULTS } from '@commons/shared/privacy';
import type { RoundResult, RoundTask } from '@commons/shared/protocol';
import { GENESIS_DIR } from '../src/config.ts';
import { CandidateEvaluator } from '../src/rounds/evaluator.ts';
import type { Coordinator } from '../src/coordinator.ts';
import { coordinatorOn, startFederation, type Federation } from './fixtures/federation.ts';

const CLIP_NORM = 1;
const LORA = { rank: 4, alpha: 8, targets: ['q_proj' as const, 'v_proj' as const] };

const { train, val } = splitText(readCorpus());
/** The held-out text the operator names (a file), not the default one. */
const HELD_OUT = val.slice(20_000, 24_000);
const texts = [400, 600, 800, 1000].map((n, i) => train.slice(i * 3000, i * 3000 + n));

let genesis: DecodedCheckpoint;
const federations: Federation[] = [];
const clients: FederatedClient[] = [];

beforeAll(async () => {
  genesis = await readCheckpoint(GENESIS_DIR);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const f of federations) await f.stop();
});

function startClients(url: string, devnet: Devnet, keys: number[]): FederatedClient[] {
  return keys.map((key, i) => {
    const client = new FederatedClient({
      coordinator: url,
      signer: new Wallet(devnet.keys[key]!),
      data: texts[i % texts.length]!,
      consent: true,
      // The test checks the published mean against each client's masked vector.
      keepMaskedUpdates: true,
      socket: { reconnectionDelay: 200, reconnectionDelayMax: 1_000 },
    });
    client.connect();
    clients.push(client);
    return client;
  });
}

function firstResult(coordinator: Coordinator): Promise<RoundResult> {
  return new Promise((resolve) => coordinator.engine.once('result', resolve));
}

async function fetchCheckpoint(url: string, hash: string): Promise<DecodedCheckpoint> {
  const get = async (file: string) => {
    const response = await fetch(`${url}/models/${hash}/${file}`);
    expect(response.status).toBe(200);
    return new Uint8Array(await response.arrayBuffer());
  };
  const manifest = JSON.parse(new TextDecoder().decode(await get('manifest.json'))) as unknown;
  return decodeCheckpoint(manifest, await get('weights.bin'), { expectedHash: hash });
}

describe('FFA-LoRA rounds under SecAgg+', () => {
  let federation: Federation;
  const tasks: RoundTask[] = [];
  const receipts: MaskedReceipt[] = [];

  let evalFile: string;

  beforeAll(async () => {
    evalFile = path.join(await mkdtemp(path.join(tmpdir(), 'commons-eval-')), 'held-out.txt');
    await writeFile(evalFile, HELD_OUT);
    federation = await startFederation(
      'adapter-ffa',
      {
        minClients: 3,
        clipNorm: CLIP_NORM,
        secureAggregation: true,
        learningRate: 0.02,
        adapter: { rule: 'ffa-lora', ...LORA },
      },
      {
        batchSize: 2,
        maxSteps: 3,
        evalFile,
        publishMarginBpc: 1,
        maxRounds: 1,
        maxRoundSeconds: 120,
        inviteTimeoutMs: 10_000,
      },
    );
    federations.push(federation);
  }, 120_000);

  it('publishes the parent with the mean adapter folded in, and the chain records base and adapter', async () => {
    const { coordinator, devnet } = federation;
    const published = firstResult(coordinator);
    for (const client of startClients(coordinator.url, devnet, [1, 2, 3, 4])) {
      client.on('invite', ({ task }) => tasks.push(task));
      client.on('masked', (receipt) => receipts.push(receipt));
    }
    const result = await published;
    expect(result.reason).toBeUndefined();
    expect(result.outcome).toBe('published');

    // The task: the adapter and its seed; SecAgg+ sums the B factors alone.
    const task = tasks.find((t) => t.roundId === result.roundId)!;
    expect(task.adapter).toEqual({ rule: 'ffa-lora', lora: LORA, seed: task.train.seed });
    const drawn = LoraAdapter.initialTensors(genesis.manifest.config, LORA, task.adapter!.seed);
    const bNames = [...drawn.keys()].filter((n) => n.endsWith('.lora_B.weight'));
    const bSize = bNames.reduce((n, name) => n + drawn.get(name)!.data.length, 0);
    expect(task.secureAggregation!.vectorLength).toBe(bSize);
    const mine = receipts.filter((r) => r.roundId === result.roundId);
    expect(mine.length).toBe(result.accepted);
    expect(mine.every((r) => r.update!.length === bSize)).toBe(true);

    // The adapter in the store: A exactly as drawn, B the weighted mean of what was masked.
    const adapterHash = result.candidate!.adapterHash!;
    const adapter = await fetchCheckpoint(coordinator.url, adapterHash);
    expect(adapter.manifest.kind).toBe('adapter');
    expect(adapter.manifest.adapter).toEqual({ baseHash: genesis.hash, lora: LORA });
    for (const [name, t] of drawn) {
      if (name.endsWith('.lora_A.weight')) {
        expect(Array.from(adapter.tensors.get(name)!.data)).toEqual(Array.from(t.data));
      }
    }
    const totalWeight = mine.reduce((s, r) => s + r.weight, 0);
    const maxWeight = task.secureAggregation!.maxWeight;
    const Q = SECAGG_DEFAULTS.quantizationRange;
    const bound =
      quantizationErrorBound(
        { clippingRange: CLIP_NORM, quantizationRange: Q, maxWeight },
        mine.length,
      ) /
        totalWeight +
      (2 * mine.length * CLIP_NORM * (maxWeight / (2 * (Q - 1)))) / totalWeight +
      1e-7;
    let offset = 0;
    let largest = 0;
    for (const name of bNames) {
      const got = adapter.tensors.get(name)!.data;
      for (let i = 0; i < got.length; i++) {
        let sum = 0;
        for (const r of mine) sum += r.weight * r.update![offset + i]!;
        expect(Math.abs(got[i]! - sum / totalWeight)).toBeLessThanOrEqual(bound);
        largest = Math.max(largest, Math.abs(got[i]!));
      }
      offset += got.length;
    }
    expect(largest).toBeGreaterThan(100 * bound); // the clients did train B

    // A member holding the parent folds the small adapter in and arrives at the candidate's hash.
    const folded = encodeCheckpoint({
      config: genesis.manifest.config,
      tokenizer: genesis.manifest.tokenizer,
      tensors: mergeLora(genesis.tensors, adapter.tensors, LORA),
    });
    expect(folded.hash).toBe(result.candidate!.hash);
    expect(folded.weights.byteLength).toBeGreaterThan(50 * adapter.manifest.weightsByteLength);
    // Scored on the held-out text the operator named: the same figure, recomputed here.
    const score = new CandidateEvaluator({ text: HELD_OUT }).evaluate(
      genesis.manifest,
      mergeLora(genesis.tensors, adapter.tensors, LORA),
    );
    expect(result.candidate!.valBpc).toBeCloseTo(score.bitsPerChar, 6);
    // The same through the member's path: parent verified, adapter fetched over HTTP, folded,
    // checked against the registered hash, and only then cached.
    const parent = await fetchBaseModel(coordinator.url, {
      hash: genesis.hash,
      path: `/models/${genesis.hash}/`,
    });
    const cache = new MemoryModelCache(2);
    const version = await fetchAdapterVersion(
      coordinator.url,
      { hash: result.candidate!.hash, adapterHash, parent },
      { cache },
    );
    expect(version.hash).toBe(result.candidate!.hash);
    expect(cache.get(result.candidate!.hash)).toBeDefined();

    // On chain: a version of base genesis, adapter adapterHash, parent genesis.
    const onChain = await coordinator.chain.modelVersion(result.candidate!.hash);
    expect(onChain.baseHash.replace(/^0x/, '')).toBe(genesis.hash);
    expect(onChain.adapterHash?.replace(/^0x/, '')).toBe(adapterHash);
    expect(onChain.parentHash?.replace(/^0x/, '')).toBe(genesis.hash);
    expect(coordinator.db.getModel(result.candidate!.hash)?.adapterHash).toBe(adapterHash);
  }, 300_000);

  it('will not start on an evaluation text it cannot read', async () => {
    const { devnet, dir } = federation;
    await expect(
      coordinatorOn(devnet, dir, {
        dataDir: path.join(dir, 'no-eval'),
        evalFile: path.join(dir, 'no-such-text.txt'),
      }),
    ).rejects.toThrow(/the evaluation text .*no-such-text\.txt cannot be read/);
  });

  it('refuses a server-optimiser strategy on an adapter round before inviting anyone', async () => {
    const { devnet, dir } = federation;
    const fedadam = await coordinatorOn(devnet, dir, {
      dataDir: path.join(dir, 'fedadam'),
      strategy: 'fedadam',
      maxRounds: 1,
    });
    try {
      const failed = firstResult(fedadam);
      const invites: RoundTask[] = [];
      for (const c of startClients(fedadam.url, devnet, [5, 6, 7])) {
        c.on('invite', ({ task }) => invites.push(task));
      }
      const result = await failed;
      expect(result.outcome).toBe('failed');
      expect(result.reason).toMatch(/^fedadam keeps server-optimiser state across rounds/);
      expect(invites).toEqual([]);
    } finally {
      await fedadam.close();
    }
  }, 120_000);
});

describe('LoRA-FedAvg rounds with DP noise', () => {
  it('trains and sends A and B, and publishes with a finite ε', async () => {
    const federation = await startFederation(
      'adapter-fedavg',
      {
        minClients: 3,
        clipNorm: CLIP_NORM,
        noiseMultiplier: 0.3,
        learningRate: 0.02,
        adapter: { rule: 'lora-fedavg', ...LORA },
      },
      {
        encoding: 'fp32',
        batchSize: 2,
        maxSteps: 2,
        evalChars: 2000,
        publishMarginBpc: 5,
        maxRounds: 1,
        maxRoundSeconds: 120,
        inviteTimeoutMs: 10_000,
        noiseSeed: 7,
      },
    );
    federations.push(federation);
    const { coordinator, devnet } = federation;
    const published = firstResult(coordinator);
    const tasks: RoundTask[] = [];
    for (const c of startClients(coordinator.url, devnet, [1, 2, 3])) {
      c.on('invite', ({ task }) => tasks.push(task));
    }
    const result = await published;
    expect(result.reason).toBeUndefined();
    expect(result.outcome).toBe('published');
    expect(result.candidate!.epsilon).toBeGreaterThan(0);
    expect(Number.isFinite(result.candidate!.epsilon)).toBe(true);

    // Both factors travel: the frame holds every A and B of the adapter.
    const task = tasks.find((t) => t.roundId === result.roundId)!;
    expect(task.adapter?.rule).toBe('lora-fedavg');
    const drawn = LoraAdapter.initialTensors(genesis.manifest.config, LORA, task.adapter!.seed);
    const submissions = coordinator.db.submissions(result.roundId);
    expect(submissions.length).toBe(result.accepted);
    const all = [...drawn.values()].reduce((n, t) => n + t.data.length, 0);
    expect(task.upload.frameBytes).toBeGreaterThan(all * 4);
    expect(task.upload.frameBytes).toBeLessThan(all * 4 + 4096);

    // The published A moved away from what was drawn (A trains under LoRA-FedAvg).
    const adapter = await fetchCheckpoint(coordinator.url, result.candidate!.adapterHash!);
    const name = [...drawn.keys()].find((n) => n.endsWith('.lora_A.weight'))!;
    const moved = adapter.tensors
      .get(name)!
      .data.some((v, i) => Math.abs(v - drawn.get(name)!.data[i]!) > 1e-6);
    expect(moved).toBe(true);
    const folded = encodeCheckpoint({
      config: genesis.manifest.config,
      tokenizer: genesis.manifest.tokenizer,
      tensors: mergeLora(genesis.tensors, adapter.tensors, LORA),
    });
    expect(folded.hash).toBe(result.candidate!.hash);
  }, 300_000);
});
