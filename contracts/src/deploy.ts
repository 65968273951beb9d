// Deploys the whole Commons system with plain ethers from the committed bytecode, so the CLI, the
// devnet, `npm start` and end-to-end tests share one deployment path and none needs Hardhat.
import { ContractFactory, ZeroAddress, getAddress, parseEther, type Signer } from 'ethers';
import {
  commonsAbis,
  type CommonsContractKey,
  type CommonsAddresses,
  COORDINATOR_ROLE,
  CommonsClient,
  MINTER_ROLE,
  encodePolicy,
  type FederationPolicy,
  encodeCandidate,
  hashToBytes32,
} from '@commons/chain';
import { commonsBytecode } from './bytecode.ts';

/** Governance durations are seconds (the token runs on the timestamp clock). */
export interface GovernanceOptions {
  votingDelay: number;
  votingPeriod: number;
  /** Percent of total supply at the snapshot that must vote for or abstain. */
  quorumPercent: number;
  /** Seconds between queueing and executing. */
  timelockDelay: number;
  /** Seconds voting stays open after a proposal reaches quorum late. */
  voteExtension: number;
  /** Votes needed to create a proposal (token base units). */
  proposalThreshold: bigint;
}

/** Production defaults: 1 day delay, 1 week vote, 4% quorum, 2-day timelock. */
export const PRODUCTION_GOVERNANCE: GovernanceOptions = {
  votingDelay: 86_400,
  votingPeriod: 604_800,
  quorumPercent: 4,
  timelockDelay: 172_800,
  voteExtension: 86_400,
  proposalThreshold: parseEther('1000'),
};

/** Local devnet defaults: a vote can go from proposal to execution in a few minutes. */
export const DEVNET_GOVERNANCE: GovernanceOptions = {
  votingDelay: 1,
  votingPeriod: 300,
  quorumPercent: 4,
  timelockDelay: 60,
  voteExtension: 60,
  proposalThreshold: 0n,
};

/** The first federation policy. */
export const DEFAULT_POLICY: FederationPolicy = {
  clipNorm: 1,
  noiseMultiplier: 1,
  minClients: 3,
  maxClients: 100,
  sampleRate: 1,
  localEpochs: 1,
  learningRate: 0.001,
  aggregationRule: 'fedavg',
  secureAggregation: true,
  epsilonBudget: 10,
  delta: 1e-5,
  roundDeadlineSeconds: 600,
  // Fixed clipping, the coordinator sizes SecAgg+ neighbourhoods, two thirds reconstruct.
  clipTargetQuantile: 0,
  secAggNumShares: 0,
  secAggThreshold: 0.666667,
  // Without DP noise an upload weighs at most this many examples in FedAvg: well above an honest
  // member's local set, far below what would let one upload outweigh the rest.
  maxExamplesPerUpdate: 10_000,
  // Rounds train a LoRA adapter by FFA-LoRA (Sun et al. 2024): A frozen from the round's seed,
  // only B trained, sent and averaged, so the average is exact and DP noise lands on half the
  // numbers. Rank 8, α 16 on q_proj and v_proj, PEFT's default for Llama.
  adapter: { rule: 'ffa-lora', rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'] },
};

export interface DeployOptions {
  /** The genesis checkpoint: sha256 (64 hex, optional 0x) and where to fetch it. */
  genesis: { hash: string; uri: string; valBpc?: number };
  /** Defaults to PRODUCTION_GOVERNANCE, field by field. */
  governance?: Partial<GovernanceOptions>;
  /** Initial token distribution; default 1,000,000 CMNS to the deployer. */
  distribution?: { account: string; amount: bigint }[];
  /** Initial coordinator (registers candidates, posts reward roots); default the deployer. */
  coordinator?: string;
  /** Most tokens one round may pay; default 10,000 CMNS. */
  roundBudget?: bigint;
  /** Overrides of DEFAULT_POLICY. */
  policy?: Partial<FederationPolicy>;
  /** Creation bytecode to deploy; default the committed build (tests pass a fresh compile). */
  bytecode?: Record<CommonsContractKey, string>;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * Deploys token, timelock, governor, model registry (genesis active), federation policy and
 * rewards, hands every admin role to the timelock and renounces the deployer's, then verifies
 * the final roles. Returns what the addresses file holds.
 */
export async function deployCommons(
  signer: Signer,
  options: DeployOptions,
): Promise<CommonsAddresses> {
  const provider = signer.provider;
  if (!provider) throw new Error('deployCommons: the signer has no provider');
  const log = options.log ?? (() => {});
  const bytecode = options.bytecode ?? commonsBytecode;
  const governance = { ...PRODUCTION_GOVERNANCE, ...options.governance };
  const deployer = await signer.getAddress();
  const coordinator = options.coordinator ?? deployer;
  const distribution = options.distribution ?? [
    { account: deployer, amount: parseEther('1000000') },
  ];
  const genesisHash = hashToBytes32(options.genesis.hash);
  const { chainId } = await provider.getNetwork();
  const deployBlock = await provider.getBlockNumber();

  const deploy = async (key: CommonsContractKey, args: unknown[]): Promise<string> => {
    const factory = new ContractFactory(commonsAbis[key], bytecode[key], signer);
    const contract = await factory.deploy(...args);
    await contract.waitForDeployment();
    const address = await contract.getAddress();
    log(`${key.padEnd(20)} ${address}`);
    return address;
  };

  const timelock = await deploy('timelock', [
    governance.timelockDelay,
    [],
    [ZeroAddress],
    deployer,
  ]);
  const token = await deploy('token', [
    deployer,
    distribution.map((d) => d.account),
    distribution.map((d) => d.amount),
  ]);
  const governor = await deploy('governor', [
    token,
    timelock,
    {
      votingDelay: governance.votingDelay,
      votingPeriod: governance.votingPeriod,
      proposalThreshold: governance.proposalThreshold,
      quorumPercent: governance.quorumPercent,
      voteExtension: governance.voteExtension,
    },
  ]);
  const modelRegistry = await deploy('modelRegistry', [
    timelock,
    coordinator,
    encodeCandidate({
      contentHash: genesisHash,
      parentHash: '0'.repeat(64),
      uri: options.genesis.uri,
      roundId: 0,
      valBpc: options.genesis.valBpc ?? 0,
      epsilon: 0,
      delta: 0,
    }),
  ]);
  const federationPolicy = await deploy('federationPolicy', [
    timelock,
    encodePolicy({ ...DEFAULT_POLICY, ...options.policy }),
  ]);
  const contributionRewards = await deploy('contributionRewards', [
    token,
    modelRegistry,
    timelock,
    coordinator,
    options.roundBudget ?? parseEther('10000'),
  ]);

  const addresses: CommonsAddresses = {
    chainId: Number(chainId),
    deployer,
    deployBlock,
    deployedAt: new Date().toISOString(),
    contracts: { token, timelock, governor, modelRegistry, federationPolicy, contributionRewards },
    genesis: { hash: genesisHash, uri: options.genesis.uri },
    governance: {
      votingDelay: governance.votingDelay,
      votingPeriod: governance.votingPeriod,
      quorumPercent: governance.quorumPercent,
      timelockDelay: governance.timelockDelay,
      voteExtension: governance.voteExtension,
      proposalThreshold: governance.proposalThreshold.toString(),
    },
  };

  // Hand-over: the rewards contract mints, the timelock administers, the governor proposes and
  // cancels; the deployer keeps nothing.
  const client = new CommonsClient(signer, addresses);
  const adminRole = '0x' + '00'.repeat(32);
  const tx = async (key: CommonsContractKey, method: string, args: unknown[]) => {
    const response = await client.contracts[key].getFunction(method).send(...args);
    await response.wait();
  };
  const timelockContract = client.contracts.timelock;
  const proposerRole = (await timelockContract.getFunction('PROPOSER_ROLE').staticCall()) as string;
  const cancellerRole = (await timelockContract
    .getFunction('CANCELLER_ROLE')
    .staticCall()) as string;
  await tx('token', 'grantRole', [MINTER_ROLE, contributionRewards]);
  await tx('token', 'grantRole', [adminRole, timelock]);
  await tx('token', 'renounceRole', [adminRole, deployer]);
  await tx('timelock', 'grantRole', [proposerRole, governor]);
  await tx('timelock', 'grantRole', [cancellerRole, governor]);
  await tx('timelock', 'renounceRole', [adminRole, deployer]);

  await verifyRoles(client, deployer, coordinator);
  log('roles handed to the timelock; deployer renounced');
  return addresses;
}

async function verifyRoles(client: CommonsClient, deployer: string, coordinator: string) {
  const { contracts } = client.addresses;
  const adminRole = '0x' + '00'.repeat(32);
  const hasRole = async (key: CommonsContractKey, role: string, account: string) =>
    (await client.contracts[key].getFunction('hasRole').staticCall(role, account)) as boolean;
  const timelock = client.contracts.timelock;
  const proposerRole = (await timelock.getFunction('PROPOSER_ROLE').staticCall()) as string;
  const checks: [string, boolean][] = [
    ['timelock admin renounced', !(await hasRole('timelock', adminRole, deployer))],
    ['token admin renounced', !(await hasRole('token', adminRole, deployer))],
    ['governor proposes', await hasRole('timelock', proposerRole, contracts.governor)],
    ['rewards mint', await hasRole('token', MINTER_ROLE, contracts.contributionRewards)],
    ['timelock administers token', await hasRole('token', adminRole, contracts.timelock)],
    [
      'timelock administers registry',
      await hasRole('modelRegistry', adminRole, contracts.timelock),
    ],
    [
      'timelock administers policy',
      await hasRole('federationPolicy', adminRole, contracts.timelock),
    ],
    [
      'timelock administers rewards',
      await hasRole('contributionRewards', adminRole, contracts.timelock),
    ],
    ['coordinator registers', await hasRole('modelRegistry', COORDINATOR_ROLE, coordinator)],
    [
      'rewards pay only registered rounds',
      getAddress(
        (await client.contracts.contributionRewards.getFunction('registry').staticCall()) as string,
      ) === getAddress(contracts.modelRegistry),
    ],
  ];
  const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
  if (failed.length > 0) throw new Error(`deployCommons: role check failed: ${failed.join(', ')}`);
}
