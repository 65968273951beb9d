// governance.*: reads and writes through CommonsClient; votes and proposals are sent by the
// unlocked wallet. Vote by signature: the wallet signs an EIP-712 Ballot (no gas), and whoever
// holds the ballot relays it with castVoteBySig — the relayer is the wallet unlocked in the app
// that calls governance.relayVote, and it pays the gas.
import { isError } from 'ethers';
import {
  type BaseModelInput,
  type CommonsClient,
  baseModelProposalTitle,
  hashToBytes32,
  PROPOSAL_STATES,
  encodePolicy,
  policyViolation,
  type FederationPolicy,
  type PolicyViolation,
} from '@commons/chain';
import { errorMessage } from '@commons/shared/errors';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { governanceMethods } from '../../api/governance.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import { chainError } from '../errors.ts';
import type { CoreEvents } from '../events.ts';
import type { WalletService } from '../wallet/wallet-service.ts';
import { policyDiff, proposalView } from './proposal-view.ts';

/** Reverts that mean "already done / not now" rather than "the chain said no". */
const CONFLICT_ERRORS = new Set(['GovernorAlreadyCastVote', 'GovernorUnexpectedProposalState']);

export class GovernanceService {
  readonly #chain: ChainConnection;
  readonly #wallet: WalletService;
  readonly #events: CoreEvents;

  constructor(chain: ChainConnection, wallet: WalletService, events: CoreEvents) {
    this.#chain = chain;
    this.#wallet = wallet;
    this.#events = events;
  }

  async #read<T>(doing: string, fn: (chain: CommonsClient) => Promise<T>): Promise<T> {
    const chain = await this.#chain.reader();
    try {
      return await fn(chain);
    } catch (err) {
      throw chainError(err, doing);
    }
  }

  async #write<T>(doing: string, fn: (chain: CommonsClient) => Promise<T>): Promise<T> {
    const chain = await this.#chain.writer(this.#wallet.signer());
    try {
      return await fn(chain);
    } catch (err) {
      if (isError(err, 'CALL_EXCEPTION') && err.revert && CONFLICT_ERRORS.has(err.revert.name)) {
        throw new ApiError(
          'conflict',
          `${doing}: ${err.revert.name}(${err.revert.args.map(String).join(', ')})`,
        );
      }
      throw chainError(err, doing);
    }
  }

  async #proposal(chain: CommonsClient, id: bigint) {
    // An unknown id has no snapshot; reading it further would revert deep inside.
    const snapshot = (await chain.contracts.governor
      .getFunction('proposalSnapshot')
      .staticCall(id)) as bigint;
    if (snapshot === 0n) throw new ApiError('not-found', `no proposal ${id}`);
    const { policy } = await chain.policy();
    return proposalView(chain, await chain.proposal(id), policy, this.#wallet.address);
  }

  async #assertCanVote(chain: CommonsClient, id: bigint, voter: string): Promise<void> {
    const state = await chain.contracts.governor.getFunction('state').staticCall(id);
    if (Number(state) !== 1) {
      throw new ApiError(
        'conflict',
        `proposal ${id} is not open for voting (${String(PROPOSAL_STATES[Number(state)])})`,
      );
    }
    if (await chain.hasVoted(id, voter)) {
      throw new ApiError('conflict', `${voter} has already voted on proposal ${id}`);
    }
  }

  #announce(id: bigint | string, state: string): void {
    this.#events.emit('governance.proposal', { id: id.toString(), state });
  }

  /**
   * Proposes, with the unlocked wallet, recording `model` (unless it is recorded already) and
   * making it the community's base model. Conflict when it already is; invalid-argument when
   * the record would revert on execution (no licence, an unknown format, a record with the same
   * identity that says otherwise).
   */
  async proposeBaseModel(model: BaseModelInput, description?: string): Promise<bigint> {
    const identity = hashToBytes32(model.identity);
    const current = await this.#read('reading the community base model', (chain) =>
      chain.baseModel(),
    );
    if (current?.identity === identity) {
      throw new ApiError(
        'conflict',
        `${current.name} (${identity}) is already the community's base model`,
      );
    }
    return this.#write('proposing a base model', async (chain) => {
      let actions;
      try {
        actions = await chain.baseModelActions(model);
      } catch (err) {
        if (isError(err, 'CALL_EXCEPTION') || isError(err, 'NETWORK_ERROR')) throw err;
        throw new ApiError('invalid-argument', errorMessage(err), { cause: err });
      }
      const id = await chain.propose(actions, description ?? baseModelProposalTitle(model));
      this.#announce(id, 'pending');
      return id;
    });
  }

  handlers(): Handlers<typeof governanceMethods> {
    return {
      'governance.settings': () =>
        this.#read('reading governance settings', async (chain) => {
          const [s, clock] = await Promise.all([chain.governanceSettings(), chain.clock()]);
          return { ...s, proposalThreshold: s.proposalThreshold.toString(), clock };
        }),
      'governance.policy': () => this.#read('reading the policy', (chain) => chain.policy()),
      'governance.list': () =>
        this.#read('listing proposals', async (chain) => {
          const [proposals, { policy }] = await Promise.all([
            chain.listProposals(),
            chain.policy(),
          ]);
          const views = await Promise.all(
            proposals.map((p) => proposalView(chain, p, policy, this.#wallet.address)),
          );
          return views.reverse();
        }),
      'governance.get': ({ id }) =>
        this.#read(`reading proposal ${id}`, (chain) => this.#proposal(chain, BigInt(id))),
      'governance.vote': ({ id, support, reason }) =>
        this.#write(`voting on proposal ${id}`, async (chain) => {
          // Checked first so the member hears why, not an opaque revert.
          await this.#assertCanVote(chain, BigInt(id), this.#wallet.signer().address);
          const receipt = await chain.castVote(BigInt(id), support, reason);
          this.#announce(id, 'voted');
          return { txHash: receipt.hash, blockNumber: receipt.blockNumber };
        }),
      'governance.signVote': async ({ id, support }) => {
        // Signing needs no gas and sends nothing; the chain is read for the domain and nonce.
        const chain = await this.#chain.writer(this.#wallet.signer());
        try {
          const vote = await chain.signVote(BigInt(id), support);
          return { ...vote, proposalId: vote.proposalId.toString() };
        } catch (err) {
          throw chainError(err, `signing a vote on proposal ${id}`);
        }
      },
      'governance.relayVote': ({ vote }) =>
        this.#write(`relaying a vote on proposal ${vote.proposalId}`, async (chain) => {
          const receipt = await chain.castVoteBySig({
            ...vote,
            proposalId: BigInt(vote.proposalId),
          });
          this.#announce(vote.proposalId, 'voted');
          return {
            txHash: receipt.hash,
            blockNumber: receipt.blockNumber,
            relayer: this.#wallet.signer().address,
          };
        }),
      'governance.proposeActivation': async ({ contentHash, description }) => {
        const registered = await this.#read('checking the model', (chain) =>
          chain.isRegistered(contentHash),
        );
        if (!registered)
          throw new ApiError(
            'not-found',
            `model ${contentHash} is not registered in ModelRegistry`,
          );
        return this.#write('proposing an activation', async (chain) => {
          const id = await chain.proposeActivateModel(contentHash, description);
          this.#announce(id, 'pending');
          return { id: id.toString() };
        });
      },
      'governance.proposePolicy': async ({ changes, description }) => {
        const { policy: now } = await this.#read('reading the policy', (chain) => chain.policy());
        const defined = Object.fromEntries(
          Object.entries(changes).filter(([, v]) => v !== undefined),
        );
        const next: FederationPolicy = { ...now, ...defined };
        // A full-delta rule carries no adapter shape (the contract stores zeros).
        if (next.adapter.rule === 'full-delta') {
          next.adapter = { rule: 'full-delta', rank: 0, alpha: 0, targets: [] };
        }
        const violation = policyViolation(encodePolicy(next));
        if (violation) throw new ApiError('invalid-argument', describeViolation(violation));
        const diff = policyDiff(now, next);
        if (diff.length === 0)
          throw new ApiError('invalid-argument', 'the proposed policy equals the one in force');
        return this.#write('proposing a policy change', async (chain) => {
          const summary = diff
            .map((c) => `${c.field}: ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`)
            .join('; ');
          const id = await chain.proposePolicy(
            next,
            description ?? `Change the federation policy (${summary})`,
          );
          this.#announce(id, 'pending');
          return { id: id.toString(), changes: diff };
        });
      },
      'governance.queue': ({ id }) =>
        this.#write(`queueing proposal ${id}`, async (chain) => {
          const receipt = await chain.queue(BigInt(id));
          this.#announce(id, 'queued');
          return { txHash: receipt.hash, blockNumber: receipt.blockNumber };
        }),
      'governance.execute': ({ id }) =>
        this.#write(`executing proposal ${id}`, async (chain) => {
          const receipt = await chain.execute(BigInt(id));
          this.#announce(id, 'executed');
          return { txHash: receipt.hash, blockNumber: receipt.blockNumber };
        }),
    };
  }
}

/** Fields the contract stores scaled: micro-units, or wad (10^18) for δ. */
const MICRO_FIELDS = new Set([
  'clipNorm',
  'noiseMultiplier',
  'sampleRate',
  'learningRate',
  'epsilonBudget',
  'clipTargetQuantile',
  'secAggThreshold',
  'loraAlpha',
]);

/** A refusal of FederationPolicy in the units the member typed, saying what would be accepted. */
export function describeViolation(v: PolicyViolation): string {
  const field = v.field === 'roundDeadline' ? 'roundDeadlineSeconds' : v.field;
  const unit = (raw: bigint): string =>
    MICRO_FIELDS.has(v.field)
      ? String(Number(raw) / 1e6)
      : v.field === 'delta'
        ? String(Number(raw) / 1e18)
        : raw.toString();
  if (v.error === 'FederationPolicyNotOdd') {
    return (
      `${field} must be an odd number (or 0 to let the coordinator choose); ` +
      `${unit(v.value)} is even: propose ${unit(v.value - 1n)} or ${unit(v.value + 1n)}`
    );
  }
  const extra = v.field === 'secAggNumShares' ? ' (or 0 to let the coordinator choose)' : '';
  return (
    `${field} must be between ${unit(v.min)} and ${unit(v.max)}${extra}; ` +
    `${unit(v.value)} is outside what FederationPolicy accepts`
  );
}
