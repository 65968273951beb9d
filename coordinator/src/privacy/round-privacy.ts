// The privacy of what the coordinator publishes: a round's privacy parameters (RoundPrivacy,
// computed once when it is configured and stored with it), which aggregator a round uses
// (noised when the policy asks for DP), and the Rényi-DP accountant that composes every noised
// aggregate this coordinator has computed into the (ε, δ) recorded with each candidate in
// ModelRegistry.
//
// The accountant lives in SQLite (meta table) so that it survives restarts; each round is
// accounted once, when its aggregate is computed — whether or not the candidate is then
// published, since its evaluation already looked at the noised model.
import type { FederationPolicy } from '@commons/chain';
import { RdpAccountant, type RandomSource } from '@commons/shared/privacy';
import type { ParameterLayout } from '../aggregation/layout.ts';
import type { CoordinatorDatabase, RoundPrivacy } from '../store/database.ts';
import type { RoundClipping } from './adaptive-clipping.ts';
import type { Aggregator } from '../aggregation/aggregator.ts';
import { averagingStrategyNames } from '../strategy/index.ts';
import type { Strategy } from '../strategy/strategy.ts';
import { NoisyMeanAggregator } from './noisy-mean.ts';

export type { RoundPrivacy };

/**
 * A round's privacy from its policy, its clipping (adaptive-clipping.ts, sized for
 * `sampled` clients) and its sample: `sampled` of `eligible` connected clients.
 */
export function configureRoundPrivacy(
  policy: FederationPolicy,
  clipping: RoundClipping,
  sampled: number,
  eligible: number,
): RoundPrivacy {
  return {
    clipNorm: clipping.clipNorm,
    noiseMultiplier: clipping.noiseMultiplier,
    accountedNoiseMultiplier: policy.noiseMultiplier,
    bitNoiseStddev: clipping.bitNoiseStddev,
    expectedClients: Math.max(1, sampled),
    sampleRate: eligible > 0 ? Math.min(1, sampled / eligible) : 1,
    adaptive: clipping.adaptive,
    secureAggregation: policy.secureAggregation,
  };
}

/** What the aggregator's noise depends on (a RoundPrivacy, or a policy read as one). */
export type AggregatorPrivacy = Pick<
  RoundPrivacy,
  'clipNorm' | 'noiseMultiplier' | 'secureAggregation'
>;

/** A round whose policy cannot be obeyed with the strategy chosen (it fails with the message). */
export class RoundConfigError extends Error {
  override name = 'RoundConfigError';
}

/**
 * The aggregator a round folds its updates into: the strategy's own, wrapped in DP-FedAvg noise
 * when the policy sets a noise multiplier and updates arrive in the clear. (With secure
 * aggregation the clients add their share of the noise before masking; the server sees only
 * the already-noised sum.)
 */
export function roundAggregator(
  strategy: Strategy,
  layout: ParameterLayout,
  privacy: AggregatorPrivacy,
  random?: RandomSource,
): Aggregator {
  const inner = strategy.createAggregator(layout);
  if (privacy.noiseMultiplier === 0 || privacy.secureAggregation) return inner;
  if (!strategy.averages) {
    throw new RoundConfigError(
      `${strategy.name} cannot be made differentially private by adding noise to a mean; the policy's noise multiplier ${privacy.noiseMultiplier} needs one of ${averagingStrategyNames().join(', ')}`,
    );
  }
  return new NoisyMeanAggregator(inner, {
    clipNorm: privacy.clipNorm,
    noiseMultiplier: privacy.noiseMultiplier,
    ...(random ? { random } : {}),
  });
}

const ACCOUNTANT_KEY = 'privacy.accountant';

interface StoredAccountant {
  accountant: unknown;
  /** Rounds already composed in, so a round resumed after a crash is not counted twice. */
  rounds: number[];
}

export interface RoundPrivacySpent {
  /** Cumulative ε of everything published so far, at the policy's δ; Infinity without noise. */
  epsilon: number;
  delta: number;
  /** The round's own sampling fraction and noise multiplier, as accounted. */
  sampleRate: number;
  noiseMultiplier: number;
}

export class PrivacyAccounting {
  private readonly db: CoordinatorDatabase;
  private readonly accountant: RdpAccountant;
  private readonly rounds: Set<number>;

  constructor(db: CoordinatorDatabase) {
    this.db = db;
    const raw = db.getMeta(ACCOUNTANT_KEY);
    if (raw === undefined) {
      this.accountant = new RdpAccountant();
      this.rounds = new Set();
    } else {
      const stored = JSON.parse(raw) as StoredAccountant;
      // fromJSON validates the state and recomputes it from its history.
      this.accountant = RdpAccountant.fromJSON(stored.accountant);
      this.rounds = new Set(stored.rounds);
    }
  }

  /**
   * Composes round `roundId` (once) with its sampling rate q and noise multiplier z, and
   * returns the cumulative (ε, δ).
   */
  account(
    roundId: number,
    privacy: Pick<RoundPrivacy, 'sampleRate' | 'accountedNoiseMultiplier'>,
    delta: number,
  ): RoundPrivacySpent {
    const { sampleRate, accountedNoiseMultiplier: noiseMultiplier } = privacy;
    if (!this.rounds.has(roundId)) {
      this.accountant.step({ sampleRate, noiseMultiplier });
      this.rounds.add(roundId);
      const state: StoredAccountant = {
        accountant: this.accountant.toJSON(),
        rounds: [...this.rounds],
      };
      this.db.setMeta(ACCOUNTANT_KEY, JSON.stringify(state));
    }
    return { epsilon: this.accountant.epsilon(delta), delta, sampleRate, noiseMultiplier };
  }
}
