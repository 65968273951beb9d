// federation.*: opting in to federated training, the contributor client's status, rounds
// joined, rewards, and the member's privacy (ε) ledger.
import { z } from 'zod';
import { method } from './define.ts';
import { noInput, recordIdSchema, type Epsilon, type TxResult } from './schemas.ts';

export interface Consent {
  granted: boolean;
  /** ISO date consent was last given or withdrawn; null if never asked. */
  changedAt: string | null;
  /** The vault documents training may use. */
  documentIds: string[];
  /**
   * What leaves the machine when a round is joined, stated for the consent screen: never the
   * documents, only the clipped (and, under secure aggregation, masked) model update, its
   * signed commitment, and the wallet address.
   */
  shares: string[];
}

export type Connection = 'idle' | 'connecting' | 'authenticating' | 'online' | 'offline' | 'closed';
export type Activity = 'idle' | 'downloading' | 'training' | 'uploading';

export interface RoundRecord {
  roundId: number;
  baseModel: string;
  /** accepted: our update was taken; dropped: joined but ended without one. */
  outcome: 'accepted' | 'dropped';
  detail: string;
  /** ISO date. */
  at: string;
  /**
   * The member's total privacy loss once this round is counted, from their ledger ('none': the
   * round added no noise, so there is no guarantee left); null when the ledger has no entry.
   */
  epsilon: Epsilon | null;
}

/** A round invitation this machine turned down, and why, in plain words. */
export interface Decline {
  roundId: number;
  reason: string;
  /** ISO date. */
  at: string;
}

export interface FederationStatus {
  /** Whether the client should be running (consent given and federation.start called). */
  running: boolean;
  connection: Connection;
  activity: Activity;
  roundId: number | null;
  /** Signed-in address. */
  address: string | null;
  detail: string | null;
  roundsJoined: number;
  /** The last invitation declined since the client started (over budget, no consent...). */
  declined: Decline | null;
}

export interface PrivacyLedgerView {
  /** The on-chain per-member budget and δ of the policy in force. */
  budget: number;
  delta: number;
  /** ε spent so far, composed over every round joined (RDP); 'none' once a round had no noise. */
  spent: Epsilon;
  /** Budget left (0 when spent is 'none'). */
  remaining: number;
  /** Rounds joined, oldest first, each with the total ε once it is counted. */
  entries: {
    roundId: number;
    at: string;
    noiseMultiplier: number;
    epsilon: Epsilon;
  }[];
  /** How the ledger counts, in a sentence for the screen. */
  accounting: string;
}

export interface RewardView {
  roundId: number;
  /** Whether the coordinator posted the round's reward root on chain. */
  posted: boolean;
  /** The member's reward from the coordinator's claim, base units; null when it has none. */
  amount: string | null;
  claimed: boolean;
  /** Whether federation.claim can pay it now (posted, root matches, not yet claimed). */
  claimable: boolean;
  /** Why it cannot be claimed, when it cannot. */
  detail: string | null;
}

export const federationMethods = {
  'federation.consent': method<Consent>()(noInput, 'The consent in force and what it shares.'),
  'federation.setConsent': method<Consent>()(
    z.strictObject({
      granted: z.boolean(),
      documentIds: z.array(recordIdSchema).max(10_000).default([]),
    }),
    'Gives (with the documents to train on) or withdraws consent; withdrawing stops the client at once.',
  ),
  'federation.status': method<FederationStatus>()(
    noInput,
    'The contributor client: connection, activity, current round.',
  ),
  'federation.start': method<FederationStatus>()(
    noInput,
    'Connects to the coordinator with the unlocked wallet and answers round invitations; refused without consent, locked without wallet and vault.',
  ),
  'federation.stop': method<FederationStatus>()(
    noInput,
    'Disconnects (a round in progress is abandoned, nothing is uploaded).',
  ),
  'federation.rounds': method<RoundRecord[]>()(noInput, 'Rounds joined, newest first.'),
  'federation.privacy': method<PrivacyLedgerView>()(
    noInput,
    "The member's ε ledger against the policy's budget.",
  ),
  'federation.rewards': method<RewardView[]>()(
    noInput,
    "Rewards for rounds joined, from the coordinator's claims checked against the chain: posted, amount, claimed.",
  ),
  'federation.claim': method<TxResult>()(
    z.strictObject({ roundId: z.number().int().positive() }),
    "Fetches the wallet's claim for the round from the coordinator, checks its root and proof against ContributionRewards on chain, and claims; integrity if they do not match, not-found without a reward.",
  ),
};

export const federationEvents = {
  'federation.status': z.object({
    running: z.boolean(),
    connection: z.string(),
    activity: z.string(),
    roundId: z.number().nullable(),
    detail: z.string().nullable(),
    declined: z.object({ roundId: z.number(), reason: z.string(), at: z.string() }).nullable(),
  }),
  'federation.progress': z.object({
    roundId: z.number(),
    phase: z.enum(['downloading', 'training', 'uploading']),
    done: z.number(),
    total: z.number(),
  }),
  'federation.round': z.object({
    roundId: z.number(),
    outcome: z.enum(['accepted', 'dropped']),
    detail: z.string(),
  }),
};
