// Every Redis key a scale-out coordinator uses, in one place, under one prefix (so several
// communities, or a test per run, can share one Redis).
export interface ClusterKeys {
  prefix: string;
  /** The lease: "<node>/<instance>|<token>", with Redis's expiry as its term. */
  leader: string;
  /** The fencing counter: the latest token handed out. */
  epoch: string;
  /** Node ids that ever joined; each node's liveness is its own key below. */
  nodes: string;
  /** A node's heartbeat (JSON, expires when the node stops refreshing it). */
  node(id: string): string;
  /** The id of the latest round configured. */
  lastRound: string;
  /** A round's record (JSON), written by the leader only, fenced. */
  round(id: number): string;
  /** The Redis Stream of a round's partials, one entry per node. */
  partials(id: number): string;
  /** The idempotency set of the nodes whose partial is in the stream. */
  partialNodes(id: number): string;
  /** The Rényi-DP accountant's state (JSON), fenced. */
  accountant: string;
  /** A strategy's server-side state (JSON with blob hashes of its tensors), fenced. */
  strategy(name: string): string;
  /** The Socket.IO Redis Streams adapter's stream. */
  socketStream: string;
}

export function clusterKeys(prefix = 'commons:'): ClusterKeys {
  return {
    prefix,
    leader: `${prefix}leader`,
    epoch: `${prefix}leader:epoch`,
    nodes: `${prefix}nodes`,
    node: (id) => `${prefix}node:${id}`,
    lastRound: `${prefix}round:last`,
    round: (id) => `${prefix}round:${id}`,
    partials: (id) => `${prefix}round:${id}:partials`,
    partialNodes: (id) => `${prefix}round:${id}:partial-nodes`,
    accountant: `${prefix}privacy:accountant`,
    strategy: (name) => `${prefix}strategy:${name}`,
    socketStream: `${prefix}socket.io`,
  };
}
