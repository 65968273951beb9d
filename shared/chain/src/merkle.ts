// The Merkle tree OpenZeppelin's MerkleProof verifies, as its JS library builds it
// (SimpleMerkleTree / StandardMerkleTree): leaf hashes sorted, laid out as a complete binary
// tree in an array with the root at 0, each parent the keccak256 of its two children sorted.
// Used for contributor reward claims and for a round's update-commitment root.
import { concat, keccak256 } from 'ethers';

export interface MerkleTree {
  root: string;
  /** proofs[i] proves leaves[i] (the order the leaves were given in). */
  proofs: string[][];
}

function hashPair(a: string, b: string): string {
  return keccak256(BigInt(a) < BigInt(b) ? concat([a, b]) : concat([b, a]));
}

/** Builds the tree over bytes32 leaf hashes (at least one). */
export function buildMerkleTree(leaves: readonly string[]): MerkleTree {
  if (leaves.length === 0) throw new Error('A Merkle tree needs at least one leaf');
  const order = leaves.map((hash, index) => ({ hash, index }));
  order.sort((x, y) => (BigInt(x.hash) < BigInt(y.hash) ? -1 : 1));
  // The leaves fill the last n slots, in sorted order from the end.
  const n = order.length;
  const tree = new Array<string>(2 * n - 1);
  const position = new Array<number>(n);
  order.forEach((leaf, i) => {
    tree[tree.length - 1 - i] = leaf.hash;
    position[leaf.index] = tree.length - 1 - i;
  });
  for (let i = tree.length - 1 - n; i >= 0; i--) {
    tree[i] = hashPair(tree[2 * i + 1] as string, tree[2 * i + 2] as string);
  }
  const proofs = leaves.map((_, index) => {
    const proof: string[] = [];
    for (let j = position[index] as number; j > 0; j = Math.floor((j - 1) / 2)) {
      proof.push(tree[j % 2 === 1 ? j + 1 : j - 1] as string);
    }
    return proof;
  });
  return { root: tree[0] as string, proofs };
}

/** Whether `proof` links `leaf` to `root` (what MerkleProof.verify checks on chain). */
export function verifyMerkleProof(root: string, leaf: string, proof: readonly string[]): boolean {
  return proof.reduce((hash, sibling) => hashPair(hash, sibling), leaf) === root;
}
