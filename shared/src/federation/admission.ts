// Whether the contributor's client joins a round it is invited to: pure decisions over what the
// client already knows. The client asks the slow or interactive questions (the member's
// consent, the chain's active model, the round's on-chain policy) in between, in the order
// below, and only when the cheaper checks have passed: consent is never asked for a round the
// client could not join anyway.
import type { FederationPolicy } from '@commons/chain';
import { splitNoiseStddev } from '../privacy/dp/calibration.ts';
import type { LedgerRound, PrivacyLedger } from '../privacy/dp/ledger.ts';
import { PROTOCOL_VERSION, type RoundTask } from '../protocol/messages.ts';
import type { ContributorData } from './local-update.ts';

/** What the client knows about itself when an invitation arrives. */
export interface ClientReadiness {
  closing: boolean;
  signedIn: boolean;
  /** Rounds this client's update was accepted in (an invitation repeated after a reconnection). */
  contributed: ReadonlySet<number>;
  data: ContributorData;
  /** Unix ms. */
  now: number;
}

/** Why the client cannot take `task` as it stands, or null when it can (checked first). */
export function readinessReason(task: RoundTask, client: ClientReadiness): string | null {
  if (client.closing) return 'the client is closing';
  if (task.protocolVersion !== PROTOCOL_VERSION) {
    return `protocol ${task.protocolVersion} is not supported (this client speaks ${PROTOCOL_VERSION})`;
  }
  if (!client.signedIn) return 'not signed in';
  if (client.contributed.has(task.roundId)) return 'already contributed to this round';
  if (task.deadline <= client.now) return 'the deadline has passed';
  if (!hasData(client.data)) return 'no training data';
  return null;
}

/** Why the round's base model is not the one to train, given the chain's active model. */
export function baseModelReason(task: RoundTask, activeContentHash: string): string | null {
  const hash = activeContentHash.toLowerCase().replace(/^0x/, '');
  return hash === task.baseModel.hash
    ? null
    : `base model ${task.baseModel.hash} is not the active model on chain (${hash})`;
}

/** The privacy terms of the on-chain policy the round names. */
export type PrivacyTerms = Pick<
  FederationPolicy,
  'clipNorm' | 'noiseMultiplier' | 'minClients' | 'sampleRate' | 'epsilonBudget' | 'delta'
>;

/** Join, and record this in the ledger before the update leaves; or decline, and why. */
export type PrivacyAdmission = { join: true; round: LedgerRound } | { join: false; reason: string };

/**
 * Whether the member's ledger allows the round under the policy it names (the budget, δ and
 * noise come from the chain, not from the coordinator's word). On a secure round the noise is
 * added on this machine at the amount the coordinator announces: never accept less than the
 * policy calls for, since the ledger assumes that much.
 */
export function privacyAdmission(
  task: RoundTask,
  policy: PrivacyTerms,
  ledger: Pick<PrivacyLedger, 'check'>,
): PrivacyAdmission {
  const round: LedgerRound = {
    roundId: task.roundId,
    sampleRate: policy.sampleRate,
    noiseMultiplier: policy.noiseMultiplier,
    delta: policy.delta,
  };
  const check = ledger.check({ budget: policy.epsilonBudget, delta: policy.delta, round });
  if (!check.allowed) return { join: false, reason: check.message };
  const secure = task.secureAggregation;
  if (secure && policy.noiseMultiplier > 0) {
    const required = splitNoiseStddev({
      noiseMultiplier: policy.noiseMultiplier,
      clipNorm: policy.clipNorm,
      minSurvivors: Math.max(3, policy.minClients),
    });
    if (secure.noiseStddev < required * (1 - 1e-9)) {
      return {
        join: false,
        reason: `the round asks for noise of stddev ${secure.noiseStddev}, less than the ${required} the community's policy requires`,
      };
    }
  }
  return { join: true, round };
}

/** Whether there is anything to train on. */
export function hasData(data: ContributorData): boolean {
  if (typeof data === 'string') return data.length > 0;
  if (data instanceof Int32Array) return data.length > 0;
  return data.some((text) => text.length > 0);
}
