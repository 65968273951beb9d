/**
 * A running RDP accountant: composes sampled-Gaussian steps (RDP adds, order by order) and
 * reports (ε, δ) at any time. The coordinator keeps one per training run to report the
 * privacy of every published model; it serialises to JSON so it survives restarts.
 */
import { z } from 'zod';
import { PrivacyError } from './errors.ts';
import { parseVersionedState } from './versioned-state.ts';
import type { PrivacySpent, SampledGaussian } from './rdp.ts';
import { DEFAULT_ORDERS, computeRdp, rdpToEpsilon } from './rdp.ts';

export interface AccountantStep extends SampledGaussian {
  /** Steps run with these parameters; 1 when absent. */
  steps?: number;
}

/** One run of identical steps, as kept in the history. */
export interface AccountantHistoryEntry extends SampledGaussian {
  steps: number;
}

const FORMAT = 'commons-rdp-accountant';
const VERSION = 1;
/** Stored RDP may differ from a recomputation by float rounding of the sums, no more. */
const CONSISTENCY_TOLERANCE = 1e-9;
const INFINITY = 'Infinity';

const stateSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  orders: z.array(z.number().gt(1)).min(1),
  // RDP is +∞ at every order once a step had no noise (σ = 0). JSON has no Infinity, so it is
  // written as the string "Infinity"; null is what JSON.stringify made of it before, read back
  // only where the history says +∞ (fromJSON), so files saved then still load.
  rdp: z.array(z.union([z.number().nonnegative(), z.literal(INFINITY), z.null()])),
  history: z.array(
    z.strictObject({
      sampleRate: z.number().min(0).max(1),
      noiseMultiplier: z.number().nonnegative(),
      steps: z.number().int().nonnegative(),
    }),
  ),
});

export type RdpAccountantState = z.infer<typeof stateSchema>;

export class RdpAccountant {
  readonly orders: readonly number[];
  private readonly total: Float64Array;
  private readonly runs: AccountantHistoryEntry[] = [];
  private cache: (SampledGaussian & { rdp: Float64Array }) | undefined;

  constructor(orders: readonly number[] = DEFAULT_ORDERS) {
    this.orders = Object.freeze([...orders]);
    // Validates the orders once, here, rather than at the first step.
    this.total = computeRdp({ sampleRate: 0, noiseMultiplier: 1, steps: 0, orders: this.orders });
  }

  /** Composes `steps` (default 1) runs of the sampled Gaussian mechanism. */
  step({ sampleRate, noiseMultiplier, steps = 1 }: AccountantStep): void {
    const perStep = this.perStep(sampleRate, noiseMultiplier);
    if (!Number.isInteger(steps) || steps < 0) {
      throw new PrivacyError('INVALID_ARGUMENT', `steps must be an integer ≥ 0, got ${steps}`);
    }
    // Nothing ran; and 0·∞ (σ = 0) would poison the total with NaN.
    if (steps === 0) return;
    for (let k = 0; k < perStep.length; k++) this.total[k]! += perStep[k]! * steps;
    // Consecutive identical steps share one history entry, as Opacus's accountant does.
    const last = this.runs.at(-1);
    if (last && last.sampleRate === sampleRate && last.noiseMultiplier === noiseMultiplier) {
      last.steps += steps;
    } else {
      this.runs.push({ sampleRate, noiseMultiplier, steps });
    }
  }

  /** One step's RDP, kept for the last parameters: a training loop steps with the same q, σ. */
  private perStep(sampleRate: number, noiseMultiplier: number): Float64Array {
    const cached = this.cache;
    if (cached && cached.sampleRate === sampleRate && cached.noiseMultiplier === noiseMultiplier) {
      return cached.rdp;
    }
    const rdp = computeRdp({ sampleRate, noiseMultiplier, steps: 1, orders: this.orders });
    this.cache = { sampleRate, noiseMultiplier, rdp };
    return rdp;
  }

  /** The composed RDP at each order (a copy). */
  get rdp(): Float64Array {
    return this.total.slice();
  }

  get history(): readonly AccountantHistoryEntry[] {
    return this.runs.map((run) => ({ ...run }));
  }

  /** ε and the order that achieves it, at this δ. */
  privacySpent(delta: number): PrivacySpent {
    return rdpToEpsilon(this.total, this.orders, delta);
  }

  epsilon(delta: number): number {
    return this.privacySpent(delta).epsilon;
  }

  toJSON(): RdpAccountantState {
    return {
      format: FORMAT,
      version: VERSION,
      orders: [...this.orders],
      rdp: Array.from(this.total, (v) => (v === Infinity ? INFINITY : v)),
      history: this.history.map((run) => ({ ...run })),
    };
  }

  /**
   * Restores an accountant. The stored RDP is checked against a recomputation from the
   * history, so a hand-edited or truncated state is refused rather than under-reported.
   */
  static fromJSON(value: unknown): RdpAccountant {
    const state = parseVersionedState(
      value,
      { format: FORMAT, version: VERSION },
      stateSchema,
      'CORRUPT_STATE',
      'accountant state',
    );
    if (state.rdp.length !== state.orders.length) {
      throw new PrivacyError(
        'CORRUPT_STATE',
        `accountant state has ${state.rdp.length} RDP values for ${state.orders.length} orders`,
      );
    }
    const restored = new RdpAccountant(state.orders);
    for (const run of state.history) restored.step(run);
    for (let k = 0; k < state.orders.length; k++) {
      const saved = state.rdp[k]!;
      const recomputed = restored.total[k]!;
      // Legacy null: accepted only where the history gives +∞ (what it once stood for).
      const stored = saved === INFINITY || saved === null ? Infinity : saved;
      const same =
        Number.isFinite(stored) && Number.isFinite(recomputed)
          ? Math.abs(stored - recomputed) <= CONSISTENCY_TOLERANCE * Math.max(1, recomputed)
          : stored === recomputed;
      if (!same) {
        throw new PrivacyError(
          'CORRUPT_STATE',
          `accountant state's RDP at order ${state.orders[k]} is ${String(saved)}, but its history gives ${recomputed}`,
        );
      }
    }
    return restored;
  }
}
