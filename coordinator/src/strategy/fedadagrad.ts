import { FedOpt } from './fedopt.ts';

/** FedAdagrad (Reddi et al. 2021): v_t = v_{t−1} + Δ_t² (β2 is not used). See FedOpt. */
export class FedAdagrad extends FedOpt {
  override readonly name: string = 'fedadagrad';

  protected updateSecondMoment(v: Float32Array, delta: Float32Array): void {
    for (let i = 0; i < v.length; i++) {
      const d = delta[i]!;
      v[i] = v[i]! + d * d;
    }
  }
}
