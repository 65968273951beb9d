// Publishing a candidate: the checkpoint goes into the content-addressed store (from where
// clients fetch it), the version is registered in ModelRegistry with its lineage and metrics,
// the round's reward root is posted, and — when configured — a Governor proposal to activate it
// is opened. Every step checks the chain first, so re-running after a crash does each once.
// publishRound is the whole tail of a round that passed evaluation: the above, then the
// database records, the strategy's state, the round marked published and its frames dropped.
import {
  type CommonsClient,
  buildMerkleTree,
  buildRewardTree,
  type RewardEntry,
} from '@commons/chain';
import type { NamedTensors, Evaluation } from '@commons/shared/engine';
import type { RoundResult } from '@commons/shared/protocol';
import { errorMessage } from '@commons/shared/errors';
import type { Logger } from 'pino';
import type { BlobStore } from '../store/blobs.ts';
import type { CoordinatorDatabase } from '../store/database.ts';
import type { ModelStore } from '../store/models.ts';
import { saveStrategyState } from '../store/strategy-state.ts';
import type { Strategy } from '../strategy/strategy.ts';
import type { BaseModel } from './active-round.ts';

export interface PublishRoundDeps {
  db: CoordinatorDatabase;
  blobs: BlobStore;
  models: ModelStore;
  chain: CommonsClient;
  log: Logger;
  publicUrl: string;
  proposeActivation: boolean;
}

/** A round's evaluated candidate, ready to publish. */
export interface RoundCandidate {
  roundId: number;
  base: BaseModel;
  strategy: Strategy;
  /** The candidate's weights (on adapter rounds, the base with the adapter folded in). */
  tensors: NamedTensors;
  /** Adapter rounds: the averaged adapter's factors, A and B; null on full-delta rounds. */
  adapter: NamedTensors | null;
  /** The accepted updates, in acceptance order. */
  submissions: readonly { address: string; commitment: string }[];
  score: Evaluation;
  /** Cumulative privacy spent with this candidate; ε is Infinity without noise. */
  epsilon: number;
  delta: number;
}

/**
 * Publishes an evaluated candidate and records it; returns what the round's result announces.
 * Idempotent on chain (a resumed round re-runs it), so the database records come after.
 */
export async function publishRound(
  deps: PublishRoundDeps,
  candidate: RoundCandidate,
): Promise<NonNullable<RoundResult['candidate']>> {
  const { db, models, chain, log } = deps;
  const { roundId, base, strategy, score, submissions } = candidate;
  // The adapter first: the model's provenance names it, and a member who holds the parent
  // fetches only it (same content-addressed store) and folds it in to get the model's hash.
  const adapterHash =
    candidate.adapter && base.adapter
      ? await models.publish({
          kind: 'adapter',
          config: base.manifest.config,
          tokenizer: base.manifest.tokenizer,
          tensors: candidate.adapter,
          adapter: { baseHash: base.hash, lora: base.adapter.task.lora },
          provenance: {
            roundId,
            rule: base.adapter.task.rule,
            seed: base.adapter.task.seed,
            strategy: strategy.name,
            contributors: submissions.length,
          },
        })
      : null;
  const hash = await models.publish({
    kind: 'model',
    config: base.manifest.config,
    tokenizer: base.manifest.tokenizer,
    tensors: candidate.tensors,
    provenance: {
      parent: base.hash,
      ...(adapterHash ? { adapter: adapterHash } : {}),
      roundId,
      strategy: strategy.name,
      contributors: submissions.length,
    },
  });
  const receipt = await publishCandidate(
    chain,
    {
      roundId,
      hash,
      parentHash: base.hash,
      adapterHash,
      publicUrl: deps.publicUrl,
      commitments: submissions.map((s) => s.commitment),
      contributors: submissions.map((s) => s.address),
      valBpc: score.bitsPerChar,
      epsilon: candidate.epsilon,
      delta: candidate.delta,
      proposeActivation: deps.proposeActivation,
    },
    log,
  );
  db.recordModel({
    hash,
    parentHash: base.hash,
    adapterHash,
    roundId,
    valLoss: score.loss,
    valBpc: score.bitsPerChar,
    epsilon: candidate.epsilon,
    delta: candidate.delta,
    registerTx: receipt.registerTx,
    proposalId: receipt.proposalId === null ? null : receipt.proposalId.toString(),
  });
  if (receipt.rewardRoot !== null) {
    db.recordRewards({
      roundId,
      root: receipt.rewardRoot,
      total: receipt.rewardTotal,
      entries: receipt.rewards,
      postTx: receipt.rewardTx,
    });
  }
  const state = strategy.exportState();
  if (state) await saveStrategyState(db, deps.blobs, strategy.name, roundId, state);
  db.setRoundState(roundId, 'published', { candidateHash: hash });
  // Accepted frames are folded into the published model; keeping them serves nobody.
  for (const s of db.submissions(roundId)) await deps.blobs.delete(s.sha256);
  return {
    hash,
    parentHash: base.hash,
    ...(adapterHash ? { adapterHash } : {}),
    valLoss: score.loss,
    valBpc: score.bitsPerChar,
    // JSON has no Infinity: null means no differential-privacy guarantee (no noise).
    epsilon: Number.isFinite(candidate.epsilon) ? candidate.epsilon : null,
    delta: candidate.delta,
  };
}

export interface PublishInput {
  roundId: number;
  hash: string;
  parentHash: string;
  /** The adapter that, folded into the parent, gives `hash`; null for a full model. */
  adapterHash: string | null;
  /** Public base URL of this coordinator; the registry records `<url>/models/<hash>/`. */
  publicUrl: string;
  /** EIP-712 digests of the accepted updates (the round's commitment leaves). */
  commitments: string[];
  /** Addresses of the accepted contributors, in acceptance order. */
  contributors: string[];
  valBpc: number;
  epsilon: number;
  delta: number;
  proposeActivation: boolean;
}

export interface PublishReceipt {
  contributorsRoot: string;
  registerTx: string | null;
  rewardRoot: string | null;
  rewardTotal: bigint;
  rewardTx: string | null;
  rewards: RewardEntry[];
  proposalId: bigint | null;
}

const ZERO_ROOT = '0x' + '0'.repeat(64);

export async function publishCandidate(
  chain: CommonsClient,
  input: PublishInput,
  log: Logger,
): Promise<PublishReceipt> {
  const contributorsRoot =
    input.commitments.length > 0 ? buildMerkleTree(input.commitments).root : ZERO_ROOT;

  let registerTx: string | null = null;
  if (await chain.isRegistered(input.hash)) {
    log.info({ hash: input.hash }, 'candidate already registered (resumed round)');
  } else {
    // An adapter version keeps its parent's base (the nearest full ancestor); a full one is
    // its own base (ModelRegistry checks both).
    const baseHash = input.adapterHash
      ? (await chain.modelVersion(input.parentHash)).baseHash
      : input.hash;
    const receipt = await chain.registerCandidate({
      contentHash: input.hash,
      parentHash: input.parentHash,
      baseHash,
      ...(input.adapterHash ? { adapterHash: input.adapterHash } : {}),
      uri: `${input.publicUrl.replace(/\/$/, '')}/models/${input.hash}/`,
      roundId: input.roundId,
      contributorsRoot,
      valBpc: input.valBpc,
      epsilon: input.epsilon,
      delta: input.delta,
    });
    registerTx = receipt.hash;
    log.info({ hash: input.hash, tx: registerTx, gas: receipt.gasUsed.toString() }, 'registered');
  }

  // Rewards: the round budget split evenly among accepted contributors. Even, not by example
  // count: the count is self-reported, and an even split gives nobody a reason to inflate it.
  let rewardRoot: string | null = null;
  let rewardTx: string | null = null;
  let rewards: RewardEntry[] = [];
  let rewardTotal = 0n;
  const budget = await chain.roundBudget();
  const unique = [...new Set(input.contributors)];
  if (budget > 0n && unique.length > 0) {
    const each = budget / BigInt(unique.length);
    rewards = unique.map((account) => ({ account, amount: each }));
    const tree = buildRewardTree(rewards);
    rewardRoot = tree.root;
    rewardTotal = tree.total;
    const posted = await chain.rewardRound(input.roundId);
    if (posted.root !== ZERO_ROOT) {
      log.info({ roundId: input.roundId }, 'reward root already posted (resumed round)');
    } else {
      // ContributionRewards pays only a round whose candidate is registered (just above) with
      // this round id and contributors root.
      const receipt = await chain.postRewardRoot(input.roundId, tree.root, tree.total, {
        contentHash: input.hash,
        contributorsRoot,
      });
      rewardTx = receipt.hash;
    }
  }

  let proposalId: bigint | null = null;
  if (input.proposeActivation) {
    try {
      proposalId = await chain.proposeActivateModel(
        input.hash,
        `Activate model ${input.hash} from federated round ${input.roundId} (val ${input.valBpc.toFixed(4)} bits/char)`,
      );
    } catch (error) {
      // The only expected failure is a proposal that already exists (a resumed round), or a
      // coordinator key without enough votes to propose; neither undoes the publication.
      log.warn({ err: errorMessage(error) }, 'no proposal opened');
    }
  }
  return { contributorsRoot, registerTx, rewardRoot, rewardTotal, rewardTx, rewards, proposalId };
}
