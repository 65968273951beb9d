import { FedOpt } from './fedopt.ts';

/**
 * FedYogi (Reddi et al. 2021, after Zaheer et al. 2018's Yogi):
 * v_t = v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²). Unlike Adam's, v moves towards Δ² by
 * an additive step, so the effective learning rate cannot grow abruptly. See FedOpt.
 */
export class FedYogi extends FedOpt {
  override readonly name: string = 'fedyogi';

  protected updateSecondMoment(v: Float32Array, delta: Float32Array): void {
    const beta2 = this.beta2;
    for (let i = 0; i < v.length; i++) {
      const d2 = delta[i]! * delta[i]!;
      v[i] = v[i]! - (1 - beta2) * d2 * Math.sign(v[i]! - d2);
    }
  }
}
