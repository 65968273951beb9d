// Publishing a candidate: the checkpoint goes into the content-addressed store (from where
// clients fetch it), the version is registered in ModelRegistry with its lineage and metrics,
// the round's reward root is posted, and — when configured — a Governor proposal to activate it
// is opened. Every step checks the chain first, so re-running after a crash does each once.
import type { CommonsClient } from '@commons/shared/chain/client';
import { buildMerkleTree } from '@commons/shared/chain/merkle';
import { buildRewardTree, type RewardEntry } from '@commons/shared/chain/rewards';
import type { Logger } from 'pino';

export interface PublishInput {
  roundId: number;
  hash: string;
  parentHash: string;
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
    const receipt = await chain.registerCandidate({
      contentHash: input.hash,
      parentHash: input.parentHash,
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
      const receipt = await chain.postRewardRoot(input.roundId, tree.root, tree.total);
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
      log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'no proposal opened',
      );
    }
  }
  return { contributorsRoot, registerTx, rewardRoot, rewardTotal, rewardTx, rewards, proposalId };
}
