import { FedOpt } from './fedopt.ts';

/** FedAdam (Reddi et al. 2021): v_t = β2·v_{t−1} + (1 − β2)·Δ_t². See FedOpt. */
export class FedAdam extends FedOpt {
  override readonly name: string = 'fedadam';

  protected updateSecondMoment(v: Float32Array, delta: Float32Array): void {
    const beta2 = this.beta2;
    for (let i = 0; i < v.length; i++) {
      const d = delta[i]!;
      v[i] = beta2 * v[i]! + (1 - beta2) * d * d;
    }
  }
}
