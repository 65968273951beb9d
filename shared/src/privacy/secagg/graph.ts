// The SecAgg+ communication graph (Bell et al. 2020; Flower's SecAggPlusWorkflow): the node
// ids are shuffled and placed on a ring, and each node's neighbourhood is itself plus the
// (numShares − 1) / 2 nodes on either side — a Harary graph with random labels. The shuffle
// is driven by the round seed, so every client recomputes its own neighbourhood from the
// setup message instead of trusting a list the server hands it.
import { expandMask } from './prg.ts';

/** A uniform index in [0, bound) from a stream of 32-bit words (rejection, no modulo bias). */
function makeIndexSource(seed: Uint8Array, count: number): (bound: number) => number {
  // Twice the words needed: each draw is rejected with probability < 1/2.
  let words = expandMask(seed, Math.max(64, 4 * count), 2 ** 32);
  let next = 0;
  let refills = 0;
  return (bound) => {
    const limit = Math.floor(2 ** 32 / bound) * bound;
    for (;;) {
      if (next === words.length) {
        // Longer prefix of the same stream: the draws already used are its first words.
        refills++;
        const longer = expandMask(seed, words.length * 2, 2 ** 32);
        words = longer;
        if (refills > 16) throw new Error('neighbour shuffle ran out of randomness');
      }
      const w = words[next++] as number;
      if (w < limit) return w % bound;
    }
  };
}

/**
 * Each node's neighbourhood (sorted, including the node) for these node ids, neighbourhood
 * size and 32-byte round seed. When numShares equals the number of nodes the graph is
 * complete (plain SecAgg).
 */
export function neighbourGraph(
  nodeIds: readonly number[],
  numShares: number,
  roundSeed: Uint8Array,
): Map<number, number[]> {
  const n = nodeIds.length;
  if (new Set(nodeIds).size !== n) throw new Error('node ids must be distinct');
  if (!Number.isInteger(numShares) || numShares < 1 || numShares > n) {
    throw new Error(`numShares must be in [1, ${n}], got ${numShares}`);
  }
  const order = [...nodeIds].sort((a, b) => a - b);
  const draw = makeIndexSource(roundSeed, n);
  for (let i = n - 1; i > 0; i--) {
    const j = draw(i + 1);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const graph = new Map<number, number[]>();
  const half = numShares === n ? n : (numShares - 1) >> 1;
  order.forEach((id, position) => {
    const members = new Set<number>();
    for (let d = -half; d <= half; d++)
      members.add(order[(((position + d) % n) + n) % n] as number);
    graph.set(
      id,
      [...members].sort((a, b) => a - b),
    );
  });
  return graph;
}
