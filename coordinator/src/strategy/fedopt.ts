import { FedAvg, checkSameSize } from './fedavg.ts';
import { StrategyError } from './errors.ts';
import { checkOption } from './options.ts';
import type { StrategyState } from './strategy.ts';

export interface FedOptOptions {
  /** η > 0, the server learning rate (default 0.01). */
  eta?: number;
  /** β1 ∈ [0, 1), momentum of the pseudo-gradient (default 0.9). */
  beta1?: number;
  /** β2 ∈ [0, 1), decay of the second moment; FedAdagrad does not read it (default 0.99). */
  beta2?: number;
  /** τ > 0, the adaptivity floor under √v (default 1e-3). */
  tau?: number;
}

/**
 * Adaptive Federated Optimization (Reddi et al. 2021, Algorithm 2): the clients' averaged
 * delta Δ_t is a pseudo-gradient for a server optimiser instead of being added as it is.
 * Per parameter, at round t:
 *
 *   m_t     = β1·m_{t−1} + (1 − β1)·Δ_t
 *   v_t     = FedAdagrad: v_{t−1} + Δ_t²
 *             FedYogi:    v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²)
 *             FedAdam:    β2·v_{t−1} + (1 − β2)·Δ_t²
 *   x_{t+1} = x_t + η·m_t / (√v_t + τ)
 *
 * with m_{−1} = 0 and v_{−1} = τ² (the paper's v_{−1} ≥ τ²). As in the paper there is no
 * bias correction. m and v are float32 (what exportState saves), and each step reads back
 * the stored float32 values, so a strategy restored by importState continues bit for bit.
 * Aggregation itself is FedAvg's streaming weighted mean.
 */
export abstract class FedOpt extends FedAvg {
  override readonly serverOptimiser: boolean = true;
  readonly eta: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  #m: Float32Array | null = null;
  #v: Float32Array | null = null;
  /** Server steps taken. */
  #t = 0;
  /** The round of the last step, so a caller can tell whether a round was already applied. */
  #roundId: number | null = null;

  constructor({ eta = 0.01, beta1 = 0.9, beta2 = 0.99, tau = 1e-3 }: FedOptOptions = {}) {
    super();
    this.eta = checkOption('eta', eta, { above: 0 });
    this.beta1 = checkOption('beta1', beta1, { min: 0, below: 1 });
    this.beta2 = checkOption('beta2', beta2, { min: 0, below: 1 });
    this.tau = checkOption('tau', tau, { above: 0 });
  }

  /** Server steps taken so far (t in the paper, counted from 1). */
  get steps(): number {
    return this.#t;
  }

  /** v_{t−1} → v_t in place, given Δ_t. */
  protected abstract updateSecondMoment(v: Float32Array, delta: Float32Array): void;

  override applyUpdate(
    base: Float32Array,
    aggregatedDelta: Float32Array,
    roundId: number,
  ): Float32Array {
    checkSameSize(base, aggregatedDelta);
    if (this.#m === null || this.#v === null) {
      this.#m = new Float32Array(base.length);
      this.#v = new Float32Array(base.length).fill(this.tau * this.tau);
    } else if (this.#m.length !== base.length) {
      throw new StrategyError(
        'SIZE_MISMATCH',
        `${this.name} holds optimiser state for ${this.#m.length} parameters, the model has ${base.length}`,
      );
    }
    const m = this.#m;
    const v = this.#v;
    const { eta, beta1, tau } = this;
    for (let i = 0; i < m.length; i++) m[i] = beta1 * m[i]! + (1 - beta1) * aggregatedDelta[i]!;
    this.updateSecondMoment(v, aggregatedDelta);
    const next = new Float32Array(base.length);
    for (let i = 0; i < next.length; i++) {
      next[i] = base[i]! + (eta * m[i]!) / (Math.sqrt(v[i]!) + tau);
    }
    this.#t += 1;
    this.#roundId = roundId;
    return next;
  }

  /** { json: { strategy, t, roundId }, tensors: { m, v } } (copies); null before the first step. */
  override exportState(): StrategyState | null {
    if (this.#m === null || this.#v === null) return null;
    return {
      json: { strategy: this.name, t: this.#t, roundId: this.#roundId },
      tensors: { m: this.#m.slice(), v: this.#v.slice() },
    };
  }

  override importState({ json, tensors }: StrategyState): void {
    const { m, v } = tensors;
    const t = json.t;
    const roundId = json.roundId;
    if (json.strategy !== this.name) {
      throw new StrategyError(
        'STATE_MISMATCH',
        `state saved by ${String(json.strategy)} cannot be loaded into ${this.name}`,
      );
    }
    if (
      typeof t !== 'number' ||
      !Number.isInteger(t) ||
      t < 1 ||
      !(roundId === null || typeof roundId === 'number') ||
      !(m instanceof Float32Array) ||
      !(v instanceof Float32Array) ||
      m.length !== v.length
    ) {
      throw new StrategyError(
        'STATE_MISMATCH',
        `${this.name} state needs t ≥ 1, a roundId, and float32 m and v of one length`,
      );
    }
    this.#m = m.slice();
    this.#v = v.slice();
    this.#t = t;
    this.#roundId = roundId;
  }
}
