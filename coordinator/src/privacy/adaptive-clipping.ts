// Adaptive clipping on the coordinator (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially
// Private Learning with Adaptive Clipping"): when the policy names a target quantile γ, the clip
// norm is not fixed but follows the γ-quantile of the clients' update norms. Each round every
// client says, with one bit, whether its update fitted under the round's clip norm C before
// clipping; the server adds Gaussian noise σ_b to the bit count and moves C geometrically:
// C ← C·exp(−η_C·(b̄ − γ)). The bits cost privacy too, so the update's own noise multiplier is
// reduced to z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2): together they spend exactly the policy's z, which is
// what the accountant composes.
//
// The clip norm lives in SQLite between rounds (each round's bit count in its clip_bits row);
// the policy's clip norm is where it starts (and where it restarts when governance changes γ). With secure aggregation the bits would have to
// travel inside the masked sum; that is not built, so secure rounds keep the policy's fixed clip
// norm (the engine logs it).
import type { FederationPolicy } from '@commons/chain';
import { AdaptiveClipper, splitNoiseMultiplier, type RandomSource } from '@commons/shared/privacy';
import type { ClipBits, CoordinatorDatabase } from '../store/database.ts';

/** η_C: the log clip norm moves by at most this much a round (the paper's value). */
export const CLIP_LEARNING_RATE = 0.2;

export interface RoundClipping {
  /** C for this round: what clients clip to and uploads are checked against. */
  clipNorm: number;
  /** z for the update noise: the policy's z, less what the clip bits spend when adaptive. */
  noiseMultiplier: number;
  adaptive: boolean;
  /** σ_b on the bit count (0 when not adaptive or without DP). */
  bitNoiseStddev: number;
}

interface StoredClip {
  targetQuantile: number;
  clipNorm: number;
  /** Rounds whose bits already moved C (a round resumed after a crash moves it once). */
  rounds: number[];
}

const CLIP_KEY = 'privacy.adaptiveClip';

export class AdaptiveClipping {
  private readonly db: CoordinatorDatabase;

  constructor(db: CoordinatorDatabase) {
    this.db = db;
  }

  /**
   * The clipping a round uses under `policy`, for about `expectedClients` participants (the
   * fixed denominator of the noisy bit fraction, and what σ_b = m/20 is sized from).
   */
  forRound(policy: FederationPolicy, expectedClients: number): RoundClipping {
    const fixed: RoundClipping = {
      clipNorm: policy.clipNorm,
      noiseMultiplier: policy.noiseMultiplier,
      adaptive: false,
      bitNoiseStddev: 0,
    };
    if (policy.clipTargetQuantile === 0 || policy.secureAggregation) return fixed;
    const stored = this.load();
    const clipNorm =
      stored && stored.targetQuantile === policy.clipTargetQuantile
        ? stored.clipNorm
        : policy.clipNorm;
    if (policy.noiseMultiplier === 0) {
      return { clipNorm, noiseMultiplier: 0, adaptive: true, bitNoiseStddev: 0 };
    }
    // The paper's σ_b = m/20, but never so small that the bits would spend the whole budget.
    const bitNoiseStddev = Math.max(expectedClients / 20, policy.noiseMultiplier);
    return {
      clipNorm,
      noiseMultiplier: splitNoiseMultiplier({
        noiseMultiplier: policy.noiseMultiplier,
        bitNoiseStddev,
      }),
      adaptive: true,
      bitNoiseStddev,
    };
  }

  /** Counts one accepted update's bit for round `roundId`. */
  recordBit(roundId: number, fitted: boolean): void {
    this.db.addClipBit(roundId, fitted);
  }

  /**
   * Moves C after round `roundId` from its clients' bits (once per round); returns the next C,
   * or null when the round did not use adaptive clipping.
   */
  finishRound(
    roundId: number,
    policy: FederationPolicy,
    clipping: RoundClipping,
    expectedClients: number,
    random?: RandomSource,
  ): number | null {
    if (!clipping.adaptive) return null;
    const stored = this.load();
    if (stored?.rounds.includes(roundId)) return stored.clipNorm;
    const { fitted: bitSum, total: survivors } = this.bitsOf(roundId);
    const clipper = new AdaptiveClipper({
      initialClipNorm: clipping.clipNorm,
      targetQuantile: policy.clipTargetQuantile,
      learningRate: CLIP_LEARNING_RATE,
      bitNoiseStddev: clipping.bitNoiseStddev,
      expectedClients: Math.max(1, expectedClients),
    });
    const { clipNorm } = clipper.update({
      bitSum,
      survivors,
      ...(random ? { source: random } : {}),
    });
    const next: StoredClip = {
      targetQuantile: policy.clipTargetQuantile,
      clipNorm,
      rounds: [...(stored?.rounds ?? []), roundId].slice(-100),
    };
    this.db.setMeta(CLIP_KEY, JSON.stringify(next));
    return clipNorm;
  }

  /** The round's bits; a round begun before they were typed has them as "sum,count" in meta. */
  private bitsOf(roundId: number): ClipBits {
    const bits = this.db.clipBits(roundId);
    const legacy = this.db.getMeta(`privacy.clipBits.${roundId}`);
    if (bits.total > 0 || legacy === undefined) return bits;
    const [fitted = 0, total = 0] = legacy.split(',').map(Number);
    return { fitted, total };
  }

  private load(): StoredClip | undefined {
    const raw = this.db.getMeta(CLIP_KEY);
    return raw === undefined ? undefined : (JSON.parse(raw) as StoredClip);
  }
}
