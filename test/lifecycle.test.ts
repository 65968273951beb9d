// The model-upgrade lifecycle end to end, multi-process as in production: a hardhat chain with
// Commons deployed under a secure-aggregation + DP policy whose rounds train an FFA-LoRA
// adapter on the genesis model (the default rule), the coordinator as its own process
// (bin/commons-coordinator.ts), and four `commons contribute` processes each holding other
// Shakespeare roles as private notes. Along the way: a contributor is killed mid-round, the
// coordinator is killed (SIGKILL) and restarted, holders vote a candidate in (one vote relayed
// by signature) and every member verifies its base and adapter against the chain and runs it
// (one who holds the parent fetches only the adapter), a member's personal adapter, trained on
// genesis by `commons train --lora`, stays layered in `commons chat` on the new version, a
// tampered model file is refused, a proposal short of quorum changes nothing, and a policy
// change is obeyed by the next round.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { keccak256, parseEther, toUtf8Bytes, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDevnet, type Devnet } from '@commons/contracts';
import { selectBackend, readCorpus, splitText } from '@commons/shared/engine';
import { CommonsClient, type FederationPolicy } from '@commons/chain';
import { fetchBaseModel, MemoryModelCache } from '@commons/shared/contributor';
import { assignRoles, parseRoles } from '@commons/coordinator/lab';
import { runProposal, TxLog, replyWithActiveModel } from '@commons/desktop/demo';

const COORDINATOR_BIN = fileURLToPath(
  new URL('../coordinator/bin/commons-coordinator.ts', import.meta.url),
);
const COMMONS_BIN = fileURLToPath(new URL('../shared/bin/commons.ts', import.meta.url));
const CONTRIBUTORS = 4;
const POLICY: Partial<FederationPolicy> = {
  minClients: 3,
  maxClients: 10,
  sampleRate: 1,
  // Tiny, so the DP noise (σ·C on the sum) barely moves the trained genesis model: the
  // coordinator refuses a candidate more than 0.02 bits/char worse than its parent.
  clipNorm: 0.001,
  noiseMultiplier: 1,
  secureAggregation: true,
  aggregationRule: 'fedavg',
  learningRate: 0.001,
  epsilonBudget: 1000,
  roundDeadlineSeconds: 120,
};

interface RoundRow {
  id: number;
  state: string;
  policy_version: number;
  task_json: string;
  candidate_hash: string | null;
  failure_reason: string | null;
}

interface Contributor {
  wallet: Wallet;
  keyFile: string;
  dataFile: string;
  process: ChildProcess | null;
  lines: string[];
}

let dir: string;
let devnet: Devnet;
let port: number;
let url: string;
let coordinator: ChildProcess | null = null;
const contributors: Contributor[] = [];
/** Holders (development accounts, 100k tokens each, delegated). */
const holders: CommonsClient[] = [];
const txs = new TxLog();

async function spawnCoordinator(): Promise<ChildProcess> {
  const keyFile = path.join(dir, 'coordinator.key');
  await writeFile(keyFile, devnet.keys[0]!, { mode: 0o600 });
  const child = spawn(
    process.execPath,
    [
      COORDINATOR_BIN,
      ...['--port', String(port), '--data-dir', path.join(dir, 'coordinator')],
      ...['--rpc', devnet.rpcUrl, '--addresses', devnet.addressesFile, '--key-file', keyFile],
      ...['--batch-size', '2', '--max-steps', '2', '--eval-chars', '2000'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, COMMONS_LOG_LEVEL: 'info' } },
  );
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`coordinator exited with ${code}`));
    child.once('exit', onExit);
    lines.on('line', (line) => {
      if (line.includes('"msg":"listening"')) {
        child.off('exit', onExit);
        resolve();
      }
    });
  });
  return child;
}

function spawnContributor(c: Contributor): void {
  const child = spawn(
    process.execPath,
    [
      COMMONS_BIN,
      'contribute',
      ...['--coordinator', url, '--data', c.dataFile, '--key', c.keyFile, '--yes'],
      ...['--rpc', devnet.rpcUrl, '--addresses', devnet.addressesFile],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  createInterface({ input: child.stdout! }).on('line', (line) => c.lines.push(line));
  c.process = child;
}

/** Runs `commons <args>` as its own process with `input` on stdin. */
function runCommons(
  args: string[],
  input = '',
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [COMMONS_BIN, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.once('exit', (code) => resolve({ code, out, err }));
    child.stdin!.end(input);
  });
}

async function kill(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 180_000,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - started > ms)
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function rounds(): RoundRow[] {
  const db = new Database(path.join(dir, 'coordinator', 'coordinator.db'), { readonly: true });
  try {
    return db.prepare('SELECT * FROM rounds ORDER BY id').all() as RoundRow[];
  } finally {
    db.close();
  }
}

/** Participants whose update a round took (SecAgg keeps no plain submission of a masked one). */
function submitters(roundId: number): string[] {
  const db = new Database(path.join(dir, 'coordinator', 'coordinator.db'), { readonly: true });
  try {
    const rows = db
      .prepare("SELECT address FROM participants WHERE round_id = ? AND status = 'accepted'")
      .all(roundId) as {
      address: string;
    }[];
    return rows.map((r) => r.address.toLowerCase());
  } finally {
    db.close();
  }
}

/** The first round after `after` that published. */
function publishedAfter(after: number): Promise<RoundRow> {
  return until(`a round after ${after} to publish`, () =>
    rounds().find((r) => r.id > after && r.state === 'published'),
  );
}

beforeAll(async () => {
  await selectBackend();
  dir = await mkdtemp(path.join(tmpdir(), 'commons-lifecycle-'));
  devnet = await startDevnet(dir, POLICY);
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  for (const key of devnet.keys.slice(0, 4)) {
    holders.push(
      await CommonsClient.connect({
        rpcUrl: devnet.rpcUrl,
        addresses: devnet.addresses,
        privateKey: key,
      }),
    );
  }
  // Each contributor: its own key (no tokens yet) and other speaking roles as its notes.
  const { train } = splitText(readCorpus());
  const shards = assignRoles(parseRoles(train), 40, 7);
  for (let i = 0; i < CONTRIBUTORS; i++) {
    const wallet = new Wallet(keccak256(toUtf8Bytes(`commons-lifecycle-test:${i}`)));
    const keyFile = path.join(dir, `contributor-${i}.key`);
    await writeFile(keyFile, wallet.privateKey);
    await chmod(keyFile, 0o600);
    const dataFile = path.join(dir, `contributor-${i}.txt`);
    await writeFile(dataFile, shards[i]!.text.slice(0, 20_000));
    contributors.push({ wallet, keyFile, dataFile, process: null, lines: [] });
  }
  coordinator = await spawnCoordinator();
});

afterAll(async () => {
  await Promise.all(contributors.map((c) => kill(c.process)));
  await kill(coordinator);
  for (const holder of holders) holder.destroy();
  await devnet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the model-upgrade lifecycle', () => {
  let firstPublished: RoundRow;

  it('trains with secure aggregation and DP while a contributor is killed mid-round', async () => {
    for (const c of contributors) spawnContributor(c);
    const victim = contributors[CONTRIBUTORS - 1]!;
    // Killed while it trains its first round: its update never arrives.
    const line = await until('the last contributor to train', () =>
      victim.lines.find((l) => /^round \d+: training step/.test(l)),
    );
    const killedIn = Number(/^round (\d+)/.exec(line)![1]);
    await kill(victim.process);

    // That round completes with the others, or fails cleanly and a later one completes.
    firstPublished = await publishedAfter(killedIn - 1);
    const task = JSON.parse(firstPublished.task_json) as {
      policyVersion: number;
      secureAggregation?: { noiseStddev: number } | null;
      adapter?: { rule: string; lora: { rank: number; targets: string[] } } | null;
    };
    expect(task.secureAggregation?.noiseStddev).toBeGreaterThan(0);
    // The default rule: an FFA-LoRA adapter on q_proj and v_proj, not the whole model.
    expect(task.adapter).toMatchObject({
      rule: 'ffa-lora',
      lora: { rank: 8, targets: ['q_proj', 'v_proj'] },
    });
    const accepted = submitters(firstPublished.id);
    expect(accepted.length).toBeGreaterThanOrEqual(3);
    expect(accepted).not.toContain(victim.wallet.address.toLowerCase());
    for (const r of rounds().filter((r) => r.id < firstPublished.id && r.id >= killedIn)) {
      expect(r.state, `round ${r.id}`).toBe('failed');
    }

    // Registered on chain with the ε the DP policy cost, as genesis plus the round's adapter.
    const version = await holders[0]!.modelVersion(firstPublished.candidate_hash!);
    expect(version.roundId).toBe(firstPublished.id);
    expect(version.epsilon).toBeGreaterThan(0);
    const genesis = (await holders[0]!.listModels())[0]!;
    expect(version.baseHash).toBe(genesis.contentHash);
    expect(version.adapterHash).not.toBeNull();
  });

  it('survives kill -9 of the coordinator: after a restart the federation goes on', async () => {
    const before = rounds().at(-1)!.id;
    await kill(coordinator);
    coordinator = await spawnCoordinator();
    const next = await publishedAfter(Math.max(before, firstPublished.id));
    expect(submitters(next.id).length).toBeGreaterThanOrEqual(3);
  });

  it('activates a candidate by vote (one relayed by signature); every member verifies and runs it', async () => {
    const [proposer, voter, signer, relayer] = holders as [
      CommonsClient,
      CommonsClient,
      CommonsClient,
      CommonsClient,
    ];
    const candidate = firstPublished.candidate_hash!;
    expect((await proposer.activeModel()).contentHash).not.toContain(candidate);
    const run = await runProposal({
      rpcUrl: devnet.rpcUrl,
      proposer,
      actions: [proposer.activateModelAction(candidate)],
      description: `Activate the candidate of round ${firstPublished.id}`,
      ballots: [
        { voter, support: 'for' },
        { voter: signer, support: 'for', relayedBy: relayer },
      ],
      txs,
    });
    expect(run.state).toBe('executed');
    expect(run.votes.for).toBe(parseEther('200000'));
    expect(await proposer.hasVoted(run.proposalId, await signer.signer!.getAddress())).toBe(true);

    // Each member reads the chain, gets the version from the coordinator, verifies base and
    // adapter against the chain, and answers. Member 0 already holds genesis, the parent: only
    // the adapter travels. Member 1 holds nothing and downloads the whole model.
    const genesisHash = (await proposer.listModels())[0]!.contentHash.replace(/^0x/, '');
    const caches = [new MemoryModelCache(4), new MemoryModelCache(4)];
    await fetchBaseModel(
      url,
      { hash: genesisHash, path: `/models/${genesisHash}/` },
      { cache: caches[0]! },
    );
    const replies = await Promise.all(
      holders.slice(0, 2).map((member, i) =>
        replyWithActiveModel(member, url, 'ROMEO:', {
          maxTokens: 12,
          seed: i,
          cache: caches[i]!,
        }),
      ),
    );
    const version = await proposer.modelVersion(candidate);
    for (const reply of replies) {
      expect(reply.hash).toBe(candidate.replace(/^0x/, ''));
      expect(reply.base).toBe(genesisHash);
      expect(reply.adapters).toEqual([version.adapterHash!.replace(/^0x/, '')]);
      expect(reply.reply.length).toBeGreaterThan(0);
    }
    expect(replies.map((r) => r.adapterOnly)).toEqual([true, false]);

    // A member's personal adapter, trained on genesis before the switch, stays layered on the
    // new version in chat (separate processes: `commons train --lora`, then `commons chat`).
    const notes = path.join(dir, 'member-notes.txt');
    await writeFile(notes, 'To plant or not to plant, that is the olive question.\n'.repeat(60));
    const personal = path.join(dir, 'personal-adapter');
    const trained = await runCommons([
      'train',
      ...['--data', notes, '--lora', '--steps', '3', '--batch', '2', '--out', personal],
    ]);
    expect(trained.code, trained.err).toBe(0);
    const held = path.join(dir, 'member-0-active');
    await mkdir(held);
    const bytes = caches[0]!.get(candidate.replace(/^0x/, ''))!;
    await writeFile(path.join(held, 'manifest.json'), bytes.manifest);
    await writeFile(path.join(held, 'weights.bin'), bytes.weights);
    const chat = await runCommons(
      ['chat', '--model', held, '--adapter', personal, '--max-tokens', '6', '--seed', '1'],
      'ROMEO:\n',
    );
    expect(chat.code, chat.err).toBe(0);
    expect(chat.err).toMatch(
      new RegExp(`personal adapter trained on ${genesisHash.slice(0, 12)}…, layered on`),
    );
    expect(chat.err).toMatch(/personal adapter on/);
    expect(chat.out.startsWith('ROMEO:')).toBe(true);

    // The chain (and so the coordinator) now trains on it.
    const next = await publishedAfter(rounds().at(-1)!.id);
    expect(next.task_json).toContain(candidate.replace(/^0x/, ''));
  });

  it('refuses a tampered model file from the store', async () => {
    const hash = (await holders[0]!.activeModel()).contentHash.replace(/^0x/, '');
    const file = path.join(dir, 'coordinator', 'models', hash, 'weights.bin');
    const original = await readFile(file);
    const tampered = Buffer.from(original);
    tampered[tampered.length >> 1]! ^= 0x01;
    await writeFile(file, tampered);
    try {
      await expect(fetchBaseModel(url, { hash, path: `/models/${hash}/` })).rejects.toThrow(
        /hash|sha256|mismatch/i,
      );
    } finally {
      await writeFile(file, original);
    }
    const fetched = await fetchBaseModel(url, { hash, path: `/models/${hash}/` });
    expect(fetched.hash).toBe(hash);
  });

  it('claims rewards; a contributor alone is short of quorum, so its proposal changes nothing', async () => {
    const contributor = contributors[0]!;
    const address = contributor.wallet.address;
    const response = await fetch(`${url}/rewards/${firstPublished.id}/${address}`);
    expect(response.status).toBe(200);
    const claim = (await response.json()) as {
      index: number;
      account: string;
      amount: string;
      proof: string[];
    };
    const [funder] = holders as [CommonsClient];
    // The contributor's wallet has no gas yet: a holder funds it, then it claims for itself.
    const fund = await funder.signer!.sendTransaction({ to: address, value: parseEther('1') });
    await fund.wait();
    const me = funder.withSigner(contributor.wallet.connect(funder.provider));
    txs.add(
      `claim round ${firstPublished.id} reward`,
      await me.claimReward(firstPublished.id, { ...claim, amount: BigInt(claim.amount) }),
    );
    expect(await me.balanceOf(address)).toBe(BigInt(claim.amount));
    txs.add('delegate to self', await me.delegate());

    const active = (await me.activeModel()).contentHash;
    const genesis = devnet.addresses.genesis.hash;
    const run = await runProposal({
      rpcUrl: devnet.rpcUrl,
      proposer: me,
      actions: [me.activateModelAction(genesis)],
      description: 'Go back to the genesis model',
      ballots: [{ voter: me, support: 'for' }],
      txs,
    });
    expect(run.state).toBe('defeated');
    expect(run.votes.for).toBe(BigInt(claim.amount));
    expect(run.votes.for).toBeLessThan(run.quorum!);
    // `me` shares the funder's provider, which afterAll destroys.
    expect((await me.activeModel()).contentHash).toBe(active);
  });

  it('obeys a policy change made through governance in the next round', async () => {
    const [proposer, voter] = holders as [CommonsClient, CommonsClient];
    const { version, policy } = await proposer.policy();
    const stricter = { ...policy, noiseMultiplier: policy.noiseMultiplier * 2 };
    const lastBefore = rounds().at(-1)!;
    const run = await runProposal({
      rpcUrl: devnet.rpcUrl,
      proposer,
      actions: [proposer.setPolicyAction(stricter)],
      description: 'Double the DP noise multiplier',
      ballots: [{ voter, support: 'for' }],
      txs,
    });
    expect(run.state).toBe('executed');
    const updated = await proposer.policy();
    expect(updated.version).toBe(version + 1);
    expect(updated.policy.noiseMultiplier).toBe(stricter.noiseMultiplier);

    const oldTask = JSON.parse(rounds().find((r) => r.id === firstPublished.id)!.task_json) as {
      secureAggregation: { noiseStddev: number };
    };
    // Rounds configured before the change may still finish under the old version.
    const next = await until('a round under the new policy to publish', () =>
      rounds().find(
        (r) =>
          r.id > lastBefore.id && r.policy_version === updated.version && r.state === 'published',
      ),
    );
    const task = JSON.parse(next.task_json) as {
      policyVersion: number;
      secureAggregation: { noiseStddev: number };
    };
    expect(task.policyVersion).toBe(updated.version);
    expect((await proposer.modelVersion(next.candidate_hash!)).epsilon).toBeGreaterThan(0);
    expect(task.secureAggregation.noiseStddev / oldTask.secureAggregation.noiseStddev).toBeCloseTo(
      2,
      6,
    );
    for (const r of rounds().filter((r) => r.id > next.id)) {
      expect(r.policy_version).toBe(updated.version);
    }
    expect(txs.totalGas).toBeGreaterThan(0n);
  });
});
