// Contributor reward trees: the Merkle tree whose root the coordinator posts per round and whose
// proofs contributors claim with. Same construction as OpenZeppelin's StandardMerkleTree with
// leaf types (uint256 index, address account, uint256 amount): leaves are double-keccak256 of
// the ABI encoding, sorted, laid out as a complete binary tree in an array, pairs hashed sorted.
import { AbiCoder, getAddress, keccak256, concat } from 'ethers';

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

function hashPair(a: string, b: string): string {
  return keccak256(BigInt(a) < BigInt(b) ? concat([a, b]) : concat([b, a]));
}

/** Builds the tree of a round's rewards (at least one entry). */
export function buildRewardTree(entries: readonly RewardEntry[]): RewardTree {
  if (entries.length === 0) throw new Error('A reward tree needs at least one entry');
  const leaves = entries.map((entry, index) => ({
    index,
    hash: rewardLeaf(index, entry.account, entry.amount),
  }));
  leaves.sort((x, y) => (BigInt(x.hash) < BigInt(y.hash) ? -1 : 1));
  // tree[0] is the root; the leaves fill the last n slots in sorted order.
  const n = leaves.length;
  const tree: string[] = new Array<string>(2 * n - 1);
  const position = new Map<number, number>();
  leaves.forEach((leaf, i) => {
    tree[tree.length - 1 - i] = leaf.hash;
    position.set(leaf.index, tree.length - 1 - i);
  });
  for (let i = tree.length - 1 - n; i >= 0; i--) {
    tree[i] = hashPair(tree[2 * i + 1] as string, tree[2 * i + 2] as string);
  }
  const claims = entries.map((entry, index) => {
    const proof: string[] = [];
    for (let j = position.get(index) as number; j > 0; j = Math.floor((j - 1) / 2)) {
      proof.push(tree[j % 2 === 1 ? j + 1 : j - 1] as string);
    }
    return { index, account: getAddress(entry.account), amount: entry.amount, proof };
  });
  const total = entries.reduce((sum, entry) => sum + entry.amount, 0n);
  return { root: tree[0] as string, total, claims };
}
