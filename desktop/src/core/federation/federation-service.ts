// federation.*: the contributor's side, driving shared's FederatedClient with the wallet as
// signer, the consented vault documents as data and shared's PrivacyLedger as the member's ε
// account (the client declines a round that would go over the on-chain per-member budget).
// Consent, rounds joined and the ledger are files in <data>/federation/ (plain: they hold ids,
// hashes and numbers, no document content). Rewards come from the coordinator's Merkle claims,
// checked against ContributionRewards on chain before anything is sent.
import { join } from 'node:path';
import { getAddress } from 'ethers';
import { z } from 'zod';
import { rewardLeaf, verifyMerkleProof } from '@commons/chain';
import { FederatedClient } from '@commons/shared/contributor';
import { PrivacyError, PrivacyLedger } from '@commons/shared/privacy';
import { ApiError, type Handlers } from '../../api/define.ts';
import type {
  Consent,
  Decline,
  FederationStatus,
  PrivacyLedgerView,
  RewardView,
  RoundRecord,
  federationMethods,
} from '../../api/federation.ts';
import { epsilonOf, type Epsilon } from '../../api/schemas.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import { chainError } from '../errors.ts';
import type { CoreEvents } from '../events.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { readIfExists, writeFileAtomic } from '@commons/shared/engine';
import { errorMessage } from '@commons/shared/errors';
import { Serial } from '../storage/serial.ts';
import type { VaultService } from '../vault/vault-service.ts';
import type { WalletService } from '../wallet/wallet-service.ts';

/** What the consent screen says leaves the machine. */
export const SHARED_WHEN_CONTRIBUTING = [
  'your wallet address (to sign in and to be rewarded)',
  'a model update: the change training made to the model, clipped to the policy bound' +
    ' and masked under secure aggregation so the coordinator sees only the sum',
  'a signed commitment to that update (its hash, round and model)',
  'training progress (steps done) for the current round',
];

const consentFile = z.object({
  granted: z.boolean(),
  changedAt: z.string().nullable(),
  documentIds: z.array(z.string()),
});
const roundsFile = z.object({ rounds: z.array(z.custom<RoundRecord>()) });

/** What the coordinator's GET /rewards/<round>/<address> answers. */
const coordinatorClaim = z.object({
  roundId: z.number().int().positive(),
  root: z.string().regex(/^0x[0-9a-fA-F]{64}$/),
  index: z.number().int().nonnegative(),
  account: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  amount: z.string().regex(/^\d{1,78}$/),
  proof: z.array(z.string().regex(/^0x[0-9a-fA-F]{64}$/)).max(64),
});
type CoordinatorClaim = z.infer<typeof coordinatorClaim>;

/** The ledger's accounting choice (shared/src/privacy/dp/ledger.ts), said for the screen. */
const ACCOUNTING =
  'Each round you join counts in full (no credit for being one of many sampled), composed with' +
  ' Rényi differential privacy: a bound that holds whoever the coordinator picked.';

const ZERO_ROOT = /^0x0{64}$/;

export class FederationService {
  readonly #dir: string;
  readonly #settings: SettingsService;
  readonly #chain: ChainConnection;
  readonly #wallet: WalletService;
  readonly #vault: VaultService;
  readonly #events: CoreEvents;
  readonly #serial = new Serial();
  #ledger: Promise<PrivacyLedger> | null = null;
  #client: FederatedClient | null = null;
  #stops: (() => void)[] = [];
  #declined: Decline | null = null;

  constructor(
    dataDir: string,
    settings: SettingsService,
    chain: ChainConnection,
    wallet: WalletService,
    vault: VaultService,
    events: CoreEvents,
  ) {
    this.#dir = join(dataDir, 'federation');
    this.#settings = settings;
    this.#chain = chain;
    this.#wallet = wallet;
    this.#vault = vault;
    this.#events = events;
  }

  /**
   * The member's privacy ledger, read once and then kept: the client records into the same
   * object, so views always see what it decided on. A damaged file is never replaced.
   */
  ledger(): Promise<PrivacyLedger> {
    if (!this.#ledger) {
      const opening = PrivacyLedger.open(join(this.#dir, 'privacy-ledger.json')).catch(
        (err: unknown) => {
          this.#ledger = null;
          throw err instanceof PrivacyError
            ? new ApiError('integrity', err.message, { cause: err })
            : new ApiError('internal', `reading the privacy ledger: ${errorMessage(err)}`, {
                cause: err,
              });
        },
      );
      this.#ledger = opening;
    }
    return this.#ledger;
  }

  async consent(): Promise<Consent> {
    const bytes = await readIfExists(join(this.#dir, 'consent.json'));
    const stored = bytes
      ? consentFile.parse(JSON.parse(bytes.toString('utf8')))
      : { granted: false, changedAt: null, documentIds: [] };
    return { ...stored, shares: SHARED_WHEN_CONTRIBUTING };
  }

  async #storedRounds(): Promise<RoundRecord[]> {
    const bytes = await readIfExists(join(this.#dir, 'rounds.json'));
    return bytes ? roundsFile.parse(JSON.parse(bytes.toString('utf8'))).rounds : [];
  }

  /** Rounds joined, newest first, each with the member's total ε once it was counted. */
  async rounds(): Promise<RoundRecord[]> {
    const [rounds, ledger] = await Promise.all([this.#storedRounds(), this.ledger()]);
    const delta = ledger.entries.at(-1)?.delta;
    const totals = delta === undefined ? new Map() : runningEpsilon(ledger, delta);
    return rounds.map((r) => ({ ...r, epsilon: totals.get(r.roundId) ?? null }));
  }

  #addRound(record: RoundRecord): Promise<void> {
    return this.#serial.run(async () => {
      const rounds = (await this.#storedRounds()).filter((r) => r.roundId !== record.roundId);
      rounds.unshift(record);
      await writeFileAtomic(
        join(this.#dir, 'rounds.json'),
        JSON.stringify({ rounds }, null, 2) + '\n',
      );
    });
  }

  async status(): Promise<FederationStatus> {
    const state = this.#client?.state;
    return {
      running: this.#client !== null,
      connection: state?.connection ?? 'idle',
      activity: state?.activity ?? 'idle',
      roundId: state?.roundId ?? null,
      address: this.#client?.address ?? null,
      detail: state?.detail ?? null,
      roundsJoined: (await this.#storedRounds()).filter((r) => r.outcome === 'accepted').length,
      declined: this.#declined,
    };
  }

  #emitStatus(): void {
    const state = this.#client?.state;
    this.#events.emit('federation.status', {
      running: this.#client !== null,
      connection: state?.connection ?? 'idle',
      activity: state?.activity ?? 'idle',
      roundId: state?.roundId ?? null,
      detail: state?.detail ?? null,
      declined: this.#declined,
    });
  }

  async #start(): Promise<FederationStatus> {
    if (this.#client) return this.status();
    const consent = await this.consent();
    if (!consent.granted)
      throw new ApiError('refused', 'federated training needs your consent first');
    if (consent.documentIds.length === 0)
      throw new ApiError('invalid-argument', 'choose documents to train on');
    const signer = this.#wallet.signer();
    const texts = await Promise.all(consent.documentIds.map((id) => this.#vault.documentText(id)));
    const chain = await this.#chain.reader();
    const ledger = await this.ledger();
    const client = new FederatedClient({
      coordinator: this.#settings.current.coordinatorUrl,
      signer,
      chainId: chain.addresses.chainId,
      data: texts,
      // Asked before each round: consent may have been withdrawn since the client started.
      consent: async () => (await this.consent()).granted,
      chain,
      // The budget, δ and noise come from the on-chain policy version the round names.
      privacy: { ledger, policies: chain },
    });
    this.#client = client;
    this.#declined = null;
    this.#stops = [
      client.on('state', () => this.#emitStatus()),
      client.on('progress', (p) => this.#events.emit('federation.progress', p)),
      client.on('invite', ({ task, accepted, reason }) => {
        if (accepted || reason === undefined) return;
        this.#declined = { roundId: task.roundId, reason, at: new Date().toISOString() };
        this.#emitStatus();
      }),
      client.on('uploaded', (r) =>
        this.#accepted(
          r.roundId,
          r.baseModel,
          `update accepted (norm ${r.norm.toFixed(3)}, ${r.steps} steps)`,
        ),
      ),
      // Secure aggregation: the masked update is in the round's sum.
      client.on('masked', (r) =>
        this.#accepted(
          r.roundId,
          r.baseModel,
          `masked update in the sum (norm ${r.norm.toFixed(3)}, ${r.steps} steps)`,
        ),
      ),
      client.on('dropped', (d) => {
        void this.#addRound({
          roundId: d.roundId,
          baseModel: '',
          outcome: 'dropped',
          detail: d.reason,
          at: new Date().toISOString(),
          epsilon: null,
        });
        this.#events.emit('federation.round', {
          roundId: d.roundId,
          outcome: 'dropped',
          detail: d.reason,
        });
      }),
      client.on('error', (err) =>
        this.#events.emit('system.notice', {
          level: 'warning',
          message: `federation: ${err.message}`,
        }),
      ),
    ];
    client.connect();
    this.#emitStatus();
    return this.status();
  }

  #accepted(roundId: number, baseModel: string, detail: string): void {
    void this.#addRound({
      roundId,
      baseModel,
      outcome: 'accepted',
      detail,
      at: new Date().toISOString(),
      epsilon: null,
    }).then(
      () => this.#events.emit('federation.round', { roundId, outcome: 'accepted', detail }),
      (err: unknown) =>
        this.#events.emit('system.notice', {
          level: 'warning',
          message: `could not record round ${roundId}: ${errorMessage(err)}`,
        }),
    );
  }

  async privacy(): Promise<PrivacyLedgerView> {
    const chain = await this.#chain.reader();
    const [{ policy }, ledger] = await Promise.all([
      chain.policy().catch((err: unknown) => Promise.reject(chainError(err, 'reading the policy'))),
      this.ledger(),
    ]);
    const entries = ledger.entries;
    const totals = runningEpsilon(ledger, policy.delta);
    const spent = epsilonOf(ledger.spent(policy.delta).epsilon);
    return {
      budget: policy.epsilonBudget,
      delta: policy.delta,
      spent,
      remaining: spent === 'none' ? 0 : Math.max(0, policy.epsilonBudget - spent),
      entries: entries.map((e) => ({
        roundId: e.roundId,
        at: e.timestamp,
        noiseMultiplier: e.noiseMultiplier,
        epsilon: totals.get(e.roundId)!,
      })),
      accounting: ACCOUNTING,
    };
  }

  /** The coordinator's claim for `account` in a round, or null when it has none for them. */
  async #claimOf(roundId: number, account: string): Promise<CoordinatorClaim | null> {
    const url = new URL(`/rewards/${roundId}/${account}`, this.#settings.current.coordinatorUrl);
    let response: Response;
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(15_000) });
    } catch (err) {
      throw new ApiError(
        'unavailable',
        `the coordinator did not answer at ${url.origin} (${errorMessage(err)}); check its URL in Settings`,
        { cause: err },
      );
    }
    if (response.status === 404) return null;
    if (!response.ok) {
      throw new ApiError(
        'unavailable',
        `the coordinator answered HTTP ${response.status} for round ${roundId}'s reward; try again later`,
      );
    }
    const parsed = coordinatorClaim.safeParse(await response.json().catch(() => null));
    if (
      !parsed.success ||
      parsed.data.roundId !== roundId ||
      getAddress(parsed.data.account) !== account
    ) {
      throw new ApiError('integrity', `the coordinator's claim for round ${roundId} is malformed`);
    }
    return parsed.data;
  }

  async rewards(): Promise<RewardView[]> {
    const account = this.#wallet.address ? getAddress(this.#wallet.address) : null;
    const chain = await this.#chain.reader();
    const joined = (await this.#storedRounds()).filter((r) => r.outcome === 'accepted');
    const view = async (roundId: number): Promise<RewardView> => {
      const round = await chain
        .rewardRound(roundId)
        .catch((err: unknown) => Promise.reject(chainError(err, 'reading rewards')));
      const posted = !ZERO_ROOT.test(round.root);
      const base = { roundId, posted, amount: null, claimed: false, claimable: false };
      if (!account) return { ...base, detail: 'unlock your wallet to see your reward' };
      if (!posted) return { ...base, detail: 'the coordinator has not posted this round yet' };
      const claim = await this.#claimOf(roundId, account);
      if (!claim) return { ...base, detail: 'no reward for this wallet in this round' };
      const amount = claim.amount;
      if (claim.root.toLowerCase() !== round.root.toLowerCase() || !proves(claim)) {
        return {
          ...base,
          amount,
          detail: "the coordinator's claim does not match the root on chain",
        };
      }
      const claimed = await chain
        .isClaimed(roundId, claim.index)
        .catch((err: unknown) => Promise.reject(chainError(err, 'reading rewards')));
      return { ...base, amount, claimed, claimable: !claimed, detail: null };
    };
    return Promise.all(joined.map((r) => view(r.roundId)));
  }

  async claim(roundId: number) {
    const signer = this.#wallet.signer();
    const account = getAddress(signer.address);
    const chain = await this.#chain.writer(signer);
    const claim = await this.#claimOf(roundId, account);
    if (!claim) {
      throw new ApiError(
        'not-found',
        `the coordinator has no reward for ${account} in round ${roundId}`,
      );
    }
    try {
      const round = await chain.rewardRound(roundId);
      if (ZERO_ROOT.test(round.root)) {
        throw new ApiError(
          'refused',
          `round ${roundId}'s rewards are not posted on chain yet; try again later`,
        );
      }
      if (claim.root.toLowerCase() !== round.root.toLowerCase() || !proves(claim)) {
        throw new ApiError(
          'integrity',
          `the coordinator's claim does not match round ${roundId}'s reward root on chain; nothing was sent`,
        );
      }
      if (await chain.isClaimed(roundId, claim.index)) {
        throw new ApiError('conflict', `round ${roundId}'s reward was already claimed`);
      }
      const receipt = await chain.claimReward(roundId, {
        index: claim.index,
        account,
        amount: BigInt(claim.amount),
        proof: claim.proof,
      });
      return { txHash: receipt.hash, blockNumber: receipt.blockNumber };
    } catch (err) {
      throw chainError(err, `claiming round ${roundId}'s reward`);
    }
  }

  async stop(): Promise<void> {
    const client = this.#client;
    this.#client = null;
    for (const stop of this.#stops) stop();
    this.#stops = [];
    await client?.close();
    this.#emitStatus();
  }

  handlers(): Handlers<typeof federationMethods> {
    return {
      'federation.consent': () => this.consent(),
      'federation.setConsent': async ({ granted, documentIds }) => {
        if (granted) {
          if (documentIds.length === 0)
            throw new ApiError('invalid-argument', 'choose documents to train on');
          const known = new Set(
            (await this.#vault.handlers()['vault.listDocuments'](undefined)).map((d) => d.id),
          );
          const missing = documentIds.find((id) => !known.has(id));
          if (missing) throw new ApiError('not-found', `no document ${missing} in the vault`);
        }
        const stored = {
          granted,
          changedAt: new Date().toISOString(),
          documentIds: granted ? documentIds : [],
        };
        await writeFileAtomic(
          join(this.#dir, 'consent.json'),
          JSON.stringify(stored, null, 2) + '\n',
        );
        if (!granted) await this.stop();
        return this.consent();
      },
      'federation.status': () => this.status(),
      'federation.start': () => this.#start(),
      'federation.stop': async () => {
        await this.stop();
        return this.status();
      },
      'federation.rounds': () => this.rounds(),
      'federation.privacy': () => this.privacy(),
      'federation.rewards': () => this.rewards(),
      'federation.claim': ({ roundId }) => this.claim(roundId),
    };
  }
}

/** A claim's proof leads from its leaf to its root. */
function proves(claim: CoordinatorClaim): boolean {
  const leaf = rewardLeaf(claim.index, getAddress(claim.account), BigInt(claim.amount));
  return verifyMerkleProof(claim.root, leaf, claim.proof);
}

/** The member's total ε after each ledger entry, by round, as the ledger composes it. */
function runningEpsilon(ledger: PrivacyLedger, delta: number): Map<number, Epsilon> {
  return new Map(ledger.spentAfterEach(delta).map((e) => [e.roundId, epsilonOf(e.epsilon)]));
}
