// Contributor reward trees: the Merkle tree whose root the coordinator posts per round and whose
// proofs contributors claim with. Same construction as OpenZeppelin's StandardMerkleTree with
// leaf types (uint256 index, address account, uint256 amount): leaves are double-keccak256 of
// the ABI encoding (the tree itself is merkle.ts).
import { AbiCoder, getAddress, keccak256 } from 'ethers';
import { buildMerkleTree } from './merkle.ts';

export interface RewardEntry {
  account: string;
  /** Token base units (18 decimals). */
  amount: bigint;
}

export interface RewardClaim {
  /** Leaf index: the entry's position in the list given to buildRewardTree. */
  index: number;
  account: string;
  amount: bigint;
  proof: string[];
}

export interface RewardTree {
  root: string;
  /** Sum of all amounts: what the round pays in total. */
  total: bigint;
  /** One claim per entry, in entry order. */
  claims: RewardClaim[];
}

const coder = AbiCoder.defaultAbiCoder();

/** The leaf hash ContributionRewards verifies. */
export function rewardLeaf(index: number, account: string, amount: bigint): string {
  return keccak256(
    keccak256(coder.encode(['uint256', 'address', 'uint256'], [index, account, amount])),
  );
}

/** Builds the tree of a round's rewards (at least one entry). */
export function buildRewardTree(entries: readonly RewardEntry[]): RewardTree {
  if (entries.length === 0) throw new Error('A reward tree needs at least one entry');
  const tree = buildMerkleTree(
    entries.map((entry, index) => rewardLeaf(index, entry.account, entry.amount)),
  );
  const claims = entries.map((entry, index) => ({
    index,
    account: getAddress(entry.account),
    amount: entry.amount,
    proof: tree.proofs[index] as string[],
  }));
  const total = entries.reduce((sum, entry) => sum + entry.amount, 0n);
  return { root: tree.root, total, claims };
}
