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

/** The ring: the node ids shuffled by the round seed (Fisher–Yates), checked first. */
function ringOrder(nodeIds: readonly number[], numShares: number, roundSeed: Uint8Array): number[] {
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
  return order;
}

/** The sorted neighbourhood of the node at `position` on the ring. */
function around(order: readonly number[], position: number, numShares: number): number[] {
  const n = order.length;
  const half = numShares === n ? n : (numShares - 1) >> 1;
  const members = new Set<number>();
  for (let d = -half; d <= half; d++) members.add(order[(((position + d) % n) + n) % n] as number);
  return [...members].sort((a, b) => a - b);
}

/**
 * Each node's neighbourhood (sorted, including the node) for these node ids, neighbourhood
 * size and 32-byte round seed: the server's view. When numShares equals the number of nodes
 * the graph is complete (plain SecAgg).
 */
export function neighbourGraph(
  nodeIds: readonly number[],
  numShares: number,
  roundSeed: Uint8Array,
): Map<number, number[]> {
  const order = ringOrder(nodeIds, numShares, roundSeed);
  return new Map(order.map((id, position) => [id, around(order, position, numShares)]));
}

/**
 * One node's neighbourhood in {@link neighbourGraph}: what a client needs, in O(n) for the
 * shuffle instead of building every node's (n sorted sets: 1,000 × 35 at a 1,000-client round).
 */
export function neighbourhoodOf(
  nodeIds: readonly number[],
  numShares: number,
  roundSeed: Uint8Array,
  nodeId: number,
): number[] {
  const order = ringOrder(nodeIds, numShares, roundSeed);
  const position = order.indexOf(nodeId);
  if (position < 0) throw new Error(`node ${nodeId} is not in the graph`);
  return around(order, position, numShares);
}
