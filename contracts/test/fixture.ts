// A fresh in-process chain with Commons deployed, for one test file.
import { Interface, parseEther, type Signer } from 'ethers';
import { expect } from 'vitest';
import { commonsAbis, CommonsClient, type ModelCandidate } from '@commons/chain';
import { deployCommons, type GovernanceOptions } from '../src/deploy.ts';
import { readCompiledBytecode } from '../src/generated.ts';
import { createHre } from '../src/hardhat.ts';

/** A made-up genesis checkpoint hash (the real one comes from shared/genesis/manifest.json). */
export const GENESIS_HASH = '0x' + 'ab'.repeat(32);

export const TEST_GOVERNANCE: GovernanceOptions = {
  votingDelay: 10,
  votingPeriod: 100,
  quorumPercent: 4,
  timelockDelay: 50,
  voteExtension: 30,
  proposalThreshold: parseEther('1000'),
};

/**
 * Holders (1,000,000 CMNS in all, quorum 40,000): the deployer keeps 300k undelegated (to hand
 * out mid-test), alice 300k, bob 350k, carol 40k (exactly quorum), dave 10k (below quorum).
 */
export const HOLDINGS = {
  deployer: parseEther('300000'),
  alice: parseEther('300000'),
  bob: parseEther('350000'),
  carol: parseEther('40000'),
  dave: parseEther('10000'),
};

export async function deployFixture() {
  const hre = await createHre();
  const connection = await hre.network.create();
  const { ethers } = connection;
  const [deployer, coordinator, alice, bob, carol, dave, eve, outsider] = await ethers.getSigners();
  if (!deployer || !coordinator || !alice || !bob || !carol || !dave || !eve || !outsider) {
    throw new Error('the test network needs 8 accounts');
  }
  const addresses = await deployCommons(deployer, {
    genesis: { hash: GENESIS_HASH, uri: 'sha256:genesis', valBpc: 2.5 },
    governance: TEST_GOVERNANCE,
    coordinator: coordinator.address,
    roundBudget: parseEther('1000'),
    distribution: [
      { account: deployer.address, amount: HOLDINGS.deployer },
      { account: alice.address, amount: HOLDINGS.alice },
      { account: bob.address, amount: HOLDINGS.bob },
      { account: carol.address, amount: HOLDINGS.carol },
      { account: dave.address, amount: HOLDINGS.dave },
    ],
    bytecode: await readCompiledBytecode(hre),
  });
  const client = new CommonsClient(deployer, addresses);
  const as = (signer: Signer) => client.withSigner(signer);
  for (const holder of [alice, bob, carol, dave]) await as(holder).delegate();

  /** Moves the chain's clock forward and mines a block. */
  const advance = async (seconds: number) => {
    await ethers.provider.send('evm_increaseTime', [seconds]);
    await ethers.provider.send('evm_mine', []);
  };

  /** Proposes, lets alice (300k) carry the vote alone, queues, waits the timelock, executes. */
  const pass = async (proposalId: bigint) => {
    await advance(TEST_GOVERNANCE.votingDelay + 1);
    await as(alice).castVote(proposalId, 'for');
    await advance(TEST_GOVERNANCE.votingPeriod + 1);
    await as(outsider).queue(proposalId);
    await advance(TEST_GOVERNANCE.timelockDelay + 1);
    return as(outsider).execute(proposalId);
  };

  /** Unix time of the latest block. */
  const now = async () => (await ethers.provider.getBlock('latest'))?.timestamp ?? 0;

  /** The timelock as a signer, to exercise the governed contracts directly (range checks). */
  const impersonateTimelock = async () => {
    await ethers.provider.send('hardhat_setBalance', [
      addresses.contracts.timelock,
      '0x56bc75e2d63100000',
    ]);
    return ethers.getImpersonatedSigner(addresses.contracts.timelock);
  };

  // Every test starts from the state right after deployment and delegation.
  let snapshot: string = await ethers.provider.send('evm_snapshot', []);
  const reset = async () => {
    await ethers.provider.send('evm_revert', [snapshot]);
    snapshot = await ethers.provider.send('evm_snapshot', []);
  };

  return {
    hre,
    ethers,
    now,
    reset,
    impersonateTimelock,
    addresses,
    client,
    as,
    advance,
    pass,
    accounts: { deployer, coordinator, alice, bob, carol, dave, eve, outsider },
  };
}

export type Fixture = Awaited<ReturnType<typeof deployFixture>>;

/** A candidate trained from `parent`, with a made-up hash derived from `seed`. */
export function candidate(parent: string, seed: number, round = seed): ModelCandidate {
  return {
    contentHash: '0x' + seed.toString(16).padStart(64, '0'),
    parentHash: parent,
    uri: `sha256:candidate-${seed}`,
    roundId: round,
    contributorsRoot: '0x' + 'cd'.repeat(32),
    valBpc: 2.25,
    epsilon: 1.5,
    delta: 1e-5,
  };
}

const errorsInterface = new Interface(
  Object.values(commonsAbis).flatMap((abi) => abi.filter((item) => item.type === 'error')),
);

/** Revert data carried somewhere inside an ethers / Hardhat error. */
function revertData(error: unknown): string | null {
  const seen = new Set<unknown>();
  const visit = (value: unknown): string | null => {
    if (typeof value !== 'object' || value === null || seen.has(value)) return null;
    seen.add(value);
    const data = (value as { data?: unknown }).data;
    if (typeof data === 'string' && data.startsWith('0x') && data.length >= 10) return data;
    for (const key of ['error', 'cause', 'info', 'data']) {
      const found = visit((value as Record<string, unknown>)[key]);
      if (found) return found;
    }
    return null;
  };
  return visit(error);
}

/** Asserts that `action` reverts with the custom error `name` (and `args`, when given). */
export async function expectRevert(
  action: Promise<unknown>,
  name: string,
  args?: unknown[],
): Promise<void> {
  let error: unknown;
  try {
    await action;
  } catch (caught) {
    error = caught;
  }
  if (error === undefined) throw new Error(`expected a revert with ${name}, but it succeeded`);
  const data = revertData(error);
  const parsed = data ? errorsInterface.parseError(data) : null;
  expect(parsed?.name ?? `no custom error in: ${String(error)}`).toBe(name);
  if (args) expect(parsed?.args.toArray(true)).toEqual(args);
}
