// federation.*: opting in to federated training, the contributor client's status, rounds
// joined, rewards, and the member's privacy (ε) ledger.
import { z } from 'zod';
import { method } from './define.ts';
import { decimalSchema, noInput, recordIdSchema, type TxResult } from './schemas.ts';

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
  /** ε this round cost the member (from the policy's noise, when the round published). */
  epsilon: number | null;
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
}

export interface PrivacyLedgerView {
  budget: number;
  spent: number;
  remaining: number;
  delta: number;
  entries: { roundId: number; epsilon: number; at: string }[];
}

export interface RewardView {
  roundId: number;
  /** Whether the coordinator posted the round's reward root on chain. */
  posted: boolean;
  /** From a claim the member holds (see federation.claim), base units. */
  amount: string | null;
  claimed: boolean;
}

/** A reward claim as the coordinator hands it out (leaf index, amount, Merkle proof). */
export const rewardClaimSchema = z.strictObject({
  roundId: z.number().int().nonnegative(),
  index: z.number().int().nonnegative(),
  amount: decimalSchema,
  proof: z.array(z.string().regex(/^0x[0-9a-fA-F]{64}$/)).max(64),
});

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
    'Rewards for rounds joined: posted, amount, claimed.',
  ),
  'federation.claim': method<TxResult>()(
    z.strictObject({ claim: rewardClaimSchema }),
    "Claims a round's reward for the wallet; integrity if the proof does not match the root on chain.",
  ),
};

export const federationEvents = {
  'federation.status': z.object({
    running: z.boolean(),
    connection: z.string(),
    activity: z.string(),
    roundId: z.number().nullable(),
    detail: z.string().nullable(),
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
