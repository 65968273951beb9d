// Governor proposals and votes, as the client presents them.

/** Vote choices and their GovernorCountingSimple codes. */
export const SUPPORT = { against: 0, for: 1, abstain: 2 } as const;
export type Support = keyof typeof SUPPORT;

/** Proposal states, in the order of the Governor's `ProposalState` enum. */
export const PROPOSAL_STATES = [
  'pending',
  'active',
  'canceled',
  'defeated',
  'succeeded',
  'queued',
  'expired',
  'executed',
] as const;
export type ProposalState = (typeof PROPOSAL_STATES)[number];

/** One call the timelock makes when a proposal executes. */
export interface ProposalAction {
  target: string;
  value: bigint;
  calldata: string;
}

/** A proposal action decoded against the Commons contracts, when it targets one of them. */
export interface DecodedAction {
  contract: string;
  function: string;
  args: unknown[];
}

export interface ProposalVotes {
  against: bigint;
  for: bigint;
  abstain: bigint;
}

export interface Proposal {
  id: bigint;
  proposer: string;
  description: string;
  descriptionHash: string;
  actions: ProposalAction[];
  /** Each action decoded, or null when its target is not a Commons contract. */
  decoded: (DecodedAction | null)[];
  state: ProposalState;
  /** Timepoints (unix seconds): votes are counted as of `snapshot`; voting ends at `deadline`. */
  snapshot: number;
  deadline: number;
  /** When the queued operation becomes executable (0 until queued). */
  eta: number;
  votes: ProposalVotes;
  /** Votes needed (for + abstain), or null while the snapshot is in the future. */
  quorum: bigint | null;
}

/** A vote signed off-chain (EIP-712 Ballot) that anyone can relay with castVoteBySig. */
export interface SignedVote {
  proposalId: bigint;
  support: Support;
  voter: string;
  signature: string;
}

/** EIP-712 types of the Governor's Ballot. */
export const BALLOT_TYPES = {
  Ballot: [
    { name: 'proposalId', type: 'uint256' },
    { name: 'support', type: 'uint8' },
    { name: 'voter', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
};
