// governance.*: proposals on the Commons Governor (model activations, policy changes), votes
// (direct, with a reason, or signed off-chain and relayed), queueing and execution.
import { z } from 'zod';
import {
  ADAPTER_RULES,
  AGGREGATION_RULES,
  LORA_TARGETS,
  type FederationPolicy,
  type ProposalState,
  type Support,
} from '@commons/chain';
import { method } from './define.ts';
import {
  addressSchema,
  decimalSchema,
  hashSchema,
  noInput,
  type Epsilon,
  type TxResult,
} from './schemas.ts';

export type { FederationPolicy, ProposalState, Support };
export { ADAPTER_RULES, AGGREGATION_RULES, LORA_TARGETS };

export const SUPPORT_CHOICES = ['for', 'against', 'abstain'] as const;

/** A policy field that a proposal changes: its value now and its value if the proposal executes. */
export interface PolicyFieldChange {
  field: keyof FederationPolicy;
  from: FederationPolicy[keyof FederationPolicy];
  to: FederationPolicy[keyof FederationPolicy];
}

/** A registered model version as an activation proposal shows it. */
export interface ModelVersionSummary {
  contentHash: string;
  parentHash: string | null;
  roundId: number;
  valBpc: number;
  /** 'none': trained without noise, no differential-privacy guarantee. */
  epsilon: Epsilon;
  delta: number;
  uri: string;
  /** Itself, its parent, ... genesis. */
  lineage: string[];
}

/** What one proposal action does, decoded against the Commons contracts. */
export type ActionView =
  | { kind: 'activate-model'; contentHash: string; version: ModelVersionSummary | null }
  | {
      kind: 'set-policy';
      /** Only the fields that differ from the policy in force now. */
      changes: PolicyFieldChange[];
      policy: FederationPolicy;
    }
  | {
      /** Record an open-weights base model in ModelRegistry (identity, format, licence, name). */
      kind: 'record-base-model';
      identity: string;
      format: string;
      licence: string;
      name: string;
    }
  | {
      /** Make a recorded base model the community's; `name` null when it is not recorded yet. */
      kind: 'set-base-model';
      identity: string;
      name: string | null;
    }
  | {
      kind: 'other';
      target: string;
      /** Commons contract and function, when the target is one of ours. */
      contract: string | null;
      function: string | null;
      /** Arguments rendered as text (bigints as decimal strings). */
      args: string[];
      value: string;
      calldata: string;
    };

export interface ProposalView {
  /** uint256 as a decimal string. */
  id: string;
  proposer: string;
  description: string;
  state: ProposalState;
  /** Unix seconds: votes are counted as of `snapshot`, voting ends at `deadline`. */
  snapshot: number;
  deadline: number;
  /** When a queued proposal may be executed (unix seconds), or null until queued. */
  eta: number | null;
  /** Token base units, decimal strings. */
  votes: { for: string; against: string; abstain: string };
  /** Votes (for + abstain) needed, or null while the snapshot is in the future. */
  quorum: string | null;
  actions: ActionView[];
  /** Whether the unlocked wallet has voted; null when no wallet is unlocked. */
  hasVoted: boolean | null;
}

export interface GovernanceSettingsView {
  votingDelay: number;
  votingPeriod: number;
  quorumPercent: number;
  /** Base units needed to propose, decimal string. */
  proposalThreshold: string;
  timelockDelay: number;
  voteExtension: number;
  /** The governance clock now (unix seconds of the latest block). */
  clock: number;
}

/** A vote signed off-chain (EIP-712 Ballot): anyone holding it can submit it with relayVote. */
export const signedVoteSchema = z.strictObject({
  proposalId: decimalSchema,
  support: z.enum(SUPPORT_CHOICES),
  voter: addressSchema,
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'a 65-byte signature (0x + 130 hex)'),
});
export type SignedVoteView = z.infer<typeof signedVoteSchema>;

/** Policy fields a proposal may change; the core checks them against the contract's ranges. */
export const policyChangesSchema = z
  .strictObject({
    clipNorm: z.number().positive(),
    noiseMultiplier: z.number().nonnegative(),
    minClients: z.number().int().positive(),
    maxClients: z.number().int().positive(),
    sampleRate: z.number().positive().max(1),
    localEpochs: z.number().int().positive(),
    learningRate: z.number().positive(),
    aggregationRule: z.enum(AGGREGATION_RULES),
    secureAggregation: z.boolean(),
    epsilonBudget: z.number().positive(),
    delta: z.number().positive(),
    roundDeadlineSeconds: z.number().int().positive(),
    /** 0 keeps the clip norm fixed; otherwise the quantile of update norms it adapts to. */
    clipTargetQuantile: z.number().min(0).lt(1),
    /** 0 lets the coordinator size SecAgg+ neighbourhoods; otherwise odd, 3..1001. */
    secAggNumShares: z.number().int().nonnegative(),
    secAggThreshold: z.number().gt(0.5).max(1),
    /** Most examples one upload's FedAvg weight counts on rounds without DP noise. */
    maxExamplesPerUpdate: z.number().int().positive(),
    /**
     * What rounds train: the whole model (full-delta; rank, α and targets are then ignored) or
     * a LoRA adapter of this rank, α and target projections, by FFA-LoRA or LoRA-FedAvg.
     */
    adapter: z
      .strictObject({
        rule: z.enum(ADAPTER_RULES),
        rank: z.number().int().min(0).max(256),
        alpha: z.number().min(0).max(1024),
        targets: z
          .array(z.enum(LORA_TARGETS))
          .max(LORA_TARGETS.length)
          .refine((t) => new Set(t).size === t.length, 'each target projection once'),
      })
      .refine(
        (a) => a.rule === 'full-delta' || (a.rank >= 1 && a.alpha > 0 && a.targets.length > 0),
        'an adapter rule needs a rank ≥ 1, an α > 0 and at least one target projection',
      ),
  })
  .partial()
  .refine((c) => Object.keys(c).length > 0, 'change at least one policy field');

const idInput = z.strictObject({ id: decimalSchema });

export const governanceMethods = {
  'governance.settings': method<GovernanceSettingsView>()(
    noInput,
    'Voting delay and period, quorum, threshold, timelock delay, clock.',
  ),
  'governance.policy': method<{ version: number; policy: FederationPolicy }>()(
    noInput,
    'The federation policy in force.',
  ),
  'governance.list': method<ProposalView[]>()(
    noInput,
    'Every proposal, newest first, with state, tally and decoded actions.',
  ),
  'governance.get': method<ProposalView>()(idInput, 'One proposal.'),
  'governance.vote': method<TxResult>()(
    z.strictObject({
      id: decimalSchema,
      support: z.enum(SUPPORT_CHOICES),
      reason: z.string().max(2000).optional(),
    }),
    'Votes with the unlocked wallet (castVoteWithReason when a reason is given); conflict if it already voted.',
  ),
  'governance.signVote': method<SignedVoteView>()(
    z.strictObject({ id: decimalSchema, support: z.enum(SUPPORT_CHOICES) }),
    'Signs an EIP-712 ballot with the unlocked wallet without sending anything (no gas needed).',
  ),
  'governance.relayVote': method<TxResult & { relayer: string }>()(
    z.strictObject({ vote: signedVoteSchema }),
    "Submits a signed ballot with castVoteBySig; the unlocked wallet is the relayer and pays the gas, the vote counts for the ballot's voter.",
  ),
  'governance.proposeActivation': method<{ id: string }>()(
    z.strictObject({ contentHash: hashSchema, description: z.string().max(10_000).optional() }),
    'Proposes making a registered model version active; not-found if it is not registered.',
  ),
  'governance.proposePolicy': method<{ id: string; changes: PolicyFieldChange[] }>()(
    z.strictObject({
      changes: policyChangesSchema,
      description: z.string().max(10_000).optional(),
    }),
    'Proposes changing policy fields (the rest stay as in force); invalid-argument when outside the contract ranges.',
  ),
  'governance.queue': method<TxResult>()(idInput, 'Queues a succeeded proposal in the timelock.'),
  'governance.execute': method<TxResult>()(
    idInput,
    'Executes a queued proposal whose timelock delay has passed.',
  ),
};

export const governanceEvents = {
  /** A proposal changed (created, voted on, queued, executed): refetch it. */
  'governance.proposal': z.object({ id: z.string(), state: z.string() }),
};
