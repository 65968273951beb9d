// The one Commons contract client: coordinator, desktop, deploy tooling and tests all read and
// write the chain through this class (plain ethers v6 against any JSON-RPC endpoint, no Hardhat).
import {
  Contract,
  JsonRpcProvider,
  Wallet,
  getAddress,
  id,
  type ContractTransactionReceipt,
  type ContractTransactionResponse,
  type Provider,
  type Signer,
} from 'ethers';
import { commonsAbis, type CommonsContractKey } from './abi.ts';
import { readAddressesFile, type CommonsAddresses } from './addresses.ts';
import {
  BALLOT_TYPES,
  PROPOSAL_STATES,
  SUPPORT,
  type DecodedAction,
  type Proposal,
  type ProposalAction,
  type SignedVote,
  type Support,
} from './governance.ts';
import { decodePolicy, encodePolicy, type FederationPolicy, type PolicyStruct } from './policy.ts';
import {
  decodeBaseModel,
  decodeModelVersion,
  encodeBaseModel,
  encodeCandidate,
  hashToBytes32,
  type BaseModelInput,
  type BaseModelRecord,
  type BaseModelStruct,
  type ModelCandidate,
  type ModelVersion,
  type ModelVersionStruct,
} from './registry.ts';
import type { RewardClaim } from './rewards.ts';

/** The role that lets an account register candidates and post reward roots. */
export const COORDINATOR_ROLE = id('COORDINATOR_ROLE');
/** The token role that lets an account mint (held by ContributionRewards). */
export const MINTER_ROLE = id('MINTER_ROLE');

export interface ConnectOptions {
  /** JSON-RPC endpoint, e.g. http://127.0.0.1:8545. */
  rpcUrl: string;
  /** The deployment: an addresses object or the path of an addresses file (default: the devnet's). */
  addresses?: CommonsAddresses | string;
  /** Key of the account that signs transactions; read-only without it. */
  privateKey?: string;
}

export interface GovernanceSettings {
  votingDelay: number;
  votingPeriod: number;
  /** Percent of total supply at the snapshot. */
  quorumPercent: number;
  proposalThreshold: bigint;
  timelockDelay: number;
  voteExtension: number;
}

export interface RewardRound {
  root: string;
  total: bigint;
  claimed: bigint;
}

/**
 * What a round's rewards pay for: the candidate model the round produced and the round's
 * contributors root, both as registered in ModelRegistry (ContributionRewards refuses a root for
 * a round without that registration).
 */
export interface RewardedCandidate {
  /** sha256 content hash of the round's registered candidate (64 hex, optional 0x). */
  contentHash: string;
  /** The contributors root registered with it. */
  contributorsRoot: string;
}

type Contracts = { [K in CommonsContractKey]: Contract };

/** The title a base-model proposal carries unless its proposer writes another. */
export function baseModelProposalTitle(model: BaseModelInput): string {
  return `Record ${model.name} as the community's base model\n\nIdentity ${hashToBytes32(model.identity)} (${model.format}, licence ${model.licence}).`;
}

export class CommonsClient {
  readonly addresses: CommonsAddresses;
  readonly provider: Provider;
  /** The account that sends transactions, or null for a read-only client. */
  readonly signer: Signer | null;
  readonly contracts: Contracts;

  constructor(runner: Signer | Provider, addresses: CommonsAddresses) {
    const signer = 'getAddress' in runner ? runner : null;
    const provider = signer ? signer.provider : (runner as Provider);
    if (!provider) throw new Error('The signer has no provider');
    this.addresses = addresses;
    this.provider = provider;
    this.signer = signer;
    const contract = (key: CommonsContractKey) =>
      new Contract(addresses.contracts[key], commonsAbis[key], runner);
    this.contracts = {
      token: contract('token'),
      timelock: contract('timelock'),
      governor: contract('governor'),
      modelRegistry: contract('modelRegistry'),
      federationPolicy: contract('federationPolicy'),
      contributionRewards: contract('contributionRewards'),
    };
  }

  /** Connects to a deployment by RPC URL and addresses; checks the chain id matches. */
  static async connect(options: ConnectOptions): Promise<CommonsClient> {
    // No response cache: after a time jump on a devnet the cached block would be stale.
    const provider = new JsonRpcProvider(options.rpcUrl, undefined, { cacheTimeout: -1 });
    const addresses =
      typeof options.addresses === 'object'
        ? options.addresses
        : await readAddressesFile(options.addresses);
    const { chainId } = await provider.getNetwork();
    if (Number(chainId) !== addresses.chainId) {
      throw new Error(
        `Chain id mismatch: ${options.rpcUrl} is chain ${chainId}, the addresses are for chain ${addresses.chainId}`,
      );
    }
    const runner = options.privateKey ? new Wallet(options.privateKey, provider) : provider;
    return new CommonsClient(runner, addresses);
  }

  /** Stops the provider's polling and sockets so the process can exit (the client is then unusable). */
  destroy(): void {
    this.provider.destroy();
  }

  /** The same deployment, with transactions sent by `signer`. */
  withSigner(signer: Signer): CommonsClient {
    return new CommonsClient(signer, this.addresses);
  }

  /** Throws unless every contract of the deployment has code on this chain. */
  async assertDeployed(): Promise<void> {
    for (const [key, address] of Object.entries(this.addresses.contracts)) {
      if ((await this.provider.getCode(address)) === '0x') {
        throw new Error(`No ${key} contract at ${address} on chain ${this.addresses.chainId}`);
      }
    }
  }

  // ---------------------------------------------------------------- model registry

  /** The version every member should run. */
  async activeModel(): Promise<ModelVersion> {
    const hash = await this.call<string>('modelRegistry', 'activeModel');
    return this.modelVersion(hash);
  }

  /** A registered version (reverts with ModelRegistryUnknownVersion if unknown). */
  async modelVersion(contentHash: string): Promise<ModelVersion> {
    const raw = await this.call<ModelVersionStruct>('modelRegistry', 'getVersion', [
      hashToBytes32(contentHash),
    ]);
    return decodeModelVersion(raw);
  }

  async isRegistered(contentHash: string): Promise<boolean> {
    return this.call<boolean>('modelRegistry', 'isRegistered', [hashToBytes32(contentHash)]);
  }

  /** The version's ancestry: itself, its parent, ... genesis (at most `maxDepth` hashes). */
  async lineage(contentHash: string, maxDepth = 256): Promise<string[]> {
    const chain = await this.call<string[]>('modelRegistry', 'lineage', [
      hashToBytes32(contentHash),
      maxDepth,
    ]);
    return [...chain];
  }

  /**
   * What running a version takes: its base (the nearest full version; itself when full) and the
   * adapters folded in since, oldest first, the order to apply them in. 0x-prefixed hashes.
   */
  async adapterChain(
    contentHash: string,
    maxDepth = 256,
  ): Promise<{ base: string; adapters: string[] }> {
    const [base, adapters] = await this.call<[string, string[]]>('modelRegistry', 'adapterChain', [
      hashToBytes32(contentHash),
      maxDepth,
    ]);
    return { base, adapters: [...adapters] };
  }

  /** Every registered version, in registration order. */
  async listModels(): Promise<ModelVersion[]> {
    const count = Number(await this.call<bigint>('modelRegistry', 'versionCount'));
    const hashes = await Promise.all(
      Array.from({ length: count }, (_, i) => this.call<string>('modelRegistry', 'versionAt', [i])),
    );
    return Promise.all(hashes.map((hash) => this.modelVersion(hash)));
  }

  /** Registers a candidate version (COORDINATOR_ROLE). */
  async registerCandidate(candidate: ModelCandidate): Promise<ContractTransactionReceipt> {
    return this.send('modelRegistry', 'registerCandidate', [encodeCandidate(candidate)]);
  }

  /** Calls `listener` with the new content hash whenever governance activates a version. */
  async onModelActivated(listener: (contentHash: string) => void): Promise<() => Promise<void>> {
    const registry = this.contracts.modelRegistry;
    const handler = (contentHash: string) => listener(contentHash);
    await registry.on('ModelActivated', handler);
    return async () => {
      await registry.off('ModelActivated', handler);
    };
  }

  // ---------------------------------------------------------------- base models

  /** The community base model, or null while governance has chosen none. */
  async baseModel(): Promise<BaseModelRecord | null> {
    const identity = await this.call<string>('modelRegistry', 'baseModel');
    return /^0x0{64}$/.test(identity) ? null : this.baseModelRecord(identity);
  }

  /** A recorded base model (reverts with ModelRegistryUnknownBaseModel if unknown). */
  async baseModelRecord(identity: string): Promise<BaseModelRecord> {
    const raw = await this.call<BaseModelStruct>('modelRegistry', 'getBaseModel', [
      hashToBytes32(identity),
    ]);
    return decodeBaseModel(raw);
  }

  async isBaseModelRecorded(identity: string): Promise<boolean> {
    return this.call<boolean>('modelRegistry', 'isBaseModelRecorded', [hashToBytes32(identity)]);
  }

  /** Every recorded base model, in recording order. */
  async listBaseModels(): Promise<BaseModelRecord[]> {
    const count = Number(await this.call<bigint>('modelRegistry', 'baseModelCount'));
    const ids = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        this.call<string>('modelRegistry', 'baseModelAt', [i]),
      ),
    );
    return Promise.all(ids.map((identity) => this.baseModelRecord(identity)));
  }

  // ---------------------------------------------------------------- federation policy

  /** The policy in force and its version number. */
  async policy(): Promise<{ version: number; policy: FederationPolicy }> {
    const [version, raw] = await Promise.all([
      this.call<bigint>('federationPolicy', 'currentVersion'),
      this.call<PolicyStruct>('federationPolicy', 'policy'),
    ]);
    return { version: Number(version), policy: decodePolicy(raw) };
  }

  /** A past or current policy version (the first is 1). */
  async policyAt(version: number): Promise<FederationPolicy> {
    return decodePolicy(await this.call<PolicyStruct>('federationPolicy', 'policyAt', [version]));
  }

  // ---------------------------------------------------------------- token

  async balanceOf(account: string): Promise<bigint> {
    return this.call<bigint>('token', 'balanceOf', [account]);
  }

  async totalSupply(): Promise<bigint> {
    return this.call<bigint>('token', 'totalSupply');
  }

  /** Current voting power (delegated to `account`). */
  async votes(account: string): Promise<bigint> {
    return this.call<bigint>('token', 'getVotes', [account]);
  }

  /** Voting power at a past timepoint (unix seconds). */
  async pastVotes(account: string, timepoint: number): Promise<bigint> {
    return this.call<bigint>('token', 'getPastVotes', [account, timepoint]);
  }

  /** Who `account` delegates its votes to (zero address: nobody, so its tokens do not vote). */
  async delegates(account: string): Promise<string> {
    return this.call<string>('token', 'delegates', [account]);
  }

  /** The governance clock (unix seconds of the latest block). */
  async clock(): Promise<number> {
    return Number(await this.call<bigint>('token', 'clock'));
  }

  /** Delegates the signer's votes (to itself by default: tokens vote only once delegated). */
  async delegate(to?: string): Promise<ContractTransactionReceipt> {
    const delegatee = to ?? (await this.requireSigner().getAddress());
    return this.send('token', 'delegate', [delegatee]);
  }

  // ---------------------------------------------------------------- governance reads

  async governanceSettings(): Promise<GovernanceSettings> {
    const [votingDelay, votingPeriod, numerator, denominator, threshold, delay, extension] =
      await Promise.all([
        this.call<bigint>('governor', 'votingDelay'),
        this.call<bigint>('governor', 'votingPeriod'),
        this.call<bigint>('governor', 'quorumNumerator()'),
        this.call<bigint>('governor', 'quorumDenominator'),
        this.call<bigint>('governor', 'proposalThreshold'),
        this.call<bigint>('timelock', 'getMinDelay'),
        this.call<bigint>('governor', 'lateQuorumVoteExtension'),
      ]);
    return {
      votingDelay: Number(votingDelay),
      votingPeriod: Number(votingPeriod),
      quorumPercent: Number((numerator * 100n) / denominator),
      proposalThreshold: threshold,
      timelockDelay: Number(delay),
      voteExtension: Number(extension),
    };
  }

  /** One proposal with its actions, state and tally. */
  async proposal(proposalId: bigint): Promise<Proposal> {
    const created = await this.proposalsCreated();
    return this.readProposal(proposalId, created);
  }

  /** Every proposal, oldest first. */
  async listProposals(): Promise<Proposal[]> {
    const count = Number(await this.call<bigint>('governor', 'proposalCount'));
    const created = await this.proposalsCreated();
    const ids = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const details = await this.call<[bigint]>('governor', 'proposalDetailsAt', [i]);
        return details[0];
      }),
    );
    return Promise.all(ids.map((proposalId) => this.readProposal(proposalId, created)));
  }

  async hasVoted(proposalId: bigint, account: string): Promise<boolean> {
    return this.call<boolean>('governor', 'hasVoted', [proposalId, account]);
  }

  /** Decodes an action whose target is a Commons contract. */
  decodeAction(action: ProposalAction): DecodedAction | null {
    const target = getAddress(action.target);
    for (const key of Object.keys(this.contracts) as CommonsContractKey[]) {
      if (getAddress(this.addresses.contracts[key]) !== target) continue;
      const parsed = this.contracts[key].interface.parseTransaction({
        data: action.calldata,
        value: action.value,
      });
      if (!parsed) return null;
      return { contract: key, function: parsed.name, args: parsed.args.toArray(true) };
    }
    return null;
  }

  // ---------------------------------------------------------------- proposal actions

  /** Action: make a registered version the active model. */
  activateModelAction(contentHash: string): ProposalAction {
    return this.action('modelRegistry', 'activate', [hashToBytes32(contentHash)]);
  }

  /** Action: record an open-weights base model (checked as the contract will check it). */
  recordBaseModelAction(model: BaseModelInput): ProposalAction {
    return this.action('modelRegistry', 'recordBaseModel', encodeBaseModel(model));
  }

  /** Action: make a recorded base model the community's. */
  setBaseModelAction(identity: string): ProposalAction {
    return this.action('modelRegistry', 'setBaseModel', [hashToBytes32(identity)]);
  }

  /**
   * The actions that make `model` the community's base model: record it (unless it is recorded
   * already, then its record must say the same) and select it. Throws when it already is the
   * community's base model, or when a record with its identity says something else.
   */
  async baseModelActions(model: BaseModelInput): Promise<ProposalAction[]> {
    const identity = hashToBytes32(model.identity);
    const [recorded, current] = await Promise.all([
      this.isBaseModelRecorded(identity),
      this.call<string>('modelRegistry', 'baseModel'),
    ]);
    if (current === identity) {
      throw new Error(`${model.name} (${identity}) is already the community's base model`);
    }
    if (!recorded) return [this.recordBaseModelAction(model), this.setBaseModelAction(identity)];
    const record = await this.baseModelRecord(identity);
    if (record.format !== model.format || record.name !== model.name) {
      throw new Error(
        `${identity} is recorded as ${record.name} (${record.format}), not ${model.name} (${model.format})`,
      );
    }
    return [this.setBaseModelAction(identity)];
  }

  /** Action: replace the federation policy. */
  setPolicyAction(policy: FederationPolicy): ProposalAction {
    return this.action('federationPolicy', 'setPolicy', [encodePolicy(policy)]);
  }

  /** Action: change the most tokens a round may pay. */
  setRoundBudgetAction(budget: bigint): ProposalAction {
    return this.action('contributionRewards', 'setRoundBudget', [budget]);
  }

  /** Action: grant or revoke the coordinator role on the registry or the rewards contract. */
  coordinatorRoleAction(
    contract: 'modelRegistry' | 'contributionRewards',
    account: string,
    grant: boolean,
  ): ProposalAction {
    return this.action(contract, grant ? 'grantRole' : 'revokeRole', [COORDINATOR_ROLE, account]);
  }

  // ---------------------------------------------------------------- governance writes

  /** Creates a proposal and returns its id. */
  async propose(actions: ProposalAction[], description: string): Promise<bigint> {
    const receipt = await this.send('governor', 'propose', [
      actions.map((a) => a.target),
      actions.map((a) => a.value),
      actions.map((a) => a.calldata),
      description,
    ]);
    const governor = this.contracts.governor;
    for (const log of receipt.logs) {
      const parsed = governor.interface.parseLog(log);
      if (parsed?.name === 'ProposalCreated') return parsed.args[0] as bigint;
    }
    throw new Error('propose: no ProposalCreated event in the receipt');
  }

  /** Proposes activating a registered model version. */
  async proposeActivateModel(contentHash: string, description?: string): Promise<bigint> {
    const hash = hashToBytes32(contentHash);
    return this.propose([this.activateModelAction(hash)], description ?? `Activate model ${hash}`);
  }

  /** Proposes recording `model` (if it is not yet) and making it the community's base model. */
  async proposeBaseModel(model: BaseModelInput, description?: string): Promise<bigint> {
    return this.propose(
      await this.baseModelActions(model),
      description ?? baseModelProposalTitle(model),
    );
  }

  /** Proposes a new federation policy. */
  async proposePolicy(policy: FederationPolicy, description?: string): Promise<bigint> {
    return this.propose(
      [this.setPolicyAction(policy)],
      description ?? 'Change the federation policy',
    );
  }

  /** Votes as the signer, with an optional public reason. */
  async castVote(
    proposalId: bigint,
    support: Support,
    reason?: string,
  ): Promise<ContractTransactionReceipt> {
    return reason === undefined
      ? this.send('governor', 'castVote', [proposalId, SUPPORT[support]])
      : this.send('governor', 'castVoteWithReason', [proposalId, SUPPORT[support], reason]);
  }

  /** Signs a vote (EIP-712 Ballot) as the signer, without sending anything. */
  async signVote(proposalId: bigint, support: Support): Promise<SignedVote> {
    const signer = this.requireSigner();
    const voter = await signer.getAddress();
    const [domain, nonce] = await Promise.all([
      this.call<[string, string, string, bigint, string]>('governor', 'eip712Domain'),
      this.call<bigint>('governor', 'nonces', [voter]),
    ]);
    const [, name, version, chainId, verifyingContract] = domain;
    const signature = await signer.signTypedData(
      { name, version, chainId, verifyingContract },
      BALLOT_TYPES,
      { proposalId, support: SUPPORT[support], voter, nonce },
    );
    return { proposalId, support, voter, signature };
  }

  /** Relays a signed vote (the signer pays the gas; the vote counts for `vote.voter`). */
  async castVoteBySig(vote: SignedVote): Promise<ContractTransactionReceipt> {
    return this.send('governor', 'castVoteBySig', [
      vote.proposalId,
      SUPPORT[vote.support],
      vote.voter,
      vote.signature,
    ]);
  }

  /** Queues a succeeded proposal in the timelock. */
  async queue(proposalId: bigint): Promise<ContractTransactionReceipt> {
    return this.send('governor', 'queue(uint256)', [proposalId]);
  }

  /** Executes a queued proposal once the timelock delay has passed (anyone may). */
  async execute(proposalId: bigint): Promise<ContractTransactionReceipt> {
    return this.send('governor', 'execute(uint256)', [proposalId]);
  }

  // ---------------------------------------------------------------- contribution rewards

  /**
   * Posts a round's reward root and total (COORDINATOR_ROLE), for the candidate the round
   * registered: register it first (registerCandidate), with the same round id and contributors root.
   */
  async postRewardRoot(
    roundId: number | bigint,
    root: string,
    total: bigint,
    paidFor: RewardedCandidate,
  ): Promise<ContractTransactionReceipt> {
    return this.send('contributionRewards', 'postRoot', [
      roundId,
      hashToBytes32(paidFor.contentHash),
      paidFor.contributorsRoot,
      root,
      total,
    ]);
  }

  /** Claims a contributor's reward (anyone may send it; the tokens go to the claim's account). */
  async claimReward(
    roundId: number | bigint,
    claim: RewardClaim,
  ): Promise<ContractTransactionReceipt> {
    return this.send('contributionRewards', 'claim', [
      roundId,
      claim.index,
      claim.account,
      claim.amount,
      claim.proof,
    ]);
  }

  async isClaimed(roundId: number | bigint, index: number): Promise<boolean> {
    return this.call<boolean>('contributionRewards', 'isClaimed', [roundId, index]);
  }

  /** A posted round (root zero when none was posted). */
  async rewardRound(roundId: number | bigint): Promise<RewardRound> {
    const [root, total, claimed] = await this.call<[string, bigint, bigint]>(
      'contributionRewards',
      'getRound',
      [roundId],
    );
    return { root, total, claimed };
  }

  async roundBudget(): Promise<bigint> {
    return this.call<bigint>('contributionRewards', 'roundBudget');
  }

  // ---------------------------------------------------------------- plumbing

  private action(key: CommonsContractKey, method: string, args: unknown[]): ProposalAction {
    return {
      target: this.addresses.contracts[key],
      value: 0n,
      calldata: this.contracts[key].interface.encodeFunctionData(method, args),
    };
  }

  private async call<T>(key: CommonsContractKey, method: string, args: unknown[] = []): Promise<T> {
    return (await this.contracts[key].getFunction(method).staticCall(...args)) as T;
  }

  private async send(
    key: CommonsContractKey,
    method: string,
    args: unknown[],
  ): Promise<ContractTransactionReceipt> {
    this.requireSigner();
    const response = (await this.contracts[key]
      .getFunction(method)
      .send(...args)) as ContractTransactionResponse;
    const receipt = await response.wait();
    if (!receipt) throw new Error(`${key}.${method}: the transaction was dropped`);
    return receipt;
  }

  private requireSigner(): Signer {
    if (!this.signer) throw new Error('This client is read-only: connect with a signer or key');
    return this.signer;
  }

  private async proposalsCreated(): Promise<Map<bigint, { description: string }>> {
    const governor = this.contracts.governor;
    const logs = await governor.queryFilter(
      governor.getEvent('ProposalCreated'),
      this.addresses.deployBlock,
    );
    const created = new Map<bigint, { description: string }>();
    for (const log of logs) {
      const parsed = governor.interface.parseLog(log);
      if (parsed) created.set(parsed.args[0] as bigint, { description: parsed.args[8] as string });
    }
    return created;
  }

  private async readProposal(
    proposalId: bigint,
    created: Map<bigint, { description: string }>,
  ): Promise<Proposal> {
    const [details, proposer, state, snapshot, deadline, eta, votes, clock] = await Promise.all([
      this.call<[string[], bigint[], string[], string]>('governor', 'proposalDetails', [
        proposalId,
      ]),
      this.call<string>('governor', 'proposalProposer', [proposalId]),
      this.call<bigint>('governor', 'state', [proposalId]),
      this.call<bigint>('governor', 'proposalSnapshot', [proposalId]),
      this.call<bigint>('governor', 'proposalDeadline', [proposalId]),
      this.call<bigint>('governor', 'proposalEta', [proposalId]),
      this.call<[bigint, bigint, bigint]>('governor', 'proposalVotes', [proposalId]),
      this.clock(),
    ]);
    const [targets, values, calldatas, descriptionHash] = details;
    const actions = targets.map((target, i) => ({
      target,
      value: values[i] ?? 0n,
      calldata: calldatas[i] ?? '0x',
    }));
    const quorum =
      Number(snapshot) < clock ? await this.call<bigint>('governor', 'quorum', [snapshot]) : null;
    return {
      id: proposalId,
      proposer,
      description: created.get(proposalId)?.description ?? '',
      descriptionHash,
      actions,
      decoded: actions.map((action) => this.decodeAction(action)),
      state: PROPOSAL_STATES[Number(state)] ?? 'pending',
      snapshot: Number(snapshot),
      deadline: Number(deadline),
      eta: Number(eta),
      votes: { against: votes[0], for: votes[1], abstain: votes[2] },
      quorum,
    };
  }
}
