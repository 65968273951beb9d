// federation.*: the contributor's side, driving shared's FederatedClient with the wallet as
// signer and the consented vault documents as data. Consent, rounds joined and the ε ledger are
// files in <data>/federation/ (plain: they hold ids, hashes and numbers, no document content).
import { join } from 'node:path';
import { getAddress } from 'ethers';
import { z } from 'zod';
import { rewardLeaf } from '@commons/shared/chain/rewards';
import { verifyMerkleProof } from '@commons/shared/chain/merkle';
import { FederatedClient } from '@commons/shared/federation/client';
import { ApiError, type Handlers } from '../../api/define.ts';
import type {
  Consent,
  FederationStatus,
  RoundRecord,
  federationMethods,
} from '../../api/federation.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import { chainError, messageOf } from '../errors.ts';
import type { CoreEvents } from '../events.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { readIfExists, writeFileAtomic } from '../storage/atomic-file.ts';
import { Serial } from '../storage/serial.ts';
import type { VaultService } from '../vault/vault-service.ts';
import type { WalletService } from '../wallet/wallet-service.ts';
import { FilePrivacyLedger, type PrivacyLedger } from './privacy-ledger.ts';

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

export class FederationService {
  readonly #dir: string;
  readonly #settings: SettingsService;
  readonly #chain: ChainConnection;
  readonly #wallet: WalletService;
  readonly #vault: VaultService;
  readonly #events: CoreEvents;
  readonly ledger: PrivacyLedger;
  readonly #serial = new Serial();
  #client: FederatedClient | null = null;
  #stops: (() => void)[] = [];

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
    this.ledger = new FilePrivacyLedger(dataDir);
  }

  async consent(): Promise<Consent> {
    const bytes = await readIfExists(join(this.#dir, 'consent.json'));
    const stored = bytes
      ? consentFile.parse(JSON.parse(bytes.toString('utf8')))
      : { granted: false, changedAt: null, documentIds: [] };
    return { ...stored, shares: SHARED_WHEN_CONTRIBUTING };
  }

  async rounds(): Promise<RoundRecord[]> {
    const bytes = await readIfExists(join(this.#dir, 'rounds.json'));
    return bytes ? roundsFile.parse(JSON.parse(bytes.toString('utf8'))).rounds : [];
  }

  #addRound(record: RoundRecord): Promise<void> {
    return this.#serial.run(async () => {
      const rounds = (await this.rounds()).filter((r) => r.roundId !== record.roundId);
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
      roundsJoined: (await this.rounds()).filter((r) => r.outcome === 'accepted').length,
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
    });
  }

  /** Asked before each round is joined: consent still given and ε budget not spent. */
  async #mayJoin(): Promise<boolean> {
    if (!(await this.consent()).granted) return false;
    const chain = await this.#chain.reader();
    const { policy } = await chain.policy();
    return (await this.ledger.spent()) < policy.epsilonBudget;
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
    const client = new FederatedClient({
      coordinator: this.#settings.current.coordinatorUrl,
      signer,
      chainId: chain.addresses.chainId,
      data: texts,
      consent: () => this.#mayJoin(),
      chain,
    });
    this.#client = client;
    this.#stops = [
      client.on('state', () => this.#emitStatus()),
      client.on('progress', (p) => this.#events.emit('federation.progress', p)),
      client.on('uploaded', (r) => {
        const detail = `update accepted (norm ${r.norm.toFixed(3)}, ${r.steps} steps)`;
        void this.#addRound({
          roundId: r.roundId,
          baseModel: r.baseModel,
          outcome: 'accepted',
          detail,
          at: new Date().toISOString(),
          epsilon: null,
        });
        this.#events.emit('federation.round', { roundId: r.roundId, outcome: 'accepted', detail });
      }),
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
      client.on('result', (result) => void this.#onResult(result.roundId, result.candidate?.hash)),
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

  /** A published round we contributed to: its declared ε goes into the ledger. */
  async #onResult(roundId: number, candidate: string | undefined): Promise<void> {
    if (!candidate) return;
    const joined = (await this.rounds()).find(
      (r) => r.roundId === roundId && r.outcome === 'accepted',
    );
    if (!joined) return;
    try {
      const chain = await this.#chain.reader();
      const { epsilon } = await chain.modelVersion(candidate);
      await this.ledger.record(roundId, epsilon);
      await this.#addRound({ ...joined, epsilon });
    } catch (err) {
      this.#events.emit('system.notice', {
        level: 'warning',
        message: `could not record round ${roundId}'s ε: ${messageOf(err)}`,
      });
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
      'federation.privacy': async () => {
        const chain = await this.#chain.reader();
        const { policy } = await chain
          .policy()
          .catch((err: unknown) => Promise.reject(chainError(err, 'reading the policy')));
        const entries = await this.ledger.entries();
        const spent = entries.reduce((sum, e) => sum + e.epsilon, 0);
        return {
          budget: policy.epsilonBudget,
          spent,
          remaining: Math.max(0, policy.epsilonBudget - spent),
          delta: policy.delta,
          entries,
        };
      },
      'federation.rewards': async () => {
        const chain = await this.#chain.reader();
        const joined = (await this.rounds()).filter((r) => r.outcome === 'accepted');
        try {
          return await Promise.all(
            joined.map(async (r) => {
              const round = await chain.rewardRound(r.roundId);
              return {
                roundId: r.roundId,
                posted: !/^0x0{64}$/.test(round.root),
                amount: null,
                claimed: false,
              };
            }),
          );
        } catch (err) {
          throw chainError(err, 'reading rewards');
        }
      },
      'federation.claim': async ({ claim }) => {
        const signer = this.#wallet.signer();
        const account = getAddress(signer.address);
        const chain = await this.#chain.writer(signer);
        try {
          const round = await chain.rewardRound(claim.roundId);
          const leaf = rewardLeaf(claim.index, account, BigInt(claim.amount));
          if (!verifyMerkleProof(round.root, leaf, claim.proof)) {
            throw new ApiError(
              'integrity',
              `the claim does not match round ${claim.roundId}'s reward root on chain`,
            );
          }
          if (await chain.isClaimed(claim.roundId, claim.index)) {
            throw new ApiError('conflict', `round ${claim.roundId}'s reward was already claimed`);
          }
          const receipt = await chain.claimReward(claim.roundId, {
            index: claim.index,
            account,
            amount: BigInt(claim.amount),
            proof: claim.proof,
          });
          return { txHash: receipt.hash, blockNumber: receipt.blockNumber };
        } catch (err) {
          throw chainError(err, `claiming round ${claim.roundId}'s reward`);
        }
      },
    };
  }
}
