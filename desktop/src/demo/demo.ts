// `npm run demo`: the model-upgrade lifecycle, headless, on one machine, through the production
// code. A hardhat devnet with Commons deployed on a base model (the genesis model, or with
// --base any Llama-family model from the member's library) under a secure-aggregation + DP
// policy whose rounds train a LoRA adapter (FFA-LoRA by default); the coordinator on loopback;
// a community of members, each holding other Shakespeare roles as private notes (LEAF's non-IID
// split), the opted-in ones training as real FederatedClients in worker threads. Each published
// candidate (its parent plus the round's adapter) is registered with its ε, proposed, voted in
// by token holders (one vote signed off-chain and relayed), queued and executed after the
// devnet's clock is moved past the voting period and the timelock, so the next round trains it.
// Then every member reads the active version from the chain with its base and adapters, gets it
// (a contributor, who holds the parent, fetches only the adapter), verifies its hash and answers
// a prompt with it, and the contributors claim their rewards.
//
// --seed fixes the community (roles, who opts in, wallets), the model's initialisation, the
// clients' sampling and the server's noise. The DP noise of a secure round is the clients'
// own, drawn from a CSPRNG on purpose, so losses vary slightly from run to run; ε does not.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_POLICY, defaultGenesisUri, startDevnet, type Devnet } from '@commons/contracts';
import { startCoordinator, type Coordinator, CandidateEvaluator } from '@commons/coordinator';
import { ClientPool, assignRoles, parseRoles } from '@commons/coordinator/lab';
import {
  selectBackend,
  readCorpus,
  splitText,
  Rng,
  ChatTokenizer,
  writeCheckpoint,
} from '@commons/shared/engine';
import { CommonsClient, type FederationPolicy, type PolicyAdapter } from '@commons/chain';
import { GENESIS_DIR, readBaseCheckpoint } from './base.ts';
import type { RoundResult, RoundStatus } from '@commons/shared/protocol';
import { fetchBaseModel, MemoryModelCache } from '@commons/shared/contributor';
import { runProposal, TxLog } from './governance.ts';
import { replyWithActiveModel } from './member.ts';
import {
  epsilonSvg,
  reportMarkdown,
  valLossSvg,
  type DemoMember,
  type DemoReport,
  type DemoRound,
} from './report.ts';

export interface DemoOptions {
  seed: number;
  /** The Markdown report; the charts and the run's chain and coordinator data go beside it. */
  out: string;
  /** Members of the community (member 0 is "you"). */
  members: number;
  /** How many of them opt in to training ("you" always does); at least 3. */
  contributors: number;
  rounds: number;
  noiseMultiplier: number;
  clipNorm: number;
  learningRate: number;
  batchSize: number;
  maxSteps: number;
  /** Characters of each member's notes used (the roles' text is cut to this). */
  charsPerMember: number;
  evalChars: number;
  publishMarginBpc: number;
  /**
   * The model the community starts from: a checkpoint folder (the genesis model by default) or
   * a Hugging Face Llama-family folder, e.g. a model pulled into the library.
   */
  base: string;
  /** What rounds train (the policy's adapter): FFA-LoRA by default. */
  adapter: PolicyAdapter;
  prompt: string;
  log?: (line: string) => void;
}

export const DEMO_DEFAULTS: Omit<DemoOptions, 'out'> = {
  seed: 1,
  members: 6,
  contributors: 4,
  rounds: 5,
  noiseMultiplier: 0.3,
  clipNorm: 0.05,
  learningRate: 0.003,
  batchSize: 8,
  maxSteps: 10,
  charsPerMember: 40_000,
  evalChars: 10_000,
  // DP noise on a four-member federation costs accuracy; a candidate up to half a bit per
  // character worse than its parent is still published, so the lifecycle runs to the end.
  publishMarginBpc: 0.5,
  base: GENESIS_DIR,
  adapter: DEFAULT_POLICY.adapter,
  prompt: 'ROMEO:',
};

export async function runDemo(
  options: DemoOptions,
): Promise<{ report: DemoReport; files: string[] }> {
  const log = options.log ?? (() => {});
  if (options.contributors < 3 || options.contributors > options.members) {
    throw new RangeError(
      `contributors must be between 3 and the ${options.members} members, got ${options.contributors}`,
    );
  }
  const started = performance.now();
  const seconds: Record<string, number> = {};
  const lap = (name: string, since: number) => (seconds[name] = (performance.now() - since) / 1000);
  const reportFile = path.resolve(options.out);
  const outDir = path.dirname(reportFile);
  const work = path.join(outDir, 'run');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });

  // The community: whole speaking roles per member; who opts in is drawn from the seed.
  const { train, val } = splitText(readCorpus());
  const shards = assignRoles(parseRoles(train), options.members, options.seed);
  const rng = new Rng(options.seed);
  const others = Array.from({ length: options.members - 1 }, (_, i) => i + 1);
  for (let i = others.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [others[i], others[j]] = [others[j]!, others[i]!];
  }
  const contributing = new Set([0, ...others.slice(0, options.contributors - 1)]);
  const order = [...contributing].sort((a, b) => a - b);

  const backend = await selectBackend();
  // The base, written as the checkpoint the devnet registers as genesis and the coordinator serves.
  const { manifest, tensors, hash: genesisHash } = await readBaseCheckpoint(options.base);
  const baseDir = path.join(work, 'base');
  await writeCheckpoint(baseDir, {
    config: manifest.config,
    tokenizer: manifest.tokenizer,
    tensors,
    provenance: { ...manifest.provenance, source: options.base },
  });
  const params = [...tensors.values()].reduce((n, t) => n + t.data.length, 0);
  const tokenizer = ChatTokenizer.fromJSON(manifest.tokenizer);
  const texts = shards.map((s) => s.text.slice(0, options.charsPerMember));
  const initial = new CandidateEvaluator({ text: val, maxChars: options.evalChars }).evaluate(
    manifest,
    tensors,
  );
  log(
    `${options.members} members, ${contributing.size} contributing; base ${genesisHash.slice(0, 12)}… ` +
      `(${params.toLocaleString('en-US')} parameters); val loss ${initial.loss.toFixed(4)} before training`,
  );

  const policy: FederationPolicy = {
    ...DEFAULT_POLICY,
    minClients: contributing.size,
    maxClients: contributing.size + 1,
    sampleRate: 1,
    clipNorm: options.clipNorm,
    noiseMultiplier: options.noiseMultiplier,
    secureAggregation: true,
    learningRate: options.learningRate,
    aggregationRule: 'fedavg',
    epsilonBudget: 1000,
    roundDeadlineSeconds: 600,
    adapter: options.adapter,
  };

  let devnet: Devnet | null = null;
  let coordinator: Coordinator | null = null;
  let pool: ClientPool | null = null;
  const clients: CommonsClient[] = [];
  try {
    let since = performance.now();
    devnet = await startDevnet(path.join(work, 'chain'), policy, {
      genesis: { hash: genesisHash, uri: defaultGenesisUri(genesisHash) },
    });
    const connect = async (privateKey?: string) => {
      const client = await CommonsClient.connect({
        rpcUrl: devnet!.rpcUrl,
        addresses: devnet!.addresses,
        ...(privateKey ? { privateKey } : {}),
      });
      clients.push(client);
      return client;
    };
    // Token holders: development accounts 1–3 (account 0 runs the coordinator).
    const [proposer, voter, signer] = [
      await connect(devnet.keys[1]),
      await connect(devnet.keys[2]),
      await connect(devnet.keys[3]),
    ];
    coordinator = await startCoordinator({
      port: 0,
      dataDir: path.join(work, 'coordinator'),
      rpcUrl: devnet.rpcUrl,
      addressesFile: devnet.addressesFile,
      privateKey: devnet.keys[0]!,
      batchSize: options.batchSize,
      maxSteps: options.maxSteps,
      evalChars: options.evalChars,
      maxRounds: options.rounds,
      seedModels: [baseDir],
      // Time for the vote between rounds, so the next round trains the new model.
      roundIntervalMs: 4000,
      publishMarginBpc: options.publishMarginBpc,
      seed: options.seed,
      noiseSeed: options.seed,
      logLevel: 'warn',
    });
    const coordinatorUrl = coordinator.url;
    pool = await ClientPool.start({
      coordinator: coordinatorUrl,
      chainId: devnet.addresses.chainId,
      data: order.map((i) => Int32Array.from(tokenizer.encodeText(texts[i]!))),
      seed: options.seed,
    });
    pool.on('clientError', ({ index, message }) => log(`contributor ${index}: ${message}`));
    lap('setup', since);
    log(
      `chain, coordinator and ${pool.addresses.length} contributors up in ${seconds['setup']!.toFixed(1)} s`,
    );

    // Rounds, each published candidate voted in before the next round starts.
    since = performance.now();
    const txs = new TxLog();
    const rows: DemoRound[] = [];
    const configured = new Map<number, number>();
    const onStatus = (s: RoundStatus) => {
      if (!configured.has(s.roundId)) configured.set(s.roundId, performance.now());
    };
    coordinator.engine.on('status', onStatus);
    await new Promise<void>((resolve, reject) => {
      const onResult = (result: RoundResult) => {
        void (async () => {
          const c = result.candidate;
          const row: DemoRound = {
            round: result.roundId,
            outcome: result.outcome,
            reason: result.reason ?? null,
            accepted: result.accepted,
            baseModel: coordinator!.db.getRound(result.roundId)?.baseModel ?? '',
            candidate: c?.hash ?? null,
            valLoss: c?.valLoss ?? null,
            valBpc: c?.valBpc ?? null,
            epsilon: c?.epsilon ?? null,
            proposal: null,
            seconds:
              (performance.now() - (configured.get(result.roundId) ?? performance.now())) / 1000,
          };
          if (c) {
            const run = await runProposal({
              rpcUrl: devnet!.rpcUrl,
              proposer,
              actions: [proposer.activateModelAction(c.hash)],
              description: `Activate the candidate of round ${result.roundId} (${c.valBpc.toFixed(3)} bits/char, ε ${c.epsilon?.toFixed(2) ?? 'none'})`,
              ballots: [
                { voter: proposer, support: 'for' },
                { voter, support: 'for' },
                { voter: signer, support: 'for', relayedBy: proposer },
              ],
              txs,
            });
            row.proposal = { id: run.proposalId.toString(), state: run.state };
          }
          rows.push(row);
          log(
            `round ${row.round}: ${row.outcome}${row.reason ? ` (${row.reason})` : ''}, ${row.accepted} updates` +
              (c
                ? `, val loss ${c.valLoss.toFixed(4)}, ${c.valBpc.toFixed(4)} bits/char, ε ${c.epsilon?.toFixed(2) ?? '—'}, proposal ${row.proposal?.state}`
                : ''),
          );
          if (rows.length >= options.rounds) {
            coordinator!.engine.off('result', onResult);
            resolve();
          }
        })().catch(reject);
      };
      coordinator!.engine.on('result', onResult);
    });
    coordinator.engine.off('status', onStatus);
    lap('rounds and governance', since);
    const addresses = pool.addresses;
    await pool.close();
    pool = null;

    // Every member's client sees the active version, verifies its base and adapters against the
    // chain and answers. A contributor trained on the parent and so holds it: only the adapter
    // travels. A member who only chats downloads the whole model.
    since = performance.now();
    const active = await proposer.activeModel();
    const activeModel = active.contentHash.replace(/^0x/, '');
    const parent = active.parentHash?.replace(/^0x/, '') ?? null;
    const reader = await connect();
    const members: DemoMember[] = [];
    for (let i = 0; i < options.members; i++) {
      const cache = new MemoryModelCache(2);
      if (parent && contributing.has(i)) {
        await fetchBaseModel(
          coordinatorUrl,
          { hash: parent, path: `/models/${parent}/` },
          { cache },
        );
      }
      const reply = await replyWithActiveModel(reader, coordinatorUrl, options.prompt, {
        maxTokens: 24,
        seed: options.seed + i,
        cache,
      });
      const slot = order.indexOf(i);
      members.push({
        name: i === 0 ? 'you' : `member ${i}`,
        roles: shards[i]!.roles,
        chars: texts[i]!.length,
        contributes: slot >= 0,
        address: slot >= 0 ? addresses[slot]! : '',
        verifiedHash: reply.hash,
        adapterOnly: reply.adapterOnly,
        reply: reply.reply,
        claimed: null,
      });
    }
    lap('members verify and reply', since);

    // Contributors claim their rewards for every published round (a holder relays the claim,
    // as anyone may; the tokens go to the contributor).
    since = performance.now();
    for (const member of members.filter((m) => m.contributes)) {
      let total = 0n;
      for (const row of rows.filter((r) => r.outcome === 'published')) {
        const response = await fetch(`${coordinatorUrl}/rewards/${row.round}/${member.address}`);
        if (response.status === 404) continue;
        if (!response.ok) {
          throw new Error(
            `GET /rewards/${row.round}/${member.address} answered HTTP ${response.status}`,
          );
        }
        const claim = (await response.json()) as {
          index: number;
          account: string;
          amount: string;
          proof: string[];
        };
        txs.add(
          `claim round ${row.round} reward of ${member.name}`,
          await proposer.claimReward(row.round, { ...claim, amount: BigInt(claim.amount) }),
        );
        total += BigInt(claim.amount);
      }
      const balance = await reader.balanceOf(member.address);
      if (balance !== total) {
        throw new Error(`${member.name} claimed ${total} but holds ${balance} tokens`);
      }
      member.claimed = total.toString();
    }
    lap('rewards claimed', since);
    seconds['total'] = (performance.now() - started) / 1000;

    const report: DemoReport = {
      date: new Date().toISOString(),
      seed: options.seed,
      backend: backend.backend,
      model: {
        params,
        genesis: genesisHash,
        source: options.base,
        adapters: (await reader.adapterChain(activeModel)).adapters.length,
      },
      policy,
      publishMarginBpc: options.publishMarginBpc,
      initial: { valLoss: initial.loss, valBpc: initial.bitsPerChar },
      rounds: rows,
      members,
      prompt: options.prompt,
      activeModel,
      transactions: txs.entries,
      seconds,
    };
    const base = path.basename(reportFile, path.extname(reportFile));
    const charts = { valLoss: `${base}-val-loss.svg`, epsilon: `${base}-epsilon.svg` };
    const files = [
      reportFile,
      path.join(outDir, charts.valLoss),
      path.join(outDir, charts.epsilon),
    ];
    await writeFile(files[1]!, valLossSvg(report));
    await writeFile(files[2]!, epsilonSvg(report));
    await writeFile(reportFile, reportMarkdown(report, charts));
    return { report, files };
  } finally {
    await pool?.close();
    await coordinator?.close();
    for (const client of clients) client.destroy();
    await devnet?.stop();
  }
}
